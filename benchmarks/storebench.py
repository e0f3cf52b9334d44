"""
CPU cost of the storage backends' durable writes: offline messages stored
and archive messages appended, per 1000, on SQLite and on Redis.

    .venv/bin/python benchmarks/storebench.py [--count 5000] [--concurrency 50]

Starts a redis-server of its own (Debian's, on a free port, in a temporary
directory, with appendonly yes and appendfsync always, as the README
requires) and stops it.  Reports, per 1000 writes, the CPU milliseconds of
this process (the node's side: xmppd's storage code, txredisapi or the
SQLite worker thread) and of redis-server, and the wall time.  Writes are
issued C{--concurrency} at a time, as a busy node issues them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from xmppd.config.redisurl import parseRedisURL  # noqa: E402
from xmppd.core.scram import makeCredentials  # noqa: E402
from xmppd.storage import RedisStorage, SQLiteStorage  # noqa: E402
from xmppd.storage.interfaces import ArchivedMessage  # noqa: E402

XML = ("<message xmlns='jabber:client' from='romeo@example.org/orchard' "
       "to='juliet@example.org' type='chat' id='%d'><body>%s</body></message>")
BODY = "But soft, what light through yonder window breaks? " * 2


def cpuOf(pid: int) -> float:
    """User + system CPU seconds of process C{pid}, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(store, operation, count: int, concurrency: int, redisPid: int | None):
    numbers = iter(range(count))

    async def worker():
        for n in numbers:
            await operation(store, n)

    cpu0, wall0 = time.process_time(), time.monotonic()
    redis0 = cpuOf(redisPid) if redisPid else 0.0
    await defer.gatherResults([defer.Deferred.fromCoroutine(worker())
                               for _ in range(concurrency)])
    per = 1000 / count
    return ((time.process_time() - cpu0) * 1000 * per,
            ((cpuOf(redisPid) - redis0) * 1000 * per) if redisPid else 0.0,
            (time.monotonic() - wall0) * 1000 * per)


def offline(store, n):
    return store.offline.store("juliet", "example.org", XML % (n, BODY), 1700000000.0 + n)


def archive(store, n):
    return store.archive.append("juliet", "example.org", ArchivedMessage(
        f"id-{n}", 1700000000.0 + n, "romeo@example.org", XML % (n, BODY)))


async def run(reactor, options):
    directory = tempfile.mkdtemp(prefix="storebench-")
    port = freePort()
    redis = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", directory, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
         "--daemonize", "no", "--logfile", os.path.join(directory, "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                await task.deferLater(reactor, 0.01, lambda: None)
        print(f"{options.count} writes, {options.concurrency} at a time; CPU-ms and wall-ms "
              f"per 1000 writes")
        print(f"{'backend':8} {'write':8} {'node CPU':>9} {'redis CPU':>10} {'total':>7} "
              f"{'wall':>7}")
        for backend in ("sqlite", "redis"):
            if backend == "redis":
                store = RedisStorage(parseRedisURL(f"redis://127.0.0.1:{port}/0"))
                pid = redis.pid
            else:
                store = SQLiteStorage(os.path.join(directory, "bench.sqlite"))
                pid = None
            await store.open()
            await store.users.addUser("juliet", "example.org", makeCredentials("x", 2))
            for name, operation in (("offline", offline), ("archive", archive)):
                node, server, wall = await measure(store, operation, options.count,
                                                   options.concurrency, pid)
                print(f"{backend:8} {name:8} {node:9.0f} {server:10.0f} "
                      f"{node + server:7.0f} {wall:7.0f}")
            await store.close()
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    options = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, options)))


if __name__ == "__main__":
    main()
