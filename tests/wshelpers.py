# -*- test-case-name: tests.test_websocket -*-
"""
A plain WebSocket client for tests (wsproto over a Twisted connection),
for what no XMPP library does: raw RFC 7395 framing, broken framing, and
handshakes without the subprotocol.  L{connectWebSocket} connects and
performs the handshake; the L{WebSocketClient} then collects the
messages, the close frame and the HTTP refusal, each awaited with a
bound.
"""

from __future__ import annotations

import base64
import re

from twisted.internet import defer, endpoints, protocol, ssl
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Message, Ping, RejectConnection,
                            RejectData, Request, TextMessage, BytesMessage)

TIMEOUT = 10.0
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


class WebSocketClient(protocol.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, host: str, path: str, subprotocols, origin: str | None, extra=()):
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.host = host
        self.path = path
        self.subprotocols = list(subprotocols)
        self.headers = ([(b"origin", origin.encode())] if origin else []) + list(extra)
        self.handshake = defer.Deferred()
        self.closed = defer.Deferred()
        self.messages: list[str] = []
        self.waiters: list[defer.Deferred] = []
        self.buffer = ""
        self.status: int | None = None
        self.body = b""
        self.subprotocol = None
        self.closeCode = None
        self.lost = False

    def connectionMade(self):
        self.transport.write(self.ws.send(Request(
            host=self.host, target=self.path, subprotocols=self.subprotocols,
            extra_headers=self.headers)))

    def dataReceived(self, data):
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.subprotocol = event.subprotocol
                self.handshake.callback(self)
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
                if not event.has_body:
                    self.handshake.callback(self)
            elif isinstance(event, RejectData):
                self.body += event.data
                if event.body_finished:
                    self.handshake.callback(self)
            elif isinstance(event, TextMessage):
                self.buffer += event.data
                if event.message_finished:
                    self.messages.append(self.buffer)
                    self.buffer = ""
                    self.wake()
            elif isinstance(event, BytesMessage):
                pass
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closeCode = event.code
                try:
                    self.transport.write(self.ws.send(event.response()))
                except Exception:
                    pass
                self.wake()

    def connectionLost(self, reason):
        self.lost = True
        if not self.handshake.called:
            self.handshake.callback(self)
        self.closed.callback(None)
        self.wake()

    def wake(self):
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(None)

    def send(self, text: str, finished: bool = True) -> None:
        self.transport.write(self.ws.send(Message(data=text, message_finished=finished)))

    def sendBytes(self, data: bytes) -> None:
        self.transport.write(self.ws.send(Message(data=data)))

    async def nextMessage(self, timeout: float = TIMEOUT) -> str:
        """The next message from the server; fails on timeout or when the connection ends first."""
        from twisted.internet import reactor
        while not self.messages:
            if self.lost or self.closeCode is not None:
                raise ConnectionError("closed (%s) before a message came" % (self.closeCode,))
            d = defer.Deferred()
            self.waiters.append(d)
            await d.addTimeout(timeout, reactor)
        return self.messages.pop(0)

    async def expect(self, pattern: str) -> str:
        """The next message, which must match C{pattern} (a regular expression)."""
        message = await self.nextMessage()
        assert re.search(pattern, message), "expected %r, got %r" % (pattern, message)
        return message

    async def waitClosed(self, timeout: float = TIMEOUT) -> None:
        from twisted.internet import reactor
        if not self.lost:
            await self.closed.addTimeout(timeout, reactor)


async def connectWebSocket(port: int, host: str = "localhost", path: str = "/xmpp-websocket",
                           subprotocols=("xmpp",), origin: str | None = None, tls: bool = False,
                           extra=()) -> WebSocketClient:
    """Connect to 127.0.0.1:C{port} and do the handshake (the client has C{status} if refused)."""
    from twisted.internet import reactor
    if tls:
        # The test server's certificate is self-signed: not checked here.
        endpoint = endpoints.SSL4ClientEndpoint(
            reactor, "127.0.0.1", port, ssl.CertificateOptions(verify=False))
    else:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
    client = WebSocketClient(host, path, subprotocols, origin, extra)
    await endpoint.connect(protocol.Factory.forProtocol(lambda: client)).addTimeout(
        TIMEOUT, reactor)
    await client.handshake.addTimeout(TIMEOUT, reactor)
    return client


def openElement(domain: str = "localhost") -> str:
    return "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, domain)


def plainAuth(user: str, password: str) -> str:
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
            % (token,))


class MemoryWebSocket:
    """
    A WebSocket client in memory: its bytes go to a channel of C{site} (an
    L{xmppd.http.service.WebSite}) over a L{tests.streamhelpers.FakeTransport},
    and what the server wrote is decoded by wsproto into C{messages}, the
    handshake's C{status} (101 when accepted) and C{subprotocol}, and the
    close frame's C{closeCode}.
    """

    def __init__(self, site, host: str = "1.2.3.4", subprotocols=("xmpp",),
                 origin: str | None = None, extra=(), path: str = "/xmpp-websocket",
                 handshake: bool = True):
        from twisted.internet.address import IPv4Address
        from tests.streamhelpers import FakeTransport
        address = IPv4Address("TCP", host, 4321)
        self.channel = site.buildProtocol(address)
        self.transport = FakeTransport(address)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[str] = []
        self.buffer = ""
        self.status: int | None = None
        self.body = b""
        self.subprotocol = None
        self.closeCode = None
        if self.channel is None:
            return
        self.channel.makeConnection(self.transport)
        if handshake:
            headers = ([(b"origin", origin.encode())] if origin else []) + list(extra)
            self.channel.dataReceived(self.ws.send(Request(
                host="localhost", target=path, subprotocols=list(subprotocols),
                extra_headers=headers)))
            self.read()

    @property
    def stream(self):
        """The server's client stream of this WebSocket."""
        return self.channel.dataReceived.__self__._wsp.stream

    def read(self) -> list[str]:
        """Decode what the server wrote since the last read; the new messages."""
        data = self.transport.value()
        self.transport.clear()
        before = len(self.messages)
        if data:
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    self.status = 101
                    self.subprotocol = event.subprotocol
                elif isinstance(event, RejectConnection):
                    self.status = event.status_code
                elif isinstance(event, RejectData):
                    self.body += event.data
                elif isinstance(event, TextMessage):
                    self.buffer += event.data
                    if event.message_finished:
                        self.messages.append(self.buffer)
                        self.buffer = ""
                elif isinstance(event, CloseConnection):
                    self.closeCode = event.code
        return self.messages[before:]

    def send(self, text: str, finished: bool = True) -> list[str]:
        """Send (a piece of) a message; the messages that came back."""
        self.channel.dataReceived(self.ws.send(Message(data=text, message_finished=finished)))
        return self.read()

    def sendBytes(self, data: bytes) -> list[str]:
        self.channel.dataReceived(self.ws.send(Message(data=data)))
        return self.read()

    def lose(self) -> None:
        """The TCP connection goes away, as the reactor reports it."""
        from twisted.python.failure import Failure
        from twisted.internet.error import ConnectionDone
        self.transport.connected = False
        self.channel.connectionLost(Failure(ConnectionDone()))
