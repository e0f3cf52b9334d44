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
"""

import argparse
import array
import asyncio
import gc
import json
import os
import re
import resource
import sys
import time

from . import procstat, stats
from .client import Generator, attribute, findElement, joinRoom, learnSalts, loginMany

perfNs = time.perf_counter_ns
MARKER = re.compile(rb"XB(\d+)\.(\d+)\.")
DRAIN_TIMEOUT = 15.0
JOIN_TIMEOUT = 60.0


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
        self.before = meter.snapshot()
        return self

    async def _sample(self):
        while True:
            self.sampledPeak = max(self.sampledPeak, sum(procstat.rssKB(p) for p in self.pids))
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc):
        self.accounting = procstat.delta(self.before, self.gen.meter.snapshot())
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
        sender.transport.write(sender.msgHead + b"%d" % perfNs() + sender.msgTail)

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
        return phase.result(self.count, unit, latency=stats.latencySummary(self.latencies, 1e-6),
                            sent_in_phase=self.sent,
                            undelivered_after_drain=max(0, self.inflight),
                            lost_connections=gen.lost - lost,
                            window=None if self.rate else self.window,
                            rate_target=self.rate or None, **extra)


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
    clients, _, errors = await loginMany(gen, users, concurrency=args.concurrency)
    requireAll(clients, 2 * pairs, errors)
    clients.sort(key=lambda c: c.index)
    senders, receivers = clients[:pairs], clients[pairs:]
    pad = padding(args.body)
    for sender, receiver in zip(senders, receivers):
        sender.msgHead = b"<message to='" + receiver.bare + b"' type='chat' id='b'><body>XB"
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
    clients, _, errors = await loginMany(gen, users, concurrency=args.concurrency)
    requireAll(clients, perRoom * rooms, errors)
    clients.sort(key=lambda c: c.index)
    roomJIDs = [b"bench%d@%s" % (r, args.muc_domain.encode()) for r in range(rooms)]
    members = [clients[r * perRoom:(r + 1) * perRoom] for r in range(rooms)]
    senders = [conn for occupants in members for conn in occupants[:args.senders]]
    pad = padding(args.body)
    for room, occupants in zip(roomJIDs, members):
        for sender in occupants[:args.senders]:
            sender.msgHead = b"<message to='" + room + b"' type='groupchat' id='b'><body>XB"
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
            conn.transport.write(b"<presence/>")
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


SCENARIOS = {"login": scenarioLogin, "msg": scenarioMessages, "muc": scenarioMUC,
             "presence": scenarioPresence, "idle": scenarioIdle}


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="xmppdbench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("scenario", choices=sorted(SCENARIOS))
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=5222)
    add("--domain", default="localhost")
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
    add("--body", type=int, default=100, help="msg, muc: body padding in bytes")
    add("--rooms", type=int, default=20, help="muc: rooms")
    add("--occupants", type=int, default=50, help="muc: occupants per room")
    add("--senders", type=int, default=5, help="muc: senders per room")
    add("--users", type=int, default=1050, help="presence: accounts p1..pN")
    add("--roster-size", type=int, default=20, help="presence: contacts per account")
    add("--timeout", type=float, default=120, help="presence: seconds to wait for full rosters")
    add("--levels", default="1000,5000,10000", help="idle: session counts to step through")
    add("--settle", type=float, default=5, help="idle: seconds after the logins before RSS")
    add("--hold", type=float, default=10, help="idle: seconds of idle CPU measured")
    return parser.parse_args(argv)


async def run(args) -> dict:
    gen = Generator(args.host, args.port, args.domain)
    gen.args, gen.meter = args, procstat.Meter(args.server_pid)
    try:
        phases, error = await SCENARIOS[args.scenario](gen, args), None
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
