# -*- test-case-name: tests.test_storage -*-
"""
The Redis store of account data (L{IAccountDataStore}): one hash per
account, key to value.
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IAccountDataStore
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

GET = Script("getData", keys.LUA + r"""
return redis.call("HGET", kData(ARGV[1]), ARGV[2])
""")

GET_ALL = Script("getAllData", keys.LUA + r"""
local flat = redis.call("HGETALL", kData(ARGV[1]))
local prefix, found = ARGV[2], {}
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, #prefix) == prefix then
    found[#found + 1] = flat[i]
    found[#found + 1] = flat[i + 1]
  end
end
return found
""")

# ARGV: user, domain, key, and the value (absent: delete).
CHANGE = Script("changeData", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
if #ARGV == 4 then
  redis.call("HSET", kData(user .. "@" .. domain), ARGV[3], ARGV[4])
else
  redis.call("HDEL", kData(user .. "@" .. domain), ARGV[3])
end
return 1
""")


@implementer(IAccountDataStore)
class RedisAccountDataStore:
    """Account data in one hash per account."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def get(self, username: str, domain: str, key: str) -> defer.Deferred:
        return self._engine.read(GET, (), [keys.account(username, domain), key])

    def set(self, username: str, domain: str, key: str, value: str) -> defer.Deferred:
        if not isinstance(value, str):
            return defer.fail(TypeError("account data values are str"))
        return self._engine.write(CHANGE, (), [username, domain, key, value]).addCallback(
            lambda _: None)

    def delete(self, username: str, domain: str, key: str) -> defer.Deferred:
        return self._engine.write(CHANGE, (), [username, domain, key]).addCallback(
            lambda _: None)

    def getAll(self, username: str, domain: str, prefix: str = "") -> defer.Deferred:
        d = self._engine.read(GET_ALL, (), [keys.account(username, domain), prefix])
        return d.addCallback(lambda flat: {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)})
