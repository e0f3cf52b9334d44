"""
End to end, C{xmppctl drain} (issue 14, item 8) on two nodes sharing a
redis-server and the C{redis} storage backend, with slixmpp clients and
the real C{xmppctl} command: the client on the drained node gets
see-other-host with the other node's client address, logs in there, and
gets the message sent to it during the switch; the drained node refuses a
new client the same way until C{--undo}.

slixmpp 1.17 reads see-other-host but reconnects to the address it was
first given when it was given one (its C{custom_address}), and otherwise
to the other host on port 5222 only; so these clients do not let slixmpp
redirect itself (C{max_redirects = -1}) and the test follows the
redirection as a client application would, to the host and port given.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.e2e import LoginFailed, TIMEOUT, reactor
from tests.foreignserver import freePort
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

ensureDeferred = pytest_twisted.ensureDeferred


def nodeConfig(url: str, node: str, port: int) -> dict:
    return {"storage": {"backend": "redis", "redis": url},
            "c2s": {"endpoint": "tcp:%d:interface=127.0.0.1" % port},
            "cluster": {"node": node, "heartbeat": 0.3, "lease": 1.5,
                        "client_address": "127.0.0.1:%d" % port}}


def noSelfRedirect(client):
    """The test follows see-other-host itself (module docstring); keep what it said."""
    client.xmpp.max_redirects = -1
    client.otherHost = []
    client.xmpp.add_event_handler(
        "stream_error", lambda error: client.otherHost.append(error["see_other_host"]))
    return client


@ensureDeferred
async def test_drainSendsClientsToOtherNode(makeServer, redisServer):
    portA, portB = freePort(), freePort()
    a = await makeServer(nodeConfig(redisServer.url, "a", portA))
    b = await makeServer(nodeConfig(redisServer.url, "b", portB))
    for server in (a, b):
        await server.service.getServiceNamed("control").ready.addTimeout(TIMEOUT, reactor())
    await a.addUser("juliet")
    await a.addUser("romeo")
    juliet = noSelfRedirect(a.client("juliet", "balcony"))
    await juliet.login()
    romeo = await b.login("romeo", "orchard")

    result = await a.xmppctl("drain", "a")
    assert result.status == 0, result.err
    assert result.out == ("a is draining: 1 client stream sent to b (127.0.0.1:%d); new "
                          "clients are sent there too\n" % portB)
    assert await juliet.closedByServer() == ["see-other-host"]
    assert juliet.otherHost == ["127.0.0.1:%d" % portB]
    # Sent while juliet is between the two nodes: stored, not lost.
    romeo.send("juliet@localhost", "during the switch")

    # A new client of the drained node is sent away too.
    late = noSelfRedirect(a.client("romeo", "garden"))
    with pytest.raises(LoginFailed) as refused:
        await late.login()
    assert refused.value.condition == "see-other-host"
    assert late.otherHost == ["127.0.0.1:%d" % portB]

    # juliet follows: the host and port she was given are b's.
    host, port = juliet.otherHost[0].rsplit(":", 1)
    assert (host, int(port)) == ("127.0.0.1", b.starttlsPort)
    again = await b.login("juliet", "balcony")
    again.xmpp.send_presence()
    message = await again.nextMessage()
    assert message["body"] == "during the switch"

    listing = await a.xmppctl("cluster")
    assert listing.status == 0, listing.err
    lines = listing.out.splitlines()
    assert lines[1].split()[:3] == ["a", "alive,", "draining"]
    assert "b session juliet@localhost/balcony" in lines

    result = await a.xmppctl("drain", "a", "--undo")
    assert result.status == 0 and result.out == "a takes clients again\n"
    await a.login("romeo", "garden")

    result = await a.xmppctl("drain", "nosuchnode", "--timeout", str(TIMEOUT))
    assert result.status == 1
    assert result.err == "xmppctl: no node 'nosuchnode' in this cluster (nodes: a, b)\n"
