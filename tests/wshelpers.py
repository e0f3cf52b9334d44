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
