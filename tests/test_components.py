"""
Tests for L{xmppd.components.server}: the server's side of XEP-0114 driven byte by
byte over a L{StringTransport}, as a component would see it, with time from
a clock; and the C{[components]} configuration.
"""

from __future__ import annotations

import pytest
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, formatEvent
from zope.interface import implementer

from tests.helpers import parse, toml
from tests.streamhelpers import FakeTransport, Reply, Wire, header
from xmppd.components.server import ComponentService, handshakeDigest
from xmppd.config import ConfigError, loadConfig
from xmppd.stream.listening import ListenError
from xmppd.core.router import IRoute
from xmppd.core.server import XMPPServer
from xmppd.core.stanzas import NS_CLIENT
from xmppd.stream.base import NS_COMPONENT, StreamBase, toClientNamespace
from xmppd.tap import makeService
from xmppd.stream.xmlparser import PARSE_SLICE

DOMAIN = "example.org"
COMPONENT = "muc.example.org"
OTHER = "gateway.example.org"
SECRET = "s3cr3t-for-muc"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@implementer(IRoute)
class RecordingRoute:
    def __init__(self):
        self.stanzas = []

    def deliver(self, stanza):
        self.stanzas.append(stanza)


def writeConfig(tmp_path, components=None, limits=None, server=None) -> str:
    sections = {
        "server": {"domains": [DOMAIN], "data_dir": str(tmp_path / "data"), **(server or {})},
        "storage": {"backend": "memory"},
        "c2s": {"endpoint": "tcp:0:interface=127.0.0.1",
                "direct_tls_endpoint": "tcp:0:interface=127.0.0.1"},
        "http": {"endpoint": "", "tls_endpoint": ""},
        "components": {"secrets": {COMPONENT: SECRET, OTHER: "another secret"},
                       **(components or {})},
        "limits": dict(limits or {}),
    }
    lines = []
    for name, keys in sections.items():
        lines.append("[%s]" % name)
        lines.extend("%s = %s" % (key, toml(value)) for key, value in keys.items())
    path = tmp_path / "xmppd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


class Component(Wire):
    """One component's connection to the L{Harness}'s service."""

    def __init__(self, stream, transport):
        Wire.__init__(self, stream, transport)
        self.streamId = None

    def start(self, to: str = COMPONENT) -> Reply:
        reply = self.exchange(header(to=to, ns=NS_COMPONENT, version=None))
        self.streamId = reply.header and reply.header.get("id")
        return reply

    def handshake(self, secret: str = SECRET, to: str = COMPONENT) -> Reply:
        self.start(to)
        return self.exchange("<handshake>%s</handshake>"
                             % handshakeDigest(self.streamId, secret))

    def login(self, to: str = COMPONENT, secret: str = SECRET) -> "Component":
        reply = self.handshake(secret, to)
        assert reply.names == ["handshake"], reply
        return self

    def disconnect(self) -> None:
        self.transport.connected = False
        self.stream.connectionLost(None)


class Harness:
    """A server's router and clock with a L{ComponentService} on them, started."""

    def __init__(self, tmp_path, components=None, limits=None, reactor=None):
        self.config = loadConfig(writeConfig(tmp_path, components, limits))
        self.reactor = reactor or MemoryReactorClock()
        self.server = XMPPServer(self.config, reactor=self.reactor)
        self.router = self.server.router
        self.local = RecordingRoute()
        self.router.addRoute(DOMAIN, self.local)
        self.service = ComponentService(self.server, reactor=self.reactor)
        self.service.startService()
        self.ports = 40000

    def connect(self, host: str = "127.0.0.1") -> Component:
        self.ports += 1
        address = IPv4Address("TCP", host, self.ports)
        stream = self.service.factory.buildProtocol(address)
        transport = FakeTransport(address)
        stream.makeConnection(transport)
        return Component(stream, transport)


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


@pytest.fixture
def logged(monkeypatch):
    """The events logged by component streams and the service."""
    events = []
    logger = Logger(observer=events.append)
    monkeypatch.setattr(StreamBase, "log", logger)
    monkeypatch.setattr(ComponentService, "log", logger)
    return events


def text(events) -> list[str]:
    return [formatEvent(event) for event in events]


def assertStreamError(component, reply, condition: str) -> None:
    """C{reply} ends with a stream error C{condition} and the footer; the connection closes."""
    assert reply.streamError == condition, reply
    assert reply.closed, reply
    assert component.transport.disconnecting


def stanzaError(element) -> tuple[str, str]:
    """(type, condition) of the error in C{element}."""
    [error] = [child for child in element.elements() if child.name == "error"]
    [condition] = [c.name for c in error.elements(NS_STANZAS) if c.name != "text"]
    return error["type"], condition


# -- the stream header and the handshake (XEP-0114 §3) ---------------------


def test_header(harness):
    """A component opening a stream to its domain gets a header with a fresh id and no features."""
    reply = harness.connect().start()
    assert reply.header["xmlns"] == NS_COMPONENT
    assert reply.header["from"] == COMPONENT
    assert reply.header["id"]
    # XEP-0114 streams carry no version, hence no stream features.
    assert b" version=" not in reply.data.split(b"?>", 1)[1]
    assert reply.elements == [] and not reply.closed


def test_streamIdsUnpredictable(harness):
    """Each connection gets its own unpredictable stream id, so a handshake cannot be replayed."""
    first, second = (harness.connect().start().header["id"] for _ in range(2))
    assert first != second
    assert sum(a != b for a, b in zip(first, second)) >= 8


@pytest.mark.parametrize("data, condition", [
    (header(to="unknown.example.org", ns=NS_COMPONENT, version=None), "host-unknown"),
    (header(to=DOMAIN, ns=NS_COMPONENT, version=None), "host-unknown"),
    (header(to=None, ns=NS_COMPONENT, version=None), "host-unknown"),
    (header(to="bad..domain", ns=NS_COMPONENT, version=None), "host-unknown"),
    (header(to=COMPONENT, ns="jabber:client", version=None), "invalid-namespace"),
    (header(to=COMPONENT, ns=NS_COMPONENT, streamNS="urn:x"), "invalid-namespace"),
    (header(to=COMPONENT, ns=NS_COMPONENT, root="features"), "bad-format"),
], ids=["unknown-domain", "served-domain", "no-to", "malformed-to", "jabber:client",
        "stream-namespace", "root-not-stream"])
def test_badHeader(harness, data, condition):
    """A bad header gets a header, the matching stream error, the footer and a close."""
    component = harness.connect()
    reply = component.exchange(data)
    assert reply.header is not None
    assert "from" not in reply.header
    assertStreamError(component, reply, condition)


def test_handshake(harness):
    """The right digest is answered with an empty handshake, and the domain routes to the stream."""
    component = harness.connect()
    reply = component.handshake()
    assert reply.names == ["handshake"]
    assert reply.elements[0].children == []
    assert harness.router.routes[COMPONENT] is component.stream


def test_handshakeCaseInsensitive(harness):
    """A digest in uppercase hex, with whitespace around it, is accepted too."""
    component = harness.connect()
    component.start()
    digest = handshakeDigest(component.streamId, SECRET).upper()
    assert component.exchange("<handshake>\n %s </handshake>" % digest).names == ["handshake"]


@pytest.mark.parametrize("secret", ["wrong", "another secret", ""])
def test_wrongSecret(harness, secret):
    """A wrong digest (another component's secret included) is not-authorized, and nothing is routed."""
    component = harness.connect()
    assert component.handshake(secret).streamError is None  # answered late, see below
    harness.reactor.advance(harness.config.limits.auth_failure_delay)
    assertStreamError(component, component.received(), "not-authorized")
    assert harness.router.routes[COMPONENT] is harness.service.placeholders[COMPONENT]


def test_handshakeGuessesAnsweredLater(harness):
    """
    Each wrong handshake from an address is answered later than the last
    (limits.auth_failure_delay doubling up to auth_failure_delay_max), what
    follows a wrong guess on its connection is not read, and a right
    handshake from the address forgets its failures.
    """
    limits = harness.config.limits
    expected = [min(limits.auth_failure_delay * 2 ** n, limits.auth_failure_delay_max)
                for n in range(6)]
    assert expected[-1] == limits.auth_failure_delay_max
    for delay in expected:
        component = harness.connect()
        component.start()
        digest = handshakeDigest(component.streamId, "guess")
        # A stanza right after the guess must not get its own, quicker, answer.
        reply = component.exchange("<handshake>%s</handshake><message from='x@%s' "
                                   "to='juliet@%s'/>" % (digest, COMPONENT, DOMAIN))
        assert reply.data == b""
        harness.reactor.advance(delay - 0.01)
        assert component.received().data == b""
        harness.reactor.advance(0.01)
        assertStreamError(component, component.received(), "not-authorized")
    assert harness.local.stanzas == []
    harness.connect().login()
    assert harness.service.authFailures.delayFor("127.0.0.1") == 0


def test_digestOfAnotherStream(harness):
    """A digest computed for another stream id does not open this one."""
    component = harness.connect()
    component.start()
    replayed = handshakeDigest("some-other-stream", SECRET)
    component.exchange("<handshake>%s</handshake>" % replayed)
    harness.reactor.advance(harness.config.limits.auth_failure_delay)
    assertStreamError(component, component.received(), "not-authorized")


@pytest.mark.parametrize("data", [
    "<message from='x@muc.example.org' to='juliet@example.org'><body>hi</body></message>",
    "<iq type='get' id='1' from='muc.example.org' to='example.org'>"
    "<ping xmlns='urn:xmpp:ping'/></iq>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>",
], ids=["message", "iq", "sasl"])
def test_stanzaBeforeHandshake(harness, data):
    """Anything but the handshake before the handshake is not-authorized, and is not routed."""
    component = harness.connect()
    component.start()
    assertStreamError(component, component.exchange(data), "not-authorized")
    assert harness.local.stanzas == []


def test_negotiationDeadline(harness):
    """A component that does not complete the handshake in time is closed with connection-timeout."""
    component = harness.connect()
    component.start()
    harness.reactor.advance(harness.config.limits.negotiation_timeout - 0.1)
    assert component.received().elements == []
    harness.reactor.advance(0.2)
    assertStreamError(component, component.received(), "connection-timeout")


def test_noDeadlineAfterHandshake(harness):
    """A component that completed the handshake stays connected however quiet it is."""
    component = harness.connect().login()
    harness.reactor.advance(harness.config.limits.negotiation_timeout * 10)
    assert component.received().data == b""
    assert not component.transport.disconnecting


def test_handshakeTooLarge(harness):
    """Before the handshake only a small element fits: a huge one is policy-violation."""
    component = harness.connect()
    component.start()
    size = harness.config.limits.max_stanza_size_unauthenticated + PARSE_SLICE
    reply = component.exchange("<handshake>%s</handshake>" % ("a" * size))
    assertStreamError(component, reply, "policy-violation")


def test_stanzaLimitAfterHandshake(harness):
    """After the handshake stanzas up to components.max_stanza_size pass, larger ones do not."""
    component = harness.connect().login()
    body = "x" * (harness.config.limits.max_stanza_size + 1000)
    component.send("<message from='a@muc.example.org' to='juliet@example.org'>"
                   "<body>%s</body></message>" % body)
    assert len(harness.local.stanzas) == 1
    big = "x" * (harness.config.components.max_stanza_size + PARSE_SLICE)
    reply = component.exchange("<message from='a@muc.example.org' to='juliet@example.org'>"
                               "<body>%s</body></message>" % big)
    assertStreamError(component, reply, "policy-violation")


def test_restrictedXML(harness):
    """A comment on a component stream is restricted-xml (RFC 6120 §11.1)."""
    component = harness.connect().login()
    assertStreamError(component, component.exchange("<!-- hi -->"), "restricted-xml")


@pytest.mark.parametrize("declaration, condition", [
    ("<?xml version='1.0' encoding='UTF-16'?>", "unsupported-encoding"),
    ("<?xml version='1.1'?>", "unsupported-version")])
def test_xmlDeclaration(harness, declaration, condition):
    """A component declaring another encoding than UTF-8, or XML 1.1, gets the stream error (RFC 6120 §11.6, §11.8)."""
    component = harness.connect()
    data = header(to=COMPONENT, ns=NS_COMPONENT, version=None).replace(
        b"<?xml version='1.0'?>", declaration.encode(), 1)
    reply = component.exchange(data)
    assert reply.header is not None
    assertStreamError(component, reply, condition)


def test_notWellFormed(harness):
    """Broken XML is not-well-formed, and the route goes back to the placeholder."""
    component = harness.connect().login()
    assertStreamError(component, component.exchange("<message></iq>"), "not-well-formed")
    assert harness.router.routes[COMPONENT] is harness.service.placeholders[COMPONENT]


# -- stanzas from the component --------------------------------------------


def test_stanzaRouted(harness):
    """A stanza from the component reaches its destination as a jabber:client stanza."""
    component = harness.connect().login()
    component.send("<message from='room@muc.example.org/nick' to='Juliet@Example.org/balcony'"
                   " type='groupchat'><body>hi</body><x xmlns='urn:x'><y/></x></message>")
    [stanza] = harness.local.stanzas
    assert stanza["from"] == "room@muc.example.org/nick"
    assert stanza["to"] == "juliet@example.org/balcony"
    assert stanza.uri == NS_CLIENT and stanza.defaultUri == NS_CLIENT
    assert stanza.body.uri == NS_CLIENT
    assert stanza.x.uri == "urn:x"
    assert "jabber:component:accept" not in stanza.toXml()


def test_fromTheDomainItself(harness):
    """A component may send from its bare domain too."""
    component = harness.connect().login()
    component.send("<presence from='MUC.example.org' to='juliet@example.org'/>")
    assert harness.local.stanzas[0]["from"] == COMPONENT


@pytest.mark.parametrize("sender", [
    None, "juliet@example.org", "example.org", "room@sub.muc.example.org",
    "gateway.example.org", "room@muc.example.org.evil", "@@bad@@",
], ids=["missing", "local-user", "served-domain", "subdomain", "other-component",
        "suffix", "malformed"])
def test_invalidFrom(harness, sender, logged):
    """A stanza from anywhere but the component's own domain closes the stream with invalid-from."""
    component = harness.connect().login()
    attribute = "" if sender is None else " from='%s'" % sender
    reply = component.exchange("<message%s to='juliet@example.org'><body>x</body></message>"
                               % attribute)
    assertStreamError(component, reply, "invalid-from")
    assert harness.local.stanzas == []
    assert harness.router.routes[COMPONENT] is harness.service.placeholders[COMPONENT]


@pytest.mark.parametrize("to, condition", [
    (None, "bad-request"), ("juliet@@example.org", "jid-malformed"),
], ids=["missing", "malformed"])
def test_badTo(harness, to, condition):
    """A stanza with no 'to' or a malformed one comes back to the component as an error."""
    component = harness.connect().login()
    attribute = "" if to is None else " to='%s'" % to
    reply = component.exchange("<message from='room@muc.example.org' id='m1'%s>"
                               "<body>x</body></message>" % attribute)
    [error] = reply.elements
    assert error["type"] == "error" and error["to"] == "room@muc.example.org"
    assert error["id"] == "m1"
    assert stanzaError(error)[1] == condition
    assert not reply.closed and harness.local.stanzas == []


def test_noErrorToAnError(harness):
    """An error stanza without 'to' is dropped, never answered with an error."""
    component = harness.connect().login()
    reply = component.exchange("<message from='room@muc.example.org' type='error'/>")
    assert reply.elements == [] and not reply.closed


@pytest.mark.parametrize("data", [
    "<iq type='get' from='muc.example.org' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='set' id='1' from='muc.example.org' to='example.org'/>",
    "<iq type='bogus' id='1' from='muc.example.org' to='example.org'/>",
], ids=["no-id", "no-payload", "bad-type"])
def test_badIQ(harness, data):
    """An IQ breaking RFC 6120 §8.2.3 is answered bad-request and not routed."""
    component = harness.connect().login()
    [error] = component.exchange(data).elements
    assert stanzaError(error)[1] == "bad-request"
    assert harness.local.stanzas == []


def test_stanzaInWrongNamespace(harness):
    """A stanza in jabber:client on a component stream is invalid-namespace."""
    component = harness.connect().login()
    reply = component.exchange("<message xmlns='jabber:client' from='a@muc.example.org'"
                               " to='juliet@example.org'/>")
    assertStreamError(component, reply, "invalid-namespace")


def test_unknownElement(harness):
    """A top-level element that is no stanza is unsupported-stanza-type."""
    component = harness.connect().login()
    assertStreamError(component, component.exchange("<foo/>"), "unsupported-stanza-type")


def test_secondHandshake(harness):
    """A handshake once authenticated is no stanza: unsupported-stanza-type."""
    component = harness.connect().login()
    reply = component.exchange("<handshake>%s</handshake>"
                               % handshakeDigest(component.streamId, SECRET))
    assertStreamError(component, reply, "unsupported-stanza-type")


def test_componentClosesStream(harness):
    """A component closing its stream gets our footer, and its domain answers service-unavailable."""
    component = harness.connect().login()
    reply = component.exchange("</stream:stream>")
    assert reply.closed and reply.streamError is None
    assert harness.router.routes[COMPONENT] is harness.service.placeholders[COMPONENT]


def test_componentSendsStreamError(harness):
    """A component's stream error closes the stream without an error in return."""
    component = harness.connect().login()
    reply = component.exchange(
        "<stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "</stream:error>")
    assert reply.closed and reply.streamError is None


# -- stanzas to the component ------------------------------------------------


def test_stanzaDelivered(harness):
    """A stanza for the component's domain is written to it without a namespace of its own."""
    component = harness.connect().login()
    harness.router.route(parse("<message from='juliet@example.org/balcony'"
                               " to='room@muc.example.org'><body>hi</body></message>"))
    data = component.transport.value()
    assert data == (b"<message from='juliet@example.org/balcony' to='room@muc.example.org'>"
                    b"<body>hi</body></message>")


def flood(count: int) -> str:
    return "".join("<message from='room@muc.example.org' to='juliet@example.org'>"
                   "<body>%d</body></message>" % n for n in range(count))


def test_stanzaShaping(tmp_path, logged):
    """
    Past components.stanzas_per_second reading pauses (logged once per
    stream, counted each time) and resumes when the bucket is out of debt;
    every stanza is routed, in order, and the component stays connected.
    """
    harness = Harness(tmp_path, {"stanzas_per_second": 2})
    component = harness.connect().login()
    harness.reactor.advance(10)
    component.send(flood(10))
    assert [str(s.body) for s in harness.local.stanzas] == [str(n) for n in range(10)]
    assert component.transport.producerState == "paused"
    harness.reactor.advance(2.9)  # 10 stanzas, a burst of 4 at 2 a second: 3 s
    assert component.transport.producerState == "paused"
    harness.reactor.advance(0.2)
    assert component.transport.producerState == "producing"
    component.send(flood(10))
    harness.reactor.advance(10)
    assert component.transport.producerState == "producing"
    assert not component.transport.disconnecting
    assert harness.server.metrics.rejected["traffic_shaping"] == 2
    [line] = [line for line in text(logged) if line.startswith("Slowing")]
    assert line == ("Slowing component stream muc.example.org from 127.0.0.1:40001: it "
                    "sends faster than 10485760 bytes or 2 stanzas a second (reading pauses)")


def test_byteShaping(tmp_path):
    """Past components.bytes_per_second reading pauses, before the handshake too."""
    harness = Harness(tmp_path, {"bytes_per_second": 1024})
    component = harness.connect()
    component.start()
    harness.reactor.advance(10)
    component.send(b" " * 3048)
    assert component.transport.producerState == "paused"
    harness.reactor.advance(1)
    assert component.transport.producerState == "producing"
    reply = component.exchange("<handshake>%s</handshake>"
                               % handshakeDigest(component.streamId, SECRET))
    assert reply.names == ["handshake"]


def test_shapingDefaults(harness):
    """By default a component may send a hundred times a client's rates before it is slowed."""
    limits, components = harness.config.limits, harness.config.components
    assert (components.bytes_per_second, components.stanzas_per_second) == (10485760, 20000)
    assert components.stanzas_per_second == 100 * limits.stanzas_per_second
    component = harness.connect().login()
    component.send(flood(1000))
    assert component.transport.producerState == "producing"
    assert len(harness.local.stanzas) == 1000


def test_componentThatDoesNotReadIsDropped(tmp_path):
    """More than components.send_queue_limit bytes waiting for a component that does not read: aborted, counted."""
    harness = Harness(tmp_path, {"max_stanza_size": 10000, "send_queue_limit": 10000},
                      {"max_stanza_size": 10000, "max_stanza_size_unauthenticated": 8192,
                       "send_queue_limit": 10000})
    component = harness.connect().login()
    component.stream.sendQueue.pauseProducing()  # its socket buffer is full
    message = ("<message from='juliet@example.org/balcony' to='room@muc.example.org'>"
               "<body>%s</body></message>" % ("x" * 4000,))
    harness.router.route(parse(message))
    harness.router.route(parse(message))
    assert not component.transport.aborted
    harness.router.route(parse(message))
    assert component.transport.aborted
    assert harness.server.metrics.rejected["send_queue_limit"] == 1


def test_otherComponentNotDelivered(harness):
    """Each component gets only the stanzas for its own domain."""
    muc = harness.connect().login()
    gateway = harness.connect().login(OTHER, "another secret")
    harness.router.route(parse("<message from='juliet@example.org/b' to='x@gateway.example.org'/>"))
    assert muc.transport.value() == b""
    assert gateway.transport.value().startswith(b"<message")


def test_disconnectedComponentUnavailable(harness):
    """A stanza for a configured component that is not connected gets service-unavailable (wait)."""
    harness.router.route(parse("<message from='juliet@example.org/b' to='room@muc.example.org'"
                               " id='m1'><body>hi</body></message>"))
    [error] = harness.local.stanzas
    assert error["to"] == "juliet@example.org/b" and error["from"] == "room@muc.example.org"
    assert stanzaError(error) == ("wait", "service-unavailable")


def test_unavailableAfterDisconnect(harness):
    """Once its connection is gone, a component's domain answers service-unavailable again."""
    component = harness.connect().login()
    component.disconnect()
    harness.router.route(parse("<iq type='get' id='q' from='juliet@example.org/b'"
                               " to='muc.example.org'><query xmlns='urn:x'/></iq>"))
    [error] = harness.local.stanzas
    assert stanzaError(error) == ("wait", "service-unavailable")
    assert harness.service.connections() == []


def test_noErrorForErrors(harness):
    """An error or an IQ result for a disconnected component is dropped, never answered."""
    harness.router.route(parse("<message type='error' from='juliet@example.org/b'"
                               " to='room@muc.example.org'/>"))
    harness.router.route(parse("<iq type='result' id='1' from='juliet@example.org/b'"
                               " to='room@muc.example.org'/>"))
    assert harness.local.stanzas == []


def test_unconfiguredDomainUnchanged(harness):
    """A domain nobody serves still gets remote-server-not-found."""
    harness.router.route(parse("<message from='juliet@example.org/b' to='x@elsewhere.example'/>"))
    [error] = harness.local.stanzas
    assert stanzaError(error)[1] == "remote-server-not-found"


# -- conflicts -----------------------------------------------------------------


def test_conflictReplace(harness):
    """With on_conflict = "replace", a second connection closes the first with conflict and takes over."""
    first = harness.connect().login()
    second = harness.connect().login()
    assertStreamError(first, first.received(), "conflict")
    assert harness.router.routes[COMPONENT] is second.stream
    # The old connection going away later leaves the new route alone.
    first.disconnect()
    assert harness.router.routes[COMPONENT] is second.stream
    harness.router.route(parse("<message from='juliet@example.org/b' to='room@muc.example.org'/>"))
    assert second.transport.value().startswith(b"<message")


def test_conflictRefuse(tmp_path):
    """With on_conflict = "refuse", a second connection is turned away with conflict."""
    harness = Harness(tmp_path, {"on_conflict": "refuse"})
    first = harness.connect().login()
    second = harness.connect()
    reply = second.handshake()
    assert "handshake" not in reply.names
    assertStreamError(second, reply, "conflict")
    second.disconnect()
    assert harness.router.routes[COMPONENT] is first.stream
    assert first.received().data == b""


def test_wrongSecretDoesNotReplace(harness):
    """A connection with the wrong secret never disturbs the connected component."""
    first = harness.connect().login()
    harness.connect().handshake("wrong")
    assert first.received().data == b""
    assert harness.router.routes[COMPONENT] is first.stream


# -- the service -----------------------------------------------------------------


def test_connections(harness):
    """The service lists its connected components with their address and since when."""
    harness.reactor.advance(100)
    harness.connect(host="10.0.0.1").login()
    harness.connect(host="10.0.0.2").start()
    assert harness.service.connections() == [(COMPONENT, "10.0.0.1:40001", 100.0)]


def test_logging(harness, logged):
    """Connections, refusals and disconnections are logged with domain and peer, never the secret."""
    component = harness.connect().login()
    harness.connect().handshake("wrong")
    component.disconnect()
    lines = text(logged)
    assert any("muc.example.org connected from 127.0.0.1:40001" in line for line in lines)
    assert any("Refused component muc.example.org from 127.0.0.1:40002: wrong handshake"
               in line for line in lines)
    assert any("muc.example.org disconnected (127.0.0.1:40001)" in line for line in lines)
    assert not any(SECRET in line for line in lines)


def test_stopService(harness):
    """Stopping closes every component stream with system-shutdown and unroutes the domains."""
    component = harness.connect().login()
    pending = harness.connect()
    harness.service.stopService()
    assertStreamError(component, component.received(), "system-shutdown")
    assertStreamError(pending, pending.received(), "system-shutdown")
    assert not harness.router.hasRoute(COMPONENT)
    assert not harness.router.hasRoute(OTHER)


def test_closeTimeout(harness):
    """A component that does not read our footer is aborted after a bounded wait."""
    component = harness.connect().login()
    component.exchange("<foo/>")
    assert not component.transport.aborted
    harness.reactor.advance(11)
    assert component.transport.aborted


def test_listens(tmp_path):
    """With components.listen set, the service listens there once started."""
    harness = Harness(tmp_path, {"listen": "tcp:5347:interface=127.0.0.1"})
    [(port, factory, backlog, interface)] = harness.reactor.tcpServers
    assert (port, interface) == (5347, "127.0.0.1")
    assert factory is harness.service.factory
    assert harness.service.port is not None
    assert harness.service.ready.called


def test_noListener(harness):
    """With components.listen empty, nothing listens, yet the domains answer service-unavailable."""
    assert harness.reactor.tcpServers == []
    assert harness.service.port is None


class BusyReactor(MemoryReactorClock):
    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


def test_portInUse(tmp_path):
    """A components port in use stops the node with one line naming the key."""
    fatal = []
    config = loadConfig(writeConfig(tmp_path, {"listen": "tcp:5347:interface=127.0.0.1"}))
    reactor = BusyReactor()
    server = XMPPServer(config, reactor=reactor)
    server.onFatal = fatal.append
    service = ComponentService(server, reactor=reactor)
    failures = []
    service.ready.addErrback(failures.append)
    service.startService()
    [message] = fatal
    assert message.startswith("components.listen tcp:5347:interface=127.0.0.1: cannot listen:")
    assert "Address already in use" in message and "\n" not in message
    assert failures[0].check(ListenError)


def test_wiring(tmp_path):
    """makeService puts the component service after the served domains and before c2s."""
    server = makeService(loadConfig(writeConfig(tmp_path)))
    names = [child.name for child in server]
    assert names[:3] == ["storage", "admin", DOMAIN]
    assert names[-2:] == ["components", "c2s"]


def test_inProcessDomainRefused(tmp_path):
    """A component domain that a feature already serves in the process is refused at build time."""
    config = loadConfig(writeConfig(tmp_path))
    server = XMPPServer(config, reactor=MemoryReactorClock())
    inProcess = Service()
    inProcess.setName(OTHER)
    inProcess.setServiceParent(server)
    with pytest.raises(ConfigError) as raised:
        ComponentService(server)
    assert str(raised.value).startswith(
        'components.secrets: "gateway.example.org" is served in this process already')


def test_notWiredWhenUnused(tmp_path):
    """Without listener or secrets, there is no component service at all."""
    path = tmp_path / "xmppd.toml"
    path.write_text('[server]\ndata_dir = "%s"\n' % (tmp_path / "data"))
    server = makeService(loadConfig(str(path)))
    assert "components" not in [child.name for child in server]


def test_toClientNamespace():
    """Elements that inherit the component namespace become jabber:client; others stay."""
    stanza = parse("<message><body>x</body><x xmlns='urn:x'><y/></x></message>")
    for element in [stanza, stanza.body]:
        element.uri = element.defaultUri = NS_COMPONENT
    toClientNamespace(stanza)
    assert (stanza.uri, stanza.defaultUri, stanza.body.uri) == (NS_CLIENT, NS_CLIENT, NS_CLIENT)
    assert stanza.x.uri == "urn:x"


# -- configuration ---------------------------------------------------------------


def configError(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        loadConfig(str(path))
    return str(raised.value)


def test_configDefaults():
    """By default no component may connect and nothing listens."""
    components = loadConfig(None).components
    assert components.listen == ""
    assert dict(components.secrets) == {}
    assert components.on_conflict == "replace"


def test_configSecrets(tmp_path):
    """Component domains are normalized like served domains."""
    path = tmp_path / "ok.toml"
    path.write_text('[components]\nsecrets = { "MUC.Example.ORG" = "x" }\n')
    assert dict(loadConfig(str(path)).components.secrets) == {"muc.example.org": "x"}


def test_secretsNotShown(tmp_path):
    """The configuration printed (in a log, a traceback) shows component domains, never secrets."""
    config = loadConfig(writeConfig(tmp_path))
    assert SECRET not in repr(config)
    assert COMPONENT in repr(config.components.secrets)


@pytest.mark.parametrize("text, message", [
    ('[components]\nsecrets = "x"',
     'components.secrets: expected a table like {"conference.example.org" = "secret"}, '
     'got "x"'),
    ('[components]\nsecrets = { "a..b" = "x" }',
     'components.secrets: "a..b" is not a valid domain name: '),
    ('[components]\nsecrets = { "muc.example.org" = "" }',
     'components.secrets: the value for "muc.example.org" must be a non-empty string'),
    ('[components]\nsecrets = { "muc.example.org" = 12345 }',
     'components.secrets: the value for "muc.example.org" must be a non-empty string'),
    ('[components]\nsecrets = { muc.example.org = "x" }',
     'components.secrets: the value for "muc" is a table; quote keys that contain dots'),
    ('[components]\nsecrets = { "muc.example.org" = "x", "MUC.example.org" = "y" }',
     'components.secrets: "MUC.example.org" is listed twice'),
    ('[components]\non_conflict = "kick"',
     'components.on_conflict: expected one of "replace", "refuse", got "kick"'),
    ('[components]\nlisten = "ssl:5347"',
     'components.listen: "ssl:5347" is not a usable listener'),
    ('[components]\nmax_stanza_size = 100000\nsend_queue_limit = 50000',
     'components.send_queue_limit: must be at least components.max_stanza_size'),
], ids=["not-a-table", "bad-domain", "empty-secret", "number-secret", "unquoted-dots",
        "twice", "on-conflict", "ssl", "queue"])
def test_configErrors(tmp_path, text, message):
    """Each mistake in [components] gets one line naming the key, never showing a secret."""
    error = configError(tmp_path, text)
    assert error.startswith(message), error
    assert "12345" not in error


def test_servedDomainRefused(tmp_path):
    """A component domain that is also a served domain is refused when the node is built."""
    config = loadConfig(writeConfig(tmp_path, server={"domains": [DOMAIN, COMPONENT]}))
    with pytest.raises(ConfigError) as raised:
        ComponentService(XMPPServer(config, reactor=MemoryReactorClock()))
    assert str(raised.value).startswith('components.secrets: "muc.example.org" is in '
                                        'server.domains too')


def test_componentStanzaLimitAtLeastClients(tmp_path):
    """components.max_stanza_size below limits.max_stanza_size is refused when the node is built."""
    config = loadConfig(writeConfig(tmp_path, {"max_stanza_size": 20000}))
    with pytest.raises(ConfigError) as raised:
        ComponentService(XMPPServer(config, reactor=MemoryReactorClock()))
    assert str(raised.value) == ("components.max_stanza_size: must be at least "
                                 "limits.max_stanza_size")
