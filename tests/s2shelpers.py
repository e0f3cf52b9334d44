"""
Helpers for the server-to-server tests (STYLE "Testing style" 2): an
L{S2SService} on a clock, its streams over L{StringTransport}s, and the
other server played byte by byte by the test.

A L{Harness} serves two local domains (each a recording route on the
router), stands in for TLS (C{startTLS} is recorded, the certificate
verdicts are set per domain in C{certificates}) and for the network:
outgoing connections become L{Peer}s in C{harness.outgoing} (or fail, for
the addresses in C{refused}), and dialback verifications can be answered
by the test (C{harness.verifications}) instead of by a connection.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish
from zope.interface import implementer

from tests.helpers import parse, toml
from tests.streamhelpers import FakeTransport, Reply, Wire
from xmppd.config import loadConfig
from xmppd.core.router import IRoute
from xmppd.s2s.dialback import NS_DIALBACK
from xmppd.s2s.incoming import IncomingFactory
from xmppd.s2s.outgoing import OutgoingFactory
from xmppd.s2s.service import S2SService
from xmppd.s2s.streams import NS_SASL, NS_TLS
from xmppd.s2s.verify import CertificateCheck
from xmppd.core.server import XMPPServer

DOMAIN = "example.org"
OTHER_LOCAL = "chat.example.org"
REMOTE = "remote.example"
REMOTE2 = "elsewhere.example"
NS_SERVER = "jabber:server"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
STARTTLS_REQUIRED = "<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)
DIALBACK_FEATURE = "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
EXTERNAL_FEATURE = ("<mechanisms xmlns='%s'><mechanism>EXTERNAL</mechanism></mechanisms>"
                    % (NS_SASL,))

#: Stands for the server's TLS connection creator: the fake transport records it.
SERVER_TLS = object()


class FakeClientTLS:
    """Stands for the outgoing TLS creator: says which domains it was made for."""

    def forDomain(self, remote, local=None, directTLS=False):
        return ("client-tls", remote, local)


@implementer(IRoute)
class RecordingRoute:
    """A served domain that keeps what the router gives it."""

    def __init__(self):
        self.stanzas: list[domish.Element] = []

    def deliver(self, stanza):
        self.stanzas.append(stanza)


class S2SReply(Reply):
    """L{Reply} for a server stream: the C{db:} prefix is declared too."""

    def __init__(self, data: bytes):
        body = data.decode("utf-8")
        self.data = data
        self.closed = body.endswith(self.FOOTER)
        if self.closed:
            body = body[:-len(self.FOOTER)]
        self.header = None
        match = self.HEADER.match(body)
        if match:
            self.header = dict(self.ATTRIBUTE.findall(match.group()))
            body = body[match.end():]
        self.elements = []
        parser = domish.elementStream()
        parser.DocumentStartEvent = lambda root: None
        parser.ElementEvent = self.elements.append
        parser.DocumentEndEvent = lambda: None
        parser.parse(("<wrapper xmlns='%s' xmlns:stream='%s' xmlns:db='%s'>%s</wrapper>"
                      % (NS_SERVER, NS_STREAMS, NS_DIALBACK, body)).encode("utf-8"))

    def dialback(self, name: str = "result") -> list[domish.Element]:
        return [e for e in self.elements if (e.uri, e.name) == (NS_DIALBACK, name)]


def header(to: str | None = DOMAIN, sender: str | None = REMOTE, ns: str = NS_SERVER,
           version: str | None = "1.0", streamId: str | None = None) -> bytes:
    """A server's stream header; C{None} leaves an attribute out."""
    attributes = ""
    for name, value in (("to", to), ("from", sender), ("version", version), ("id", streamId)):
        if value is not None:
            attributes += " %s='%s'" % (name, value)
    return ("<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' "
            "xmlns:db='%s'%s>" % (NS_STREAMS, ns, NS_DIALBACK, attributes)).encode("utf-8")


class Peer(Wire):
    """The other server's end of one stream, either direction."""

    replyClass = S2SReply

    def __init__(self, harness: "Harness", stream, transport: FakeTransport):
        Wire.__init__(self, stream, transport)
        self.harness = harness

    def disconnect(self) -> None:
        self.transport.connected = False
        self.stream.connectionLost(None)

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting or self.transport.aborted

    # -- as the initiating server (incoming streams) -----------------------

    def start(self, **kwargs) -> S2SReply:
        """Open (or reopen) the stream; the header and features come back."""
        reply = self.exchange(header(**kwargs))
        assert reply.header is not None, reply
        return reply

    def starttls(self, **kwargs) -> S2SReply:
        """Open the stream, do STARTTLS, open it again: the features after TLS come back."""
        self.start(**kwargs)
        assert self.exchange("<starttls xmlns='%s'/>" % (NS_TLS,)).names == ["proceed"]
        assert self.transport.tlsStarted[-1] is SERVER_TLS
        return self.start(**kwargs)

    def requestDialback(self, local: str = DOMAIN, remote: str = REMOTE,
                        key: str = "a-key") -> S2SReply:
        return self.exchange("<db:result from='%s' to='%s'>%s</db:result>" % (remote, local, key))

    def authenticate(self, local: str = DOMAIN, remote: str = REMOTE) -> "Peer":
        """TLS, then dialback for (local, remote), the authoritative server saying valid."""
        if not self.stream.secure:
            self.starttls(to=local, sender=remote)
        self.requestDialback(local, remote)
        self.harness.answerVerification(True)
        [result] = self.received().dialback()
        assert result.getAttribute("type") == "valid", result.toXml()
        return self

    # -- as the receiving server (outgoing streams) -----------------------

    def accept(self, features: str = STARTTLS_REQUIRED, streamId: str = "peer-1",
               to: str | None = None, sender: str | None = None) -> S2SReply:
        """Answer the stream's header with ours and C{features}; what the stream says comes back."""
        to = to or self.stream.localDomain
        sender = sender or self.stream.remoteDomain
        return self.exchange(header(to=to, sender=sender, streamId=streamId)
                             + ("<stream:features>%s</stream:features>" % (features,)).encode())

    def proceed(self) -> S2SReply:
        """Let the stream start TLS; its new header comes back."""
        return self.exchange("<proceed xmlns='%s'/>" % (NS_TLS,))

    def negotiateTLS(self, features: str = DIALBACK_FEATURE,
                     streamId: str = "peer-2") -> S2SReply:
        """Header, STARTTLS, header again with C{features}; what the stream asks next comes back."""
        reply = self.accept()
        assert [e.name for e in reply.elements] == ["starttls"], reply
        self.proceed()
        return self.accept(features, streamId=streamId)


class Harness:
    """See the module docstring."""

    def __init__(self, tmp_path, s2s: dict | None = None, limits: dict | None = None,
                 answerVerifications: bool = True):
        sections = {
            "server": {"domains": [DOMAIN, OTHER_LOCAL], "data_dir": str(tmp_path / "data"),
                       "modules": []},
            "storage": {"backend": "memory"},
            "s2s": {"listen": "tcp:0:interface=127.0.0.1", **(s2s or {})},
            "limits": dict(limits or {}),
        }
        lines = []
        for name, keys in sections.items():
            lines.append("[%s]" % name)
            lines.extend("%s = %s" % (key, toml(value)) for key, value in keys.items())
        path = tmp_path / "xmppd.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.config = loadConfig(str(path))
        self.reactor = MemoryReactorClock()
        self.server = XMPPServer(self.config, reactor=self.reactor)
        self.router = self.server.router
        self.local = {domain: RecordingRoute() for domain in (DOMAIN, OTHER_LOCAL)}
        for domain, route in self.local.items():
            self.router.addRoute(domain, route)
        self.service = S2SService(self.server, None, None, reactor=self.reactor)
        self.service.serverTLS = SERVER_TLS
        self.service.clientTLS = FakeClientTLS()
        #: Domain -> the verdict on its certificate (default: not valid).
        self.certificates: dict[str, CertificateCheck] = {}
        self.service.checkCertificate = self.checkCertificate
        #: Outgoing connections made, as peers, in order.
        self.outgoing: list[Peer] = []
        #: (host, port) that refuse connections.
        self.refused: set[tuple[str, int]] = set()
        self.attempts: list = []
        self.service.connectStream = self.connectStream
        #: Dialback questions waiting for L{answerVerification}: (args, Deferred).
        self.verifications: list = []
        if answerVerifications:
            self.service.verifyDialback = self.verifyDialback
        self.service.startService()
        self.ports = 40000

    @property
    def clock(self):
        return self.reactor

    def checkCertificate(self, transport, domain: str) -> CertificateCheck:
        return self.certificates.get(domain, CertificateCheck(False, "test: not trusted"))

    def incoming(self, host: str = "192.0.2.7", secure: bool = False) -> Peer:
        """A new connection from another server."""
        self.ports += 1
        address = IPv4Address("TCP", host, self.ports)
        stream = IncomingFactory(self.service, secure).buildProtocol(address)
        transport = FakeTransport(address)
        stream.makeConnection(transport)
        return Peer(self, stream, transport)

    def connectStream(self, target, local, remote, verify=None):
        self.attempts.append((target, local, remote, verify))
        if (target.host, target.port) in self.refused:
            return defer.fail(ConnectionRefusedError("refused"))
        address = IPv4Address("TCP", target.host, target.port)
        stream = OutgoingFactory(self.service, local, remote, target.directTLS,
                                 verify).buildProtocol(address)
        transport = FakeTransport(address)
        stream.makeConnection(transport)
        self.outgoing.append(Peer(self, stream, transport))
        return defer.succeed(stream)

    def verifyDialback(self, local, remote, streamId, key):
        d = defer.Deferred()
        self.verifications.append(((local, remote, streamId, key), d))
        return d

    def answerVerification(self, result) -> tuple:
        """Answer the oldest dialback question (a bool, or an exception); its arguments come back."""
        arguments, d = self.verifications.pop(0)
        if isinstance(result, Exception):
            d.errback(result)
        else:
            d.callback(result)
        return arguments

    def stanzasFor(self, domain: str = DOMAIN) -> list[domish.Element]:
        """What the router delivered to a local domain since the last call."""
        route = self.local[domain]
        stanzas, route.stanzas = route.stanzas, []
        return stanzas


def stanza(xml: str) -> domish.Element:
    """A stanza from inside the server (jabber:client), from an XML literal."""
    return parse(xml)


def errorOf(element: domish.Element) -> tuple[str, str]:
    """(type, condition) of the stanza error in C{element}."""
    [error] = [child for child in element.elements() if child.name == "error"]
    [condition] = [c.name for c in error.elements(NS_STANZAS) if c.name != "text"]
    return error["type"], condition


__all__ = ["DIALBACK_FEATURE", "DOMAIN", "EXTERNAL_FEATURE", "Harness", "NS_SASL",
           "NS_SERVER", "NS_TLS", "OTHER_LOCAL", "Peer", "REMOTE", "REMOTE2",
           "STARTTLS_REQUIRED", "S2SReply", "errorOf", "header", "stanza"]
