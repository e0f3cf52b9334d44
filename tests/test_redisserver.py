"""The test kit's own redis-server (L{tests.redisserver})."""

from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)


def test_durableAndOwn(redisServer):
    """Ours answers on its own port, with the append-only file fsynced on every write."""
    assert redisServer.port != 6379
    assert redisServer.command("CONFIG", "GET", "appendfsync").startswith(b"*2")
    redisServer.command("SET", "k", "v")
    redisServer.restart()
    assert redisServer.command("GET", "k").split() == [b"$1", b"v"]
