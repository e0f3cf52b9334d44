"""
Tests for L{xmppd.features.push}: push notifications (XEP-0357) enabled and
disabled by IQ, published to an app server (a route recording what it gets)
when a message reaches an account with no session or a session detached
under stream management, rate-limited, and disabled by the app server's
errors.  Time from a L{Clock}, storage in memory.
"""

from __future__ import annotations

import pytest
from twisted.words.xish import domish
from zope.interface import implementer

from tests.domainhelpers import DOMAIN, Domain, errorCondition
from tests.helpers import parse
from tests.smhelpers import FEATURES as SM_FEATURES, SMNode
from xmppd.core.router import IRoute
from xmppd.features.push import (NS_PUSH, NS_SUMMARY, STORAGE_KEY, PushHandler, isImportant,
                                 loads)

JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/orchard"
APP = "push.example.net"
NS_DATA = "jabber:x:data"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"

#: XEP-0357 Example 9, with our addresses.
ENABLE_WITH_OPTIONS = (
    "<iq type='set' id='x42' from='%s'>"
    "<enable xmlns='urn:xmpp:push:0' jid='%s' node='yxs32uqsflafdk3iuqo'>"
    "<x xmlns='jabber:x:data' type='submit'>"
    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
    "<field var='secret'><value>eruio234vzxc2kla-91</value></field>"
    "</x></enable></iq>" % (JULIET, APP))


@implementer(IRoute)
class AppServer:
    """The app server's route: records what it gets."""

    def __init__(self):
        self.received: list[domish.Element] = []

    def deliver(self, stanza) -> None:
        self.received.append(stanza)

    def take(self) -> list[domish.Element]:
        received, self.received = self.received, []
        return received


def enable(node="yxs32uqsflafdk3iuqo", jid=APP, sender=JULIET, id="e1") -> str:
    return ("<iq type='set' id='%s' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s' "
            "node='%s'/></iq>" % (id, sender, jid, node))


def disable(jid=APP, node=None, sender=JULIET) -> str:
    nodeAttr = " node='%s'" % node if node else ""
    return ("<iq type='set' id='d1' from='%s'><disable xmlns='urn:xmpp:push:0' jid='%s'%s/>"
            "</iq>" % (sender, jid, nodeAttr))


def message(body="Wherefore art thou?", to="juliet@example.org", sender=ROMEO, kind="chat"):
    return "<message type='%s' from='%s' to='%s'><body>%s</body></message>" % (
        kind, sender, to, body)


def summary(iq: domish.Element) -> dict:
    """The fields of the summary form of a published notification."""
    [pubsub] = iq.elements(NS_PUBSUB, "pubsub")
    [publish] = pubsub.elements(NS_PUBSUB, "publish")
    [item] = publish.elements(NS_PUBSUB, "item")
    [notification] = item.elements(NS_PUSH, "notification")
    [form] = notification.elements(NS_DATA, "x")
    return {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")]
            for f in form.elements(NS_DATA, "field")}


def answer(domain, iq, error=None, errorType="cancel"):
    """The app server answers the push C{iq}."""
    if error is None:
        reply = "<iq type='result' id='%s' from='%s' to='%s'/>" % (iq["id"], iq["to"], iq["from"])
    else:
        reply = ("<iq type='error' id='%s' from='%s' to='%s'><error type='%s'>"
                 "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                 % (iq["id"], iq["to"], iq["from"], errorType, error))
    domain.send(reply)


@pytest.fixture
def domain(tmp_path):
    domain = Domain(tmp_path, features=("disco", "messages", "offline", "push"),
                    sections={"push": {"include_sender": True}})
    domain.app = AppServer()
    domain.router.addRoute(APP, domain.app)
    return domain


def stored(domain, user="juliet"):
    d = domain.storage.accountData.get(user, DOMAIN, STORAGE_KEY)
    return loads(d.result)


def test_enableStored(domain):
    """An enable is answered with a result and kept with the account, with its publish options."""
    juliet = domain.bind(JULIET)
    domain.send(ENABLE_WITH_OPTIONS)
    [reply] = juliet.take()
    assert reply["type"] == "result" and reply["id"] == "x42"
    [registration] = stored(domain)
    assert registration.jid == APP and registration.node == "yxs32uqsflafdk3iuqo"
    assert dict(registration.options)["secret"] == ("eruio234vzxc2kla-91",)


def test_offlineMessagePublishes(domain):
    """A message to an account with no session publishes the summary to its app server (Example 10)."""
    juliet = domain.bind(JULIET)
    domain.send(ENABLE_WITH_OPTIONS)
    juliet.take()
    domain.unbind(JULIET)
    domain.send(message())
    [iq] = domain.app.take()
    assert iq["type"] == "set" and iq["to"] == APP and iq["from"] == "juliet@example.org"
    [pubsub] = iq.elements(NS_PUBSUB, "pubsub")
    [publish] = pubsub.elements(NS_PUBSUB, "publish")
    assert publish["node"] == "yxs32uqsflafdk3iuqo"
    assert summary(iq) == {"FORM_TYPE": [NS_SUMMARY], "message-count": ["1"],
                           "last-message-sender": [ROMEO]}
    [options] = pubsub.elements(NS_PUBSUB, "publish-options")
    [form] = options.elements(NS_DATA, "x")
    fields = {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")]
              for f in form.elements(NS_DATA, "field")}
    assert fields["secret"] == ["eruio234vzxc2kla-91"]
    # The message itself is still stored for the user.
    assert domain.storage.offline.count("juliet", DOMAIN).result == 1


def test_bodyOnlyWhenConfigured(tmp_path):
    """The message's text goes to the app server only with include_body; the sender only with include_sender."""
    domain = Domain(tmp_path, features=("messages", "offline", "push"),
                    sections={"push": {"include_body": True}})
    domain.app = AppServer()
    domain.router.addRoute(APP, domain.app)
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("secret words"))
    [iq] = domain.app.take()
    fields = summary(iq)
    assert fields["last-message-body"] == ["secret words"]
    assert "last-message-sender" not in fields


def test_defaultsSendNoContent(tmp_path):
    """By default the app server learns neither who wrote nor what."""
    domain = Domain(tmp_path, features=("messages", "offline", "push"))
    domain.app = AppServer()
    domain.router.addRoute(APP, domain.app)
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message())
    [iq] = domain.app.take()
    assert summary(iq) == {"FORM_TYPE": [NS_SUMMARY], "message-count": ["1"]}
    assert iq.toXml().find("publish-options") == -1


def test_onlineAccountNoPush(domain):
    """A message delivered to an available session pushes nothing."""
    juliet = domain.bind(JULIET, available=True)
    domain.send(enable())
    juliet.take()
    domain.send(message())
    assert [s.name for s in juliet.take()] == ["message"]
    assert domain.app.take() == []


@pytest.mark.parametrize("xml", [
    "<message type='chat' from='%s' to='juliet@example.org'><composing "
    "xmlns='http://jabber.org/protocol/chatstates'/></message>" % ROMEO,
    "<message type='chat' from='%s' to='juliet@example.org'><body></body></message>" % ROMEO,
    "<message type='headline' from='%s' to='juliet@example.org'/>" % ROMEO,
])
def test_unimportantNoPush(domain, xml):
    """Chat states, empty bodies and empty headlines wake no device."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(xml)
    assert domain.app.take() == []


def test_importance():
    """Encrypted messages and call proposals are important; groupchat, errors and sent carbons are not."""
    assert isImportant(parse("<message><encrypted xmlns='eu.siacs.conversations.axolotl'/>"
                             "</message>"))
    assert isImportant(parse("<message><propose xmlns='urn:xmpp:jingle-message:0'/></message>"))
    assert not isImportant(parse("<message type='groupchat'><body>hi</body></message>"))
    assert not isImportant(parse("<message type='error'><body>hi</body></message>"))
    assert not isImportant(parse(
        "<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
        "<message xmlns='jabber:client'><body>hi</body></message></forwarded></sent></message>"))
    assert isImportant(parse(
        "<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
        "<message xmlns='jabber:client'><body>hi</body></message></forwarded></received>"
        "</message>"))


def test_rateLimited(domain):
    """A registration pushes at most once per min_interval; the next push counts what was held back."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("one"))
    [first] = domain.app.take()
    answer(domain, first)
    domain.send(message("two"))
    domain.send(message("three"))
    assert domain.app.take() == []
    domain.clock.advance(10)
    domain.send(message("four"))
    [second] = domain.app.take()
    assert summary(second)["message-count"] == ["3"]


@pytest.mark.parametrize("condition", ["item-not-found", "forbidden", "not-authorized"])
def test_errorDisables(domain, condition):
    """An error from the app server removes the registration: no more pushes (§7.1)."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("one"))
    [iq] = domain.app.take()
    answer(domain, iq, condition)
    assert stored(domain) == []
    domain.clock.advance(60)
    domain.send(message("two"))
    assert domain.app.take() == []


def test_waitErrorKeeps(domain):
    """An error of type wait is transient: the registration stays."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("one"))
    [iq] = domain.app.take()
    answer(domain, iq, "resource-constraint", "wait")
    assert len(stored(domain)) == 1
    domain.clock.advance(60)
    domain.send(message("two"))
    assert len(domain.app.take()) == 1


def test_errorFromElsewhereIgnored(domain):
    """Only the app server itself can disable its registration with an error."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("one"))
    [iq] = domain.app.take()
    domain.send("<iq type='error' id='%s' from='%s' to='juliet@example.org'><error type='cancel'>"
                "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                % (iq["id"], ROMEO))
    assert len(stored(domain)) == 1


def test_noAnswerForgotten(domain):
    """An app server that never answers keeps nothing waiting past the timeout, and changes nothing."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.unbind(JULIET)
    domain.send(message("one"))
    handler = domain.handler(PushHandler)
    assert len(handler.pending) == 1 and handler.listening
    domain.clock.advance(60)
    assert handler.pending == {} and not handler.listening
    assert len(stored(domain)) == 1


def test_disable(domain):
    """A disable with a node removes that registration; without one, every one of that app server."""
    juliet = domain.bind(JULIET)
    for node in ("a", "b", "c"):
        domain.send(enable(node))
    domain.send(enable("d", jid="other.example.net"))
    domain.send(disable(node="a"))
    assert [r.node for r in stored(domain)] == ["b", "c", "d"]
    domain.send(disable())
    assert [r.node for r in stored(domain)] == ["d"]
    domain.send(disable(jid="nothing.example.net"))
    assert [s["type"] for s in juliet.take()] == ["result"] * 7


def test_enableAgainReplaces(domain):
    """Enabling the same app server and node again replaces it, not adds one."""
    domain.bind(JULIET)
    domain.send(enable())
    domain.send(ENABLE_WITH_OPTIONS)
    [registration] = stored(domain)
    assert registration.options


def test_tooManyRegistrations(domain):
    """Past max_registrations an enable gets policy-violation and nothing changes."""
    juliet = domain.bind(JULIET)
    for number in range(5):
        domain.send(enable("node%d" % number))
    juliet.take()
    domain.send(enable("one-too-many"))
    [reply] = juliet.take()
    assert errorCondition(reply) == "policy-violation"
    assert "type='modify'" in reply.toXml()  # Serializable: the error has its type.
    assert len(stored(domain)) == 5


@pytest.mark.parametrize("xml", [
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' node='n'/></iq>" % JULIET,
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s'/></iq>" % (
        JULIET, APP),
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>"
    "</iq>" % JULIET,
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n'>"
    "<x xmlns='jabber:x:data' type='form'/></enable></iq>" % (JULIET, APP),
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n'>"
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value>"
    "</field></x></enable></iq>" % (JULIET, APP),
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n'>"
    "<x xmlns='jabber:x:data' type='submit'><field><value>v</value></field></x></enable></iq>"
    % (JULIET, APP),
    "<iq type='set' id='b' from='%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='%s'/></iq>"
    % (JULIET, APP, "n" * 2000),
    "<iq type='set' id='b' from='%s'><disable xmlns='urn:xmpp:push:0'/></iq>" % JULIET,
])
def test_malformed(domain, xml):
    """Malformed enables and disables get bad-request and change nothing."""
    juliet = domain.bind(JULIET)
    domain.send(xml)
    [reply] = juliet.take()
    assert errorCondition(reply) == "bad-request"
    assert "type='modify'" in reply.toXml()
    assert stored(domain) == []


def test_otherAccountRefused(domain):
    """Only the account itself enables push for it."""
    romeo = domain.bind(ROMEO)
    domain.send("<iq type='set' id='o' from='%s' to='juliet@example.org'><enable "
                "xmlns='urn:xmpp:push:0' jid='%s' node='n'/></iq>" % (ROMEO, APP))
    [reply] = romeo.take()
    assert errorCondition(reply) == "service-unavailable"
    assert stored(domain) == []


def test_disco(domain):
    """The account announces urn:xmpp:push:0 to itself (§5)."""
    juliet = domain.bind(JULIET)
    domain.send("<iq type='get' id='d' from='%s' to='juliet@example.org'>"
                "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % JULIET)
    [reply] = juliet.take()
    features = [f["var"] for f in reply.query.elements() if f.name == "feature"]
    assert NS_PUSH in features


def test_detachedSessionPushes(tmp_path):
    """A message for a session kept for resumption pushes to the registrations it enabled."""
    node = SMNode(tmp_path, features=SM_FEATURES + ("offline", "push"))
    app = AppServer()
    node.server.router.addRoute(APP, app)
    client = node.login(sm=True)
    client.send("<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n'/>"
                "</iq>" % APP)
    assert [e["type"] for e in client.received() if e.name == "iq"] == ["result"]
    client.disconnect()
    node.message("juliet@example.org/balcony", "are you there?")
    [iq] = app.take()
    assert summary(iq)["message-count"] == ["1"]
    # Nothing for a session that did not enable push.
    other = node.login("romeo", "orchard", sm=True)
    other.disconnect()
    node.message("romeo@example.org/orchard", "hello", sender="juliet@example.org/balcony")
    assert app.take() == []


def test_unacknowledgedAtDetachPushes(tmp_path):
    """A message the client had not acknowledged when its connection broke pushes too."""
    node = SMNode(tmp_path, features=SM_FEATURES + ("offline", "push"))
    app = AppServer()
    node.server.router.addRoute(APP, app)
    client = node.login(sm=True)
    client.send("<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n'/>"
                "</iq>" % APP)
    client.received()
    node.message("juliet@example.org/balcony", "did you get this?")
    assert [e.name for e in client.received() if e.name == "message"] == ["message"]
    assert app.take() == []
    client.disconnect()
    [iq] = app.take()
    assert summary(iq)["message-count"] == ["1"]
