# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The generator's XMPP client: connections that log in with pre-rendered
stanzas and read the server's XML by substring search, not by parsing.

A client only has to recognise a handful of elements (stream features,
STARTTLS and SASL replies, IQ results, its own presence echo), so finding
C{<name} and the matching end tag in the received bytes is enough and costs
a fraction of an XML parser.  Elements of the same name must not nest, which
holds for everything read here.

Implements the client side of RFC 6120 (stream, STARTTLS, SASL, resource
binding, the RFC 3921 session where still required), RFC 4616 (PLAIN),
RFC 5802 (SCRAM-SHA-1, without channel binding), RFC 7395 (XMPP over
WebSocket, plain C{ws://}: L{WebSocketConn}), XEP-0124/XEP-0206 (BOSH,
plain C{http://}: L{BoshConn}) and, of XEP-0045, entering a
room, creating an instant room and groupchat messages.
"""

import array
import asyncio
import base64
import collections
import hashlib
import hmac
import os
import random
import ssl
import time

from .dataset import passwordFor

NS_SESSION = b"urn:ietf:params:xml:ns:xmpp-session"
LOGIN_TIMEOUT = 60.0


class ProtocolError(Exception):
    """The server answered something a well-behaved client cannot go on from."""


# Byte-level XML: enough to find the few elements a client waits for.


def findElement(buf: bytes, name: bytes, start: int = 0):
    """
    (begin, end) of the first complete C{<name .../>} or C{<name ...>...</name>}
    at or after C{start}, or None if there is none yet.  Elements of the same
    name must not nest, which holds for everything this generator reads.
    """
    pattern = b"<" + name
    i = start
    while True:
        i = buf.find(pattern, i)
        if i < 0:
            return None
        after = buf[i + len(pattern):i + len(pattern) + 1]
        if after in (b" ", b">", b"/", b"\n", b"\t", b"\r"):
            break
        if not after:
            return None
        i += 1
    close = buf.find(b">", i)
    if close < 0:
        return None
    if buf[close - 1] == 0x2F:  # "/>"
        return i, close + 1
    endTag = b"</" + name + b">"
    k = buf.find(endTag, close)
    return None if k < 0 else (i, k + len(endTag))


def attribute(tag: bytes, name: bytes) -> bytes | None:
    """The value of attribute C{name} in the start tag C{tag}, either quoting."""
    for quote in (b"'", b'"'):
        key = b" " + name + b"=" + quote
        i = tag.find(key)
        if i >= 0:
            i += len(key)
            return tag[i:tag.find(quote, i)]
    return None


def elementText(element: bytes) -> bytes:
    """Character data of a leaf element (SASL payloads)."""
    if element.endswith(b"/>"):
        return b""
    return element[element.find(b">") + 1:element.rfind(b"<")]


def raiseOnStreamError(buf: bytes) -> None:
    i = buf.find(b"<stream:error")
    if i >= 0:
        raise ProtocolError("stream error: " + buf[i:i + 300].decode(errors="replace"))


def takeFirst(*names: bytes):
    """A matcher that consumes the earliest complete element among C{names}."""
    def match(conn):
        raiseOnStreamError(conn.buf)
        best = None
        for name in names:
            found = findElement(conn.buf, name)
            if found and (best is None or found[0] < best[1][0]):
                best = (name, found)
        if best is None:
            return None
        name, (i, end) = best
        element, conn.buf = conn.buf[i:end], conn.buf[end:]
        return name, element
    return match


def takePresenceFrom(conn, sender: bytes):
    """
    Consume presences up to the first one from C{sender} and return it, or
    None if none has come yet; an error presence from it is raised.
    """
    raiseOnStreamError(conn.buf)
    buf, pos = conn.buf, 0
    while (found := findElement(buf, b"presence", pos)) is not None:
        i, pos = found
        tag = buf[i:buf.find(b">", i) + 1]
        if attribute(tag, b"from") == sender:
            if attribute(tag, b"type") == b"error":
                raise ProtocolError("presence error: " + buf[i:pos][:300].decode(errors="replace"))
            conn.buf = buf[pos:]
            return buf[i:pos]
    conn.buf = buf[pos:]
    return None


def ownPresence(conn):
    """A matcher for the echo of our own presence (RFC 6121 §4.2.2)."""
    return takePresenceFrom(conn, conn.jid)


def occupantPresence(occupant: bytes):
    """
    A matcher for our own presence in a room, which comes from our
    occupant JID, C{room@service/nick} (XEP-0045 §7.2.3: after the other
    occupants' presences).
    """
    return lambda conn: takePresenceFrom(conn, occupant)


FEATURES = takeFirst(b"stream:features")
TLS_REPLY = takeFirst(b"proceed", b"failure")
SASL_REPLY = takeFirst(b"success", b"failure", b"challenge")
IQ = takeFirst(b"iq")


class Conn(asyncio.Protocol):
    """
    One client connection.  During negotiation incoming bytes gather in
    C{buf} and a matcher completes the pending future; in a measured phase
    C{onData} takes the bytes directly, with no future per stanza.
    """

    __slots__ = ("gen", "index", "user", "bare", "jid", "transport", "buf", "waiter",
                 "onData", "closed", "inflight", "msgHead", "msgTail", "seen",
                 "selfSeen", "done", "sentAt")

    def __init__(self, gen, index: int, user: str):
        self.gen, self.index, self.user = gen, index, user
        self.bare = (user + "@" + gen.domain).encode()
        self.jid = self.transport = self.waiter = self.onData = None
        self.buf = b""
        self.closed = False
        self.inflight = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.onData is not None:
            self.onData(self, data)
            return
        self.buf += data
        if self.waiter is not None:
            self._poll()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.closed:  # not closed by us
            self.gen.lost += 1
        self.closed = True
        if self.waiter is not None:
            future, self.waiter = self.waiter[0], None
            if not future.done():
                future.set_exception(ConnectionError("connection closed by the server"))

    def _poll(self):
        future, match = self.waiter
        if future.done():  # the login was cancelled by its timeout
            self.waiter = None
            return
        try:
            result = match(self)
        except Exception as e:  # noqa: BLE001 - handed to the waiting login
            self.waiter = None
            future.set_exception(e)
            return
        if result is not None:
            self.waiter = None
            future.set_result(result)

    def expect(self, match):
        future = self.gen.loop.create_future()
        self.waiter = (future, match)
        self._poll()
        return future

    async def connect(self):
        """Open the connection to the server (TCP: nothing more to it)."""
        await self.gen.loop.create_connection(lambda: self, self.gen.host,
                                              self.gen.portFor(self.index))

    def openStream(self):
        """Send the stream header: at the start, after STARTTLS and after SASL."""
        self.transport.write(self.gen.header)

    def send(self, data: bytes):
        self.transport.write(data)

    @staticmethod
    def standalone(data: bytes) -> bytes:
        """
        A pre-rendered stanza as this transport sends it (TCP: unchanged;
        WebSocket: with its namespace, L{standaloneStanza}), so that a
        scenario's hot path does not rewrite it on every send.
        """
        return data

    def close(self):
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.write(b"</stream:stream>")
            self.transport.close()


# XMPP over WebSocket (RFC 7395 on RFC 6455), plain ws://

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAMING_OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>"
FRAMING_CLOSE = b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
STANZA_NAMES = (b"<message", b"<presence", b"<iq")
CLIENT_NS = b" xmlns='jabber:client'"
_fromLE, _getrandbits = int.from_bytes, random.getrandbits


def wsFrame(payload: bytes, opcode: int = 1) -> bytes:
    """
    One whole client frame (FIN set) of C{payload}: masked as RFC 6455
    §5.3 requires of a client, the XOR done as one big-integer operation
    (not a Python loop per byte) so that masking costs the generator little.
    The key comes from C{random.getrandbits}: unpredictable enough for a
    load generator on loopback, and no system call per frame.
    """
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    key = _getrandbits(32).to_bytes(4, "little")
    mask = (key * ((n >> 2) + 1))[:n]
    return head + key + (_fromLE(payload, "little") ^ _fromLE(mask, "little")).to_bytes(
        n, "little")


def wsUnframe(buf: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """
    The complete server frames at the start of C{buf} as (opcode, fin,
    payload), and the rest.  Server frames are unmasked (RFC 6455 §5.1); a
    masked one is unmasked anyway.
    """
    frames, pos, end = [], 0, len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        n, head = b1 & 0x7F, pos + 2
        if n == 126:
            if end - head < 2:
                break
            n, head = int.from_bytes(buf[head:head + 2], "big"), head + 2
        elif n == 127:
            if end - head < 8:
                break
            n, head = int.from_bytes(buf[head:head + 8], "big"), head + 8
        key = None
        if b1 & 0x80:
            key, head = buf[head:head + 4], head + 4
        if end - head < n:
            break
        payload = buf[head:head + n]
        if key is not None and len(key) == 4:
            mask = (key * ((n >> 2) + 1))[:n]
            payload = (_fromLE(payload, "little") ^ _fromLE(mask, "little")).to_bytes(n, "little")
        frames.append((b0 & 0x0F, bool(b0 & 0x80), payload))
        pos = head + n
    return frames, buf[pos:]


def standaloneStanza(data: bytes) -> bytes:
    """
    C{data} as a message of its own (RFC 7395 §3.3.3): a stanza written
    for a TCP stream, whose C{jabber:client} namespace the stream header
    declared, gets the declaration in its start tag.  Prosody parses each
    message alone and refuses a stanza without it (unsupported-stanza-type).
    """
    for name in STANZA_NAMES:
        if data.startswith(name):
            end = len(name)
            if data[end:end + 1] in (b" ", b">", b"/") and not data.startswith(b" xmlns=", end):
                return data[:end] + CLIENT_NS + data[end:]
            break
    return data


def wsAccept(key: bytes) -> bytes:
    """The C{Sec-WebSocket-Accept} a server must answer C{key} with (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


class WebSocketConn(Conn):
    """
    A client connection over WebSocket (RFC 7395): the HTTP upgrade with
    the C{xmpp} subprotocol, C{<open/>} instead of the stream header (a
    stream restart is a new C{<open/>}, §3.4), one element per text message
    both ways, C{<close/>} before the closing frame.

    The payloads of the server's messages are handed on concatenated, as a
    TCP stream's bytes would be, to the same matchers and C{onData}
    callbacks: every message is one whole element (§3.3.3), so element
    boundaries fall on message boundaries and nothing else changes for the
    scenarios.  Framing is written here rather than with C{wsproto}, whose
    event objects and per-frame state machine would cost the generator
    several times what the few lines below do (the framing is checked
    against C{wsproto} in C{tests/test_benchmark_smoke.py}).
    """

    __slots__ = ("wsbuf", "fragments", "upgraded", "handshake")

    def __init__(self, gen, index: int, user: str):
        super().__init__(gen, index, user)
        self.wsbuf = self.fragments = b""
        self.upgraded = False
        self.handshake = None

    async def connect(self):
        gen = self.gen
        await gen.loop.create_connection(lambda: self, gen.host, gen.wsPortFor(self.index))
        key = base64.b64encode(os.urandom(16))
        self.handshake = gen.loop.create_future()
        self.transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: xmpp\r\n\r\n"
            % (gen.wsPath.encode(), gen.host.encode(), gen.wsPortFor(self.index), key))
        head = await self.handshake
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ProtocolError("WebSocket upgrade refused: " + head[:300].decode(errors="replace"))
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != wsAccept(key):
            raise ProtocolError("WebSocket upgrade: wrong Sec-WebSocket-Accept")
        if headers.get(b"sec-websocket-protocol", b"").lower() != b"xmpp":
            raise ProtocolError("WebSocket upgrade: the server did not choose the xmpp "
                                "subprotocol (RFC 7395 §3.2)")

    def data_received(self, data):
        if not self.upgraded:
            self.wsbuf += data
            i = self.wsbuf.find(b"\r\n\r\n")
            if i < 0:
                return
            head, data, self.wsbuf = self.wsbuf[:i], self.wsbuf[i + 4:], b""
            self.upgraded = True
            self.handshake.set_result(head)
            if not data:
                return
        frames, self.wsbuf = wsUnframe(self.wsbuf + data if self.wsbuf else data)
        text = []
        for opcode, fin, payload in frames:
            if opcode in (0, 1, 2):
                if not fin:
                    self.fragments += payload
                    continue
                if self.fragments:
                    payload, self.fragments = self.fragments + payload, b""
                text.append(payload)
            elif opcode == 9:  # ping
                self.transport.write(wsFrame(payload, 10))
            elif opcode == 8:  # close: answer it, as RFC 6455 §5.5.1 asks
                if not self.closed:
                    self.closed = True
                    self.gen.lost += 1
                    self.transport.write(wsFrame(payload[:2], 8))
                    self.transport.close()
        if text:
            Conn.data_received(self, text[0] if len(text) == 1 else b"".join(text))

    def connection_lost(self, exc):
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection closed during the "
                                                         "WebSocket upgrade"))
        super().connection_lost(exc)

    def openStream(self):
        self.transport.write(wsFrame(FRAMING_OPEN % self.gen.domain.encode()))

    def send(self, data: bytes):
        self.transport.write(wsFrame(standaloneStanza(data)))

    @staticmethod
    def standalone(data: bytes) -> bytes:
        return standaloneStanza(data)

    def close(self):
        if self.transport is not None and not self.closed:
            self.closed = True
            if self.upgraded:
                self.transport.write(wsFrame(FRAMING_CLOSE) + wsFrame(b"\x03\xe8", 8))
            self.transport.close()


# XMPP over BOSH (XEP-0124, XEP-0206), plain http://

NS_HTTPBIND = b"http://jabber.org/protocol/httpbind"
BOSH_WAIT = 30


def bodyPayload(body: bytes) -> tuple[bytes, bytes]:
    """(start tag, children) of a C{<body/>} wrapper as one answer carries it."""
    if body.startswith(b"<?xml"):
        body = body[body.find(b"?>") + 2:].lstrip()
    close = body.find(b">")
    if not body.startswith(b"<body") or close < 0:
        raise ProtocolError("BOSH: not a <body/>: " + body[:200].decode(errors="replace"))
    if body[close - 1] == 0x2F:  # "/>"
        return body[:close + 1], b""
    return body[:close + 1], body[close + 1:body.rfind(b"</body>")]


class HttpLeg(asyncio.Protocol):
    """
    One keep-alive HTTP/1.1 connection of a L{BoshConn}, with at most one
    request on it at a time (no pipelining: XEP-0124 §14 advises against
    it); the answer's body goes to L{BoshConn.answered}.  C{busy}: a
    request is out on it (C{sent}, kept until its answer comes, for
    L{BoshConn.legLost} to send again); a leg still connecting has no
    C{transport} yet and is not busy.
    """

    __slots__ = ("owner", "transport", "buf", "busy", "closed", "sent")

    def __init__(self, owner):
        self.owner, self.transport, self.buf = owner, None, b""
        self.busy = self.closed = False
        self.sent = None

    def connection_made(self, transport):
        self.transport = transport

    def post(self, body: bytes):
        self.busy = True
        self.sent = body
        gen = self.owner.gen
        self.transport.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; "
                             b"charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
                             % (gen.boshPathB, gen.hostB, len(body), body))

    def data_received(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = self.buf[:i].lower()
            k = head.find(b"content-length:")
            if k >= 0:
                n = int(head[k + 15:head.find(b"\r\n", k) if head.find(b"\r\n", k) > 0
                             else len(head)])
                if len(self.buf) < i + 4 + n:
                    return
                body, self.buf = self.buf[i + 4:i + 4 + n], self.buf[i + 4 + n:]
            elif b"transfer-encoding: chunked" in head:
                body, pos = b"", i + 4
                while True:
                    j = self.buf.find(b"\r\n", pos)
                    if j < 0:
                        return
                    size = int(self.buf[pos:j].split(b";")[0], 16)
                    if len(self.buf) < j + 2 + size + 2:
                        return
                    body += self.buf[j + 2:j + 2 + size]
                    pos = j + 2 + size + 2
                    if size == 0:
                        break
                self.buf = self.buf[pos:]
            else:
                raise ProtocolError("BOSH: an answer without a length: " + head[:300].decode())
            status = head[:head.find(b"\r\n")]
            self.busy = False
            self.sent = None
            self.owner.answered(self, status, body)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.closed = True
        self.owner.legLost(self)


class BoshConn(Conn):
    """
    A client session over BOSH (XEP-0206): two keep-alive HTTP/1.1
    connections, each carrying one request at a time, so that at most
    C{requests} = 2 are in flight (C{hold='1'}: one held by the server,
    one to send with); C{rid} goes up by one per request.  The session
    creation request stands for the stream header, C{xmpp:restart} for a
    restart; what the client sends while both requests are out waits for
    the next answer and leaves in one C{<body/>}.  After the session is
    created there is always one request out, so the server can answer
    with whatever it has for us.

    The children of each answer's C{<body/>} are handed on as a TCP
    stream's bytes would be, to the same matchers and C{onData}.
    """

    __slots__ = ("legs", "rid", "sid", "outbox", "started", "pending", "ready")

    def __init__(self, gen, index: int, user: str):
        super().__init__(gen, index, user)
        self.legs = []
        self.rid = random.randrange(1 << 32, 1 << 40)
        self.sid = None
        self.outbox = []
        self.started = False
        self.pending = None  # a request waiting for a free leg (creation, restart)

    async def connect(self):
        gen = self.gen
        for _ in range(2):
            leg = HttpLeg(self)
            await gen.loop.create_connection(lambda: leg, gen.host, gen.wsPortFor(self.index))
            self.legs.append(leg)
        self.transport = self.legs[0].transport

    def _request(self, attrs: bytes, payload: bytes = b"") -> bytes:
        self.rid += 1
        if self.sid is not None:
            attrs = b" sid='%s'%s" % (self.sid, attrs)
        if payload:
            return b"<body rid='%d'%s xmlns='%s'>%s</body>" % (self.rid, attrs, NS_HTTPBIND,
                                                                payload)
        return b"<body rid='%d'%s xmlns='%s'/>" % (self.rid, attrs, NS_HTTPBIND)

    def _free(self):
        for leg in self.legs:
            if not leg.busy and not leg.closed and leg.transport is not None:
                return leg
        return None

    def openStream(self):
        domain = self.gen.domain.encode()
        if self.sid is None:
            body = self._request(
                b" to='%s' xml:lang='en' wait='%d' hold='1' content='text/xml; charset=utf-8' "
                b"ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'" % (domain, BOSH_WAIT))
        else:
            body = self._request(b" to='%s' xml:lang='en' xmpp:restart='true' "
                                 b"xmlns:xmpp='urn:xmpp:xbosh'" % domain)
        leg = self._free()
        if leg is None:  # both out: it goes when one comes back
            self.pending = body
        else:
            leg.post(body)

    def send(self, data: bytes):
        self.outbox.append(standaloneStanza(data))
        if self.sid is not None and self.pending is None:
            leg = self._free()
            if leg is not None:
                leg.post(self._request(b"", b"".join(self.outbox)))
                self.outbox.clear()

    @staticmethod
    def standalone(data: bytes) -> bytes:
        return standaloneStanza(data)

    def answered(self, leg, status: bytes, body: bytes):
        if self.closed:
            return
        if b" 200 " not in status + b" ":
            self._lose("BOSH: HTTP " + status.decode(errors="replace"))
            return
        try:
            tag, payload = bodyPayload(body)
        except ProtocolError as e:
            self._lose(str(e))
            return
        if self.sid is None:
            self.sid = attribute(tag, b"sid")
            if self.sid is None:
                self._lose("BOSH: session refused: " + body[:300].decode(errors="replace"))
                return
        if attribute(tag, b"type") == b"terminate":
            self._lose("BOSH: session terminated (%s): %s" % (
                (attribute(tag, b"condition") or b"").decode(),
                (payload or tag)[:300].decode(errors="replace")))
            return
        # Keep one request out: what is queued, else an empty one to be held.
        if self.pending is not None:
            leg.post(self.pending)
            self.pending = None
        elif self.outbox:
            leg.post(self._request(b"", b"".join(self.outbox)))
            self.outbox.clear()
        elif not any(other.busy for other in self.legs):
            leg.post(self._request(b""))
        if payload:
            Conn.data_received(self, payload)

    def _lose(self, why: str):
        if not self.closed:
            self.closed = True
            self.gen.lost += 1
            for leg in self.legs:
                if leg.transport is not None:
                    leg.transport.close()
        if self.waiter is not None:
            future, self.waiter = self.waiter[0], None
            if not future.done():
                future.set_exception(ConnectionError(why))

    def legLost(self, leg):
        """
        A connection closed by the server is opened again, as a browser
        would: an idle one (a server closes keep-alive connections that
        stay silent, as a receiver's second one does), or one whose request
        got no byte of an answer (the server closed it as the request
        left, racing its idle timeout): that request is sent again, same
        C{rid} (XEP-0124 §9.2: the server answers it, or gives the answer
        it kept).  A connection lost in the middle of an answer loses the
        session.
        """
        if self.closed:
            return
        retry = None
        if leg.busy:
            if leg.buf or leg.sent is None:
                self._lose("BOSH: the server closed an HTTP connection in an answer")
                return
            retry = leg.sent
            self.gen.boshRetries += 1
        self.gen.boshReconnects += 1
        fresh = HttpLeg(self)
        self.legs[self.legs.index(leg)] = fresh
        self.gen.loop.create_task(self._reopen(fresh, retry))

    async def _reopen(self, leg, retry: bytes | None):
        """
        Connect C{leg} again; then send C{retry}, or what waits, or an
        empty request if no other is out: after every change there must be
        a request out for the server to answer with what it has for us.
        (While the leg was connecting, an answer on the other leg may have
        found no free leg to keep a request out with.)
        """
        gen = self.gen
        try:
            await gen.loop.create_connection(lambda: leg, gen.host, gen.wsPortFor(self.index))
        except OSError as e:
            self._lose("BOSH: reconnecting: %s" % e)
            return
        if self.closed:
            leg.transport.close()
        elif retry is not None:
            leg.post(retry)
        elif self.pending is not None:
            leg.post(self.pending)
            self.pending = None
        elif self.sid is not None and (self.outbox or not any(o.busy for o in self.legs)):
            leg.post(self._request(b"", b"".join(self.outbox)))
            self.outbox.clear()

    def data_received(self, data):  # the legs take the bytes
        raise AssertionError("BoshConn is not a transport's protocol")

    def close(self):
        if not self.closed:
            self.closed = True
            if self.sid is not None:
                leg = self._free()
                if leg is not None:
                    leg.post(self._request(b" type='terminate'",
                                           b"<presence type='unavailable' xmlns='jabber:client'/>"))
            for leg in self.legs:
                if leg.transport is not None:
                    leg.transport.close()


class Generator:
    """
    Shared state of one run: the server's address, the TLS context, the
    connected clients; the load module adds its meter and arguments.
    """

    def __init__(self, host: str, port: int, domain: str, transport: str = "tcp",
                 wsPort: int = 0, wsPath: str = "/xmpp-websocket", boshPath: str = "/http-bind"):
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.domain = host, port, domain
        if transport not in ("tcp", "ws", "bosh"):
            raise ValueError("transport must be tcp, ws or bosh, not %r" % transport)
        self.connClass = {"tcp": Conn, "ws": WebSocketConn, "bosh": BoshConn}[transport]
        self.wsPort, self.wsPath = wsPort, wsPath
        self.boshPathB, self.hostB = boshPath.encode(), ("%s:%d" % (host, wsPort)).encode()
        self.header = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                       % domain).encode()
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE  # the server's certificate is self-signed
        self.lost = 0
        #: BOSH: HTTP connections the server closed that were opened again,
        #: and requests sent again on them (L{BoshConn.legLost}).
        self.boshReconnects = self.boshRetries = 0
        self.clients: list[Conn] = []

    def portFor(self, index: int) -> int:
        """
        The port client C{index} connects to: the one server's, unless the
        load module spreads the clients over the nodes of a cluster.
        """
        return self.port

    def wsPortFor(self, index: int) -> int:
        """The HTTP port client C{index} opens its WebSocket (or BOSH connections) on."""
        return self.wsPort

    def newConn(self, index: int, user: str) -> Conn:
        """A client connection of this run's transport (TCP or WebSocket)."""
        return self.connClass(self, index, user)

    def closeAll(self):
        for conn in self.clients:
            conn.close()
        self.clients = []


# Login

# SaltedPassword by (password, salt, iteration count): RFC 5802 §5.1 lets a
# client cache it, and L{learnSalts} fills it before a measured login storm
# so the generator's PBKDF2 does not hide the server's cost.
SALTED: dict[tuple[str, str, str], bytes] = {}


def scramProof(user: str, password: str, clientNonce: str, serverFirst: str):
    """
    The SCRAM-SHA-1 client-final message (RFC 5802 §3) for C{serverFirst},
    and the server signature the server must prove itself with.
    """
    fields = dict(part.split("=", 1) for part in serverFirst.split(","))
    if not fields["r"].startswith(clientNonce):
        raise ProtocolError("SCRAM: server nonce does not extend ours")
    key = (password, fields["s"], fields["i"])
    salted = SALTED.get(key)
    if salted is None:
        salted = SALTED[key] = hashlib.pbkdf2_hmac(
            "sha1", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    clientKey = hmac.digest(salted, b"Client Key", "sha1")
    withoutProof = "c=biws,r=" + fields["r"]
    authMessage = ("n=%s,r=%s,%s,%s" % (user, clientNonce, serverFirst, withoutProof)).encode()
    signature = hmac.digest(hashlib.sha1(clientKey).digest(), authMessage, "sha1")
    proof = bytes(a ^ b for a, b in zip(clientKey, signature))
    serverSignature = hmac.digest(hmac.digest(salted, b"Server Key", "sha1"), authMessage, "sha1")
    return (withoutProof + ",p=" + base64.b64encode(proof).decode(),
            "v=" + base64.b64encode(serverSignature).decode())


async def authenticate(gen: Generator, conn: Conn, features: bytes, mechanism: str):
    if b">" + mechanism.encode() + b"</mechanism>" not in features:
        raise ProtocolError("server does not offer " + mechanism)
    password = passwordFor(conn.user)
    if mechanism == "PLAIN":
        token = base64.b64encode(b"\0" + conn.user.encode() + b"\0" + password.encode())
        conn.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                  + token + b"</auth>")
        name, element = await conn.expect(SASL_REPLY)
    else:
        nonce = base64.b64encode(os.urandom(18)).decode()
        first = "n,,n=%s,r=%s" % (conn.user, nonce)
        conn.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
                  + base64.b64encode(first.encode()) + b"</auth>")
        name, element = await conn.expect(SASL_REPLY)
        if name != b"challenge":
            raise ProtocolError("SCRAM: " + element[:200].decode(errors="replace"))
        final, verifier = scramProof(conn.user, password, nonce,
                                     base64.b64decode(elementText(element)).decode())
        conn.send(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                  + base64.b64encode(final.encode()) + b"</response>")
        name, element = await conn.expect(SASL_REPLY)
        serverFinal = base64.b64decode(elementText(element)).decode()
        if name == b"challenge":  # server-final as a challenge (RFC 6120 §6.4.6)
            conn.send(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            name, element = await conn.expect(SASL_REPLY)
        if name == b"success" and serverFinal != verifier:
            raise ProtocolError("SCRAM: the server did not prove it knows the password")
    if name != b"success":
        raise ProtocolError("SASL failed: " + element[:200].decode(errors="replace"))


async def learnSalt(gen: Generator, conn: Conn) -> None:
    """
    Start SCRAM-SHA-1, derive SaltedPassword from the server's salt into
    L{SALTED}, and abort the exchange (RFC 6120 §6.4.4).
    """
    await conn.connect()
    conn.openStream()
    await conn.expect(FEATURES)
    nonce = base64.b64encode(os.urandom(18)).decode()
    conn.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
              + base64.b64encode(("n,,n=%s,r=%s" % (conn.user, nonce)).encode()) + b"</auth>")
    name, element = await conn.expect(SASL_REPLY)
    if name != b"challenge":
        raise ProtocolError("SCRAM: " + element[:200].decode(errors="replace"))
    scramProof(conn.user, passwordFor(conn.user), nonce,
               base64.b64decode(elementText(element)).decode())
    conn.send(b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    await conn.expect(SASL_REPLY)
    conn.close()


async def login(gen: Generator, conn: Conn, tls=False, mechanism="PLAIN", roster=False,
                presence=True) -> float:
    """Connect, negotiate, bind; optionally get the roster and go online. Seconds taken."""
    started = time.perf_counter()
    await conn.connect()
    conn.openStream()
    _, features = await conn.expect(FEATURES)
    if tls:
        if isinstance(conn, (WebSocketConn, BoshConn)):
            raise ProtocolError("no STARTTLS over WebSocket or BOSH (TLS is wss:// or https://)")
        conn.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        name, _ = await conn.expect(TLS_REPLY)
        if name != b"proceed":
            raise ProtocolError("STARTTLS refused")
        conn.buf = b""
        conn.transport = await gen.loop.start_tls(conn.transport, conn, gen.tls,
                                                  server_hostname=gen.domain)
        conn.openStream()
        _, features = await conn.expect(FEATURES)
    await authenticate(gen, conn, features, mechanism)
    conn.openStream()
    _, features = await conn.expect(FEATURES)
    conn.send(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              b"<resource>r%d</resource></bind></iq>" % conn.index)
    _, element = await conn.expect(IQ)
    i, j = element.find(b"<jid>"), element.find(b"</jid>")
    if i < 0 or j < 0:
        raise ProtocolError("bind failed: " + element[:200].decode(errors="replace"))
    conn.jid = element[i + 5:j]
    k = features.find(NS_SESSION)
    if k >= 0 and b"<optional" not in features[k:features.find(b"</session>", k)]:
        # RFC 3921 session establishment, only where the server still requires it
        conn.send(b"<iq type='set' id='sess'>"
                  b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        await conn.expect(IQ)
    if roster:
        conn.send(b"<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        _, element = await conn.expect(IQ)
        if attribute(element[:element.find(b">") + 1], b"type") != b"result":
            raise ProtocolError("roster get failed: " + element[:200].decode(errors="replace"))
    if presence:
        conn.send(b"<presence/>")
        await conn.expect(ownPresence)
    return time.perf_counter() - started


async def loginMany(gen: Generator, users: list[str], firstIndex=0, concurrency=100, **kw):
    """
    Log C{users} in with at most C{concurrency} logins in flight; returns
    (connected clients, login seconds, Counter of errors).
    """
    pending = iter(enumerate(users, firstIndex))
    clients, latencies, errors = [], array.array("d"), collections.Counter()

    async def worker():
        for index, user in pending:
            conn = gen.newConn(index, user)
            try:
                latencies.append(await asyncio.wait_for(login(gen, conn, **kw), LOGIN_TIMEOUT))
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors["%s: %s" % (type(e).__name__, str(e)[:120])] += 1
                conn.close()
                continue
            conn.buf = b""
            clients.append(conn)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(users)) or 1)))
    gen.clients += clients
    return clients, latencies, errors


async def learnSalts(gen: Generator, users: list[str], concurrency=100) -> None:
    """
    L{learnSalt} for every user, C{concurrency} at a time.  Failures are
    left for the measured logins to count and report.
    """
    pending = iter(enumerate(users))

    async def worker():
        for index, user in pending:
            conn = gen.newConn(index, user)
            try:
                await asyncio.wait_for(learnSalt(gen, conn), LOGIN_TIMEOUT)
            except Exception:  # noqa: BLE001 - the measured login reports it
                conn.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(users)) or 1)))


# Multi-user chat (XEP-0045)


def createdRoom(presence: bytes) -> bool:
    """
    Whether our own presence in a room says that joining created it
    (status code 201, XEP-0045 §10.1.1): then we are its owner and must
    configure it before others may enter.
    """
    return b"code='201'" in presence or b'code="201"' in presence


def occupantJID(room: bytes, index: int) -> bytes:
    """The occupant JID of client C{index} in C{room}: nick C{n<index>}."""
    return b"%s/n%d" % (room, index)


async def joinRoom(conn: Conn, room: bytes) -> bool:
    """
    Enter C{room} without history (XEP-0045 §7.2.1, §7.2.15: maxstanzas 0)
    and wait for our own occupant presence.  If joining created the room,
    accept the default configuration by submitting an empty form (an
    instant room, §10.1.2) and wait for the result.  Returns whether we
    created it.
    """
    occupant = occupantJID(room, conn.index)
    conn.send(b"<presence to='" + occupant + b"'><x xmlns='http://jabber.org/protocol/muc'>"
              b"<history maxstanzas='0'/></x></presence>")
    presence = await conn.expect(occupantPresence(occupant))
    if not createdRoom(presence):
        return False
    conn.send(b"<iq type='set' id='instant' to='" + room + b"'>"
              b"<query xmlns='http://jabber.org/protocol/muc#owner'>"
              b"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
    _, element = await conn.expect(IQ)
    if attribute(element[:element.find(b">") + 1], b"type") != b"result":
        raise ProtocolError("instant room refused: " + element[:300].decode(errors="replace"))
    return True
