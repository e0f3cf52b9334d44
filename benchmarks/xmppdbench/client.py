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
RFC 5802 (SCRAM-SHA-1, without channel binding) and, of XEP-0045, entering
a room, creating an instant room and groupchat messages.
"""

import array
import asyncio
import base64
import collections
import hashlib
import hmac
import os
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

    def send(self, data: bytes):
        self.transport.write(data)

    def close(self):
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.write(b"</stream:stream>")
            self.transport.close()


class Generator:
    """
    Shared state of one run: the server's address, the TLS context, the
    connected clients; the load module adds its meter and arguments.
    """

    def __init__(self, host: str, port: int, domain: str):
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.domain = host, port, domain
        self.header = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                       % domain).encode()
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE  # the server's certificate is self-signed
        self.lost = 0
        self.clients: list[Conn] = []

    def portFor(self, index: int) -> int:
        """
        The port client C{index} connects to: the one server's, unless the
        load module spreads the clients over the nodes of a cluster.
        """
        return self.port

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
    await gen.loop.create_connection(lambda: conn, gen.host, gen.portFor(conn.index))
    conn.send(gen.header)
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
    await gen.loop.create_connection(lambda: conn, gen.host, gen.portFor(conn.index))
    conn.send(gen.header)
    _, features = await conn.expect(FEATURES)
    if tls:
        conn.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        name, _ = await conn.expect(TLS_REPLY)
        if name != b"proceed":
            raise ProtocolError("STARTTLS refused")
        conn.buf = b""
        conn.transport = await gen.loop.start_tls(conn.transport, conn, gen.tls,
                                                  server_hostname=gen.domain)
        conn.send(gen.header)
        _, features = await conn.expect(FEATURES)
    await authenticate(gen, conn, features, mechanism)
    conn.send(gen.header)
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
            conn = Conn(gen, index, user)
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
            conn = Conn(gen, index, user)
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
