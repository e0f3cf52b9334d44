"""
Cluster nodes as operators run them (issue 14): each one a
C{twistd -n xmppd --config FILE} process of its own, on ephemeral ports,
sharing the test's redis-server (L{tests.redisserver}); clients are the e2e
kit's slixmpp clients (L{tests.e2e}).

    a = await clusterServer(makeServer, redisServer, "a")
    process = await startProcess(a)        # a.starttlsPort points at it
    ...
    await process.kill("KILL")             # a real SIGKILL: no shutdown code runs
"""

from __future__ import annotations

from tests.test_fault_offline import NodeProcess

#: Seconds between heartbeats and of the lease in these tests: short, so a
#: killed node is taken for dead within a few seconds.
HEARTBEAT = 0.3
LEASE = 1.5


async def clusterServer(makeServer, redisServer, node: str, users=(), config=None):
    """
    An e2e L{tests.e2e.Server} (not started) that is node C{node} of the
    cluster on C{redisServer}, storing on the same Redis (C{storage.backend
    = "redis"}, as a cluster must: accounts, rosters, offline messages and
    rooms are shared), with C{users} made through it (once for the cluster).
    C{config} adds sections of its own (C{[server]}, C{[s2s]}...).
    """
    server = await makeServer({"cluster": {"node": node, "redis": redisServer.url,
                                           "heartbeat": HEARTBEAT, "lease": LEASE},
                               "storage": {"backend": "redis", "redis": redisServer.url},
                               **(config or {})},
                              start=False)
    for user in users:
        await server.addUser(user)
    return server


async def startProcess(server) -> NodeProcess:
    """Start C{server}'s node as a twistd process; its clients connect to it."""
    process = NodeProcess(server.configPath, server.directory)
    server.starttlsPort = await process.start()
    return process
