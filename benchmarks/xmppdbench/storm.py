# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
The reconnect-storm generator (issue 16, item 7): N clients log in and
stay connected; on the orchestrator's word they all come back at once, and
the server's CPU, the time until the last one is back and each client's
login latency are measured.

    python -m xmppdbench.storm --kind fast --clients 5000 --port 17222 \\
        --server-pid PID --json-out storm.json

Protocol with the orchestrator (L{xmppdbench.stormside}), one line each way:
the generator prints C{CONNECTED n} once its clients are logged in, then
reads C{GO pid [pid ...]} from stdin: the PIDs of the server to measure,
which for the restart kinds belong to the server the orchestrator started
again after a SIGTERM (or the server's own stop command).  The connections
broken by the restart are gone by then.  For the resume kinds the server is
not restarted (a session in memory cannot outlive its process): on C{GO}
the generator itself breaks every TCP connection at once (SO_LINGER 0: a
RST, as a phone losing its network), waits until the server has noticed
(its CPU is quiet), and then all clients resume.

Kinds (what a reconnect is):

  - C{scram}: RFC 6120 SASL SCRAM-SHA-256 (SCRAM-SHA-1 where the server
    offers nothing better: Prosody's hashed storage keeps SHA-1 keys only),
    stream restart, resource bind, C{<presence/>} and its echo;
  - C{plain}: the same with PLAIN (ejabberd with plaintext passwords: the
    issue's reference);
  - C{sasl2}: SASL2 (XEP-0388) SCRAM-SHA-256 with Bind 2 (XEP-0386)
    inline, no stream restart, then C{<presence/>} and its echo;
  - C{fast}: as C{sasl2}, but the first login asks for a FAST token
    (XEP-0484, C{<request-token mechanism='HT-SHA-256-NONE'/>}) and the
    reconnect is one C{<authenticate mechanism='HT-SHA-256-NONE'>} with
    C{<fast/>} and Bind 2 inline.  Before the storm every client logs in
    once more with its token (unmeasured), as a phone that has reconnected
    before: a token's first use moves it from the server's "new" slot to
    "current" (a storage write, XEP-0484 §3.5's rotation), later uses only
    read it;
  - C{fast_new}: as C{fast} without that warm-up: every reconnect is its
    token's first use (the first reconnect after the token was issued);
  - C{resume}: the first login enables stream management (XEP-0198) with
    resumption; the reconnect is SCRAM (as C{scram}), stream restart and
    C{<resume/>}, done at C{<resumed/>} (no presence: the session is back);
  - C{fast_resume}: SASL2 with the FAST token and C{<resume/>} inline
    (xmppd's one-round-trip resumption), done at C{<resumed/>}.

Plain TCP, no STARTTLS, as the harness's C{login} and C{login_scram}.
SaltedPassword is cached per (password, salt, iterations) from the first
login (RFC 5802 §5.1), so the generator's PBKDF2 is never in the storm.
"""

import argparse
import array
import asyncio
import base64
import collections
import gc
import hashlib
import hmac
import json
import os
import resource
import socket
import struct
import sys
import time
import uuid

from . import procstat, stats
from .client import (FEATURES, IQ, SASL_REPLY, Conn, Generator, ProtocolError, attribute,
                     elementText, findElement, ownPresence, raiseOnStreamError, takeFirst)
from .dataset import passwordFor

NS_SASL = b"urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = b"urn:xmpp:sasl:2"
NS_BIND2 = b"urn:xmpp:bind:0"
NS_SM = b"urn:xmpp:sm:3"
NS_FAST = b"urn:xmpp:fast:0"
HT = "HT-SHA-256-NONE"
KINDS = ("scram", "plain", "sasl2", "fast", "fast_new", "resume", "fast_resume")
FAST_KINDS = ("fast", "fast_new", "fast_resume")
WARM_KINDS = ("fast", "fast_resume")
RESUME_KINDS = ("resume", "fast_resume")
SASL2_KINDS = ("sasl2",) + FAST_KINDS
SM_REPLY = takeFirst(b"enabled", b"failed")
RESUME_REPLY = takeFirst(b"resumed", b"failed")
HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}
SALTED: dict[tuple, bytes] = {}


class Client(Conn):
    """A storm client: what it must remember across the reconnect."""

    __slots__ = ("agent", "token", "smid", "mechanism", "gone")

    def __init__(self, gen, index: int, user: str):
        Conn.__init__(self, gen, index, user)
        self.agent = str(uuid.UUID(int=index + 1, version=4))
        self.token = self.smid = self.mechanism = self.gone = None

    def connection_lost(self, exc):
        Conn.connection_lost(self, exc)
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)

    async def closeAndWait(self):
        """Close the stream and wait until the connection is gone."""
        self.gone = self.gen.loop.create_future()
        self.close()
        await self.gone
        self.gone = None

    def reset(self):
        """A fresh connection for the same client (its state survives)."""
        self.transport = self.waiter = self.onData = None
        self.buf = b""
        self.closed = False


def pickScram(features: bytes) -> str:
    for name in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        if b">" + name.encode() + b"</mechanism>" in features:
            return name
    raise ProtocolError("no SCRAM mechanism offered: " + features[:300].decode(errors="replace"))


def scramFirst(user: str) -> tuple[str, str]:
    nonce = base64.b64encode(os.urandom(18)).decode()
    return nonce, "n,,n=%s,r=%s" % (user, nonce)


def scramFinal(mechanism: str, user: str, password: str, nonce: str,
               serverFirst: str) -> tuple[str, str]:
    """RFC 5802 client-final for C{mechanism}, and the server signature expected."""
    digest = HASHES[mechanism]
    fields = dict(part.split("=", 1) for part in serverFirst.split(",") if "=" in part)
    if not fields["r"].startswith(nonce):
        raise ProtocolError("SCRAM: server nonce does not extend ours")
    key = (digest, password, fields["s"], fields["i"])
    salted = SALTED.get(key)
    if salted is None:
        salted = SALTED[key] = hashlib.pbkdf2_hmac(
            digest, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    clientKey = hmac.digest(salted, b"Client Key", digest)
    withoutProof = "c=biws,r=" + fields["r"]
    authMessage = ("n=%s,r=%s,%s,%s" % (user, nonce, serverFirst, withoutProof)).encode()
    signature = hmac.digest(hashlib.new(digest, clientKey).digest(), authMessage, digest)
    proof = bytes(a ^ b for a, b in zip(clientKey, signature))
    serverSignature = hmac.digest(hmac.digest(salted, b"Server Key", digest), authMessage, digest)
    return (withoutProof + ",p=" + base64.b64encode(proof).decode(),
            "v=" + base64.b64encode(serverSignature).decode())


def b64(text: bytes) -> bytes:
    return base64.b64encode(text)


async def saslOne(conn: Client, features: bytes, mechanism: str) -> None:
    """RFC 6120 SASL: PLAIN or SCRAM, the server's signature checked."""
    password = passwordFor(conn.user)
    if mechanism == "PLAIN":
        if b">PLAIN</mechanism>" not in features:
            raise ProtocolError("server does not offer PLAIN")
        conn.send(b"<auth xmlns='" + NS_SASL + b"' mechanism='PLAIN'>"
                  + b64(b"\0" + conn.user.encode() + b"\0" + password.encode()) + b"</auth>")
        name, element = await conn.expect(SASL_REPLY)
    else:
        mechanism = pickScram(features)
        nonce, first = scramFirst(conn.user)
        conn.send(b"<auth xmlns='" + NS_SASL + b"' mechanism='" + mechanism.encode() + b"'>"
                  + b64(first.encode()) + b"</auth>")
        name, element = await conn.expect(SASL_REPLY)
        if name != b"challenge":
            raise ProtocolError("SCRAM: " + element[:200].decode(errors="replace"))
        final, verifier = scramFinal(mechanism, conn.user, password, nonce,
                                     base64.b64decode(elementText(element)).decode())
        conn.send(b"<response xmlns='" + NS_SASL + b"'>" + b64(final.encode()) + b"</response>")
        name, element = await conn.expect(SASL_REPLY)
        serverFinal = base64.b64decode(elementText(element)).decode()
        if name == b"challenge":
            conn.send(b"<response xmlns='" + NS_SASL + b"'/>")
            name, element = await conn.expect(SASL_REPLY)
        if name == b"success" and serverFinal != verifier:
            raise ProtocolError("SCRAM: the server did not prove it knows the password")
    if name != b"success":
        raise ProtocolError("SASL failed: " + element[:200].decode(errors="replace"))
    conn.mechanism = mechanism


async def bindOne(conn: Client) -> None:
    conn.send(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              b"<resource>r%d</resource></bind></iq>" % conn.index)
    _, element = await conn.expect(IQ)
    i, j = element.find(b"<jid>"), element.find(b"</jid>")
    if i < 0 or j < 0:
        raise ProtocolError("bind failed: " + element[:200].decode(errors="replace"))
    conn.jid = element[i + 5:j]


async def enableSM(conn: Client) -> None:
    conn.send(b"<enable xmlns='" + NS_SM + b"' resume='true'/>")
    name, element = await conn.expect(SM_REPLY)
    if name != b"enabled" or attribute(element, b"id") is None:
        raise ProtocolError("stream management refused: " + element[:200].decode(errors="replace"))
    conn.smid = attribute(element, b"id")


async def presence(conn: Client) -> None:
    conn.send(b"<presence/>")
    await conn.expect(ownPresence)
    # the echo is the one stanza the server sent since <enabled/>: acknowledge
    # it, so a resumption has nothing to retransmit
    if conn.smid is not None:
        conn.send(b"<a xmlns='" + NS_SM + b"' h='1'/>")


async def sasl2(conn: Client, features: bytes, mechanism: str, first: bool) -> bytes:
    """
    One SASL2 authentication with Bind 2 (or, for a resumption, XEP-0198's
    C{<resume/>}) inline; returns the C{<success/>} element.
    """
    if b"<authentication xmlns='urn:xmpp:sasl:2'" not in features \
            and b'<authentication xmlns="urn:xmpp:sasl:2"' not in features:
        raise ProtocolError("the server offers no SASL2")
    password = passwordFor(conn.user)
    agent = (b"<user-agent id='" + conn.agent.encode() + b"'><software>xbench</software>"
             b"<device>storm</device></user-agent>")
    if mechanism == HT:
        inline = b"<fast xmlns='" + NS_FAST + b"'/>"
        proof = hmac.digest(conn.token, b"Initiator", "sha256")
        initial = conn.user.encode() + b"\0" + proof
    else:
        mechanism = pickScram(features)
        nonce, firstMessage = scramFirst(conn.user)
        initial = firstMessage.encode()
        inline = b""
        if conn.gen.args.kind in FAST_KINDS and first:
            inline = b"<request-token xmlns='" + NS_FAST + b"' mechanism='" + HT.encode() + b"'/>"
    if first or conn.smid is None:
        inline += (b"<bind xmlns='" + NS_BIND2 + b"'><tag>xbench</tag>"
                   + (b"<enable xmlns='" + NS_SM + b"' resume='true'/>"
                      if conn.gen.args.kind in RESUME_KINDS else b"") + b"</bind>")
    else:
        inline += (b"<resume xmlns='" + NS_SM + b"' h='1' previd='" + conn.smid + b"'/>")
    conn.send(b"<authenticate xmlns='" + NS_SASL2 + b"' mechanism='" + mechanism.encode() + b"'>"
              b"<initial-response>" + b64(initial) + b"</initial-response>" + agent + inline
              + b"</authenticate>")
    name, element = await conn.expect(SASL_REPLY)
    if mechanism != HT and name == b"challenge":
        final, verifier = scramFinal(mechanism, conn.user, password, nonce,
                                     base64.b64decode(elementText(element)).decode())
        conn.send(b"<response xmlns='" + NS_SASL2 + b"'>" + b64(final.encode()) + b"</response>")
        name, element = await conn.expect(SASL_REPLY)
        if name == b"success":
            found = findElement(element, b"additional-data")
            data = base64.b64decode(elementText(element[found[0]:found[1]])) if found else b""
            if data.decode() != verifier:
                raise ProtocolError("SCRAM: the server did not prove it knows the password")
    if name != b"success":
        raise ProtocolError("SASL2 %s failed: %s" % (mechanism, element[:300].decode(
            errors="replace")))
    conn.mechanism = mechanism
    found = findElement(element, b"authorization-identifier")
    if found:
        conn.jid = elementText(element[found[0]:found[1]])
    token = findElement(element, b"token")
    if token:
        conn.token = attribute(element[token[0]:token[1]], b"token")
    enabled = findElement(element, b"enabled")
    if enabled:
        conn.smid = attribute(element[enabled[0]:enabled[1]], b"id")
    return element


async def connect(conn: Client) -> bytes:
    gen = conn.gen
    conn.reset()
    await gen.loop.create_connection(lambda: conn, gen.host, gen.port)
    conn.send(gen.header)
    _, features = await conn.expect(FEATURES)
    return features


async def firstLogin(conn: Client) -> None:
    """The login before the storm: what every kind needs to come back."""
    kind = conn.gen.args.kind
    features = await connect(conn)
    if kind in SASL2_KINDS:
        await sasl2(conn, features, "SCRAM", first=True)
        if kind in FAST_KINDS and conn.token is None:
            raise ProtocolError("no FAST token in <success/>")
        if kind in WARM_KINDS:
            # one token login before the storm: the token is "current" now
            await presence(conn)
            await conn.closeAndWait()
            conn.smid = None
            features = await connect(conn)
            await sasl2(conn, features, HT, first=True)
        if kind == "fast_resume" and conn.smid is None:
            raise ProtocolError("no <enabled/> in Bind 2's <bound/>")
    else:
        await saslOne(conn, features, "PLAIN" if kind == "plain" else "SCRAM")
        conn.send(conn.gen.header)
        await conn.expect(FEATURES)
        await bindOne(conn)
        if kind == "resume":
            await enableSM(conn)
    await presence(conn)


async def reconnect(conn: Client) -> float:
    """The measured reconnect; seconds from connect to being back."""
    kind = conn.gen.args.kind
    started = time.perf_counter()
    features = await connect(conn)
    if kind in SASL2_KINDS:
        element = await sasl2(conn, features, HT if kind != "sasl2" else "SCRAM", first=False)
        if kind == "fast_resume":
            if findElement(element, b"resumed") is None:
                raise ProtocolError("not resumed: " + element[:300].decode(errors="replace"))
            return time.perf_counter() - started
    else:
        await saslOne(conn, features, "PLAIN" if kind == "plain" else "SCRAM")
        conn.send(conn.gen.header)
        await conn.expect(FEATURES)
        if kind == "resume":
            conn.send(b"<resume xmlns='" + NS_SM + b"' h='1' previd='" + conn.smid + b"'/>")
            name, element = await conn.expect(RESUME_REPLY)
            if name != b"resumed":
                raise ProtocolError("resume failed: " + element[:300].decode(errors="replace"))
            return time.perf_counter() - started
        await bindOne(conn)
    conn.send(b"<presence/>")
    await conn.expect(ownPresence)
    return time.perf_counter() - started


async def many(gen, clients, step, window: int, timeout: float):
    """C{step} for every client, C{window} in flight (0: all); latencies, errors, ok."""
    pending = iter(clients)
    latencies, errors, done = array.array("d"), collections.Counter(), []

    async def worker():
        for conn in pending:
            try:
                latency = await asyncio.wait_for(step(conn), timeout)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors["%s: %s" % (type(e).__name__, str(e)[:160])] += 1
                if conn.transport is not None:
                    conn.transport.abort()
                continue
            if latency is not None:
                latencies.append(latency)
            conn.buf = b""
            done.append(conn)

    size = len(clients) if window <= 0 else min(window, len(clients))
    await asyncio.gather(*(worker() for _ in range(max(size, 1))))
    return latencies, errors, done


def breakConnection(conn: Client) -> None:
    """Drop the TCP connection with a RST, as a phone losing its network does."""
    if conn.transport is None or conn.closed:
        return
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.closed = True
    conn.transport.abort()


async def quiet(pids, threshold=0.03, window=0.5, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(procstat.cpuSeconds(p) for p in procstat.processTree(pids))
        await asyncio.sleep(window)
        if (sum(procstat.cpuSeconds(p) for p in procstat.processTree(pids)) - before) \
                / window < threshold:
            return True
    return False


async def readLine(loop) -> str:
    return (await loop.run_in_executor(None, sys.stdin.readline)).strip()


async def storm(args) -> dict:
    gen = Generator(args.host, args.port, args.domain)
    gen.args = args
    clients = [Client(gen, i, "u%d" % i) for i in range(args.first, args.first + args.clients)]
    t0 = time.perf_counter()
    _, errors, ok = await many(gen, clients, firstLogin, args.window, args.timeout)
    setup = {"phase": "connect", "count": len(ok), "wall_s": round(time.perf_counter() - t0, 3),
             "errors": dict(errors)}
    if len(ok) != len(clients):
        for conn in clients:
            breakConnection(conn)
        return {"error": "%d of %d first logins failed: %s" % (
            len(clients) - len(ok), len(clients), dict(errors)), "phases": [setup]}
    gc.collect()
    gc.freeze()
    print("CONNECTED %d" % len(ok), flush=True)
    line = await readLine(gen.loop)
    if not line.startswith("GO"):
        return {"error": "orchestrator said %r" % line, "phases": [setup]}
    pids = [int(p) for p in line.split()[1:]] or args.server_pid
    note = {}
    if args.kind in RESUME_KINDS:
        t1 = time.perf_counter()
        for conn in clients:
            breakConnection(conn)
        note["server_noticed"] = await quiet(pids, timeout=args.timeout)
        note["drop_settle_s"] = round(time.perf_counter() - t1, 3)
    else:
        # the restart broke every connection; the server saw them go
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(c.closed for c in clients):
            await asyncio.sleep(0.05)
        note["still_open_after_restart"] = sum(not c.closed for c in clients)
        await quiet(pids, timeout=args.timeout)
    gen.lost = 0
    meter = procstat.Meter(pids)
    meter.resetPeak()
    before = meter.snapshot()
    latencies, errors, back = await many(gen, clients, reconnect, args.window, args.timeout)
    accounting = procstat.delta(before, meter.snapshot())
    hwm = meter.peakRSS()
    accounting["server_rss_kb_peak"] = max(hwm or 0, accounting["server_rss_kb_end"])
    phase = stats.phaseFigures(accounting, len(back), "reconnects", args.busy_threshold)
    mechanisms = collections.Counter(c.mechanism for c in back)
    phase.update(phase="reconnect", kind=args.kind, clients=len(clients),
                 all_back_s=round(accounting["wall_s"], 3), window=args.window,
                 latency=stats.latencySummary(latencies, 1e3), errors=dict(errors),
                 mechanisms=dict(mechanisms), lost_after=gen.lost, **note)
    for conn in back:
        conn.close()
    await asyncio.sleep(0.2)
    return {"error": None if not errors else "%d reconnects failed" % sum(errors.values()),
            "phases": [setup, phase]}


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="xmppdbench.storm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--kind", required=True, choices=KINDS)
    add("--clients", type=int, default=5000)
    add("--first", type=int, default=1, help="first uN account")
    add("--window", type=int, default=1000,
        help="connections in flight (the servers listen with a backlog of 1024): 0 = all")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=5222)
    add("--domain", default="localhost")
    add("--server-pid", type=int, action="append", default=[])
    add("--timeout", type=float, default=120, help="per login, and for the server to settle")
    add("--busy-threshold", type=float, default=stats.BUSY_THRESHOLD)
    add("--json-out")
    add("--no-uvloop", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop, runner = "asyncio", asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop, runner = "uvloop " + uvloop.__version__, uvloop.run
    result = runner(storm(args))
    result.update(args=vars(args), generator={"python": sys.version.split()[0], "loop": loop})
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    for phase in result["phases"]:
        print(json.dumps({k: phase.get(k) for k in (
            "phase", "count", "server_cpu_ms_per_1k", "all_back_s", "latency", "errors",
            "mechanisms", "bound")}), flush=True)
    if result["error"]:
        print("ERROR:", result["error"], flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
