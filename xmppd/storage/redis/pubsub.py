# -*- test-case-name: tests.test_storage_pubsub -*-
"""
The Redis store of publish-subscribe nodes (L{IPubSubStore}, XEP-0060, and
PEP on every account, XEP-0163).

A node gets a number when it is created (C{ps:nodes:SERVICE}: name ->
number), and its record, items, item order, subscriptions and
affiliations are keys of that number (L{xmppd.storage.redis.keys}), so a
node deleted and created again starts empty and node names never appear
inside a key.  Items are ordered by one sequence counter: republishing an
id gives it a new, higher number, so it becomes the newest (XEP-0060
§7.1.2), and trimming to max items happens inside the publish's script.

C{ps:entity:BAREJID} lists the nodes where a JID is subscribed or
affiliated, so removing an account finds its subscriptions without a
scan.  It is added to on every subscription and affiliation and cleaned
when a node goes; an entry left behind by a single unsubscription only
costs removal a look at that node.

L{PUBSUB_LUA} holds what account removal (L{xmppd.storage.redis.accounts})
and import (L{xmppd.storage.redis.backend}) share.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from xmppd.storage.interfaces import (PUBSUB_AFFILIATIONS, PUBSUB_STATES, IPubSubStore,
                                      PubSubItem, PubSubNode, PubSubSubscription)
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

PUBSUB_LUA = r"""
local function bareOf(jid) return (string.match(jid, "^([^/]*)")) end
local function psNode(service, node) return redis.call("HGET", kPsNodes(service), node) end
local function psRequire(service, node)
  local n = psNode(service, node)
  if not n then return nil, redis.error_reply("NOSUCHNODE " .. service .. " node " .. node) end
  return n
end
local function deleteNodeNumber(n)
  for _, f in ipairs(redis.call("HKEYS", kPsSubs(n))) do
    redis.call("SREM", kPsEntity(bareOf(string.match(f, "^([^%z]*)"))), n)
  end
  for _, jid in ipairs(redis.call("HKEYS", kPsAff(n))) do
    redis.call("SREM", kPsEntity(bareOf(jid)), n)
  end
  redis.call("DEL", kPsNode(n), kPsItems(n), kPsOrder(n), kPsSubs(n), kPsAff(n))
end
local function removeService(service)
  local flat = redis.call("HGETALL", kPsNodes(service))
  local names = {}
  for i = 1, #flat, 2 do
    deleteNodeNumber(flat[i + 1])
    names[#names + 1] = flat[i]
  end
  redis.call("DEL", kPsNodes(service))
  return names
end
local function removeEntity(jid)
  local prefix = jid .. "/"
  for _, n in ipairs(redis.call("SMEMBERS", kPsEntity(jid))) do
    redis.call("HDEL", kPsAff(n), jid)
    for _, f in ipairs(redis.call("HKEYS", kPsSubs(n))) do
      local who = string.match(f, "^([^%z]*)")
      if who == jid or string.sub(who, 1, #prefix) == prefix then
        redis.call("HDEL", kPsSubs(n), f)
      end
    end
  end
  redis.call("DEL", kPsEntity(jid))
end
local function psNumbers(service, node)
  if node ~= "" then
    local n = psNode(service, node)
    if not n then return {} end
    return {node, n}
  end
  return redis.call("HGETALL", kPsNodes(service))
end
"""

_LIB = keys.LUA + PUBSUB_LUA

CREATE = Script("createNode", _LIB + r"""
local service, node = ARGV[1], ARGV[2]
if psNode(service, node) then
  return redis.error_reply("NODEEXISTS " .. service .. " node " .. node)
end
local n = redis.call("INCR", P .. "ps:nextnode")
redis.call("HSET", kPsNodes(service), node, n)
redis.call("HSET", kPsNode(n), "service", service, "node", node, "config", ARGV[3],
           "created", ARGV[4])
redis.call("HSET", kPsAff(n), ARGV[5], "owner")
redis.call("SADD", kPsEntity(bareOf(ARGV[5])), n)
return n
""")

GET_NODES = Script("getNodes", _LIB + r"""
local numbers, found = psNumbers(ARGV[1], ARGV[2]), {}
for i = 1, #numbers, 2 do
  local record = redis.call("HMGET", kPsNode(numbers[i + 1]), "config", "created")
  found[#found + 1] = {numbers[i], record[1], record[2]}
end
return found
""")

CONFIGURE = Script("configureNode", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
redis.call("HSET", kPsNode(n), "config", ARGV[3])
return 1
""")

DELETE = Script("deleteNode", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
deleteNodeNumber(n)
redis.call("HDEL", kPsNodes(ARGV[1]), ARGV[2])
return 1
""")

REMOVE_SERVICE = Script("removeService", _LIB + r"""
return removeService(ARGV[1])
""")

# ARGV: service, node, item id, item JSON, max items ("" for no limit).
PUBLISH = Script("publish", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
local seq = redis.call("INCR", P .. "ps:seq")
redis.call("ZADD", kPsOrder(n), seq, ARGV[3])
redis.call("HSET", kPsItems(n), ARGV[3], ARGV[4])
local removed = {}
if ARGV[5] ~= "" then
  local excess = redis.call("ZCARD", kPsOrder(n)) - math.max(tonumber(ARGV[5]), 1)
  if excess > 0 then
    removed = redis.call("ZRANGE", kPsOrder(n), 0, excess - 1)
    callMany("ZREM", kPsOrder(n), removed)
    callMany("HDEL", kPsItems(n), removed)
  end
end
return removed
""")

# ARGV: service, node, max items (-1: all), then the ids wanted, if any, after a
# count in ARGV[4] (-1: every item).
GET_ITEMS = Script("getItems", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
local limit, nids = tonumber(ARGV[3]), tonumber(ARGV[4])
local ids
if nids < 0 then
  if limit == 0 then return {} end
  ids = redis.call("ZREVRANGE", kPsOrder(n), 0, limit < 0 and -1 or limit - 1)
else
  local found, seen = {}, {}
  for i = 5, 4 + nids do
    local seq = not seen[ARGV[i]] and redis.call("ZSCORE", kPsOrder(n), ARGV[i])
    seen[ARGV[i]] = true
    if seq then found[#found + 1] = {tonumber(seq), ARGV[i]} end
  end
  table.sort(found, function(a, b) return a[1] > b[1] end)
  ids = {}
  for i = 1, #found do
    if limit >= 0 and i > limit then break end
    ids[i] = found[i][2]
  end
end
if #ids == 0 then return {} end
local texts = callMany("HMGET", kPsItems(n), ids)
local reply = {}
for i = 1, #ids do reply[#reply + 1] = ids[i] reply[#reply + 1] = texts[i] end
return reply
""")

RETRACT = Script("retract", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
redis.call("HDEL", kPsItems(n), ARGV[3])
return redis.call("ZREM", kPsOrder(n), ARGV[3])
""")

PURGE = Script("purge", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
redis.call("DEL", kPsItems(n), kPsOrder(n))
return 1
""")

# ARGV: service, node, jid, subid, JSON [state, options].
SUBSCRIBE = Script("setSubscription", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
redis.call("HSET", kPsSubs(n), ARGV[3] .. "\0" .. ARGV[4], ARGV[5])
redis.call("SADD", kPsEntity(bareOf(ARGV[3])), n)
return 1
""")

UNSUBSCRIBE = Script("removeSubscription", _LIB + r"""
local n = psNode(ARGV[1], ARGV[2])
if not n then return 0 end
return redis.call("HDEL", kPsSubs(n), ARGV[3] .. "\0" .. ARGV[4])
""")

# ARGV: service, node ("" for all); replies {node, field, value, ...} of
# the subscriptions (which = "subs") or affiliations ("aff").
GET_RELATIONS = Script("getRelations", _LIB + r"""
local numbers, reply = psNumbers(ARGV[1], ARGV[2]), {}
for i = 1, #numbers, 2 do
  local key = ARGV[3] == "subs" and kPsSubs(numbers[i + 1]) or kPsAff(numbers[i + 1])
  local flat = redis.call("HGETALL", key)
  for j = 1, #flat, 2 do
    reply[#reply + 1] = numbers[i]
    reply[#reply + 1] = flat[j]
    reply[#reply + 1] = flat[j + 1]
  end
end
return reply
""")

AFFILIATE = Script("setAffiliation", _LIB + r"""
local n, e = psRequire(ARGV[1], ARGV[2]) if e then return e end
if ARGV[4] == "none" then
  redis.call("HDEL", kPsAff(n), ARGV[3])
else
  redis.call("HSET", kPsAff(n), ARGV[3], ARGV[4])
  redis.call("SADD", kPsEntity(bareOf(ARGV[3])), n)
end
return 1
""")

REMOVE_ENTITY = Script("removeEntity", _LIB + r"""
removeEntity(ARGV[1])
return 1
""")


def dumpsDict(value: Any) -> str:
    if not isinstance(value, dict):
        raise TypeError("pubsub configurations and options are dicts")
    return json.dumps(value, ensure_ascii=False)


def dumpItem(item: PubSubItem) -> str:
    return json.dumps([str(item.payload), str(item.publisher), float(item.published)])


def _ok(_) -> None:
    return None


@implementer(IPubSubStore)
class RedisPubSubStore:
    """Publish-subscribe nodes, one number each, every write one script."""

    log = Logger()

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    # -- nodes -----------------------------------------------------------------

    def createNode(self, service: str, node: str, config: dict, owner: str) -> defer.Deferred:
        try:
            text = dumpsDict(config)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        created = self._engine.seconds()
        d = self._engine.write(CREATE, (), [service, node, text, repr(created), owner])
        return d.addCallback(lambda _: PubSubNode(service, node, json.loads(text), created))

    def getNode(self, service: str, node: str) -> defer.Deferred:
        d = self._engine.read(GET_NODES, (), [service, node])
        return d.addCallback(lambda rows: _node(service, rows[0]) if rows else None)

    def listNodes(self, service: str) -> defer.Deferred:
        d = self._engine.read(GET_NODES, (), [service, ""])
        return d.addCallback(lambda rows: sorted((_node(service, row) for row in rows),
                                                 key=lambda record: record.node))

    def configureNode(self, service: str, node: str, config: dict) -> defer.Deferred:
        try:
            text = dumpsDict(config)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._engine.write(CONFIGURE, (), [service, node, text]).addCallback(_ok)

    def deleteNode(self, service: str, node: str) -> defer.Deferred:
        return self._engine.write(DELETE, (), [service, node]).addCallback(_ok)

    def removeService(self, service: str) -> defer.Deferred:
        return self._engine.write(REMOVE_SERVICE, (), [service]).addCallback(sorted)

    # -- items -----------------------------------------------------------------

    def publish(self, service: str, node: str, item: PubSubItem,
                maxItems: int | None = None) -> defer.Deferred:
        try:
            text = dumpItem(item)
            limit = "" if maxItems is None else int(maxItems)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._engine.write(PUBLISH, (), [service, node, str(item.id), text, limit]
                                  ).addCallback(list)

    def getItems(self, service: str, node: str, ids=None,
                 maxItems: int | None = None) -> defer.Deferred:
        try:
            wanted = None if ids is None else [str(i) for i in ids]
            limit = -1 if maxItems is None else max(int(maxItems), 0)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        args = [service, node, limit] + ([-1] if wanted is None else [len(wanted)] + wanted)
        d = self._engine.read(GET_ITEMS, (), args)
        return d.addCallback(lambda flat: [_item(flat[i], flat[i + 1])
                                           for i in range(0, len(flat), 2)])

    def retract(self, service: str, node: str, itemId: str) -> defer.Deferred:
        return self._engine.write(RETRACT, (), [service, node, str(itemId)]).addCallback(
            lambda removed: bool(int(removed)))

    def purge(self, service: str, node: str) -> defer.Deferred:
        return self._engine.write(PURGE, (), [service, node]).addCallback(_ok)

    # -- subscriptions and affiliations ----------------------------------------

    def setSubscription(self, subscription: PubSubSubscription) -> defer.Deferred:
        if subscription.state not in PUBSUB_STATES:
            return defer.fail(ValueError(f"not a subscription state: {subscription.state!r}"))
        try:
            options = dumpsDict(subscription.options)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        text = json.dumps([subscription.state, json.loads(options)], ensure_ascii=False)
        return self._engine.write(SUBSCRIBE, (), [
            subscription.service, subscription.node, subscription.jid, subscription.subid,
            text]).addCallback(_ok)

    def removeSubscription(self, service: str, node: str, jid: str,
                           subid: str) -> defer.Deferred:
        return self._engine.write(UNSUBSCRIBE, (), [service, node, jid, subid]).addCallback(
            lambda removed: bool(int(removed)))

    def getSubscriptions(self, service: str, node: str | None = None,
                         jid: str | None = None) -> defer.Deferred:
        d = self._engine.read(GET_RELATIONS, (), [service, node or "", "subs"])

        def subscriptions(flat):
            found = []
            for i in range(0, len(flat), 3):
                who, subid = flat[i + 1].split("\0", 1)
                if jid is None or who == jid:
                    state, options = json.loads(flat[i + 2])
                    found.append(PubSubSubscription(service, flat[i], who, subid, state,
                                                    options))
            found.sort(key=lambda sub: (sub.node, sub.jid, sub.subid))
            return found

        return d.addCallback(subscriptions)

    def setAffiliation(self, service: str, node: str, jid: str,
                       affiliation: str) -> defer.Deferred:
        if affiliation != "none" and affiliation not in PUBSUB_AFFILIATIONS:
            return defer.fail(ValueError(f"not an affiliation: {affiliation!r}"))
        return self._engine.write(AFFILIATE, (), [service, node, jid, affiliation]
                                  ).addCallback(_ok)

    def getAffiliations(self, service: str, node: str | None = None,
                        jid: str | None = None) -> defer.Deferred:
        d = self._engine.read(GET_RELATIONS, (), [service, node or "", "aff"])
        return d.addCallback(lambda flat: sorted(
            (flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)
            if jid is None or flat[i + 1] == jid))

    def removeEntity(self, jid: str) -> defer.Deferred:
        return self._engine.write(REMOVE_ENTITY, (), [jid]).addCallback(_ok)


def _node(service: str, row) -> PubSubNode:
    name, config, created = row
    return PubSubNode(service, name, json.loads(config), float(created))


def _item(id: str, text: str) -> PubSubItem:
    payload, publisher, published = json.loads(text)
    return PubSubItem(id, payload, publisher, float(published))
