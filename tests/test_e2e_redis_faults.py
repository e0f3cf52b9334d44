"""
Redis going away under a running node (issue 18): a C{twistd} node of a
cluster that stores on Redis too, while the test's redis-server is killed
(SIGKILL) and started again.  What is expected of the node: one readable
line when Redis is lost and one when it is back, one line (never a
traceback) for an operation that failed meanwhile, none of txredisapi's
line per reconnection attempt, and by itself back to serving once Redis
answers again: messages flow and logins (which read storage) work.
"""

from __future__ import annotations

import pytest_twisted

from tests.clusterhelpers import clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

ensureDeferred = pytest_twisted.ensureDeferred

LOST = "connection lost; reconnecting"
BACK = "connected again after"


async def logged(process, text: str, start: int, timeout: float = 2 * TIMEOUT) -> None:
    """Wait (bounded) until the node's log has C{text} after offset C{start}."""
    for _ in range(int(timeout * 10)):
        if text in process.output[start:]:
            return
        await sleep(0.1)
    raise AssertionError("%r not logged; the log since:\n%s" % (text, process.output[start:]))


@ensureDeferred
async def test_redisLostAndBack(makeServer, redisServer):
    """
    Redis killed under a node and started again: "lost" and "back" are
    logged once each, with no traceback and no line per reconnection
    attempt, and the node serves again: a message sent meanwhile and one
    after arrive, and a new login reads its credentials from Redis.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet"))
    process = await startProcess(a)
    try:
        romeo = await a.login("romeo", "orchard")
        juliet = await a.login("juliet", "balcony")
        romeo.send("juliet@localhost/balcony", "before")
        assert (await juliet.nextMessage())["body"] == "before"
        start = len(process.output)

        redisServer.kill()
        await logged(process, LOST, start)
        romeo.send("juliet@localhost/balcony", "during")
        await sleep(1)  # several reconnection attempts of every connection
        redisServer.start()
        await logged(process, BACK, start)

        romeo.send("juliet@localhost/balcony", "after")
        assert [(await juliet.nextMessage())["body"] for _ in range(2)] == ["during", "after"]
        again = await a.login("romeo", "garden")
        again.send("juliet@localhost/balcony", "from the garden")
        assert (await juliet.nextMessage())["body"] == "from the garden"

        log = process.output[start:]
        assert "Traceback" not in log, log
        assert log.count(LOST) == 1 and log.count(BACK) == 1, log
        assert "Scheduling retry" not in log and "Discarding dead connection" not in log, log
        assert "Traceback" not in process.output, process.output
    finally:
        await process.kill("TERM")
