"""
End to end, a cluster of two real C{twistd} nodes on one redis-server
(issue 14), with slixmpp clients on each node: messages and directed
presence cross nodes, and a message for a user whose node was killed
(SIGKILL) is not lost but stored for them (RFC 6121 §8.5.2.2.1), and
delivered when they log in again on the other node.
"""

from __future__ import annotations

import time

import pytest_twisted

from tests.clusterhelpers import clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep, wait
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

ensureDeferred = pytest_twisted.ensureDeferred


@ensureDeferred
async def test_twoNodes(makeServer, redisServer):
    """Clients on two nodes talk; killing one node loses no message sent to its user."""
    a = await clusterServer(makeServer, redisServer, "a")
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        romeo = await a.login("romeo", "orchard")
        juliet = await b.login("juliet", "balcony")

        romeo.send("juliet@localhost/balcony", "But soft!")
        message = await juliet.nextMessage()
        assert message["body"] == "But soft!"
        assert message["from"] == "romeo@localhost/orchard"
        juliet.send("romeo@localhost/orchard", "Ay me!")
        assert (await romeo.nextMessage())["body"] == "Ay me!"
        for i in range(20):
            romeo.send("juliet@localhost/balcony", "line %d" % i)
        assert [(await juliet.nextMessage())["body"] for _ in range(20)] == [
            "line %d" % i for i in range(20)]

        # Directed presence (RFC 6121 §4.6) crosses too.
        arrived = juliet.xmpp.loop.create_future()
        juliet.xmpp.add_event_handler(
            "presence_available",
            lambda p: arrived.done() or arrived.set_result(p))
        romeo.xmpp.send_presence(pto="juliet@localhost/balcony", pstatus="in the orchard")
        presence = await wait(arrived)
        assert presence["from"] == "romeo@localhost/orchard"
        assert presence["status"] == "in the orchard"

        # Node b dies; Romeo writes before anyone noticed.
        await processes[1].kill("KILL")
        romeo.send("juliet@localhost/balcony", "Wherefore art thou?")
        # Node a takes b for dead once its lease is over...
        deadline = time.monotonic() + TIMEOUT
        while redisServer.command("SISMEMBER", "xmppd:c:nodes", "b") != b":0":
            assert time.monotonic() < deadline, "node b was never taken for dead"
            await sleep(0.1)
        # ...and Juliet, back on node a, finds the message stored for her.
        again = a.client("juliet", "garden")
        again.xmpp.register_plugin("xep_0203")
        await again.login()
        again.xmpp.send_presence()
        message = await again.nextMessage()
        assert message["body"] == "Wherefore art thou?"
        assert message["delay"]["from"] == "localhost"
    finally:
        for process in processes:
            await process.kill("TERM")
