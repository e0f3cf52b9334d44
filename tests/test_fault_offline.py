"""
The fault test of issue 5: the server process is killed with SIGKILL right
after it acknowledged (XEP-0198) messages for an offline account, restarted
on the same data directory, and the account logs in and receives every
acknowledged message, each once.

The node runs as operators run it, C{twistd -n xmppd --config FILE}, in a
process of its own, so the kill is a real one: no shutdown code runs, and
only what was on disk when the acknowledgement went out can come back.
"""

from __future__ import annotations

import os
import re
import signal
import sys

import pytest_twisted
from twisted.internet import defer, protocol

from tests.e2e import REPO, TIMEOUT, reactor
from tests.offlinehelpers import acknowledged, useStreamManagement

ensureDeferred = pytest_twisted.ensureDeferred

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

#: How long a node process may take to start listening (a new Python,
#: Twisted, the plugin scan).
STARTUP_TIMEOUT = 60.0

#: Messages sent before the kill.
COUNT = 50

LISTENING = re.compile(r"c2s\.endpoint listening on .*?port=(\d+)")


class NodeProcess(protocol.ProcessProtocol):
    """One C{twistd} process of the node whose configuration is C{configPath}."""

    def __init__(self, configPath, directory):
        self.configPath = str(configPath)
        self.directory = str(directory)
        self.output = ""
        self.listening = defer.Deferred()
        #: How the process ended (a ProcessTerminated), once it has.
        self.reason = None
        self.waiters: list[defer.Deferred] = []
        self.running = False

    def start(self) -> defer.Deferred:
        """Spawn the process; fires with its STARTTLS port once it listens."""
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        reactor().spawnProcess(
            self, TWISTD, [TWISTD, "-n", "--pidfile=", "xmppd", "--config", self.configPath],
            env=env, path=self.directory)
        self.running = True
        return self.listening.addTimeout(STARTUP_TIMEOUT, reactor())

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        if not self.listening.called:
            found = LISTENING.search(self.output)
            if found:
                self.listening.callback(int(found.group(1)))

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.running = False
        if not self.listening.called:
            self.listening.errback(AssertionError("the node exited before listening:\n"
                                                  + self.output))
        self.reason = reason.value
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(self.reason)

    def kill(self, signalName: str = "KILL") -> defer.Deferred:
        """Send C{signalName}; fires with how the process ended once it is gone."""
        if not self.running:
            return defer.succeed(self.reason)
        d = defer.Deferred()
        self.waiters.append(d)
        self.transport.signalProcess(signalName)
        return d.addTimeout(TIMEOUT, reactor())


async def startNode(server) -> NodeProcess:
    """Start C{server}'s node as a process and point its clients at it."""
    node = NodeProcess(server.configPath, server.directory)
    server.starttlsPort = await node.start()
    return node


@ensureDeferred
async def test_acknowledgedMessagesSurviveSIGKILL(stoppedServer):
    """Every message the server acknowledged before being killed reaches the offline account after a restart, once."""
    server = stoppedServer
    await server.addUser("romeo")
    await server.addUser("juliet")
    node = await startNode(server)
    try:
        romeo = server.client("romeo", "orchard")
        useStreamManagement(romeo)
        await romeo.login()
        bodies = ["message %d" % i for i in range(COUNT)]
        for body in bodies:
            romeo.send("juliet@localhost", body)
        # The messages and the ping that flushed them, all acknowledged.
        assert await acknowledged(romeo) >= COUNT + 1

        # Right after the acknowledgement: no chance to flush anything more.
        ended = await node.kill("KILL")
        assert ended.signal == signal.SIGKILL
        await romeo.closedByServer()

        node = await startNode(server)
        juliet = server.client("juliet", "balcony")
        juliet.xmpp.register_plugin("xep_0203")
        await juliet.login()
        juliet.xmpp.send_presence()

        received = [await juliet.nextMessage() for _ in bodies]
        assert [m["body"] for m in received] == bodies
        assert all(m["delay"]["from"] == "localhost" for m in received)

        # Nothing more: a marker sent now is the next thing Juliet gets.
        nurse = await server.login("romeo", "nurse")
        nurse.send(juliet.jid.full, "marker")
        assert (await juliet.nextMessage())["body"] == "marker"
    finally:
        await server.close()
        await node.kill("TERM")
