"""
Tests for L{xmppd.core.router}, L{xmppd.core.stanzas} and L{xmppd.core.local}: which route
gets a stanza, and the errors senders see when there is none.
"""

from twisted.words.protocols.jabber.jid import JID
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppd.core.hooks import Hooks
from xmppd.core.jid import parseJID
from xmppd.core.local import LocalDomain
from xmppd.core.router import IAddressedRoute, IRoute, IRouter, Router
from xmppd.core.sessions import SessionManager
from xmppd.core.stanzas import errorReply
from tests.helpers import parse


@implementer(IRoute)
class RecordingRoute:
    def __init__(self):
        self.stanzas = []

    def deliver(self, stanza):
        self.stanzas.append(stanza)


class FakeStream:
    def __init__(self):
        self.sent = []
        self.replaced = False

    def send(self, obj):
        self.sent.append(obj)

    def replaceSession(self):
        self.replaced = True


def test_routerProvidesInterface():
    """The router implements IRouter."""
    assert verifyObject(IRouter, Router())


def test_routeByDomain():
    """A stanza goes to the route of its 'to' domain, and only there."""
    router, a, b = Router(), RecordingRoute(), RecordingRoute()
    router.addRoute("a.example", a)
    router.addRoute("b.example", b)
    router.route(parse("<message to='juliet@b.example/balcony' from='romeo@a.example/x'/>"))
    assert len(b.stanzas) == 1 and a.stanzas == []


def test_noToGoesToSendersDomain():
    """A stanza without 'to' is handled by the sender's own server (RFC 6120 §8.1.1.1)."""
    router, a = Router(), RecordingRoute()
    router.addRoute("a.example", a)
    router.route(parse("<iq type='get' id='1' from='romeo@a.example/x'><query xmlns='jabber:iq:roster'/></iq>"))
    assert len(a.stanzas) == 1


def test_unknownDomainRemoteServerNotFound():
    """Until federation exists, a stanza for a foreign domain bounces with remote-server-not-found."""
    router, a = Router(), RecordingRoute()
    router.addRoute("a.example", a)
    router.route(parse("<message id='m1' to='juliet@elsewhere.example' from='romeo@a.example/x'><body>hi</body></message>"))
    [reply] = a.stanzas
    assert reply["type"] == "error"
    assert reply["to"] == "romeo@a.example/x" and reply["id"] == "m1"
    assert reply.error.firstChildElement().name == "remote-server-not-found"


def test_errorsAreNeverBounced():
    """An error stanza for an unreachable domain disappears instead of starting a loop."""
    router, a = Router(), RecordingRoute()
    router.addRoute("a.example", a)
    router.route(parse("<message type='error' to='juliet@elsewhere.example' from='romeo@a.example/x'/>"))
    router.route(parse("<iq type='result' id='1' to='juliet@elsewhere.example' from='romeo@a.example/x'/>"))
    assert a.stanzas == []


def test_removeRouteKeepsOthers():
    """Removing a route only removes that route, not one registered since."""
    router, old, new = Router(), RecordingRoute(), RecordingRoute()
    router.addRoute("a.example", old)
    router.addRoute("a.example", new)
    router.removeRoute("a.example", old)
    assert router.hasRoute("a.example")
    router.removeRoute("a.example", new)
    assert not router.hasRoute("a.example")


def test_brokenRouteDoesNotBreakRouter():
    """A route that raises is logged; the next stanza is routed normally."""
    @implementer(IRoute)
    class Broken:
        def deliver(self, stanza):
            raise RuntimeError("boom")

    router, ok = Router(), RecordingRoute()
    router.addRoute("broken.example", Broken())
    router.addRoute("ok.example", ok)
    router.route(parse("<message to='x@broken.example' from='y@ok.example/r'/>"))
    router.route(parse("<message to='x@ok.example' from='y@ok.example/r'/>"))
    assert len(ok.stanzas) == 1


@implementer(IAddressedRoute)
class AddressedRoute(RecordingRoute):
    def __init__(self):
        RecordingRoute.__init__(self)
        self.addressed = []

    def deliverAddressed(self, stanza, sender, recipient):
        self.addressed.append((stanza, sender, recipient))


def test_addressedRouteGetsTheCallersJIDs():
    """A stanza routed with its addresses already parsed reaches the route with those very JIDs."""
    router, route = Router(), AddressedRoute()
    router.addRoute("b.example", route)
    sender, recipient = JID("romeo@a.example/x"), JID("juliet@b.example")
    stanza = parse("<message to='juliet@b.example' from='romeo@a.example/x'/>")
    router.route(stanza, sender, recipient)
    assert route.addressed == [(stanza, sender, recipient)] and route.stanzas == []
    assert route.addressed[0][2] is recipient


def test_addressedRouteGetsTheRoutersParse():
    """Routed without parsed addresses, an addressed route gets the 'to' the router parsed, and no sender."""
    router, route = Router(), AddressedRoute()
    router.addRoute("b.example", route)
    router.route(parse("<message to='juliet@b.example' from='romeo@a.example/x'/>"))
    [(_, sender, recipient)] = route.addressed
    assert sender is None and recipient == parseJID("juliet@b.example")


def test_senderRoutesAStanzaWithoutTo():
    """A stanza without 'to' routed with its parsed sender goes to the sender's domain."""
    router, route = Router(), AddressedRoute()
    router.addRoute("a.example", route)
    sender = parseJID("romeo@a.example/x")
    router.route(parse("<presence from='romeo@a.example/x'/>"), sender)
    [(_, given, recipient)] = route.addressed
    assert given is sender and recipient is None


def test_replacedRouteIsNotAddressedAnyMore():
    """A plain route that replaces an addressed one for a domain gets that domain's stanzas."""
    router, addressed, plain = Router(), AddressedRoute(), RecordingRoute()
    router.addRoute("b.example", addressed)
    router.addRoute("b.example", plain)
    router.route(parse("<message to='juliet@b.example' from='romeo@a.example/x'/>"))
    assert len(plain.stanzas) == 1 and addressed.addressed == []
    router.removeRoute("b.example", plain)
    router.route(parse("<message to='juliet@b.example' from='romeo@a.example/x'/>"))
    assert addressed.addressed == []


def test_errorReplyKeepsPayload():
    """An error reply swaps the addresses and keeps the payload, so the client can match it."""
    stanza = parse("<iq type='get' id='7' to='a.example' from='romeo@a.example/x'><query xmlns='urn:x'/></iq>")
    reply = errorReply(stanza, "service-unavailable")
    assert (reply["to"], reply["from"], reply["id"], reply["type"]) == (
        "romeo@a.example/x", "a.example", "7", "error")
    assert reply.query.uri == "urn:x"
    assert reply.error["type"] == "cancel"


class FakeServer:
    """What a LocalDomain takes from its node, with no features."""

    def __init__(self):
        self.router = Router()
        self.sessions = SessionManager()
        self.hooks = Hooks()


def makeDomain():
    server = FakeServer()
    domain = LocalDomain("a.example", server, features=())
    domain.startService()
    return server.router, server.sessions, domain


def test_fullJIDDelivery():
    """A message to a bound full JID reaches exactly that resource."""
    router, sessions, _ = makeDomain()
    balcony, garden = FakeStream(), FakeStream()
    sessions.bind(parseJID("juliet@a.example/balcony"), balcony)
    sessions.bind(parseJID("juliet@a.example/garden"), garden)
    router.route(parse("<message to='juliet@a.example/balcony' from='romeo@a.example/x'/>"))
    assert len(balcony.sent) == 1 and garden.sent == []


def test_offlineFullJIDMessageGoesToBare():
    """A message to an offline resource is treated as sent to the bare JID (RFC 6121 §8.5.3.2.1)."""
    router, sessions, _ = makeDomain()
    garden = FakeStream()
    sessions.bind(parseJID("juliet@a.example/garden"), garden)
    router.route(parse("<message to='juliet@a.example/gone' from='romeo@a.example/x'/>"))
    assert len(garden.sent) == 1


def test_iqToOfflineResource():
    """An IQ to a resource that is not online gets service-unavailable."""
    router, sessions, _ = makeDomain()
    romeo = FakeStream()
    sessions.bind(parseJID("romeo@a.example/x"), romeo)
    router.route(parse("<iq type='get' id='1' to='juliet@a.example/gone' from='romeo@a.example/x'><ping xmlns='urn:xmpp:ping'/></iq>"))
    [reply] = romeo.sent
    assert reply["type"] == "error"
    assert reply.error.firstChildElement().name == "service-unavailable"


def test_messageToNobody():
    """A message to an account with nobody online gets service-unavailable."""
    router, sessions, _ = makeDomain()
    romeo = FakeStream()
    sessions.bind(parseJID("romeo@a.example/x"), romeo)
    router.route(parse("<message id='1' to='nobody@a.example' from='romeo@a.example/x'><body>hi</body></message>"))
    [reply] = romeo.sent
    assert reply.error.firstChildElement().name == "service-unavailable"


def test_presenceToOfflineDropped():
    """Presence to an offline resource is silently dropped."""
    router, sessions, _ = makeDomain()
    romeo = FakeStream()
    sessions.bind(parseJID("romeo@a.example/x"), romeo)
    router.route(parse("<presence to='juliet@a.example/gone' from='romeo@a.example/x'/>"))
    assert romeo.sent == []


def test_domainHandlerDispatch():
    """An IQ to the domain reaches the wokkel handler observing its payload."""
    router, sessions, domain = makeDomain()
    seen = []
    domain.dispatcher.addObserver("/iq[@type='get']/ping[@xmlns='urn:xmpp:ping']",
                                  seen.append)
    router.route(parse("<iq type='get' id='1' to='a.example' from='romeo@a.example/x'><ping xmlns='urn:xmpp:ping'/></iq>"))
    assert len(seen) == 1


def test_hooksDecideFirst():
    """A feature's hook for message/bare takes the stanza before the core's fallback."""
    router, sessions, domain = makeDomain()
    taken = []
    domain.hooks.add("message/bare", lambda event: taken.append(event) or True)
    romeo = FakeStream()
    sessions.bind(parseJID("romeo@a.example/x"), romeo)
    router.route(parse("<message to='nobody@a.example' from='romeo@a.example/x'><body>hi</body></message>"))
    assert romeo.sent == []
    [event] = taken
    assert event.recipient.full() == "nobody@a.example"
    assert event.sender.full() == "romeo@a.example/x" and not event.toSelf


def test_domainUsesTheParsedAddresses():
    """A domain's hooks see the sender and recipient JIDs the stanza was routed with, not new parses."""
    router, sessions, domain = makeDomain()
    taken = []
    domain.hooks.add("message/bare", lambda event: taken.append(event) or True)
    # Twisted's own JIDs, not the parser's cached ones: only these very
    # objects can come out if the domain does not parse again.
    sender, recipient = JID("romeo@a.example/x"), JID("nobody@a.example")
    router.route(parse("<message to='nobody@a.example' from='romeo@a.example/x'/>"),
                 sender, recipient)
    [event] = taken
    assert event.sender is sender and event.recipient is recipient


def test_noToIsToSelf():
    """An IQ without 'to' is an IQ to the sender's own bare JID, marked toSelf."""
    router, sessions, domain = makeDomain()
    taken = []
    domain.hooks.add("iq/bare", lambda event: taken.append(event) or True)
    router.route(parse("<iq type='get' id='1' from='romeo@a.example/x'><query xmlns='jabber:iq:roster'/></iq>"))
    [event] = taken
    assert event.toSelf and event.recipient.full() == "romeo@a.example"


def test_presenceWithoutToIsSelf():
    """Presence without 'to' fires presence/self (the user's own broadcast)."""
    router, sessions, domain = makeDomain()
    taken = []
    domain.hooks.add("presence/self", lambda event: taken.append(event) or True)
    router.route(parse("<presence from='romeo@a.example/x'/>"))
    assert len(taken) == 1


def test_stoppedDomainIsNotRouted():
    """Once a domain's service stops, its stanzas take the default route."""
    router, _, domain = makeDomain()
    domain.stopService()
    assert not router.hasRoute("a.example")


def test_wokkelHandlerRepliesThroughParent():
    """A wokkel IQHandlerMixin handler's reply (sent via its parent) reaches the requester."""
    from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

    class EchoHandler(XMPPHandler, IQHandlerMixin):
        iqHandlers = {"/iq[@type='get']/echo[@xmlns='urn:x:echo']": "onEcho"}

        def connectionInitialized(self):
            self.xmlstream.addObserver("/iq[@type='get']/echo[@xmlns='urn:x:echo']",
                                       self.handleRequest)

        def onEcho(self, iq):
            return None

    router, sessions, domain = makeDomain()
    domain.addHandler(EchoHandler())
    romeo = FakeStream()
    sessions.bind(parseJID("romeo@a.example/x"), romeo)
    router.route(parse("<iq type='get' id='e1' to='a.example' from='romeo@a.example/x'><echo xmlns='urn:x:echo'/></iq>"))
    [reply] = romeo.sent
    assert (reply["type"], reply["id"]) == ("result", "e1")
