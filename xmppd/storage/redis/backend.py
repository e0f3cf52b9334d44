# -*- test-case-name: tests.test_storage,tests.test_storage_issue5,tests.test_storage_rooms,tests.test_storage_pubsub,tests.test_storage_redis -*-
"""
The shared storage backend for clusters: every store on one Redis
(L{xmppd.storage.redis.engine}), keys as L{xmppd.storage.redis.keys} lists
them.  This module is the only one that knows all the stores, and does the
one operation that spans them, L{RedisStorage.importAccounts}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from xmppd.config.redisurl import RedisAddress
from xmppd.storage.interfaces import IStorage
from xmppd.storage.redis import keys
from xmppd.storage.redis.accountdata import RedisAccountDataStore
from xmppd.storage.redis.accounts import RedisUserStore, credentialArgs
from xmppd.storage.redis.archive import RedisArchiveStore
from xmppd.storage.redis.engine import RedisEngine, Script
from xmppd.storage.redis.fast import RedisFastTokenStore
from xmppd.storage.redis.offline import RedisOfflineStore
from xmppd.storage.redis.pubsub import PUBSUB_LUA, RedisPubSubStore, dumpItem, dumpsDict
from xmppd.storage.redis.rooms import RedisRoomStore
from xmppd.storage.redis.rosters import RedisRosterStore, dumpItem as dumpRosterItem

# Numbers for the imported PEP nodes and their items, taken before the
# import (lost if it fails, as SQLite's AUTOINCREMENT ids are).
ALLOCATE = Script("allocate", keys.LUA + r"""
local nodes = redis.call("INCRBY", P .. "ps:nextnode", ARGV[1])
local seqs = redis.call("INCRBY", P .. "ps:seq", ARGV[2])
return {nodes, seqs}
""")

# ARGV[1]: JSON {"accounts": [[user, domain], ...], "ops": [[command, arg, ...], ...]}.
IMPORT = Script("importAccounts", keys.LUA + PUBSUB_LUA + r"""
local batch = cjson.decode(ARGV[1])
local seen = {}
for _, account in ipairs(batch.accounts) do
  local member = account[1] .. "\0" .. account[2]
  if seen[member] then
    return redis.error_reply("USEREXISTS the same account twice in one import")
  end
  seen[member] = true
  if userExists(account[1], account[2]) then
    return redis.error_reply("USEREXISTS " .. account[1] .. "@" .. account[2])
  end
end
for _, account in ipairs(batch.accounts) do
  removeService(account[1] .. "@" .. account[2])
end
for _, op in ipairs(batch.ops) do redis.call(unpack(op)) end
return 1
""")


@implementer(IStorage)
class RedisStorage(RedisEngine):
    """All stores in one Redis database, at C{address}."""

    def __init__(self, address: RedisAddress, reactor: Any = None, clock: Any = None,
                 unsafe: bool = False) -> None:
        """
        @param unsafe: open even on a Redis that cannot make writes durable
            (C{storage.redis_unsafe}); see L{xmppd.storage.redis.engine}.
        """
        super().__init__(address, clock=clock, unsafe=unsafe, reactor=reactor)
        self.users = RedisUserStore(self)
        self.rosters = RedisRosterStore(self)
        self.accountData = RedisAccountDataStore(self)
        self.offline = RedisOfflineStore(self)
        self.archive = RedisArchiveStore(self)
        self.rooms = RedisRoomStore(self)
        self.pubsub = RedisPubSubStore(self)
        self.fast = RedisFastTokenStore(self)

    def importAccounts(self, records) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._import(list(records)))

    async def _import(self, records) -> None:
        for record in records:
            for node in record.pep:
                node.check()
        nodeCount = sum(len(r.pep) for r in records)
        itemCount = sum(len(node.items) for r in records for node in r.pep)
        lastNode, lastSeq = await self.write(ALLOCATE, (), [nodeCount, itemCount])
        nodeNumbers = iter(range(int(lastNode) - nodeCount + 1, int(lastNode) + 1))
        seqs = iter(range(int(lastSeq) - itemCount + 1, int(lastSeq) + 1))
        created = repr(self.seconds())
        ops: list[list] = []
        for r in records:
            acct = keys.account(r.username, r.domain)
            ops.append(["ZADD", keys.USERS, 0, keys.userMember(r.username, r.domain)])
            ops.append(["ZADD", keys.domainUsers(r.domain), 0, r.username])
            credentials = credentialArgs(r.credentials)
            ops += _chunked("HSET", keys.credentials(acct), credentials)
            if r.roster:
                fields = []
                for item in r.roster:
                    fields += [item.jid, dumpRosterItem(item)]
                ops += _chunked("HSET", keys.roster(acct), fields)
                ops.append(["SET", keys.rosterVersion(acct), 1])
            if r.data:
                fields = []
                for key, value in r.data.items():
                    fields += [key, value]
                ops += _chunked("HSET", keys.data(acct), fields)
            for node in r.pep:
                ops += _nodeOps(acct, node, str(next(nodeNumbers)), seqs, created)
        await self.write(IMPORT, (), [json.dumps({"accounts": [[r.username, r.domain]
                                                               for r in records],
                                                  "ops": ops}, ensure_ascii=False)])


def _chunked(command: str, key: str, fields: list) -> list[list]:
    """C{command key field value ...} as commands of at most 1000 fields and values each."""
    return [[command, key] + fields[i:i + 1000] for i in range(0, len(fields), 1000)]


def _nodeOps(service: str, record, number: str, seqs, created: str) -> list[list]:
    """The commands creating one imported PEP node as C{number}."""
    prefix = keys.PREFIX + "ps:"
    ops = [["HSET", keys.pubsubNodes(service), record.node, number],
           ["HSET", prefix + "node:" + number, "service", service, "node", record.node,
            "config", dumpsDict(record.config), "created", created]]
    affiliations = {service: "owner", **record.affiliations}
    for jid, affiliation in affiliations.items():
        ops.append(["HSET", prefix + "aff:" + number, jid, affiliation])
        ops.append(["SADD", prefix + "entity:" + jid.split("/", 1)[0], number])
    for sub in record.subscriptions:
        ops.append(["HSET", prefix + "subs:" + number, f"{sub.jid}\0{sub.subid}",
                    json.dumps([sub.state, sub.options], ensure_ascii=False)])
        ops.append(["SADD", prefix + "entity:" + sub.jid.split("/", 1)[0], number])
    for item in record.items:
        ops.append(["ZADD", prefix + "order:" + number, next(seqs), str(item.id)])
        ops.append(["HSET", prefix + "items:" + number, str(item.id), dumpItem(item)])
    return ops
