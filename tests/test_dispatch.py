"""
Tests for L{xmppd.core.dispatch}: wokkel handlers answered through dict lookups.
"""

from twisted.words.xish import domish
from wokkel.ping import PingHandler
from wokkel.subprotocols import XMPPHandler

from xmppd.core.dispatch import DomainStream, StanzaDispatcher, parseQuery
from tests.test_router import parse


class RecordingRouter:
    def __init__(self):
        self.routed = []

    def route(self, stanza):
        self.routed.append(stanza)


def test_parseQueries():
    """The XPath forms wokkel handlers use become dispatch keys."""
    assert parseQuery("/iq[@type='get']/ping[@xmlns='urn:xmpp:ping']") == [
        ("iq", "get", "urn:xmpp:ping", "ping")]
    assert parseQuery('/iq[@type="get" or @type="set"]/query[@xmlns="jabber:iq:roster"]') == [
        ("iq", "get", "jabber:iq:roster", "query"), ("iq", "set", "jabber:iq:roster", "query")]
    assert parseQuery("/presence") == [("presence", None, None, None)]
    assert parseQuery("/message[@type='chat']") == [("message", "chat", None, None)]
    assert parseQuery("/message/body") is None
    assert parseQuery("//event/stream/start") is None


def test_wokkelPingHandlerAnswers():
    """wokkel's own PingHandler, unchanged, answers a ping routed to the domain."""
    router, dispatcher = RecordingRouter(), StanzaDispatcher()
    handler = PingHandler()
    handler.makeConnection(DomainStream(router, dispatcher))
    handler.connectionInitialized()
    iq = parse("<iq type='get' id='p1' to='a.example' from='romeo@a.example/x'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert dispatcher.dispatch(iq)
    [response] = router.routed
    assert (response["type"], response["id"], response["to"]) == ("result", "p1", "romeo@a.example/x")


def test_unmatchedNotHandled():
    """A stanza no observer wants is reported as unhandled (the caller answers it)."""
    dispatcher = StanzaDispatcher()
    dispatcher.addObserver("/iq[@type='get']/ping[@xmlns='urn:xmpp:ping']", lambda s: None)
    iq = parse("<iq type='set' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert not dispatcher.dispatch(iq)


def test_priorityAndHandledFlag():
    """Observers run highest priority first and stop once one marks the stanza handled."""
    dispatcher, calls = StanzaDispatcher(), []

    def low(stanza):
        calls.append("low")

    def high(stanza):
        calls.append("high")
        stanza.handled = True

    dispatcher.addObserver("/message", low)
    dispatcher.addObserver("/message[@type='chat']", high, priority=10)
    assert dispatcher.dispatch(parse("<message type='chat'/>"))
    assert calls == ["high"]


def test_slowPathStillWorks():
    """An XPath beyond the key form is still honoured, by real XPath matching."""
    dispatcher, seen = StanzaDispatcher(), []
    dispatcher.addObserver("/message/body", seen.append)
    dispatcher.dispatch(parse("<message><body>hi</body></message>"))
    dispatcher.dispatch(parse("<message><subject>hi</subject></message>"))
    assert len(seen) == 1


def test_generalObserverSeesEveryType():
    """An observer without a type predicate sees stanzas of every type."""
    dispatcher, seen = StanzaDispatcher(), []
    dispatcher.addObserver("/presence", seen.append)
    dispatcher.dispatch(parse("<presence/>"))
    dispatcher.dispatch(parse("<presence type='subscribe'/>"))
    assert len(seen) == 2


def test_clientCannotMarkHandled():
    """A client-sent <handled/> child does not make the server skip the stanza."""
    dispatcher = StanzaDispatcher()
    iq = parse("<iq type='get' id='1'><query xmlns='urn:x'><handled/></query>"
               "<handled xmlns='urn:y'/></iq>")
    assert not dispatcher.dispatch(iq)
