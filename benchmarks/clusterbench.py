"""
What a message between two nodes of a cluster costs (issue 14 item 10, a
first measurement; the full scenarios belong in benchmarks/run.py).

Two nodes ("a", "b") run in this process on one reactor, with a
redis-server of this script's own (a free port, a temporary directory,
C{appendfsync always} as the README asks), and two clients (Twisted's
own) in the same process.  The script sends N chat messages from romeo to
juliet twice: with both clients on node a (same node), and with juliet on
node b (cross node), and prints the CPU seconds this process and Redis
spent per 1000 delivered messages in each case.  The clients' cost is in
both numbers; the difference is what the cluster adds.

    .venv/bin/python benchmarks/clusterbench.py [N] [--sm]

With C{--sm} the sender enables stream management (XEP-0198) and asks for
an acknowledgement (C{<r/>}) at the end of each run, which then also waits
for that answer: the cost of counting forwarded stanzas as handled only
once Redis took them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import defer, task
from twisted.words.xish import domish

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xmppd.testing import ServerFixture  # noqa: E402


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startRedis(directory: str) -> tuple[subprocess.Popen, int]:
    port = freePort()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--save", "", "--appendonly", "yes", "--appendfsync", "always",
         "--daemonize", "no", "--protected-mode", "no", "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(100).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


def redisCPU(port: int) -> float:
    """Redis's CPU seconds so far (INFO cpu: microsecond resolution, unlike /proc's ticks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO cpu\r\n")
        data = b""
        while b"used_cpu_user:" not in data or not data.endswith(b"\r\n"):
            data += s.recv(65536)
    fields = dict(line.split(":", 1) for line in data.decode().splitlines() if ":" in line)
    return float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])


def config(url: str, node: str, sm: bool = False) -> dict:
    return {"storage": {"backend": "memory"},
            "server": {"modules": ["presence", "roster", "messages", "disco", "offline"]
                       + (["sm"] if sm else [])},
            "limits": {"stanzas_per_second": 0, "bytes_per_second": 0},
            "cluster": {"node": node, "redis": url}}


NS_SM = "urn:xmpp:sm:3"


async def enableSM(reactor, stream) -> None:
    """Enable stream management on C{stream} (no resumption); fires once enabled."""
    enabled = defer.Deferred()
    stream.addOnetimeObserver("/enabled", enabled.callback)
    stream.send(domish.Element((NS_SM, "enable")))
    await enabled.addTimeout(10, reactor)


async def acknowledged(reactor, stream) -> int:
    """Ask C{stream}'s server for an acknowledgement; its 'h'."""
    answer = defer.Deferred()
    stream.addOnetimeObserver("/a", answer.callback)
    stream.send(domish.Element((NS_SM, "r")))
    return int((await answer.addTimeout(120, reactor))["h"])


async def measure(reactor, sender, receiver, count: int, redisPid: int,
                  paced: bool = False, sm: bool = False) -> tuple[float, float]:
    """
    CPU of this process and of Redis for C{count} messages: sent in bursts
    of 200 per reactor turn, or, C{paced}, each only once the one before
    arrived (nothing to batch: the worst case for the transport).
    """
    got = []
    done = defer.Deferred()
    turn = [defer.Deferred()]

    def arrived(message):
        got.append(message)
        turn[0].callback(None)
        turn[0] = defer.Deferred()
        if len(got) == count and not done.called:
            done.callback(None)

    receiver.addObserver("/message", arrived)
    to = receiver.authenticator.jid.full()
    cpu0, redis0 = time.process_time(), redisCPU(redisPid)
    for i in range(count):
        message = domish.Element((None, "message"))
        message["to"], message["type"], message["id"] = to, "chat", str(i)
        message.addElement("body", content="message %d of the benchmark" % i)
        waiting = turn[0]
        sender.send(message)
        if paced:
            await waiting
        elif i % 200 == 199:
            await task.deferLater(reactor, 0, lambda: None)
    await done.addTimeout(120, reactor)
    if sm:
        await acknowledged(reactor, sender)
    cpu, redis = time.process_time() - cpu0, redisCPU(redisPid) - redis0
    receiver.removeObserver("/message", arrived)
    return cpu, redis


async def main(reactor, count: int, sm: bool = False):
    directory = tempfile.mkdtemp(prefix="xmppd-clusterbench-")
    redis, port = startRedis(directory)
    url = "redis://127.0.0.1:%d/0" % port
    nodes = []
    try:
        accounts = {"romeo": "r", "juliet": "j", "nurse": "n"}
        for name in ("a", "b"):
            fixture = ServerFixture(dict(accounts), config=config(url, name, sm))
            await fixture.start()
            await fixture.service.getServiceNamed("cluster").started
            nodes.append(fixture)
        a, b = nodes
        romeo = await a.login("romeo", resource="r")
        julietA = await a.login("juliet", resource="same")
        nurseB = await b.login("nurse", resource="cross")
        if sm:
            await enableSM(reactor, romeo)
        await task.deferLater(reactor, 0.5, lambda: None)
        await measure(reactor, romeo, julietA, 500, port, sm=sm)  # warm up
        await measure(reactor, romeo, nurseB, 500, port, sm=sm)
        print("messages: %d each way, one process holding both nodes and the clients%s"
              % (count, ", sender under stream management" if sm else ""))
        for paced in (False, True):
            same = await measure(reactor, romeo, julietA, count, port, paced, sm)
            cross = await measure(reactor, romeo, nurseB, count, port, paced, sm)
            per = 1000.0 / count
            print("-- %s" % ("paced (one at a time)" if paced else "bursts of 200"))
            print("same node : %.0f CPU-ms per 1000 (process), Redis %.0f" % (
                same[0] * per * 1000, same[1] * per * 1000))
            print("cross node: %.0f CPU-ms per 1000 (process), Redis %.0f" % (
                cross[0] * per * 1000, cross[1] * per * 1000))
            print("forwarded so far by node a: %d, delivered by node b: %d" % (
                a.service.cluster.transport.forwarded, b.service.cluster.transport.delivered))
            print("cluster overhead per cross-node message: %.3f ms of xmppd, %.3f ms of Redis" % (
                (cross[0] - same[0]) / count * 1000, (cross[1] - same[1]) / count * 1000))
        if os.environ.get("CLUSTERBENCH_STATS"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"INFO commandstats\r\n")
                time.sleep(0.2)
                print(s.recv(65536).decode())
    finally:
        for fixture in nodes:
            await fixture.close()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--sm"]
    task.react(lambda reactor: defer.ensureDeferred(
        main(reactor, int(arguments[0]) if arguments else 5000, "--sm" in sys.argv[1:])))
