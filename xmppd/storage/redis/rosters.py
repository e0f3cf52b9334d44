# -*- test-case-name: tests.test_storage -*-
"""
The Redis store of rosters (L{IRosterStore}): one hash per account, contact
bare JID to the item as JSON, and a counter for the roster version (RFC
6121 §2.6), changed together by one script.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import IRosterStore, Roster, RosterItem
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

GET_ROSTER = Script("getRoster", keys.LUA + r"""
local acct = ARGV[1]
return {redis.call("GET", kRosterVer(acct)) or "0", redis.call("HGETALL", kRoster(acct))}
""")

GET_ITEM = Script("getRosterItem", keys.LUA + r"""
return redis.call("HGET", kRoster(ARGV[1]), ARGV[2])
""")

# ARGV: user, domain, jid, item JSON ("" removes the item).
CHANGE = Script("changeRoster", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
local acct = user .. "@" .. domain
if ARGV[4] == "" then
  redis.call("HDEL", kRoster(acct), ARGV[3])
else
  redis.call("HSET", kRoster(acct), ARGV[3], ARGV[4])
end
return redis.call("INCR", kRosterVer(acct))
""")


def dumpItem(item: RosterItem) -> str:
    fields = asdict(item)
    fields["groups"] = list(item.groups)
    return json.dumps(fields)


def loadItem(text: str) -> RosterItem:
    fields = json.loads(text)
    fields["groups"] = tuple(fields.get("groups", ()))
    return RosterItem(**fields)


@implementer(IRosterStore)
class RedisRosterStore:
    """Rosters in one hash per account and a version counter."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def getRoster(self, username: str, domain: str) -> defer.Deferred:
        d = self._engine.read(GET_ROSTER, (), [keys.account(username, domain)])
        return d.addCallback(_rosterFromReply)

    def getItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        d = self._engine.read(GET_ITEM, (), [keys.account(username, domain), jid])
        return d.addCallback(lambda text: None if text is None else loadItem(text))

    def setItem(self, username: str, domain: str, item: RosterItem) -> defer.Deferred:
        try:
            text = dumpItem(item)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._engine.write(CHANGE, (), [username, domain, item.jid, text]).addCallback(int)

    def removeItem(self, username: str, domain: str, jid: str) -> defer.Deferred:
        return self._engine.write(CHANGE, (), [username, domain, jid, ""]).addCallback(int)


def _rosterFromReply(reply) -> Roster:
    version, flat = reply
    items = {flat[i]: loadItem(flat[i + 1]) for i in range(0, len(flat), 2)}
    return Roster(int(version), items)
