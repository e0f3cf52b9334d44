# -*- test-case-name: tests.test_benchmark_soak -*-
"""
The soak (issue 18, item 3): many sessions connected for a long time with
a realistic mix of traffic, to show that xmppd stays flat: memory after
warm-up, its queues and caches, its latency, and that it loses no message
it accepted.

    .venv/bin/python benchmarks/soakbench.py --sessions 10000 --minutes 31 \\
        --out benchmarks/results/soak-DATE

One process: it provisions the accounts (C{xmppctl import}), starts
C{twistd -n xmppd} from this checkout pinned to C{--server-cpus} (SQLite,
c2s and a plain HTTP listener for C{/metrics} on free ports of 127.0.0.1,
its data in a temporary directory), pins itself to C{--gen-cpus} and runs
the clients on one asyncio loop (uvloop if installed), with the
generator's byte-level XMPP client (L{xmppdbench.client}): plain TCP, SASL
PLAIN.

The population is C{p1..pN} in cliques of C{--clique} accounts, each with
the others in its roster (subscription C{both}).  Every client logs in,
binds, enables stream management (XEP-0198) with resumption, gets its
roster and sends initial presence.  The first C{--rooms} x C{--occupants}
clients enter C{--rooms} rooms (XEP-0045) and stay.  Then, at fixed rates
(per second, spread over the run, each actor picked at random among the
clients online):

  - C{--chat}: a C{<message type='chat'/>} with a body to a contact's
    bare JID, followed by C{<r/>};
  - C{--groupchat}: a room occupant writes to its room, followed by C{<r/>};
  - C{--presence}: a client changes its presence (away, then back);
  - C{--mam}: a client asks its archive (XEP-0313) for its last 20
    messages; answered = the C{<iq type='result'/>} with C{<fin/>};
  - C{--reconnects} per minute: a client loses its connection (a TCP RST,
    as a phone losing its network) and resumes its stream (XEP-0198
    C{<resume/>}) a few seconds later; C{--relogin-share} of them instead
    close their stream cleanly and log in again after a few seconds
    (room occupants only ever resume, so their rooms keep them).

Accounting, end to end: every message has an id the generator numbers.  A
message is I{accepted} when the server's C{<a h/>} covers it (xmppd
acknowledges a stanza only once it is safe: delivered, queued for the
session or on disk); lost = accepted and never received by its recipient
(for groupchat: by some occupant of the room).  Messages sent to a client
that is reconnecting reach it by the resumed stream (the server sends
again what the client had not acknowledged) or, for a clean logout, from
offline storage at its next login; the generator acknowledges exactly the
stanzas it has read, so a resumption retransmits what the RST cut off.  On
C{<resumed h/>} the client sends again what the server had not handled.
At the end the traffic stops and the generator waits (up to
C{--drain} seconds) for every accepted message; duplicates (a clean
logout's unacknowledged stanzas come back from offline storage) are
counted apart and are not losses.

Every C{--sample} seconds: server RSS and CPU (/proc), the server's
C{/metrics} (sessions, rooms, occupants, offline store, rejections,
reactor lag, storage latency, and every in-memory cache and queue with its
bound: the summary's table of them, at the end of the warm-up, at most and
at the end, shows none grew past it), the generator's own figures (messages in
flight, unacknowledged stanzas) and the latency percentiles of the
interval.  Output in C{--out}: C{samples.csv}, C{samples.jsonl} (with
every metric), C{summary.json}, C{summary.md}, C{soak.svg} (RSS and p99 over
time) and the server's log.
"""

import argparse
import array
import asyncio
import base64
import collections
import csv
import gc
import json
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time

from . import bench, dataset, procstat, stats
from .client import FEATURES, IQ, SASL_REPLY, Conn, Generator, ProtocolError, attribute
from .storm import NS_SM, RESUME_REPLY, SM_REPLY, breakConnection

NAME = re.compile(rb"<([A-Za-z][\w:.-]*)")
NS_MAM = b"urn:xmpp:mam:2"
LOGIN_TIMEOUT = 120.0
R = b"<r xmlns='urn:xmpp:sm:3'/>"

SOAK_SECTIONS = """
[muc]
domain = "conference.{domain}"
history_length = 20
max_occupants = 200
rate = 0
"""


def writeSoakConfig(directory: str, port: int, httpPort: int, domain: str = bench.DOMAIN) -> str:
    """
    The benchmark's configuration (L{bench.CONFIG}: loopback, PLAIN on
    plain TCP, no rate limits) with stream management, the archive and the
    MUC service added, and a plain HTTP listener for C{/metrics}.
    """
    path = os.path.join(directory, "xmppd-soak.toml")
    with open(path, "w") as f:
        f.write(bench.CONFIG.format(
            domain=domain, port=port, dataDir=os.path.join(directory, "data"),
            moreModules=', "muc", "sm", "mam"', moreSections=SOAK_SECTIONS.format(domain=domain),
            httpEndpoint="tcp:%d:interface=127.0.0.1:backlog=128" % httpPort))
    return path


def endOf(buf: bytes, name: bytes, i: int) -> int:
    """
    The end of the element C{name} starting at C{i} in C{buf}, elements of
    the same name nested inside counted (an archive result's C{<message>}
    carries the archived C{<message>}); -1 while incomplete.
    """
    close = buf.find(b">", i)
    if close < 0:
        return -1
    if buf[close - 1] == 0x2F:
        return close + 1
    depth, pos = 1, close + 1
    opening, ending = b"<" + name, b"</" + name + b">"
    while True:
        k = buf.find(ending, pos)
        if k < 0:
            return -1
        j = buf.find(opening, pos, k)
        while j >= 0:
            after = buf[j + len(opening):j + len(opening) + 1]
            if after in (b" ", b">", b"/"):
                tagEnd = buf.find(b">", j)
                if buf[tagEnd - 1] != 0x2F:
                    depth += 1
            j = buf.find(opening, j + 1, k)
        depth -= 1
        pos = k + len(ending)
        if depth == 0:
            return pos


def split(buf: bytes):
    """The complete top-level elements of C{buf} as (name, element), and the rest."""
    out, pos, size = [], 0, len(buf)
    while True:
        i = buf.find(b"<", pos)
        if i < 0:
            return out, b""
        if buf.startswith(b"</", i):  # the server's </stream:stream>
            k = buf.find(b">", i)
            if k < 0:
                return out, buf[i:]
            out.append((b"/stream", b""))
            pos = k + 1
            continue
        match = NAME.match(buf, i)
        if match is None or match.end() == size:
            return out, buf[i:]
        name = match.group(1)
        end = endOf(buf, name, i)
        if end < 0:
            return out, buf[i:]
        out.append((name, buf[i:end]))
        pos = end


class Client(Conn):
    """A soak client: its stream management state and what it waits for."""

    __slots__ = ("smid", "hIn", "hOut", "unacked", "online", "busy", "contacts", "room",
                 "nick", "rbuf", "waitPresence", "waitIq", "away", "gone", "upAt")

    def __init__(self, gen, index: int, user: str):
        Conn.__init__(self, gen, index, user)
        self.smid = None
        self.hIn = self.hOut = 0
        self.unacked = collections.deque()  # (seq, kind, gid, data)
        self.online = self.busy = self.away = False
        self.contacts: list[bytes] = []
        self.room = self.nick = None
        self.rbuf = b""
        self.waitPresence: dict[bytes, asyncio.Future] = {}
        self.waitIq: dict[bytes, asyncio.Future] = {}
        self.gone = None
        self.upAt = -1.0  # when this client last came back from a reconnect

    def connection_lost(self, exc):
        wasOnline = self.online
        self.online = False
        Conn.connection_lost(self, exc)
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)
        if wasOnline and not self.busy:
            self.gen.soak.count["unexpected_disconnects"] += 1

    def reset(self):
        self.transport = self.waiter = self.onData = None
        self.buf = self.rbuf = b""
        self.closed = False

    def stanza(self, data: bytes, kind: str = "", gid: int = 0, ask: bool = False):
        """Send a stanza counted by stream management (C{ask}: with an C{<r/>})."""
        self.hOut += 1
        self.unacked.append((self.hOut, kind, gid, data))
        self.transport.write(data + R if ask else data)


class Soak:
    """The run's state: counters, the messages in flight, the latencies."""

    def __init__(self, gen: Generator, args, clients: list[Client]):
        self.gen, self.args, self.clients = gen, args, clients
        self.count = collections.Counter()
        self.errors = collections.Counter()
        #: (t_s, the cache and queue gauges of that sample), see L{boundsOf}.
        self.bounds: list[tuple[float, dict]] = []
        self.nextId = 0
        self.sentAt: dict[int, float] = {}        # gid -> send time (perf_counter)
        self.chatTo: dict[int, int] = {}          # gid -> recipient index
        self.accepted: set[int] = set()           # chat gids the server acknowledged
        self.received: set[int] = set()           # chat gids their recipient read
        self.gcAccepted: set[int] = set()
        self.gcSeen: dict[int, set] = {}          # groupchat gid -> occupants that read it
        self.gcRoom: dict[int, int] = {}          # groupchat gid -> room number
        self.rooms: list[list[Client]] = []
        self.chatLat = array.array("d")           # both ends online throughout
        self.chatAt = array.array("d")            # their send times
        self.lateLat = array.array("d")           # either end reconnected meanwhile
        self.resent: set[int] = set()             # gids a sender had to send again
        self.gcLat = array.array("d")
        self.mamLat = array.array("d")
        self.mamSent: dict[bytes, float] = {}
        self.stopping = False

    # -- reading ---------------------------------------------------------

    def feed(self, conn: Client, data: bytes):
        buf = conn.rbuf + data if conn.rbuf else data
        elements, conn.rbuf = split(buf)
        for name, element in elements:
            if name in (b"message", b"presence", b"iq"):
                conn.hIn += 1
                getattr(self, "on_" + name.decode())(conn, element)
            elif name == b"r":
                conn.transport.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % conn.hIn)
            elif name == b"a":
                self.acknowledged(conn, int(attribute(element, b"h")))
            elif name == b"stream:error":
                self.errors["stream error: " + element[:200].decode(errors="replace")] += 1
            elif name == b"/stream":
                pass
            else:
                self.count["unknown_element_" + name.decode(errors="replace")] += 1

    def acknowledged(self, conn: Client, h: int):
        unacked = conn.unacked
        while unacked and unacked[0][0] <= h:
            _, kind, gid, _ = unacked.popleft()
            if kind == "chat":
                self.accepted.add(gid)
            elif kind == "gc":
                self.gcAccepted.add(gid)

    def on_message(self, conn: Client, element: bytes):
        tag = element[:element.find(b">") + 1]
        if b"<result xmlns='" + NS_MAM in element or b'<result xmlns="' + NS_MAM in element:
            self.count["mam_results"] += 1
            return
        mid = attribute(tag, b"id") or b""
        kind = attribute(tag, b"type")
        if attribute(tag, b"type") == b"error":
            self.errors["message error: " + element[:200].decode(errors="replace")] += 1
            return
        now = time.perf_counter()
        if mid.startswith(b"sk") and kind == b"chat":
            gid = int(mid[2:])
            if gid in self.received:
                self.count["chat_duplicates"] += 1
                return
            if self.chatTo.get(gid) != conn.index:
                self.errors["chat to the wrong client"] += 1
                return
            self.received.add(gid)
            self.count["chat_received"] += 1
            if b"urn:xmpp:delay" in element:
                self.count["chat_received_delayed"] += 1
            sent = self.sentAt.get(gid)
            if sent is not None:
                if conn.busy or conn.upAt >= sent or gid in self.resent:
                    self.lateLat.append(now - sent)
                else:
                    self.chatLat.append(now - sent)
                    self.chatAt.append(sent)
        elif mid.startswith(b"sg") and kind == b"groupchat":
            gid = int(mid[2:])
            seen = self.gcSeen.get(gid)
            if seen is None:
                self.count["groupchat_unknown"] += 1
                return
            if conn.index in seen:
                self.count["groupchat_duplicates"] += 1
                return
            seen.add(conn.index)
            self.count["groupchat_received"] += 1
            sent = self.sentAt.get(gid)
            if sent is not None and not (conn.busy or conn.upAt >= sent or gid in self.resent):
                self.gcLat.append(now - sent)
        elif kind == b"groupchat":
            self.count["groupchat_other"] += 1  # a subject, history
        else:
            self.count["message_other"] += 1

    def on_presence(self, conn: Client, element: bytes):
        tag = element[:element.find(b">") + 1]
        sender = attribute(tag, b"from")
        if attribute(tag, b"type") == b"error":
            self.errors["presence error: " + element[:200].decode(errors="replace")] += 1
        waiter = conn.waitPresence.pop(sender, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(element)
        self.count["presence_received"] += 1

    def on_iq(self, conn: Client, element: bytes):
        tag = element[:element.find(b">") + 1]
        kind = attribute(tag, b"type")
        iqId = attribute(tag, b"id") or b""
        if kind in (b"get", b"set"):
            # nothing else is expected of a client here: answer as RFC 6120 §8.4 asks
            sender = attribute(tag, b"from") or b""
            conn.stanza(b"<iq type='error' id='" + iqId + b"' to='" + sender + b"'>"
                        b"<error type='cancel'><service-unavailable xmlns='urn:ietf:params:"
                        b"xml:ns:xmpp-stanzas'/></error></iq>")
            self.count["iq_from_server"] += 1
            return
        waiter = conn.waitIq.pop(iqId, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(element)
        if iqId.startswith(b"mam"):
            sent = self.mamSent.pop(iqId, None)
            if kind == b"result" and b"<fin" in element:
                self.count["mam_answered"] += 1
                if sent is not None and not (conn.busy or conn.upAt >= sent):
                    self.mamLat.append(time.perf_counter() - sent)
            else:
                self.errors["mam error: " + element[:200].decode(errors="replace")] += 1
        elif kind == b"error":
            self.errors["iq error: " + element[:200].decode(errors="replace")] += 1

    # -- sessions --------------------------------------------------------

    async def connect(self, conn: Client) -> None:
        """TCP, stream, SASL PLAIN, restart: ready to bind or resume."""
        gen = self.gen
        conn.reset()
        await gen.loop.create_connection(lambda: conn, gen.host, gen.port)
        conn.send(gen.header)
        _, features = await conn.expect(FEATURES)
        if b">PLAIN</mechanism>" not in features:
            raise ProtocolError("server does not offer PLAIN")
        conn.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                  + base64.b64encode(b"\0" + conn.user.encode() + b"\0"
                                     + dataset.passwordFor(conn.user).encode()) + b"</auth>")
        name, element = await conn.expect(SASL_REPLY)
        if name != b"success":
            raise ProtocolError("SASL failed: " + element[:200].decode(errors="replace"))
        conn.send(gen.header)
        _, features = await conn.expect(FEATURES)
        if NS_SM not in features:
            raise ProtocolError("the server offers no stream management")

    def streamMode(self, conn: Client):
        """From here every byte goes through L{feed} (counted for stream management)."""
        rest, conn.buf = conn.buf, b""
        conn.onData = self.feed
        if rest:
            self.feed(conn, rest)

    async def login(self, conn: Client) -> None:
        """A full login: bind, enable resumable SM, roster, presence and its echo."""
        await self.connect(conn)
        conn.send(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  b"<resource>soak</resource></bind></iq>")
        _, element = await conn.expect(IQ)
        i, j = element.find(b"<jid>"), element.find(b"</jid>")
        if i < 0 or j < 0:
            raise ProtocolError("bind failed: " + element[:200].decode(errors="replace"))
        conn.jid = element[i + 5:j]
        conn.send(b"<enable xmlns='" + NS_SM + b"' resume='true'/>")
        name, element = await conn.expect(SM_REPLY)
        if name != b"enabled" or attribute(element, b"id") is None:
            raise ProtocolError("stream management refused: "
                                + element[:200].decode(errors="replace"))
        conn.smid = attribute(element, b"id")
        conn.hIn = conn.hOut = 0
        pending = list(conn.unacked)  # not accepted by the session that ended: send again
        conn.unacked.clear()
        self.streamMode(conn)
        echo = conn.waitPresence[conn.jid] = self.gen.loop.create_future()
        roster = conn.waitIq[b"roster"] = self.gen.loop.create_future()
        conn.stanza(b"<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        conn.stanza(b"<presence/>")
        conn.away = False
        await roster
        await echo
        conn.online = True
        for _, kind, gid, data in pending:
            self.count["resent_after_relogin"] += 1
            self.resent.add(gid)
            conn.stanza(data, kind, gid, ask=True)

    async def resume(self, conn: Client) -> bool:
        """XEP-0198 resumption after a broken connection; False if refused."""
        await self.connect(conn)
        conn.send(b"<resume xmlns='" + NS_SM + b"' h='%d' previd='" % conn.hIn + conn.smid
                  + b"'/>")
        name, element = await conn.expect(RESUME_REPLY)
        if name != b"resumed":
            self.errors["resume refused: " + element[:200].decode(errors="replace")] += 1
            return False
        self.acknowledged(conn, int(attribute(element, b"h")))
        pending = list(conn.unacked)
        conn.unacked.clear()
        self.streamMode(conn)
        conn.online = True
        for _, kind, gid, data in pending:
            self.count["resent_after_resume"] += 1
            self.resent.add(gid)
            conn.stanza(data, kind, gid, ask=True)
        return True

    async def logout(self, conn: Client) -> None:
        """A clean logout: all acknowledged both ways, then </stream:stream>."""
        conn.online = False
        if conn.transport is None or conn.closed:
            return
        conn.transport.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % conn.hIn + R)
        deadline = time.monotonic() + 10
        while conn.unacked and time.monotonic() < deadline and not conn.closed:
            await asyncio.sleep(0.05)
        conn.gone = self.gen.loop.create_future()
        conn.close()
        try:
            await asyncio.wait_for(conn.gone, 10)
        except asyncio.TimeoutError:
            conn.transport.abort()
        conn.gone = None

    async def joinRoom(self, conn: Client, room: bytes) -> None:
        occupant = b"%s/n%d" % (room, conn.index)
        conn.room, conn.nick = room, occupant
        waiter = conn.waitPresence[occupant] = self.gen.loop.create_future()
        conn.stanza(b"<presence to='" + occupant + b"'><x xmlns='http://jabber.org/protocol/muc'>"
                    b"<history maxstanzas='0'/></x></presence>")
        presence = await waiter
        if b"code='201'" in presence or b'code="201"' in presence:
            done = conn.waitIq[b"instant"] = self.gen.loop.create_future()
            conn.stanza(b"<iq type='set' id='instant' to='" + room + b"'>"
                        b"<query xmlns='http://jabber.org/protocol/muc#owner'>"
                        b"<x xmlns='jabber:x:data' type='submit'/></query></iq>")
            element = await done
            if attribute(element[:element.find(b">") + 1], b"type") != b"result":
                raise ProtocolError("instant room refused: "
                                    + element[:300].decode(errors="replace"))

    # -- the mix ---------------------------------------------------------

    def pick(self, pool) -> Client | None:
        for _ in range(20):
            conn = random.choice(pool)
            if conn.online and not conn.busy:
                return conn
        return None

    def newId(self) -> int:
        self.nextId += 1
        return self.nextId

    def sendChat(self):
        conn = self.pick(self.clients)
        if conn is None:
            self.count["chat_skipped"] += 1
            return
        to = random.choice(conn.contacts)
        gid = self.newId()
        self.sentAt[gid] = time.perf_counter()
        self.chatTo[gid] = int(to[1:to.find(b"@")]) - 1
        self.count["chat_sent"] += 1
        conn.stanza(b"<message to='" + to + b"' type='chat' id='sk%d'><body>soak message %d from "
                    b"%s, a sentence of ordinary length to look like a chat line</body></message>"
                    % (gid, gid, conn.user.encode()), "chat", gid, ask=True)

    def sendGroupchat(self):
        if not self.rooms:
            return
        room = random.randrange(len(self.rooms))
        conn = self.pick(self.rooms[room])
        if conn is None:
            self.count["groupchat_skipped"] += 1
            return
        gid = self.newId()
        self.sentAt[gid] = time.perf_counter()
        self.gcSeen[gid] = set()
        self.gcRoom[gid] = room
        self.count["groupchat_sent"] += 1
        conn.stanza(b"<message to='" + conn.room + b"' type='groupchat' id='sg%d'><body>room "
                    b"message %d, of ordinary length for a group chat</body></message>"
                    % (gid, gid), "gc", gid, ask=True)

    def sendPresence(self):
        conn = self.pick(self.clients)
        if conn is None:
            return
        conn.away = not conn.away
        self.count["presence_changes"] += 1
        conn.stanza(b"<presence><show>away</show><status>soak</status></presence>" if conn.away
                    else b"<presence/>")

    def sendMam(self):
        conn = self.pick(self.clients)
        if conn is None:
            return
        qid = b"mam%d" % self.newId()
        self.mamSent[qid] = time.perf_counter()
        self.count["mam_queries"] += 1
        conn.stanza(b"<iq type='set' id='" + qid + b"'><query xmlns='urn:xmpp:mam:2' queryid='"
                    + qid + b"'><set xmlns='http://jabber.org/protocol/rsm'><max>20</max>"
                    b"<before/></set></query></iq>")

    async def reconnect(self, conn: Client, relogin: bool):
        conn.busy = True
        try:
            if relogin:
                self.count["relogins"] += 1
                await self.logout(conn)
                await asyncio.sleep(random.uniform(1, 5))
                await asyncio.wait_for(self.login(conn), LOGIN_TIMEOUT)
                self.count["relogins_done"] += 1
            else:
                self.count["resumes"] += 1
                conn.online = False
                breakConnection(conn)
                await asyncio.sleep(random.uniform(1, 8))
                if await asyncio.wait_for(self.resume(conn), LOGIN_TIMEOUT):
                    self.count["resumes_done"] += 1
                else:
                    conn.smid = None
                    await asyncio.wait_for(self.login(conn), LOGIN_TIMEOUT)
                    if conn.room is not None:
                        await self.joinRoom(conn, conn.room)
        except Exception as e:  # noqa: BLE001 - counted and reported
            self.errors["reconnect: %s: %s" % (type(e).__name__, str(e)[:160])] += 1
            if conn.transport is not None:
                conn.transport.abort()
        finally:
            conn.upAt = time.perf_counter()
            conn.busy = False

    async def every(self, rate: float, action):
        """Call C{action} C{rate} times a second, evenly, until the end."""
        if rate <= 0:
            return
        tick = max(0.02, 1.0 / rate)
        start, n = time.perf_counter(), 0
        while not self.stopping:
            due = int((time.perf_counter() - start) * rate)
            while n < due and not self.stopping:
                action()
                n += 1
            await asyncio.sleep(tick)

    def startReconnect(self):
        relogin = random.random() < self.args.relogin_share
        pool = self.clients
        conn = self.pick(pool)
        if conn is None or (relogin and conn.room is not None):
            relogin = False
            if conn is None:
                return
        self.gen.loop.create_task(self.reconnect(conn, relogin))


# -- sampling ------------------------------------------------------------


async def scrapeMetrics(port: int) -> dict:
    """The server's /metrics, as {name{labels}: value}."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    values = {}
    for line in body.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                values[key] = float(value)
            except ValueError:
                pass
    return values


def latencyFields(prefix: str, values) -> dict:
    summary = stats.latencySummary(values, 1e3)
    return {prefix + "_n": summary.get("n", 0), prefix + "_p50_ms": summary.get("p50_ms"),
            prefix + "_p99_ms": summary.get("p99_ms"), prefix + "_max_ms": summary.get("max_ms")}


METRIC_COLUMNS = {
    "sessions": 'xmppd_c2s_sessions{transport="tcp"}',
    "muc_occupants": 'xmppd_muc_occupants{domain="conference.localhost"}',
    "muc_rooms": 'xmppd_muc_rooms{domain="conference.localhost"}',
    "offline_stored": "xmppd_offline_stored_total",
    "offline_delivered": "xmppd_offline_delivered_total",
    "reactor_lag_s": "xmppd_reactor_lag_seconds",
    "storage_jobs": "xmppd_storage_latency_seconds_count",
    "storage_s": "xmppd_storage_latency_seconds_sum",
    "s2s_queued": "xmppd_s2s_queued_stanzas",
}


#: The server's cache and queue gauges (xmppd/core/bounds.py) a sample keeps,
#: by family: what "cache/NAME", "queue/NAME"... mean in L{boundsOf}.
BOUND_FAMILIES = {"xmppd_cache_entries": "cache", "xmppd_cache_capacity": "cache_capacity",
                  "xmppd_queue_items": "queue", "xmppd_queue_longest": "queue_longest",
                  "xmppd_queue_capacity": "queue_capacity"}

#: What bounds the caches and queues that have no number of their own.
BOUND_NOTES = {
    "roster": "accounts with a session", "presence_resources": "available resources",
    "presence_invisible": "invisible resources", "blocklist_sessions": "accounts with a session",
    "privacy_sessions": "accounts with a session", "mam_prefs_sessions": "accounts with a session",
    "sm_resumable": "sessions (+ resume_timeout)", "bosh_sessions": "BOSH sessions",
    "sm_pending": "per session: its unanswered stanzas (reading paused)",
    "pep_fanout": "one publish's recipients", "sqlite_writes": "one group commit",
    "sqlite_reads": "one read batch", "sqlite_thread_jobs": "jobs in flight",
    "bosh_outbox": "per session: until its next request",
    "bosh_inbox": "per session: its requests (hold + 1)",
    "bosh_held_requests": "per session: hold", "bosh_answers": "per session: hold + 1",
    "csi_held": "per stream: [csi] queue_size",
    "c2s_input_backlog": "per stream: 1000",
    "cluster_forward": "one reactor turn",
}


def boundsOf(metrics: dict) -> dict:
    """The cache and queue gauges of one scrape, as {"cache/NAME": value, ...}."""
    out = {}
    for key, value in metrics.items():
        name, _, labels = key.partition("{")
        kind = BOUND_FAMILIES.get(name)
        if kind is not None and labels.count('"') == 2:
            out[kind + "/" + labels.split('"')[1]] = value
    return out


def boundsTable(samples: list, mixStart: float) -> list[dict]:
    """
    Per cache and queue over the run's samples ((t_s, {"cache/NAME": value})):
    the value at the end of the warm-up (the last sample before the mix, or
    its first when the logins took less than a sample interval), the
    largest during and after the mix, the value at the end (the last
    sample), the longest single queue seen, and the bound.  Missing values
    (an older server, a scrape that failed) are C{None}.
    """
    names = sorted({key for _, values in samples for key in values
                    if key.split("/")[0] in ("cache", "queue")},
                   key=lambda k: (k.split("/")[0], k.split("/", 1)[1]))
    warm = [values for t, values in samples if t <= mixStart and values]
    after = [values for t, values in samples if t > mixStart and values]
    if not warm and after:
        # logins faster than one sample interval: the mix's first sample
        warm = after[:1]
    last = ([values for _, values in samples if values] or [{}])[-1]
    table = []
    for key in names:
        kind, name = key.split("/", 1)
        seen = [v[key] for v in after if key in v]
        longest = [v["queue_longest/" + name] for v in after if "queue_longest/" + name in v]
        bounds = [v[kind + "_capacity/" + name] for _, v in samples
                  if kind + "_capacity/" + name in v]
        bound = bounds[-1] if bounds else None
        table.append({"kind": kind, "name": name,
                      "warm": warm[-1].get(key) if warm else None,
                      "max": max(seen) if seen else None, "end": last.get(key),
                      "longest_max": max(longest) if longest else None,
                      "bound": bound, "bound_note": BOUND_NOTES.get(name)})
    return table


def boundsMarkdown(table: list[dict]) -> list[str]:
    """The caches-and-queues table of the summary (C{–} where a value is missing)."""
    if not table:
        return ["No cache or queue gauges in this run's samples (a server from before "
                "`xmppd_cache_entries`): their bounds show only through RSS.", ""]

    def show(v):
        if v is None:
            return "–"
        return "%d" % v if float(v).is_integer() else "%g" % v

    lines = ["Caches and queues (`xmppd_cache_*`, `xmppd_queue_*` on /metrics; queues are "
             "summed over their owners, \"longest\" is the longest single one; a bound "
             "of a queue is per owner, of a cache summed over domains):", "",
             "| kind | name | at warm-up end | max after | at end | longest queue (max) "
             "| bound |", "|---|---|---|---|---|---|---|"]
    for r in table:
        bound = show(r["bound"]) if r["bound"] is not None else (r["bound_note"] or "–")
        lines.append("| %s | `%s` | %s | %s | %s | %s | %s |" % (
            r["kind"], r["name"], show(r["warm"]), show(r["max"]), show(r["end"]),
            show(r["longest_max"]) if r["kind"] == "queue" else "", bound))
    return lines + [""]


async def sampler(soak: Soak, pid: int, httpPort: int, out: str, t0: float, rows: list):
    """Every C{--sample} seconds one row: the server, its metrics, the generator."""
    path = os.path.join(out, "samples.jsonl")
    lastCPU, lastGen = procstat.cpuSeconds(pid), procstat.ownCPUSeconds()
    lastT = time.perf_counter()
    marks = {"chat": 0, "gc": 0, "mam": 0}
    with open(path, "a") as jsonl:
        while True:
            await asyncio.sleep(soak.args.sample)
            now = time.perf_counter()
            cpu, genCPU = procstat.cpuSeconds(pid), procstat.ownCPUSeconds()
            try:
                metrics = await scrapeMetrics(httpPort)
            except (OSError, asyncio.TimeoutError) as e:
                metrics = {}
                soak.errors["metrics scrape: %s" % type(e).__name__] += 1
            row = {"t_s": round(now - t0, 1), "phase": soak.phase,
                   "rss_kb": procstat.rssKB(pid),
                   "server_cpu_pct": round(100 * (cpu - lastCPU) / (now - lastT), 1),
                   "gen_cpu_pct": round(100 * (genCPU - lastGen) / (now - lastT), 1),
                   "online": sum(c.online for c in soak.clients),
                   "unacked_out": sum(len(c.unacked) for c in soak.clients),
                   "chat_in_flight": len(soak.accepted) - len(soak.accepted & soak.received)
                   if soak.phase == "drain" else
                   soak.count["chat_sent"] - soak.count["chat_received"],
                   }
            for column, name in METRIC_COLUMNS.items():
                row[column] = metrics.get(name)
            row["rejected"] = sum(v for k, v in metrics.items()
                                  if k.startswith("xmppd_rejected_total"))
            for key in ("chat_sent", "chat_received", "groupchat_sent", "groupchat_received",
                        "presence_changes", "mam_queries", "mam_answered", "resumes_done",
                        "relogins_done"):
                row[key] = soak.count[key]
            row["errors"] = sum(soak.errors.values())
            row.update(latencyFields("chat", soak.chatLat[marks["chat"]:]))
            row.update(latencyFields("gc", soak.gcLat[marks["gc"]:]))
            row.update(latencyFields("mam", soak.mamLat[marks["mam"]:]))
            marks = {"chat": len(soak.chatLat), "gc": len(soak.gcLat), "mam": len(soak.mamLat)}
            rows.append(row)
            soak.bounds.append((row["t_s"], boundsOf(metrics)))
            jsonl.write(json.dumps(dict(row, metrics=metrics)) + "\n")
            jsonl.flush()
            print("%(t_s)7.0fs %(phase)-7s rss %(rss_kb)7d KB cpu %(server_cpu_pct)5.1f%% "
                  "online %(online)5d chat %(chat_sent)d/%(chat_received)d p99 %(chat_p99_ms)s ms "
                  "unacked %(unacked_out)d errors %(errors)d" % row, flush=True)
            lastCPU, lastGen, lastT = cpu, genCPU, now


# -- the run -------------------------------------------------------------


async def many(items, step, window: int, errors) -> int:
    pending, ok = iter(items), [0]

    async def worker():
        for item in pending:
            try:
                await asyncio.wait_for(step(item), LOGIN_TIMEOUT)
                ok[0] += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors["setup: %s: %s" % (type(e).__name__, str(e)[:160])] += 1
    await asyncio.gather(*(worker() for _ in range(max(1, min(window, len(items))))))
    return ok[0]


async def soakRun(args, port: int, httpPort: int, pid: int, out: str) -> dict:
    gen = Generator("127.0.0.1", port, bench.DOMAIN)
    gen.lost = 0
    clients = [Client(gen, i, "p%d" % (i + 1)) for i in range(args.sessions)]
    for first in range(0, args.sessions, args.clique):
        members = clients[first:first + args.clique]
        for conn in members:
            conn.contacts = [c.bare for c in members if c is not conn]
    soak = Soak(gen, args, clients)
    gen.soak = soak
    soak.phase = "login"
    rows: list[dict] = []
    t0, wallT0 = time.perf_counter(), time.time()
    sampling = gen.loop.create_task(sampler(soak, pid, httpPort, out, t0, rows))
    result = {"phases": {}}
    try:
        started = time.perf_counter()
        ok = await many(clients, soak.login, args.window, soak.errors)
        result["phases"]["login"] = {"ok": ok, "s": round(time.perf_counter() - started, 1)}
        print("logged in %d of %d in %.1f s" % (ok, len(clients), time.perf_counter() - started),
              flush=True)
        if ok < len(clients):
            raise RuntimeError("%d logins failed: %s" % (len(clients) - ok, dict(soak.errors)))
        rooms = min(args.rooms, args.sessions // max(1, 2 * args.occupants))
        domain = bench.mucDomain().encode()
        soak.rooms = [clients[r * args.occupants:(r + 1) * args.occupants] for r in range(rooms)]
        started = time.perf_counter()
        for r, members in enumerate(soak.rooms):
            jid = b"soak%d@%s" % (r, domain)
            await soak.joinRoom(members[0], jid)
        ok = await many([(m, b"soak%d@%s" % (r, domain)) for r, members in enumerate(soak.rooms)
                         for m in members[1:]], lambda pair: soak.joinRoom(*pair), 50, soak.errors)
        result["phases"]["rooms"] = {"rooms": rooms, "occupants": args.occupants,
                                     "s": round(time.perf_counter() - started, 1)}
        gc.collect()
        gc.freeze()
        soak.phase = "mix"
        soak.mixStart = time.perf_counter() - t0
        print("mix for %.1f minutes" % args.minutes, flush=True)
        tasks = [gen.loop.create_task(soak.every(args.chat, soak.sendChat)),
                 gen.loop.create_task(soak.every(args.groupchat, soak.sendGroupchat)),
                 gen.loop.create_task(soak.every(args.presence, soak.sendPresence)),
                 gen.loop.create_task(soak.every(args.mam, soak.sendMam)),
                 gen.loop.create_task(soak.every(args.reconnects / 60.0, soak.startReconnect))]
        await asyncio.sleep(args.minutes * 60)
        soak.stopping = True
        await asyncio.gather(*tasks)
        soak.phase = "drain"
        soak.mixEnd = time.perf_counter() - t0
        deadline = time.monotonic() + args.drain
        asked = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - asked > 5:
                # the last stanzas of a client may have had no <r/> after them
                asked = time.monotonic()
                for conn in clients:
                    if conn.unacked and conn.online and not conn.busy:
                        conn.transport.write(R)
            busy = sum(c.busy for c in clients)
            missing = len(soak.accepted - soak.received) + sum(
                1 for gid in soak.gcAccepted
                if len(soak.gcSeen[gid]) < len(soak.rooms[soak.gcRoom[gid]]))
            unacked = sum(len(c.unacked) for c in clients)
            if not busy and not missing and not unacked:
                break
            await asyncio.sleep(0.5)
        result["phases"]["drain"] = {"s": round(time.perf_counter() - t0 - soak.mixEnd, 1)}
    finally:
        soak.stopping = True
        sampling.cancel()
        soak.phase = "end"
    result.update(account(soak))
    result["samples"] = rows
    result["mix_start_s"] = round(getattr(soak, "mixStart", 0), 1)
    result["wall_t0"] = wallT0
    # exact 1:1 latency percentiles per 5 minutes of the mix, by send time
    exact: dict[int, list] = {}
    for sent, latency in zip(soak.chatAt, soak.chatLat):
        exact.setdefault(int((sent - t0 - result["mix_start_s"]) // 300), []).append(latency)
    result["exact"] = exact
    result["mix_end_s"] = round(getattr(soak, "mixEnd", 0), 1)
    result["bounds"] = boundsTable(soak.bounds, result["mix_start_s"])
    for conn in clients:
        if conn.transport is not None and not conn.closed:
            conn.closed = True
            conn.transport.abort()
    await asyncio.sleep(0.2)
    return result


def account(soak: Soak) -> dict:
    """The end-to-end accounting: what was sent, accepted, received and lost."""
    lostChat = sorted(soak.accepted - soak.received)
    gcExpected = gcLost = 0
    lostGc = []
    for gid in soak.gcAccepted:
        members = soak.rooms[soak.gcRoom[gid]]
        gcExpected += len(members)
        missing = [c.user for c in members if c.index not in soak.gcSeen[gid]]
        if missing:
            gcLost += len(missing)
            lostGc.append((gid, missing))
    count = soak.count
    return {
        "counts": dict(count),
        "chat": {"sent": count["chat_sent"], "accepted": len(soak.accepted),
                 "received": len(soak.received), "lost": len(lostChat),
                 "not_accepted": count["chat_sent"] - len(soak.accepted),
                 "duplicates": count["chat_duplicates"],
                 "received_delayed": count["chat_received_delayed"],
                 "lost_ids": [(gid, "p%d" % (soak.chatTo[gid] + 1)) for gid in lostChat[:100]],
                 "latency": stats.latencySummary(soak.chatLat, 1e3),
                 "latency_across_reconnects": stats.latencySummary(soak.lateLat, 1e3)},
        "groupchat": {"sent": count["groupchat_sent"], "accepted": len(soak.gcAccepted),
                      "deliveries_expected": gcExpected,
                      "deliveries": count["groupchat_received"], "lost_deliveries": gcLost,
                      "duplicates": count["groupchat_duplicates"], "lost": lostGc[:50],
                      "latency": stats.latencySummary(soak.gcLat, 1e3)},
        "mam": {"queries": count["mam_queries"], "answered": count["mam_answered"],
                "results": count["mam_results"],
                "latency": stats.latencySummary(soak.mamLat, 1e3)},
        "reconnects": {"resumes": count["resumes"], "resumes_done": count["resumes_done"],
                       "relogins": count["relogins"], "relogins_done": count["relogins_done"],
                       "resent_after_resume": count["resent_after_resume"],
                       "resent_after_relogin": count["resent_after_relogin"],
                       "unexpected_disconnects": count["unexpected_disconnects"]},
        "presence": {"changes": count["presence_changes"], "received": count["presence_received"]},
        "errors": dict(soak.errors),
    }


# -- the report ----------------------------------------------------------


def svg(rows: list[dict], mixStart: float, mixEnd: float, title: str) -> str:
    """Server RSS and the chat p99 over time as two hand-made SVG line charts."""
    width, height, left, top, gap = 760, 230, 70, 30, 60
    rows = [r for r in rows if r.get("rss_kb")]
    if not rows:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    tMax = max(r["t_s"] for r in rows) or 1
    plotW = width - left - 20

    def chart(y0, key, scale, unit, label, color):
        values = [(r["t_s"], r[key] * scale) for r in rows if r.get(key) is not None]
        vMax = max([v for _, v in values] or [1]) * 1.1 or 1
        h = height - 40
        parts = ["<text x='%d' y='%d' font-size='13'>%s</text>" % (left, y0 - 8, label)]
        parts.append("<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#999'/>"
                     % (left, y0, plotW, h))
        for k in range(5):
            v = vMax * k / 4
            y = y0 + h - h * k / 4
            parts.append("<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#eee'/>"
                         % (left, left + plotW, y, y))
            parts.append("<text x='%d' y='%.1f' font-size='10' text-anchor='end'>%.0f %s</text>"
                         % (left - 4, y + 3, v, unit))
        for m in range(0, int(tMax / 60) + 1, 5):
            x = left + plotW * m * 60 / tMax
            parts.append("<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#eee'/>"
                         % (x, x, y0, y0 + h))
            parts.append("<text x='%.1f' y='%d' font-size='10' text-anchor='middle'>%d min</text>"
                         % (x, y0 + h + 12, m))
        for t in (mixStart, mixEnd):
            if t:
                x = left + plotW * t / tMax
                parts.append("<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#c60' "
                             "stroke-dasharray='4 3'/>" % (x, x, y0, y0 + h))
        points = " ".join("%.1f,%.1f" % (left + plotW * t / tMax, y0 + h - h * v / vMax)
                          for t, v in values)
        parts.append("<polyline fill='none' stroke='%s' stroke-width='1.5' points='%s'/>"
                     % (color, points))
        return "\n".join(parts)

    body = [chart(top + 20, "rss_kb", 1 / 1024, "MB", "server RSS (MB)", "#1f5fa8"),
            chart(top + 20 + height + gap - 30, "chat_p99_ms", 1, "ms",
                  "1:1 chat latency p99 per sample interval (ms)", "#a81f3c")]
    total = top + 2 * height + gap
    return ("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n"
            "<text x='%d' y='18' font-size='14' font-weight='bold'>%s</text>\n%s\n"
            "<text x='%d' y='%d' font-size='10' fill='#c60'>dashed: start and end of the "
            "traffic mix</text>\n</svg>\n"
            % (width, total, left, title, "\n".join(body), left, total - 8))


def intervals(rows: list[dict], start: float, minutes: int = 5, end: float = 0,
              exact: dict | None = None) -> list[dict]:
    """
    The samples of the mix grouped per C{minutes}: RSS at the end, CPU, the
    median and worst of the samples' p99 and how many samples had one over
    100 ms; with C{exact} ({interval: latencies}) the interval's own p50/p99.
    """
    groups = collections.OrderedDict()
    for row in rows:
        if row["phase"] != "mix" or row["t_s"] < start:
            continue
        groups.setdefault(int((row["t_s"] - start) // (60 * minutes)), []).append(row)
    out = []
    for k, group in groups.items():
        p99 = [r["chat_p99_ms"] for r in group if r.get("chat_p99_ms") is not None]
        gp99 = [r["gc_p99_ms"] for r in group if r.get("gc_p99_ms") is not None]
        exactK = stats.latencySummary((exact or {}).get(k, ()), 1e3)
        out.append({"from_min": k * minutes,
                    "to_min": round(min((k + 1) * minutes, (end - start) / 60 if end > start
                                        else (k + 1) * minutes), 1),
                    "chat_n": sum(r["chat_n"] for r in group),
                    "chat_p50_ms": exactK.get("p50_ms"), "chat_p99_ms": exactK.get("p99_ms"),
                    "samples_p99_over_100ms": len([v for v in p99 if v > 100]),
                    "samples": len(group),
                    "rss_mb_end": round(group[-1]["rss_kb"] / 1024, 1),
                    "rss_mb_max": round(max(r["rss_kb"] for r in group) / 1024, 1),
                    "server_cpu_pct": round(sum(r["server_cpu_pct"] for r in group)
                                            / len(group), 1),
                    "chat_p99_ms_worst": max(p99) if p99 else None,
                    "chat_p99_ms_median": sorted(p99)[len(p99) // 2] if p99 else None,
                    "gc_p99_ms_worst": max(gp99) if gp99 else None,
                    "reactor_lag_ms_max": round(1e3 * max((r["reactor_lag_s"] or 0)
                                                          for r in group), 1),
                    "offline_stored": group[-1]["offline_stored"]})
    return out


def markdown(result: dict) -> str:
    chat, gc_, mam, rc = result["chat"], result["groupchat"], result["mam"], result["reconnects"]
    lines = ["# Soak: %d sessions, %.1f minutes of mix" % (result["args"]["sessions"],
                                                          result["args"]["minutes"]), "",
             "xmppd %s, %s; generator: %s" % (result["xmppd"], result["machine"]["cpu_model"],
                                              result["generator"]), "",
             "Per %d minutes of the mix (minute 0 = its start; a sample = %g s):"
             % (5, result["args"]["sample"]), "",
             "| from | to | RSS end (MB) | RSS max (MB) | server CPU | chat p50 / p99 (ms) "
             "| samples' chat p99: median / worst (ms) | samples with p99 > 100 ms "
             "| groupchat p99 worst (ms) | reactor lag max (ms) | offline stored |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["intervals"]:
        r = dict({"chat_p50_ms": None, "chat_p99_ms": None, "samples_p99_over_100ms": "?",
                  "samples": "?"}, **r)
        r = {k: "–" if v is None else v for k, v in r.items()}
        lines.append("| %(from_min)s min | %(to_min)s min | %(rss_mb_end)s | %(rss_mb_max)s | "
                     "%(server_cpu_pct)s %% | %(chat_p50_ms)s / %(chat_p99_ms)s | "
                     "%(chat_p99_ms_median)s / %(chat_p99_ms_worst)s | "
                     "%(samples_p99_over_100ms)s of %(samples)s | "
                     "%(gc_p99_ms_worst)s | %(reactor_lag_ms_max)s | %(offline_stored)s |" % r)
    lines += ["",
              "| counter | value |", "|---|---|",
              "| 1:1 chat sent / accepted / received | %d / %d / %d |"
              % (chat["sent"], chat["accepted"], chat["received"]),
              "| 1:1 chat **lost** (accepted, never received) | **%d** |" % chat["lost"],
              "| 1:1 chat received late via offline storage or resumption (`<delay/>`) | %d |"
              % chat["received_delayed"],
              "| 1:1 chat duplicates | %d |" % chat["duplicates"],
              "| 1:1 chat latency p50 / p99 / max (ms), both ends online | %s / %s / %s |"
              % (chat["latency"].get("p50_ms"), chat["latency"].get("p99_ms"),
                 chat["latency"].get("max_ms")),
              "| 1:1 chat across a reconnect of either end: count, p50 / p99 (ms) | %s, %s / %s |"
              % (chat["latency_across_reconnects"].get("n", 0),
                 chat["latency_across_reconnects"].get("p50_ms"),
                 chat["latency_across_reconnects"].get("p99_ms")),
              "| groupchat sent / accepted | %d / %d |" % (gc_["sent"], gc_["accepted"]),
              "| groupchat deliveries expected / received / **lost** | %d / %d / **%d** |"
              % (gc_["deliveries_expected"], gc_["deliveries"], gc_["lost_deliveries"]),
              "| groupchat latency p50 / p99 (ms) | %s / %s |"
              % (gc_["latency"].get("p50_ms"), gc_["latency"].get("p99_ms")),
              "| presence changes | %d |" % result["presence"]["changes"],
              "| MAM queries / answered / result messages | %d / %d / %d |"
              % (mam["queries"], mam["answered"], mam["results"]),
              "| MAM latency p50 / p99 (ms) | %s / %s |"
              % (mam["latency"].get("p50_ms"), mam["latency"].get("p99_ms")),
              "| reconnects: resumed (RST, then XEP-0198 resume) | %d of %d |"
              % (rc["resumes_done"], rc["resumes"]),
              "| reconnects: clean logout and new login | %d of %d |"
              % (rc["relogins_done"], rc["relogins"]),
              "| stanzas sent again after a resume / a new login | %d / %d |"
              % (rc["resent_after_resume"], rc["resent_after_relogin"]),
              "| disconnects the generator did not cause | %d |" % rc["unexpected_disconnects"],
              "| generator errors | %d |" % sum(result["errors"].values()),
              "| server log: lines with Traceback / error level | %d / %d |"
              % (result["server_log"]["tracebacks"], result["server_log"]["errors"]),
              ""]
    lines += boundsMarkdown(result.get("bounds") or [])
    if result.get("gc"):
        g = result["gc"]
        lines += ["Full (generation 2) garbage collections of the server during the mix: %d, "
                  "median %s ms, longest %s ms, at %s s." % (
                      g["gen2_in_mix"], g["gen2_ms_median"], g["gen2_ms_max"],
                      ", ".join(str(c["t_s"]) for c in g["gen2"])), ""]
    if result["errors"]:
        lines += (["Errors:", ""] + ["- %d × %s" % (n, e) for e, n in result["errors"].items()]
                  + [""])
    return "\n".join(lines)


def gcSummary(path: str, wallT0: float, mixStart: float, mixEnd: float) -> dict:
    """The generation-2 collections during the mix: how many, how long, when."""
    full = []
    try:
        with open(path) as f:
            for line in f:
                stamp, generation, ms, collected = line.split()
                t = float(stamp) - wallT0
                if generation == "2" and mixStart <= t <= mixEnd:
                    full.append({"t_s": round(t, 1), "ms": float(ms), "collected": int(collected)})
    except (OSError, ValueError):
        return {}
    return {"gen2_in_mix": len(full), "gen2_ms_max": max((c["ms"] for c in full), default=None),
            "gen2_ms_median": sorted(c["ms"] for c in full)[len(full) // 2] if full else None,
            "gen2": full}


def scanLog(path: str) -> dict:
    tracebacks = errors = 0
    samples = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if "Traceback" in line:
                    tracebacks += 1
                if '"log_level": "error"' in line or "[ERROR]" in line or " error " in \
                        line.lower()[:80] or "Unhandled" in line:
                    errors += 1
                    if len(samples) < 20:
                        samples.append(line.strip()[:300])
    except OSError:
        pass
    return {"tracebacks": tracebacks, "errors": errors, "samples": samples}


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="benchmarks/soakbench.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--sessions", type=int, default=10000)
    add("--minutes", type=float, default=31, help="length of the traffic mix")
    add("--clique", type=int, default=10, help="accounts per roster clique")
    add("--rooms", type=int, default=50)
    add("--occupants", type=int, default=8, help="occupants per room")
    add("--chat", type=float, default=100, help="1:1 messages per second")
    add("--groupchat", type=float, default=5, help="room messages per second")
    add("--presence", type=float, default=20, help="presence changes per second")
    add("--mam", type=float, default=2, help="archive queries per second")
    add("--reconnects", type=float, default=120, help="reconnects per minute")
    add("--relogin-share", type=float, default=0.3,
        help="share of reconnects that log out cleanly and in again (the rest resume)")
    add("--sample", type=float, default=10, help="seconds between samples")
    add("--drain", type=float, default=120, help="seconds to wait for the last messages")
    add("--window", type=int, default=100, help="logins in flight at the start")
    add("--out", help="results directory (default: a new temporary directory)")
    add("--server-cpus", default="0", help="taskset CPU list of the server ('' = unpinned)")
    add("--gen-cpus", default="1", help="CPU list this generator pins itself to ('' = unpinned)")
    add("--xmppd-bin", default=os.path.dirname(sys.executable),
        help="directory holding twistd and xmppctl")
    add("--gc-log", action="store_true",
        help="log the server's slow and generation-2 garbage collections (gc.log) and "
        "put them in the summary")
    add("--no-uvloop", action="store_true")
    add("--keep-workdir", action="store_true")
    add("--report", metavar="DIR", help="only write summary.md and soak.svg again from DIR's "
        "summary.json and samples.jsonl")
    args = parser.parse_args(argv)
    if args.sessions < 2 * args.clique or args.clique < 2:
        parser.error("--sessions must be at least twice --clique (and --clique at least 2)")
    args.sessions -= args.sessions % args.clique
    return args


def rerender(out: str) -> int:
    """C{--report DIR}: summary.md and soak.svg again from a run's saved files."""
    with open(os.path.join(out, "summary.json")) as f:
        result = json.load(f)
    with open(os.path.join(out, "samples.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    old = {r["from_min"]: r for r in result.get("intervals", [])}
    result["intervals"] = intervals(rows, result["mix_start_s"], end=result["mix_end_s"])
    result["bounds"] = boundsTable([(r["t_s"], boundsOf(r.get("metrics") or {})) for r in rows],
                                   result["mix_start_s"])
    for r in result["intervals"]:
        for key in ("chat_p50_ms", "chat_p99_ms"):
            r[key] = old.get(r["from_min"], {}).get(key)
    with open(os.path.join(out, "soak.svg"), "w") as f:
        f.write(svg(rows, result["mix_start_s"], result["mix_end_s"],
                    "xmppd soak: %d sessions" % result["args"]["sessions"]))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    text = markdown(result)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--report"] and len(argv) == 2:
        return rerender(argv[1])
    args = parseArgs(argv)
    twistd, xmppctl = bench.xmppdTools(args.xmppd_bin)
    if (args.server_cpus or args.gen_cpus) and not shutil.which("taskset"):
        args.server_cpus = args.gen_cpus = ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.sessions + 100:
        raise SystemExit("%d sessions need more open files than the limit %d" % (args.sessions,
                                                                                  hard))
    out = args.out or tempfile.mkdtemp(prefix="xmppd-soak-")
    os.makedirs(out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="xmppd-soak-work-")
    port, httpPort = bench.freePort(), bench.freePort()
    config = writeSoakConfig(workdir, port, httpPort)
    logPath = os.path.join(out, "server.log")

    def log(message):
        print("%s %s" % (time.strftime("%H:%M:%S"), message), flush=True)

    if args.gc_log:
        # the server's interpreter imports gclog/sitecustomize.py (bench.Server's
        # environment is this one's, with the checkout first on the path)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "gclog"),
            os.environ.get("PYTHONPATH")]))
        os.environ["XMPPD_GC_LOG"] = os.path.join(out, "gc.log")
    server = bench.Server(twistd, config, port, args.server_cpus, logPath)
    result = {"args": vars(args), "xmppd": bench.xmppdVersion(), "machine": bench.machine(),
              "config": open(config).read()}
    status = 0
    try:
        result["provisioning"] = bench.provision(xmppctl, config, workdir, "full", log,
                                                 population=(0, args.sessions, args.clique - 1))
        log("provisioned %(accounts)d accounts in %(import_s).1f s" % result["provisioning"])
        pid = server.start()
        log("xmppd %d on port %d, /metrics on %d" % (pid, port, httpPort))
        if args.gen_cpus:
            os.sched_setaffinity(0, {int(c) for c in args.gen_cpus.split(",")})
        loopName, runner = "asyncio", asyncio.run
        if not args.no_uvloop:
            try:
                import uvloop
            except ImportError:
                pass
            else:
                loopName, runner = "uvloop " + uvloop.__version__, uvloop.run
        result["generator"] = "Python %s, %s" % (sys.version.split()[0], loopName)
        result.update(runner(soakRun(args, port, httpPort, pid, out)))
    except KeyboardInterrupt:
        result["error"] = "interrupted"
        status = 130
    except Exception as e:  # noqa: BLE001 - reported; the server is still stopped
        result["error"] = "%s: %s" % (type(e).__name__, e)
        status = 1
    finally:
        result["server_exit"] = server.stop()
        if args.keep_workdir:
            log("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["server_log"] = scanLog(logPath)
    if args.gc_log:
        result["gc"] = gcSummary(os.path.join(out, "gc.log"), result.get("wall_t0", 0),
                                 result.get("mix_start_s", 0), result.get("mix_end_s", 0))
    result["machine_after"] = bench.machine()
    rows = result.pop("samples", [])
    if rows:
        with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        result["intervals"] = intervals(rows, result.get("mix_start_s", 0),
                                        end=result.get("mix_end_s", 0),
                                        exact=result.pop("exact", None))
        with open(os.path.join(out, "soak.svg"), "w") as f:
            f.write(svg(rows, result.get("mix_start_s", 0), result.get("mix_end_s", 0),
                        "xmppd soak: %d sessions" % args.sessions))
    result.pop("exact", None)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    if "chat" in result:
        text = markdown(result)
        with open(os.path.join(out, "summary.md"), "w") as f:
            f.write(text)
        print(text)
        if result["chat"]["lost"] or result["groupchat"]["lost_deliveries"]:
            status = status or 3
    if result.get("error"):
        print("ERROR:", result["error"], flush=True)
        status = status or 1
    log("results in %s" % out)
    return status
