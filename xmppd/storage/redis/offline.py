# -*- test-case-name: tests.test_storage_issue5 -*-
"""
The Redis store of offline messages (L{IOfflineStore}, XEP-0160): a list
per account, oldest first, each entry C{"ID STAMP XML"}; ids come from one
counter and are never reused.

Storing is one C{RPUSH} inside a script that checks the account, so its
cost does not grow with the messages waiting.  Delivery deletes what it
fetched, the oldest: those are popped from the head; ids further in (rare)
are removed by value.
"""

from __future__ import annotations

from collections.abc import Collection

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IOfflineStore, OfflineMessage
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

STORE = Script("storeOffline", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
local id = redis.call("INCR", P .. "offline:nextid")
redis.call("RPUSH", kOffline(user .. "@" .. domain), id .. " " .. ARGV[3] .. " " .. ARGV[4])
return id
""")

FETCH = Script("fetchOffline", keys.LUA + r"""
return redis.call("LRANGE", kOffline(ARGV[1]), 0, tonumber(ARGV[2]))
""")

COUNT = Script("countOffline", keys.LUA + r"""
return redis.call("LLEN", kOffline(ARGV[1]))
""")

DELETE = Script("deleteOffline", keys.LUA + r"""
local key = kOffline(ARGV[1])
local wanted, left = {}, 0
for i = 2, #ARGV do
  if not wanted[ARGV[i]] then wanted[ARGV[i]] = true left = left + 1 end
end
while left > 0 do
  local head = redis.call("LINDEX", key, 0)
  if not head then return 0 end
  local id = string.match(head, "^(%d+) ")
  if not wanted[id] then break end
  redis.call("LPOP", key)
  wanted[id] = nil
  left = left - 1
end
if left > 0 then
  for _, entry in ipairs(redis.call("LRANGE", key, 0, -1)) do
    local id = string.match(entry, "^(%d+) ")
    if wanted[id] then redis.call("LREM", key, 1, entry) end
  end
end
return 0
""")


@implementer(IOfflineStore)
class RedisOfflineStore:
    """Offline messages in one Redis list per account."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def store(self, username: str, domain: str, xml: str, stamp: float) -> defer.Deferred:
        if not isinstance(xml, str):
            return defer.fail(TypeError("offline messages are serialized XML (str)"))
        return self._engine.write(STORE, (), [username, domain, repr(float(stamp)), xml]
                                  ).addCallback(int)

    def count(self, username: str, domain: str) -> defer.Deferred:
        return self._engine.read(COUNT, (), [keys.account(username, domain)]).addCallback(int)

    def fetch(self, username: str, domain: str, limit: int | None = None) -> defer.Deferred:
        if limit is not None and limit <= 0:
            return defer.succeed([])
        last = -1 if limit is None else limit - 1
        d = self._engine.read(FETCH, (), [keys.account(username, domain), last])
        return d.addCallback(lambda entries: [_message(entry) for entry in entries])

    def delete(self, username: str, domain: str, ids: Collection[int]) -> defer.Deferred:
        ids = [str(int(i)) for i in ids]
        if not ids:
            return defer.succeed(None)
        return self._engine.write(DELETE, (), [keys.account(username, domain)] + ids
                                  ).addCallback(lambda _: None)


def _message(entry: str) -> OfflineMessage:
    id, stamp, xml = entry.split(" ", 2)
    return OfflineMessage(int(id), xml, float(stamp))
