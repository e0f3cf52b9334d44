# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The load generator: many XMPP clients (L{client}) in one process, on one
event loop (uvloop when importable), driving one scenario.

It is built to cost the server's core, not its own: every stanza it sends
is pre-rendered bytes and it reads the server's XML by substring search.  A
message's send time (C{perf_counter_ns}) and sender travel inside its body,
so latency is measured on one clock.

It also measures the server, given its PID: for each phase it snapshots CPU
(utime + stime), scheduler run and wait time and RSS of the server process
tree, its own CPU and the machine's, samples the server's RSS every 0.2 s
and resets and reads its VmHWM (see L{procstat}).

  python -m xmppdbench.load login --port 5222 --server-pid PID --n 2000
  python -m xmppdbench.load login --tls | --mech SCRAM-SHA-1 ...
  python -m xmppdbench.load msg --pairs 500 --window 4 | --rate 2000 ...
  python -m xmppdbench.load muc --rooms 20 --occupants 50 --senders 5 --window 1 ...
  python -m xmppdbench.load presence --users 1050 --roster-size 20 ...
  python -m xmppdbench.load idle --levels 1000,5000,10000 ...
  python -m xmppdbench.load pep --users 1050 --roster-size 20 ...
"""

import argparse
import array
import asyncio
import collections
import gc
import json
import os
import re
import resource
import sys
import time

from . import procstat, redisstat, stats
from .caps import (NS_DISCO_INFO, NS_PUBSUB_EVENT, PEP_NODE, PUBLISH_TAIL, Capabilities,
                   publishHead)
from .client import Generator, attribute, findElement, joinRoom, learnSalts, loginMany

perfNs = time.perf_counter_ns
MARKER = re.compile(rb"XB(\d+)\.(\d+)\.")
STANZA = re.compile(rb"<([A-Za-z][\w:.-]*)")
DRAIN_TIMEOUT = 15.0
JOIN_TIMEOUT = 60.0
OWNER_GRACE = 2.0
# refusals of a first publish worth retrying: a lost race, not a missing feature
RETRY_CONDITIONS = frozenset({"item-not-found", "conflict", "internal-server-error",
                              "resource-constraint", "wait"})


# Measurement


class Phase:
    """
    One measured interval: C{async with Phase(gen, name) as phase:} around
    the work, then C{phase.result(count, unit, ...)}.
    """

    def __init__(self, gen: Generator, name: str):
        self.gen, self.name = gen, name

    async def __aenter__(self):
        meter = self.gen.meter
        self.pids = meter.pids()
        meter.resetPeak()
        self.sampledPeak = 0
        self.sampler = asyncio.ensure_future(self._sample())
        redisPort = getattr(self.gen.args, "redis_port", 0)
        self.redisBefore = redisstat.commandCalls(redisPort) if redisPort else None
        self.before = meter.snapshot()
        return self

    async def _sample(self):
        while True:
            self.sampledPeak = max(self.sampledPeak, sum(procstat.rssKB(p) for p in self.pids))
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc):
        self.accounting = procstat.delta(self.before, self.gen.meter.snapshot())
        if self.redisBefore is not None:
            # includes the 2 INFO calls of this measurement itself
            self.accounting["redis_calls"] = redisstat.callsDelta(
                self.redisBefore, redisstat.commandCalls(self.gen.args.redis_port))
        self.sampler.cancel()
        hwm = self.gen.meter.peakRSS()
        self.accounting["server_rss_kb_peak"] = max(
            self.sampledPeak, hwm or 0, self.accounting["server_rss_kb_end"])
        self.accounting["server_rss_peak_source"] = "VmHWM" if hwm else "sampled"
        return False

    def result(self, count: int, unit: str, **extra) -> dict:
        figures = stats.phaseFigures(self.accounting, count, unit, self.gen.args.busy_threshold)
        figures["phase"] = self.name
        figures.update(extra)
        return figures


async def waitQuiet(gen: Generator, threshold=0.03, window=0.5, timeout=30.0) -> bool:
    """Wait (at most C{timeout}) until the server uses under C{threshold} of a core."""
    deadline = time.monotonic() + timeout
    pids = gen.meter.pids()
    while time.monotonic() < deadline:
        before = sum(procstat.cpuSeconds(p) for p in pids)
        await asyncio.sleep(window)
        if (sum(procstat.cpuSeconds(p) for p in pids) - before) / window < threshold:
            return True
    return False


class ScenarioFailed(RuntimeError):
    """A scenario that cannot measure what it is for; C{phases} holds what it did measure."""

    def __init__(self, message: str, phases: list[dict]):
        RuntimeError.__init__(self, message)
        self.phases = phases


def requireAll(clients, wanted, errors):
    if len(clients) != wanted:
        raise RuntimeError("%d of %d logins failed: %s" % (wanted - len(clients), wanted,
                                                            dict(errors)))


def settled():
    """After set-up: keep the clients out of the collector's way."""
    gc.collect()
    gc.freeze()


# Scenarios


async def scenarioLogin(gen: Generator, args) -> list[dict]:
    users = ["u%d" % i for i in range(args.first, args.first + args.n)]
    if args.mech == "SCRAM-SHA-1" and not args.no_salt_cache:
        await learnSalts(gen, users, args.concurrency)
    await waitQuiet(gen)
    async with Phase(gen, "login") as phase:
        clients, latencies, errors = await loginMany(
            gen, users, concurrency=args.concurrency, tls=args.tls, mechanism=args.mech)
    gen.closeAll()
    return [phase.result(len(clients), "logins", latency=stats.latencySummary(latencies, 1e3),
                         errors=dict(errors), tls=args.tls, mechanism=args.mech,
                         concurrency=args.concurrency,
                         salted_password_cached=args.mech != "PLAIN" and not args.no_salt_cache)]


class Traffic:
    """
    Messages whose body carries the marker C{XB<send time>.<sender>.}: sends
    them, counts and times their deliveries and keeps the load going, closed
    loop (each sender keeps C{window} messages in flight and sends the next
    when one of its messages comes back) or open loop (a fixed total
    C{rate} across all senders).

    A message "comes back" to its sender on its receiver (C{echo=False},
    1:1 messages), or, in a room, only as the room's reflection to the
    sender itself (C{echo=True}; XEP-0045 §7.4): every occupant's copy is a
    delivery and is counted, only the sender's own copy releases its window.
    """

    def __init__(self, senders, window: int, rate: float = 0, echo: bool = False):
        self.senders = senders
        self.bySender = {s.index: s for s in senders}
        self.window, self.rate, self.echo = window, rate, echo
        self.sending, self.measuring = True, False
        self.count = self.inflight = self.sent = 0
        self.latencies = array.array("q")
        self.drained = asyncio.Event()

    def sendOne(self, sender):
        sender.inflight += 1
        self.inflight += 1
        if self.measuring:
            self.sent += 1
        sender.send(sender.msgHead + b"%d" % perfNs() + sender.msgTail)

    def onDelivery(self, conn, data: bytes):
        """A connection's C{onData}: every marked message in C{data}, and nothing else."""
        buf = conn.buf + data if conn.buf else data
        now, pos, search = perfNs(), 0, MARKER.search
        while True:
            i = buf.find(b"<message", pos)
            k = buf.find(b"</message>", i) if i >= 0 else -1
            if k < 0:
                # keep an incomplete stanza, or what may be the start of "<message"
                conn.buf = buf[i:] if i >= 0 else buf[max(pos, len(buf) - 7):]
                return
            pos = k + 10
            marker = search(buf, i, k)
            if marker is None:
                continue
            if self.measuring:
                self.count += 1
                self.latencies.append(now - int(marker.group(1)))
            index = int(marker.group(2))
            if self.echo and index != conn.index:
                continue
            sender = self.bySender[index]
            sender.inflight -= 1
            self.inflight -= 1
            if self.sending:
                if not self.rate:
                    self.sendOne(sender)
            elif self.inflight <= 0:
                self.drained.set()

    async def _ticker(self):
        started, sent, n = time.perf_counter(), 0, len(self.senders)
        while self.sending:
            due = int((time.perf_counter() - started) * self.rate) - sent
            for _ in range(due):
                sender = self.senders[sent % n]
                sent += 1
                if sender.inflight < 1000:  # a stuck sender must not queue without bound
                    self.sendOne(sender)
            await asyncio.sleep(0.005)

    async def drive(self, gen: Generator, args, name: str, unit: str, **extra) -> dict:
        """
        Send for C{args.warmup} seconds unmeasured, then C{args.duration}
        measured, then stop and wait (bounded) for what is in flight.
        """
        if self.rate:
            tick = asyncio.ensure_future(self._ticker())
        else:
            for sender in self.senders:
                for _ in range(self.window):
                    self.sendOne(sender)
        await asyncio.sleep(args.warmup)
        lost = gen.lost
        self.measuring = True
        async with Phase(gen, name) as phase:
            await asyncio.sleep(args.duration)
            self.measuring = False
        self.sending = False
        if self.rate:
            tick.cancel()
        if self.inflight > 0:
            try:
                await asyncio.wait_for(self.drained.wait(), DRAIN_TIMEOUT)
            except asyncio.TimeoutError:
                pass
        if gen.boshReconnects:
            # what the server's closing of idle keep-alive connections cost
            # the BOSH clients, over the whole run (login included)
            extra.update(bosh_reconnects=gen.boshReconnects, bosh_retries=gen.boshRetries)
        return phase.result(self.count, unit, latency=stats.latencySummary(self.latencies, 1e-6),
                            sent_in_phase=self.sent,
                            undelivered_after_drain=max(0, self.inflight),
                            lost_connections=gen.lost - lost,
                            window=None if self.rate else self.window,
                            rate_target=self.rate or None, **extra)


def crossing(pair: int, fraction: float) -> bool:
    """Whether pair C{pair} crosses nodes: C{fraction} of the pairs, spread evenly."""
    return int((pair + 1) * fraction + 1e-9) > int(pair * fraction + 1e-9)


def spreadPairs(gen: Generator, args, pairs: int) -> None:
    """
    With C{--port2} (two cluster nodes): sender C{i} (client C{i}) on node
    C{i % 2}, so both nodes carry the same load, and its receiver (client
    C{pairs + i}) on the same node, or on the other one for the C{--cross}
    fraction of the pairs.  Pairs cross by twos (C{i // 2}), one from each
    node, so that each node has the same mix of same-node and cross-node
    pairs.
    """
    if not args.port2:
        return
    ports = (args.port, args.port2)

    def portFor(index: int) -> int:
        pair = index % pairs
        node = pair % 2
        if index >= pairs and crossing(pair // 2, args.cross):
            node = 1 - node
        return ports[node]
    gen.portFor = portFor


def spreadClients(gen: Generator, args) -> None:
    """With C{--port2}: client C{i} on node C{i % 2} (a room's occupants on both nodes)."""
    if args.port2:
        ports = (args.port, args.port2)
        gen.portFor = lambda index: ports[index % 2]


def padding(size: int) -> bytes:
    return (b"lorem ipsum dolor sit amet " * (1 + size // 27))[:size]


async def scenarioMessages(gen: Generator, args) -> list[dict]:
    """
    C{pairs} senders each talk to their own receiver.  Closed loop: each
    sender keeps C{window} messages in flight and sends the next one when
    its receiver got one.  Open loop (C{rate}): a ticker sends at a fixed
    total rate across all senders.  Only the C{duration} after C{warmup} is
    measured; afterwards in-flight messages are drained.
    """
    pairs = args.pairs
    users = ["u%d" % i for i in range(args.first, args.first + 2 * pairs)]
    spreadPairs(gen, args, pairs)
    clients, _, errors = await loginMany(gen, users, concurrency=args.concurrency)
    requireAll(clients, 2 * pairs, errors)
    clients.sort(key=lambda c: c.index)
    senders, receivers = clients[:pairs], clients[pairs:]
    pad = padding(args.body)
    for sender, receiver in zip(senders, receivers):
        sender.msgHead = sender.standalone(
            b"<message to='" + receiver.bare + b"' type='chat' id='b'><body>XB")
        sender.msgTail = b".%d.%s</body></message>" % (sender.index, pad)
    traffic = Traffic(senders, args.window, args.rate)
    for receiver in receivers:
        receiver.onData = traffic.onDelivery
    for sender in senders:
        sender.onData = lambda conn, data: None
    settled()
    await waitQuiet(gen)
    result = await traffic.drive(gen, args, "messages", "messages delivered",
                                 pairs=pairs, body_bytes=args.body)
    gen.closeAll()
    return [result]


async def scenarioMUC(gen: Generator, args) -> list[dict]:
    """
    Groupchat fan-out, as in ../shared/bench's C{muc}: C{rooms} rooms of
    C{occupants} each.  The first occupant of each room creates it and
    accepts the default configuration (an instant room, XEP-0045 §10.1.2),
    then the others enter, C{concurrency} at a time.  C{senders} occupants
    per room send groupchat messages, closed loop on their own reflection
    (C{window} in flight each) or open loop at C{rate}; every delivery to
    every occupant, the sender's own included, counts.
    """
    perRoom, rooms = args.occupants, args.rooms
    if not 0 < args.senders <= perRoom:
        raise ValueError("--senders must be between 1 and --occupants")
    users = ["u%d" % i for i in range(args.first, args.first + perRoom * rooms)]
    spreadClients(gen, args)
    clients, _, errors = await loginMany(gen, users, concurrency=args.concurrency)
    requireAll(clients, perRoom * rooms, errors)
    clients.sort(key=lambda c: c.index)
    roomJIDs = [b"bench%d@%s" % (r, args.muc_domain.encode()) for r in range(rooms)]
    members = [clients[r * perRoom:(r + 1) * perRoom] for r in range(rooms)]
    senders = [conn for occupants in members for conn in occupants[:args.senders]]
    pad = padding(args.body)
    for room, occupants in zip(roomJIDs, members):
        for sender in occupants[:args.senders]:
            sender.msgHead = sender.standalone(
                b"<message to='" + room + b"' type='groupchat' id='b'><body>XB")
            sender.msgTail = b".%d.%s</body></message>" % (sender.index, pad)
    traffic = Traffic(senders, args.window, args.rate, echo=True)

    async def enter(conn, room):
        created = await asyncio.wait_for(joinRoom(conn, room), JOIN_TIMEOUT)
        conn.buf = b""
        conn.onData = traffic.onDelivery
        return created

    started = time.perf_counter()
    # the creators first, so that nobody else races them into an unconfigured room
    created = await asyncio.gather(*(enter(occupants[0], room)
                                     for room, occupants in zip(roomJIDs, members)))
    pending = iter([(conn, room) for room, occupants in zip(roomJIDs, members)
                    for conn in occupants[1:]])

    async def worker():
        for conn, room in pending:
            await enter(conn, room)
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    joined = time.perf_counter() - started
    settled()
    await waitQuiet(gen)
    result = await traffic.drive(gen, args, "muc", "groupchat messages delivered",
                                 rooms=rooms, occupants=perRoom, senders_per_room=args.senders,
                                 join_all_s=round(joined, 3), rooms_created=sum(created),
                                 body_bytes=args.body)
    # each message sent is delivered once to every occupant
    result["sent_per_s"] = round(result.get("rate_per_s", 0) / perRoom, 2)
    gen.closeAll()
    return [result]


async def scenarioPresence(gen: Generator, args) -> list[dict]:
    """
    Phase 1: every presence account logs in and gets its roster, without
    presence.  Phase 2 (the one that matters): all send initial presence at
    once; it ends when each has seen its own echo and every contact of its
    clique (RFC 6121 §4.2: broadcast to subscribers, probes answered).
    """
    K = args.roster_size
    P = args.users - args.users % (K + 1)
    users = ["p%d" % i for i in range(1, P + 1)]
    await waitQuiet(gen)
    async with Phase(gen, "login+roster") as login:
        clients, latencies, errors = await loginMany(gen, users, concurrency=args.concurrency,
                                                     roster=True, presence=False)
    first = login.result(len(clients), "logins (roster get, no presence)",
                         latency=stats.latencySummary(latencies, 1e3), errors=dict(errors))
    requireAll(clients, P, errors)
    state = {"stanzas": 0, "pending": P}
    done = asyncio.Event()
    times = array.array("q")

    def onPresence(conn, data):
        buf = conn.buf + data if conn.buf else data
        pos = 0
        while (found := findElement(buf, b"presence", pos)) is not None:
            i, pos = found
            state["stanzas"] += 1
            sender = attribute(buf[i:buf.find(b">", i)], b"from") or b""
            if sender == conn.jid:
                conn.selfSeen = True
            else:
                conn.seen.add(sender.split(b"/")[0])
        conn.buf = buf[pos:]
        if not conn.done and conn.selfSeen and len(conn.seen) >= K:
            conn.done = True
            times.append(perfNs() - conn.sentAt)
            state["pending"] -= 1
            if not state["pending"]:
                done.set()

    for conn in clients:
        conn.seen, conn.selfSeen, conn.done = set(), False, False
        conn.onData = onPresence
    settled()
    await waitQuiet(gen)
    lost = gen.lost
    async with Phase(gen, "presence") as phase:
        for conn in clients:
            conn.sentAt = perfNs()
            conn.send(b"<presence/>")
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except asyncio.TimeoutError:
            pass
    atDone = state["stanzas"]
    unique = sum(len(c.seen) + c.selfSeen for c in clients)
    await waitQuiet(gen, timeout=5)
    gen.closeAll()
    return [first, phase.result(
        unique, "unique presences delivered", latency=stats.latencySummary(times, 1e-6),
        latency_is="time from sending initial presence to a full roster",
        stanzas_incl_duplicates=atDone, stragglers_after_done=state["stanzas"] - atDone,
        expected=P * (K + 1), incomplete_users=state["pending"], users=P, roster_size=K,
        lost_connections=gen.lost - lost)]


async def scenarioIdle(gen: Generator, args) -> list[dict]:
    """
    Step up to each level of authenticated sessions with presence; at each
    step, after the server settled: its RSS, (RSS - RSS without sessions) /
    sessions, and its CPU while everyone idles.
    """
    levels = [int(x) for x in args.levels.split(",")]
    spreadClients(gen, args)
    await waitQuiet(gen)
    await asyncio.sleep(1)
    base = gen.meter.serverRSS()
    results, have = [], 0
    for level in levels:
        users = ["u%d" % i for i in range(args.first + have, args.first + level)]
        async with Phase(gen, "idle-%d" % level) as phase:
            clients, latencies, errors = await loginMany(
                gen, users, firstIndex=have, concurrency=args.concurrency)
        have += len(clients)
        settled()
        await waitQuiet(gen)
        await asyncio.sleep(args.settle)
        async with Phase(gen, "hold") as hold:
            await asyncio.sleep(args.hold)
        rss = gen.meter.serverRSS()
        results.append(phase.result(
            len(clients), "logins", latency=stats.latencySummary(latencies, 1e3),
            errors=dict(errors), sessions=have, rss_base_kb=base, rss_kb=rss,
            kb_per_session=round((rss - base) / max(1, have), 2),
            idle_server_cpu_util=round(hold.accounting.get("server_cpu_util", 0.0), 4)))
        if len(clients) < len(users):
            break
    gen.closeAll()
    return results


def splitStanzas(buf: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """
    The complete top-level elements at the start of C{buf} as (name,
    element), and the incomplete rest.  End tags between stanzas (the
    server closing the stream) are skipped.
    """
    out, pos, size = [], 0, len(buf)
    while True:
        i = buf.find(b"<", pos)
        if i < 0:
            return out, b""
        match = STANZA.match(buf, i)
        if match is None or match.end() == size:
            if i + 2 >= size or match is not None:
                return out, buf[i:]
            pos = i + 1  # "</stream:stream>"
            continue
        found = findElement(buf, match.group(1), i)
        if found is None or found[0] != i:
            return out, buf[i:]
        out.append((match.group(1), buf[i:found[1]]))
        pos = found[1]


def stanzaError(element: bytes) -> str:
    """The defined condition of an error stanza (RFC 6120 §8.3.3), for the report."""
    match = re.search(rb"<([a-z-]+) xmlns=['\"]urn:ietf:params:xml:ns:xmpp-stanzas['\"]", element)
    return match.group(1).decode() if match else element[:200].decode(errors="replace")


class PEPTraffic:
    """
    The C{pep} scenario's clients as one state machine fed by every
    connection's C{onData}: contacts' presences while settling, the
    server's disco#info queries for our caps (answered at any time), the
    replies to our publishes and the PEP notifications, each counted as to
    a contact or to the publisher's own resource (the server sends those
    too if it follows XEP-0163 §4.3.2 "the account owner's resources").
    """

    def __init__(self, clients, rosterSize: int, caps: Capabilities):
        self.clients, self.K, self.caps = clients, rosterSize, caps
        self.P = len(clients)
        self.seen = {conn.index: set() for conn in clients}
        self.selfSeen = set()
        self.presencePending = self.P
        self.presenceTimes = array.array("q")
        self.presenceSentAt = {}
        self.presenceDone = asyncio.Event()
        self.queries = 0
        self.queryNodes = collections.Counter()
        self.otherRequests = collections.Counter()
        self.measuring = False
        self.replies = 0
        self.errors = collections.Counter()
        self.fromContacts = {conn.index: set() for conn in clients}
        self.contacts = self.owner = self.duplicates = self.ownerDuplicates = self.unmarked = 0
        self.owners = set()
        self.toBare = 0
        self.contactLatencies, self.ownerLatencies = array.array("q"), array.array("q")
        self.completeAt = None
        self.creating = {}
        self.allIn = asyncio.Event()
        self.ownerIn = asyncio.Event()

    def expectedContacts(self) -> int:
        return self.P * self.K

    def onData(self, conn, data: bytes):
        stanzas, conn.buf = splitStanzas(conn.buf + data if conn.buf else data)
        for name, element in stanzas:
            if name == b"message":
                self.onMessage(conn, element)
            elif name == b"iq":
                self.onIQ(conn, element)
            elif name == b"presence":
                self.onPresence(conn, element)
        if self.measuring and self.completeAt is None and self.replies >= self.P \
                and (self.contacts >= self.expectedContacts() or sum(self.errors.values()) >= self.P):
            self.completeAt = perfNs()
            self.allIn.set()

    async def createNodes(self, head: bytes, pad: bytes, window: int, attempts: int = 10):
        """
        Before anyone is available: every account publishes a first item,
        C{window} at a time, so that its node exists (XEP-0163 §7.1.2
        auto-create) and the measured publish only updates it.  A refused
        publish is retried (ejabberd's Mnesia aborts concurrent auto-creates
        on its node index and answers C{item-not-found}).  Returns the
        refusals retried and the accounts still without a node.
        """
        pending, retried, failed = iter(self.clients), collections.Counter(), collections.Counter()

        async def worker():
            for conn in pending:
                for attempt in range(attempts):
                    waiter = self.creating[conn.index] = asyncio.get_running_loop().create_future()
                    conn.send(head.replace(b"id='pub'", b"id='pre'", 1)
                                         + b"XB0.%d." % conn.index + pad + PUBLISH_TAIL)
                    try:
                        error = await asyncio.wait_for(waiter, JOIN_TIMEOUT)
                    except asyncio.TimeoutError:
                        error = "no reply in %.0f s" % JOIN_TIMEOUT
                    if error is None:
                        break
                    if error not in RETRY_CONDITIONS or attempt == attempts - 1:
                        failed[error] += 1
                        break
                    retried[error] += 1
                    await asyncio.sleep(0.05 * (attempt + 1))
        await asyncio.gather(*(worker() for _ in range(min(window, self.P) or 1)))
        return dict(retried), dict(failed)

    def onPresence(self, conn, element: bytes):
        sender = attribute(element[:element.find(b">")], b"from") or b""
        if sender == conn.jid:
            self.selfSeen.add(conn.index)
        else:
            self.seen[conn.index].add(sender.split(b"/")[0])
        if self.presencePending and conn.index in self.selfSeen \
                and len(self.seen[conn.index]) >= self.K \
                and conn.index in self.presenceSentAt:
            self.presenceTimes.append(perfNs() - self.presenceSentAt.pop(conn.index))
            self.presencePending -= 1
            if not self.presencePending:
                self.presenceDone.set()

    def onIQ(self, conn, element: bytes):
        tag = element[:element.find(b">") + 1]
        kind = attribute(tag, b"type")
        iqId = attribute(tag, b"id") or b""
        if kind in (b"get", b"set"):
            sender = attribute(tag, b"from")
            child = STANZA.search(element, len(tag))
            childTag = element[child.start():element.find(b">", child.start())] if child else b""
            namespace = attribute(childTag, b"xmlns")
            if kind == b"get" and namespace == NS_DISCO_INFO and child.group(1) == b"query":
                node = attribute(childTag, b"node")
                self.queries += 1
                self.queryNodes[(node or b"").decode(errors="replace")] += 1
                conn.send(self.caps.infoResult(iqId, sender, node))
                return
            self.otherRequests["%s %s" % (kind.decode(), (namespace or b"?").decode())] += 1
            conn.send(
                b"<iq type='error' id='" + iqId + b"'" + (b" to='" + sender + b"'" if sender else b"")
                + b"><error type='cancel'><service-unavailable "
                  b"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        elif iqId == b"pre":
            waiter = self.creating.pop(conn.index, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None if kind == b"result" else stanzaError(element))
        elif iqId == b"pub":
            self.replies += 1
            if kind != b"result":
                self.errors[stanzaError(element)] += 1

    def onMessage(self, conn, element: bytes):
        if NS_PUBSUB_EVENT.encode() not in element:
            return
        marker = MARKER.search(element)
        if marker is None or not self.measuring or marker.group(1) == b"0":
            self.unmarked += 1
            return
        latency = perfNs() - int(marker.group(1))
        publisher = int(marker.group(2))
        if b"/" not in (attribute(element[:element.find(b">")], b"to") or b"/"):
            self.toBare += 1
        if publisher == conn.index:
            if conn.index in self.owners:
                self.ownerDuplicates += 1
                return
            self.owners.add(conn.index)
            self.owner += 1
            self.ownerLatencies.append(latency)
            if self.owner >= self.P:
                self.ownerIn.set()
        elif publisher in self.fromContacts[conn.index]:
            self.duplicates += 1
        else:
            self.fromContacts[conn.index].add(publisher)
            self.contacts += 1
            self.contactLatencies.append(latency)


async def scenarioPEP(gen: Generator, args) -> list[dict]:
    """
    XEP-0163 fan-out.  Setup: every C{pN} of the cliques logs in and gets
    its roster; each publishes a first item to its node, C{create_window}
    at a time, while nobody is available (the node exists afterwards;
    L{PEPTraffic.createNodes}); then all send initial presence with entity
    capabilities (XEP-0115) that ask for C{NODE+notify}, answer the
    server's disco#info for their C{node#ver}, and wait until each has its
    own echo and all contacts' presences (and the last items the server
    sends with them) and the server is quiet.  C{caps_warmup} clients go
    first, alone, so that the server knows the caps ver when the others
    come (as a server in service knows the few client versions its
    users run).  Measured: every account
    publishes one item to its own PEP node at once; the phase ends when
    every publish is answered and every contact has every contact's
    notification (bounded by C{timeout}), plus up to L{OWNER_GRACE} seconds
    for the publishers' own copies.  Fails with a message saying why when
    the server refuses PEP or never delivers a notification.
    """
    K = args.roster_size
    P = args.users - args.users % (K + 1)
    users = ["p%d" % i for i in range(1, P + 1)]
    caps = Capabilities(args.pep_node)
    await waitQuiet(gen)
    clients, _, errors = await loginMany(gen, users, concurrency=args.concurrency,
                                         roster=True, presence=False)
    requireAll(clients, P, errors)
    traffic = PEPTraffic(clients, K, caps)
    for conn in clients:
        conn.onData = traffic.onData
    pad = padding(args.body)
    head = publishHead(args.pep_node)
    retried = failed = {}
    if args.create_window:
        try:
            retried, failed = await asyncio.wait_for(
                traffic.createNodes(head, pad, args.create_window), args.timeout)
        except asyncio.TimeoutError:
            raise ScenarioFailed("the first publishes (creating the PEP nodes) took more than "
                                 "%.0f s: no reply from the server?" % args.timeout, [])
        if failed and sum(failed.values()) >= P:
            raise ScenarioFailed("the server refused every PEP publish (%s): no XEP-0163 PEP "
                                 "on the account's bare JID" % ", ".join(
                                     "%d x %s" % (n, c) for c, n in failed.items()), [])
    settled()
    await waitQuiet(gen)
    warm = clients[:args.caps_warmup]
    if warm:
        # A server's caps cache is warm in real life (a few client versions,
        # many users): these go online first, so the others' ver is known.
        for conn in warm:
            traffic.presenceSentAt[conn.index] = perfNs()
            conn.send(caps.presence)
        deadline = time.monotonic() + min(10.0, args.timeout)
        while time.monotonic() < deadline and not (
                traffic.queries and all(conn.index in traffic.selfSeen for conn in warm)):
            await asyncio.sleep(0.05)
        await waitQuiet(gen)
    warmQueries = traffic.queries
    lost = gen.lost
    async with Phase(gen, "caps-presence") as settle:
        for conn in clients:
            traffic.presenceSentAt[conn.index] = perfNs()
            if conn not in warm:
                conn.send(caps.presence)
        try:
            await asyncio.wait_for(traffic.presenceDone.wait(), args.timeout)
        except asyncio.TimeoutError:
            pass
        await waitQuiet(gen, timeout=min(30.0, args.timeout))
    first = settle.result(
        sum(len(seen) for seen in traffic.seen.values()) + len(traffic.selfSeen),
        "unique presences delivered", latency=stats.latencySummary(traffic.presenceTimes, 1e-6),
        latency_is="time from sending initial presence (with caps) to a full roster",
        expected=P * (K + 1), incomplete_users=traffic.presencePending,
        caps_warmup_clients=len(warm), caps_queries_in_warmup=warmQueries,
        caps_queries_answered=traffic.queries, caps_query_nodes=dict(traffic.queryNodes),
        caps_ver=caps.ver, other_requests=dict(traffic.otherRequests),
        nodes_created_before=args.create_window > 0, create_retried=retried,
        create_failed=failed, last_items_on_presence=traffic.unmarked,
        lost_connections=gen.lost - lost)
    traffic.unmarked = 0
    traffic.measuring = True
    lost = gen.lost
    async with Phase(gen, "pep") as phase:
        started = perfNs()
        for conn in clients:
            conn.send(head + b"XB%d.%d." % (perfNs(), conn.index) + pad + PUBLISH_TAIL)
        try:
            await asyncio.wait_for(traffic.allIn.wait(), args.timeout)
        except asyncio.TimeoutError:
            pass
        if traffic.contacts and not traffic.ownerIn.is_set():
            try:
                await asyncio.wait_for(traffic.ownerIn.wait(), OWNER_GRACE)
            except asyncio.TimeoutError:
                pass
    traffic.measuring = False
    complete = (traffic.completeAt or perfNs()) - started
    await waitQuiet(gen, timeout=5)
    gen.closeAll()
    refused = sum(traffic.errors.values())
    result = phase.result(
        traffic.contacts, "PEP notifications to contacts",
        latency=stats.latencySummary(traffic.contactLatencies, 1e-6),
        latency_is="time from sending the publish to the contact's notification",
        expected=traffic.expectedContacts(),
        owner_notifications=traffic.owner,
        owner_latency=stats.latencySummary(traffic.ownerLatencies, 1e-6),
        notifications_all=traffic.contacts + traffic.owner,
        duplicate_notifications=traffic.duplicates,
        owner_duplicate_notifications=traffic.ownerDuplicates,
        notifications_to_bare_jid=traffic.toBare,
        notifications_without_marker=traffic.unmarked,
        publishes=P, publish_replies=traffic.replies, publish_errors=dict(traffic.errors),
        complete_s=round(complete / 1e9, 4) if traffic.completeAt else None,
        users=P, roster_size=K, node=args.pep_node, body_bytes=args.body,
        lost_connections=gen.lost - lost)
    if traffic.completeAt and complete > 0:
        # the rate up to the last contact's notification, not the owner grace
        result["rate_per_s"] = round(traffic.contacts / (complete / 1e9), 2)
    if result.get("count") and traffic.owner:
        result["server_cpu_ms_per_1k_all"] = round(
            phase.accounting["server_cpu_s"] * 1e6 / (traffic.contacts + traffic.owner), 4)
    if not traffic.contacts:
        if refused >= P:
            raise ScenarioFailed(
                "the server refused every PEP publish (%s): no XEP-0163 PEP on the account's "
                "bare JID" % ", ".join("%d x %s" % (n, c) for c, n in traffic.errors.items()),
                [first, result])
        raise ScenarioFailed(
            "no PEP notification within %.0f s: %d of %d publishes answered (%d refused: %s); "
            "the server sent %d disco#info queries for the clients' caps (it must learn "
            "%s+notify from node#ver, XEP-0115, and notify contacts who have it)" % (
                args.timeout, traffic.replies, P, refused, dict(traffic.errors),
                traffic.queries, args.pep_node), [first, result])
    return [first, result]


SCENARIOS = {"login": scenarioLogin, "msg": scenarioMessages, "muc": scenarioMUC,
             "presence": scenarioPresence, "idle": scenarioIdle, "pep": scenarioPEP}


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="xmppdbench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("scenario", choices=sorted(SCENARIOS))
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=5222)
    add("--port2", type=int, default=0,
        help="a second cluster node's c2s port: the clients are spread over both nodes")
    add("--cross", type=float, default=0.0,
        help="msg with --port2: fraction of the pairs whose receiver is on the other node")
    add("--redis-port", type=int, default=0,
        help="count the Redis commands of each phase (INFO commandstats) at this port")
    add("--domain", default="localhost")
    add("--transport", default="tcp", choices=["tcp", "ws", "bosh"],
        help="the clients' transport: XMPP over TCP (--port), over WebSocket (RFC 7395, "
             "plain ws:// to --ws-port and --ws-path) or over BOSH (XEP-0206, plain http:// "
             "to --ws-port and --bosh-path; hold 1, wait 30, two keep-alive connections)")
    add("--ws-port", type=int, default=5280, help="ws, bosh: the server's HTTP port")
    add("--ws-path", default="/xmpp-websocket", help="ws: the WebSocket endpoint's path")
    add("--bosh-path", default="/http-bind", help="bosh: the BOSH endpoint's path")
    add("--muc-domain", default="conference.localhost", help="muc: the rooms' service")
    add("--server-pid", type=int, action="append", default=[],
        help="root PID of the server process tree to measure (repeatable)")
    add("--json-out", help="write the phases as JSON here")
    add("--no-uvloop", action="store_true")
    add("--busy-threshold", type=float, default=stats.BUSY_THRESHOLD,
        help="demand (run + wait, in cores) from which a side counts as CPU-bound")
    add("--concurrency", type=int, default=100, help="logins in flight")
    add("--first", type=int, default=1, help="first uN account used")
    add("--n", type=int, default=2000, help="login: accounts")
    add("--tls", action="store_true", help="login: STARTTLS first")
    add("--mech", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-1"])
    add("--no-salt-cache", action="store_true",
        help="login SCRAM-SHA-1: derive SaltedPassword during the measured logins instead "
             "of learning the salts in an unmeasured pass first")
    add("--pairs", type=int, default=500, help="msg: sender/receiver pairs")
    add("--window", type=int, default=4, help="msg, muc: messages in flight per sender (closed loop)")
    add("--rate", type=float, default=0, help="msg, muc: total messages/s, open loop (0: closed loop)")
    add("--warmup", type=float, default=3)
    add("--duration", type=float, default=20)
    add("--body", type=int, default=100, help="msg, muc, pep: body (item payload) padding in bytes")
    add("--rooms", type=int, default=20, help="muc: rooms")
    add("--occupants", type=int, default=50, help="muc: occupants per room")
    add("--senders", type=int, default=5, help="muc: senders per room")
    add("--users", type=int, default=1050, help="presence, pep: accounts p1..pN")
    add("--roster-size", type=int, default=20, help="presence, pep: contacts per account")
    add("--timeout", type=float, default=120,
        help="presence, pep: seconds to wait for full rosters (and for the notifications)")
    add("--pep-node", default=PEP_NODE, help="pep: the PEP node every account publishes to")
    add("--caps-warmup", type=int, default=1,
        help="pep: clients that send their caps presence first, alone, so that the server "
             "learns the caps ver before the others come online (0: all at once, the "
             "server queries while everyone arrives)")
    add("--create-window", type=int, default=8,
        help="pep: before presence, every account publishes a first item (auto-creating its "
             "node), this many at a time, so that the measured publish updates an existing "
             "node; 0: the measured publish creates the nodes, all at once")
    add("--levels", default="1000,5000,10000", help="idle: session counts to step through")
    add("--settle", type=float, default=5, help="idle: seconds after the logins before RSS")
    add("--hold", type=float, default=10, help="idle: seconds of idle CPU measured")
    args = parser.parse_args(argv)
    if args.transport in ("ws", "bosh") and args.port2:
        parser.error("--transport ws/bosh has one --ws-port: clients over HTTP are not "
                     "spread over cluster nodes (--port2)")
    return args


async def run(args) -> dict:
    gen = Generator(args.host, args.port, args.domain, transport=args.transport,
                    wsPort=args.ws_port, wsPath=args.ws_path, boshPath=args.bosh_path)
    gen.args, gen.meter = args, procstat.Meter(args.server_pid)
    try:
        phases, error = await SCENARIOS[args.scenario](gen, args), None
    except ScenarioFailed as e:
        phases, error = e.phases, str(e)
        gen.closeAll()
    except Exception as e:  # noqa: BLE001 - reported in the JSON and the exit status
        import traceback
        traceback.print_exc()
        phases, error = [], "%s: %s" % (type(e).__name__, e)
        gen.closeAll()
    await asyncio.sleep(0.2)  # let the closing stream tails go out
    return {"scenario": args.scenario, "args": vars(args), "phases": phases, "error": error,
            "generator": {"python": sys.version.split()[0], "loop": args.loop,
                          "pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0))}}


def summaryLine(phase: dict) -> str:
    latency = phase.get("latency") or {}
    return ("%-13s %7d %-26s %9.1f/s  server %7.1f ms/1k  gen %6.1f ms/1k"
            "  server %3.0f%% (+%.0f%% wait)  gen %3.0f%%  p50 %s p99 %s ms  peak %d MB  bound=%s" % (
                phase["phase"], phase["count"], phase["unit"][:26], phase.get("rate_per_s", 0),
                phase.get("server_cpu_ms_per_1k", 0), phase.get("gen_cpu_ms_per_1k", 0),
                100 * phase.get("server_cpu_util", 0), 100 * phase.get("server_wait_util", 0),
                100 * phase.get("gen_cpu_util", 0), latency.get("p50_ms"), latency.get("p99_ms"),
                phase.get("server_rss_kb_peak", 0) // 1024, phase.get("bound")))


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.loop, runner = "asyncio", asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            args.loop, runner = "uvloop " + uvloop.__version__, uvloop.run
    result = runner(run(args))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    for phase in result["phases"]:
        print(summaryLine(phase), flush=True)
        if phase.get("errors"):
            print("  errors:", phase["errors"], flush=True)
    if result["error"]:
        print("ERROR:", result["error"], flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
