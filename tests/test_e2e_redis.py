"""
End-to-end: the real node on the shared Redis store (C{storage.backend =
"redis"}), with accounts made by C{xmppctl} processes and slixmpp clients.
What a client was acknowledged survives the node restarting and Redis
being killed with SIGKILL in between; a node whose Redis is unusable does
not start, and says why.
"""

import pytest
import pytest_twisted

from tests.e2e import DOMAIN, makeServer, password  # noqa: F401  (fixture)
from tests.offlinehelpers import acknowledged, useStreamManagement
from tests.foreignserver import freePort
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

ensureDeferred = pytest_twisted.ensureDeferred

JULIET = "juliet@" + DOMAIN


def redisConfig(url):
    return {"storage": {"backend": "redis", "redis": url}}


@ensureDeferred
async def test_offlineSurvivesRedisKill(makeServer, redisServer):
    """A message acknowledged for an offline user reaches her after the node restarts and Redis is SIGKILLed and restarted."""
    server = await makeServer(redisConfig(redisServer.url), start=False)
    for user in ("romeo", "juliet"):
        result = await server.xmppctl("adduser", f"{user}@{DOMAIN}", "--password",
                                      password(user))
        assert result.status == 0, result.err
    await server.start()
    romeo = server.client("romeo", "orchard")
    useStreamManagement(romeo)
    await romeo.login()
    romeo.send(JULIET, "Through Redis")
    await acknowledged(romeo)
    await romeo.disconnect()

    await server.stop()
    redisServer.restart()
    await server.start()

    juliet = server.client("juliet", "balcony")
    juliet.xmpp.register_plugin("xep_0203")
    await juliet.login()
    assert juliet.mechanism.startswith("SCRAM-")
    juliet.xmpp.send_presence()
    message = await juliet.nextMessage()
    assert message["body"] == "Through Redis" and message["delay"]["from"] == DOMAIN


@ensureDeferred
async def test_scramLoginOfXmppctlAccount(makeServer, redisServer):
    """An account made with xmppctl on Redis logs in with SCRAM-SHA-256, and a wrong password fails."""
    server = await makeServer(redisConfig(redisServer.url), start=False)
    result = await server.xmppctl("adduser", JULIET, "--password", password("juliet"))
    assert result.status == 0, result.err
    await server.start()
    juliet = await server.login("juliet", mechanism="SCRAM-SHA-256")
    assert juliet.mechanism == "SCRAM-SHA-256"
    result = await server.xmppctl("users")
    assert JULIET in result.out


@ensureDeferred
async def test_unreachableRedisStopsStart(makeServer, monkeypatch):
    """A node whose Redis does not answer does not start, and says which Redis."""
    from xmppd.storage.redis import engine
    monkeypatch.setattr(engine, "OPEN_TIMEOUT", 0.5)
    url = f"redis://127.0.0.1:{freePort()}/0"
    server = await makeServer(redisConfig(url), start=False)
    with pytest.raises(Exception) as raised:
        await server.start()
    assert f"Redis at {url} did not answer" in str(raised.value)
