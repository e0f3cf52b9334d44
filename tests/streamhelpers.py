"""
Helpers for stream tests (STYLE.md, "Testing style" 2): a whole server in
memory, client streams over L{StringTransport}, time from a L{Clock}.

A test builds a L{Node} (configuration written to a TOML file, memory
storage, the local domain routed, one L{C2SFactory}), connects L{Client}s to
it, feeds them bytes and reads back what the server wrote, parsed leniently
into a L{Reply}: the server's stream header if one came, the top-level
elements, and whether the stream was closed with the footer.
"""

from __future__ import annotations

import base64
import re

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.c2s.listeners import C2SFactory
from xmppd.config import loadConfig
from xmppd.stream.limits import AuthFailureTracker, PeerCounter
from xmppd.core.local import LocalDomain
from xmppd.c2s.negotiation import NS_BIND, NS_SASL, NS_SESSION, NS_TLS
from xmppd.core.scram import makeCredentials
from xmppd.core.server import XMPPServer
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.service import StorageService
from tests.helpers import toml as _toml

__all__ = ["DOMAIN", "NS_BIND", "NS_SASL", "NS_SESSION", "NS_STREAMS", "NS_TLS",
           "PASSWORDS", "Client", "Node", "Reply", "TLS_CONTEXT", "header", "plain"]

DOMAIN = "example.org"
PASSWORDS = {"juliet": "r0m30myr0m30", "romeo": "wh3r3f0r3"}
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"

#: Stands in for the server's TLS context factory: the fake transport only
#: records what it was given.
TLS_CONTEXT = object()

#: Limits that keep shaping and throttling out of the way of tests that are
#: not about them; such tests set the limit they exercise.
UNSHAPED = {"bytes_per_second": 0, "stanzas_per_second": 0,
            "new_connections_per_second": 0}


def header(to: str | None = DOMAIN, ns: str | None = "jabber:client",
           version: str | None = "1.0", streamNS: str = NS_STREAMS,
           root: str = "stream") -> bytes:
    """A client's initial stream header; C{None} leaves an attribute out."""
    attrs = ""
    if to is not None:
        attrs += " to='%s'" % to
    if ns is not None:
        attrs += " xmlns='%s'" % ns
    if version is not None:
        attrs += " version='%s'" % version
    return ("<?xml version='1.0'?><stream:%s xmlns:stream='%s'%s>"
            % (root, streamNS, attrs)).encode()


def plain(username: str, password: str, authzid: str = "") -> bytes:
    """A SASL PLAIN C{<auth/>} with its initial response (RFC 4616)."""
    message = ("%s\0%s\0%s" % (authzid, username, password)).encode()
    return b"<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
        NS_SASL.encode(), base64.b64encode(message))


class FakeTransport(StringTransport):
    """
    A L{StringTransport} that records C{startTLS} and C{abortConnection}; it
    is lenient so that pausing a closing connection is not an error.
    """

    def __init__(self, peer: IPv4Address):
        StringTransport.__init__(self, peerAddress=peer, lenient=True)
        self.tlsStarted: list = []
        self.aborted = False

    def startTLS(self, contextFactory, normal=True) -> None:
        self.tlsStarted.append(contextFactory)

    def abortConnection(self) -> None:
        self.aborted = True
        StringTransport.abortConnection(self)


class Reply:
    """
    What the server wrote since the last read: C{header} (the attributes of
    its C{<stream:stream>}, or C{None}), C{elements} (the top-level elements,
    as L{domish.Element}s) and C{closed} (the footer was sent).
    """

    HEADER = re.compile(r"^(?:<\?xml[^>]*\?>)?<stream:stream\b[^>]*>")
    ATTRIBUTE = re.compile(r"""([\w:]+)=['"]([^'"]*)['"]""")
    FOOTER = "</stream:stream>"

    def __init__(self, data: bytes):
        self.data = data
        body = data.decode("utf-8")
        self.closed = body.endswith(self.FOOTER)
        if self.closed:
            body = body[:-len(self.FOOTER)]
        self.header: dict[str, str] | None = None
        match = self.HEADER.match(body)
        if match:
            self.header = dict(self.ATTRIBUTE.findall(match.group()))
            body = body[match.end():]
        self.elements: list[domish.Element] = []
        parser = domish.elementStream()
        parser.DocumentStartEvent = lambda root: None
        parser.ElementEvent = self.elements.append
        parser.DocumentEndEvent = lambda: None
        parser.parse(("<wrapper xmlns='jabber:client' xmlns:stream='%s'>%s</wrapper>"
                      % (NS_STREAMS, body)).encode("utf-8"))

    def __repr__(self) -> str:
        return "Reply(%r)" % (self.data,)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.elements]

    @property
    def streamError(self) -> str | None:
        """The condition of the stream error in this reply, if any."""
        for element in self.elements:
            if (element.uri, element.name) == (NS_STREAMS, "error"):
                for child in element.elements(NS_XMPP_STREAMS):
                    if child.name != "text":
                        return child.name
        return None

    def features(self) -> domish.Element:
        [features] = [e for e in self.elements if (e.uri, e.name) == (NS_STREAMS, "features")]
        return features

    def mechanisms(self) -> list[str]:
        """The SASL mechanisms offered in this reply's features, in order."""
        for mechanisms in self.features().elements(NS_SASL, "mechanisms"):
            return [str(m) for m in mechanisms.elements(NS_SASL, "mechanism")]
        return []

    def featureNames(self) -> list[tuple[str, str]]:
        return [(f.uri, f.name) for f in self.features().elements()]


class Wire:
    """
    The far end of one stream under test: bytes go in through the stream's
    C{dataReceived}, and what it wrote back comes out parsed as a
    C{replyClass}.  Client, component and server tests each subclass it.
    """

    replyClass = Reply

    def __init__(self, stream, transport: FakeTransport):
        self.stream = stream
        self.transport = transport

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.stream.dataReceived(data)

    def received(self):
        """What the stream wrote since the last call, parsed."""
        data = self.transport.value()
        self.transport.clear()
        return self.replyClass(data)

    def exchange(self, data: bytes | str):
        """Send C{data} and return what came back at once."""
        self.send(data)
        return self.received()


class Client(Wire):
    """One client connection to a L{Node}'s factory."""

    def __init__(self, node: "Node", stream, transport: FakeTransport):
        Wire.__init__(self, stream, transport)
        self.node = node
        self.jid: str | None = None

    def disconnect(self) -> None:
        """The TCP connection goes away (as the reactor reports it)."""
        self.transport.connected = False
        self.stream.connectionLost(None)

    def start(self, **kwargs) -> Reply:
        """Send a stream header (arguments as for L{header}); the server's comes back."""
        reply = self.exchange(header(**kwargs))
        assert reply.header is not None, reply
        return reply

    def authenticate(self, username: str = "juliet", password: str | None = None) -> Reply:
        """Open the stream, log in with PLAIN and restart; the new features come back."""
        if password is None:
            password = PASSWORDS[username]
        self.start()
        reply = self.exchange(plain(username, password))
        assert reply.names == ["success"], reply
        return self.start()

    def bind(self, resource: str | None = None) -> Reply:
        """Bind C{resource} (or let the server choose); the result comes back."""
        payload = "<resource>%s</resource>" % resource if resource is not None else ""
        reply = self.exchange("<iq type='set' id='bind1'><bind xmlns='%s'>%s</bind></iq>"
                              % (NS_BIND, payload))
        [result] = reply.elements
        assert result.getAttribute("type") == "result", reply
        self.jid = str(next(next(result.elements(NS_BIND, "bind")).elements(NS_BIND, "jid")))
        return reply

    def login(self, username: str = "juliet", resource: str | None = None) -> "Client":
        """Authenticate and bind: a client ready to send stanzas."""
        self.authenticate(username)
        self.bind(resource)
        return self


class Node:
    """
    One server in memory: configuration from a TOML file in C{tmp_path},
    a L{Clock}, memory storage with the accounts of L{PASSWORDS}, the local
    domain routed, and a C2S factory.  Keyword arguments override keys of
    C{[c2s]}, C{[sasl]} and C{[limits]}.
    """

    def __init__(self, tmp_path, secure: bool = False, c2s: dict | None = None,
                 limits: dict | None = None, verbose: bool = False,
                 sasl: dict | None = None, features: tuple = (), server: dict | None = None):
        c2s = {"require_tls": False, "plain_without_tls": True, **(c2s or {})}
        limits = {**UNSHAPED, **(limits or {})}
        path = tmp_path / "xmppd.toml"
        lines = ["[server]", "domains = [%s]" % _toml(DOMAIN),
                 "data_dir = %s" % _toml(str(tmp_path / "data"))]
        lines += ["%s = %s" % (k, _toml(v)) for k, v in (server or {}).items()]
        lines += ["[storage]", 'backend = "memory"', "[c2s]"]
        lines += ["%s = %s" % (k, _toml(v)) for k, v in c2s.items()]
        lines += ["[limits]"]
        lines += ["%s = %s" % (k, _toml(v)) for k, v in limits.items()]
        lines += ["[sasl]"]
        lines += ["%s = %s" % (k, _toml(v)) for k, v in (sasl or {}).items()]
        lines += ["[log]", "verbose = %s" % _toml(verbose)]
        path.write_text("\n".join(lines) + "\n")
        self.config = loadConfig(str(path))
        self.clock = Clock()
        self.server = XMPPServer(self.config, clock=self.clock)
        self.server.storageService = StorageService(MemoryStorage())
        self.server.storageService.startService()
        for name, password in PASSWORDS.items():
            self.server.storage.users.addUser(name, DOMAIN, makeCredentials(password))
        #: The served domain, a child of the server (found by its name).
        self.local = LocalDomain(DOMAIN, self.server, features=features)
        self.local.setServiceParent(self.server)
        self.local.startService()
        self.limits = self.config.limits
        self.peers = PeerCounter(self.limits.connections_per_ip)
        self.authFailures = AuthFailureTracker(
            self.limits.auth_failure_delay, self.limits.auth_failure_delay_max, self.clock)
        self.factory = C2SFactory(self.server, TLS_CONTEXT, secure, self.peers,
                                  self.authFailures)

    def connect(self, host: str = "1.2.3.4") -> Client:
        """A new TCP connection from C{host}."""
        address = IPv4Address("TCP", host, 1234)
        stream = self.factory.buildProtocol(address)
        transport = FakeTransport(address)
        stream.makeConnection(transport)
        return Client(self, stream, transport)
