# -*- test-case-name: tests.test_storage_issue5,tests.test_storage_rooms -*-
"""
The Redis store of account archives (L{IArchiveStore}, XEP-0313), and the
archive scripts room archives (L{xmppd.storage.redis.rooms}) share: both
are an OWNER (L{xmppd.storage.redis.keys}) with the same keys.

An archive is kept in sorted sets so queries never scan: C{order} (id ->
archive sequence number), one per peer (the same, only the messages with
that peer) and C{stamp} (id -> time, for time ranges and retention); the
texts are in hashes (C{msg}: id -> stanza, C{meta}: id -> "SEQ STAMP
PEER").  A query without a time range or id list, the one clients send to
page through their history (optionally "with" one peer), is
C{ZCARD}/C{ZCOUNT} for the count and one C{ZRANGEBYSCORE ... LIMIT} over
the window between the paging anchors: logarithmic in the archive's size.
A query with a time range reads the ids in that range from C{stamp};
one with ids reads those ids; both then filter and order what they found
inside the script.  Each query is one script, so its count and its page
are one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Collection

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import ArchivedMessage, ArchivePage, IArchiveStore
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

#: Lua: append to, drop, and trim archives.
ARCHIVE_LUA = r"""
local function appendArchive(owner, id, stamp, peer, xml)
  if redis.call("ZSCORE", kMamOrder(owner), id) then
    return redis.error_reply("STORAGEERROR archive id " .. id .. " exists already in " .. owner)
  end
  local seq = redis.call("INCR", P .. "mam:seq")
  redis.call("ZADD", kMamOrder(owner), seq, id)
  redis.call("ZADD", kMamStamp(owner), stamp, id)
  redis.call("ZADD", kMamPeer(owner, peer), seq, id)
  redis.call("SADD", kMamPeers(owner), peer)
  redis.call("HSET", kMamMsg(owner), id, xml)
  redis.call("HSET", kMamMeta(owner), id, seq .. " " .. stamp .. " " .. peer)
  redis.call("SADD", P .. "mam:owners", owner)
end
local function dropArchive(owner)
  for _, peer in ipairs(redis.call("SMEMBERS", kMamPeers(owner))) do
    redis.call("DEL", kMamPeer(owner, peer))
  end
  redis.call("DEL", kMamPeers(owner), kMamOrder(owner), kMamStamp(owner), kMamMsg(owner),
             kMamMeta(owner))
  redis.call("SREM", P .. "mam:owners", owner)
end
local function trimArchive(owner, cutoff)
  local old = redis.call("ZRANGEBYSCORE", kMamStamp(owner), "-inf", "(" .. cutoff)
  for _, id in ipairs(old) do
    local meta = redis.call("HGET", kMamMeta(owner), id)
    local peer = string.match(meta, "^%S+ %S+ (.*)$")
    redis.call("ZREM", kMamPeer(owner, peer), id)
    redis.call("ZREM", kMamOrder(owner), id)
    redis.call("ZREM", kMamStamp(owner), id)
    redis.call("HDEL", kMamMsg(owner), id)
    redis.call("HDEL", kMamMeta(owner), id)
  end
  if redis.call("ZCARD", kMamOrder(owner)) == 0 then dropArchive(owner) end
  return #old
end
"""

APPEND_USER = Script("appendArchive", keys.LUA + ARCHIVE_LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
return appendArchive("u:" .. user .. "@" .. domain, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
""")

# ARGV: owner kind ("u:" or "r:"), cutoff.
REMOVE_OLDER = Script("trimArchives", keys.LUA + ARCHIVE_LUA + r"""
local kind, removed = ARGV[1], 0
for _, owner in ipairs(redis.call("SMEMBERS", P .. "mam:owners")) do
  if string.sub(owner, 1, #kind) == kind then removed = removed + trimArchive(owner, ARGV[2]) end
end
return removed
""")

# ARGV: owner, peer, start, end, afterId, beforeId, limit, reverse, ids...
# ("" for a filter not given; ids only when the "ids" filter is, after a
# count in ARGV[9]).  Replies {count, complete, ids, metas, xmls}.
QUERY = Script("queryArchive", keys.LUA + ARCHIVE_LUA + r"""
local owner, peer, start, stop = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local afterId, beforeId, limit, reverse = ARGV[5], ARGV[6], ARGV[7], ARGV[8] == "1"
local nids = tonumber(ARGV[9])
local order = kMamOrder(owner)
local afterSeq, beforeSeq
if afterId ~= "" then
  afterSeq = redis.call("ZSCORE", order, afterId)
  if not afterSeq then return redis.error_reply("ITEMNOTFOUND " .. afterId) end
  afterSeq = tonumber(afterSeq)
end
if beforeId ~= "" then
  beforeSeq = redis.call("ZSCORE", order, beforeId)
  if not beforeSeq then return redis.error_reply("ITEMNOTFOUND " .. beforeId) end
  beforeSeq = tonumber(beforeSeq)
end
limit = limit ~= "" and tonumber(limit) or nil
local count, complete, page
if start == "" and stop == "" and nids < 0 then
  -- The indexed path: the whole archive, or the messages with one peer.
  local index = peer ~= "" and kMamPeer(owner, peer) or order
  local low = afterSeq and "(" .. afterSeq or "-inf"
  local high = beforeSeq and "(" .. beforeSeq or "+inf"
  count = redis.call("ZCARD", index)
  local window = redis.call("ZCOUNT", index, low, high)
  if limit == nil or window <= limit then
    page, complete = redis.call("ZRANGEBYSCORE", index, low, high), 1
  elseif reverse then
    page, complete = redis.call("ZREVRANGEBYSCORE", index, high, low, "LIMIT", 0, limit), 0
    local n = #page
    for i = 1, math.floor(n / 2) do page[i], page[n + 1 - i] = page[n + 1 - i], page[i] end
  else
    page, complete = redis.call("ZRANGEBYSCORE", index, low, high, "LIMIT", 0, limit), 0
  end
else
  local candidates
  if nids >= 0 then
    candidates = {}
    for i = 10, 9 + nids do candidates[#candidates + 1] = ARGV[i] end
  else
    candidates = redis.call("ZRANGEBYSCORE", kMamStamp(owner),
                            start ~= "" and start or "-inf", stop ~= "" and stop or "+inf")
  end
  local matching, seen = {}, {}
  local lo, hi = tonumber(start), tonumber(stop)
  for _, id in ipairs(candidates) do
    local meta = not seen[id] and redis.call("HGET", kMamMeta(owner), id)
    seen[id] = true
    if meta then
      local seq, stamp, who = string.match(meta, "^(%S+) (%S+) (.*)$")
      seq, stamp = tonumber(seq), tonumber(stamp)
      if (peer == "" or who == peer) and (not lo or stamp >= lo) and (not hi or stamp <= hi) then
        matching[#matching + 1] = {seq, id}
      end
    end
  end
  table.sort(matching, function(a, b) return a[1] < b[1] end)
  count = #matching
  local window = {}
  for _, entry in ipairs(matching) do
    if (not afterSeq or entry[1] > afterSeq) and (not beforeSeq or entry[1] < beforeSeq) then
      window[#window + 1] = entry[2]
    end
  end
  page, complete = {}, 1
  local first, last = 1, #window
  if limit ~= nil and #window > limit then
    complete = 0
    if reverse then first = #window - limit + 1 else last = limit end
  end
  for i = first, last do page[#page + 1] = window[i] end
end
local metas, xmls = {}, {}
if #page > 0 then
  metas = callMany("HMGET", kMamMeta(owner), page)
  xmls = callMany("HMGET", kMamMsg(owner), page)
end
return {count, complete, page, metas, xmls}
""")


def appendArgs(message: ArchivedMessage) -> list[str]:
    return [str(message.id), repr(float(message.stamp)), str(message.peer), str(message.xml)]


def queryArgs(owner: str, peer, start, end, afterId, beforeId, ids, limit, reverse) -> list:
    optional = lambda value: "" if value is None else value  # noqa: E731
    args = [owner, optional(peer), "" if start is None else repr(float(start)),
            "" if end is None else repr(float(end)), optional(afterId), optional(beforeId),
            "" if limit is None else max(int(limit), 0), "1" if reverse else "0"]
    if ids is None:
        return args + [-1]
    ids = [str(i) for i in ids]
    return args + [len(ids)] + ids


def pageFromReply(reply) -> ArchivePage:
    count, complete, ids, metas, xmls = reply
    messages = []
    for id, meta, xml in zip(ids, metas, xmls):
        _, stamp, peer = meta.split(" ", 2)
        messages.append(ArchivedMessage(id, float(stamp), peer, xml))
    return ArchivePage(tuple(messages), bool(int(complete)), int(count))


def runQuery(engine: RedisEngine, owner: str, peer, start, end, afterId, beforeId, ids,
             limit, reverse) -> defer.Deferred:
    """L{IArchiveStore.query} on the archive of C{owner}, in one script."""
    d = engine.read(QUERY, (), queryArgs(owner, peer, start, end, afterId, beforeId, ids,
                                         limit, reverse))
    return d.addCallback(pageFromReply)


@implementer(IArchiveStore)
class RedisArchiveStore:
    """Account archives, one OWNER C{u:user@domain} each."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def append(self, username: str, domain: str, message: ArchivedMessage) -> defer.Deferred:
        return self._engine.write(APPEND_USER, (), [username, domain] + appendArgs(message)
                                  ).addCallback(lambda _: None)

    def query(self, username: str, domain: str, peer: str | None = None,
              start: float | None = None, end: float | None = None,
              afterId: str | None = None, beforeId: str | None = None,
              ids: Collection[str] | None = None, limit: int | None = 50,
              reverse: bool = False) -> defer.Deferred:
        return runQuery(self._engine, keys.userArchive(keys.account(username, domain)), peer,
                        start, end, afterId, beforeId, ids, limit, reverse)

    def removeOlderThan(self, cutoff: float) -> defer.Deferred:
        return self._engine.write(REMOVE_OLDER, (), ["u:", repr(float(cutoff))]).addCallback(int)

