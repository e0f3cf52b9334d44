# -*- test-case-name: tests.test_storage,tests.test_storage_pubsub -*-
"""
The Redis store of accounts (L{IUserStore}): the account index (a sorted
set of every account, one per domain) and a hash of SCRAM credentials per
account (L{xmppd.storage.redis.keys}).

Removing an account is one script: its credentials, roster, data, offline
messages, archive, PEP service, and its subscriptions and affiliations
everywhere go in one atomic step, as SQLite's cascades do in one
transaction.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from twisted.internet import defer
from zope.interface import implementer

from xmppd.core.scram import ScramCredential
from xmppd.storage.interfaces import IUserStore
from xmppd.storage.redis import keys
from xmppd.storage.redis.archive import ARCHIVE_LUA
from xmppd.storage.redis.engine import RedisEngine, Script
from xmppd.storage.redis.pubsub import PUBSUB_LUA

ADD_USER = Script("addUser", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
if userExists(user, domain) then
  return redis.error_reply("USEREXISTS " .. user .. "@" .. domain)
end
redis.call("ZADD", kUsers(), 0, user .. "\0" .. domain)
redis.call("ZADD", kDomain(domain), 0, user)
local acct = user .. "@" .. domain
for i = 3, #ARGV, 2 do
  redis.call("HSET", kCred(acct), ARGV[i], ARGV[i + 1])
end
return 1
""")

SET_CREDENTIALS = Script("setCredentials", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
local acct = user .. "@" .. domain
-- A stored credential dropped or changed is a new password: the FAST
-- tokens go (credentialsChanged); only added keys keep them.
local new = {}
for i = 3, #ARGV, 2 do new[ARGV[i]] = ARGV[i + 1] end
local old = redis.call("HGETALL", kCred(acct))
for i = 1, #old, 2 do
  if new[old[i]] ~= old[i + 1] then
    redis.call("DEL", kFast(acct))
    break
  end
end
redis.call("DEL", kCred(acct))
for i = 3, #ARGV, 2 do
  redis.call("HSET", kCred(acct), ARGV[i], ARGV[i + 1])
end
return 1
""")

GET_CREDENTIALS = Script("getCredentials", keys.LUA + r"""
local user, domain = ARGV[1], ARGV[2]
if not userExists(user, domain) then return false end
return redis.call("HGETALL", kCred(user .. "@" .. domain))
""")

USER_EXISTS = Script("userExists", keys.LUA + r"""
return userExists(ARGV[1], ARGV[2]) and 1 or 0
""")

LIST_USERS = Script("listUsers", keys.LUA + r"""
if ARGV[1] == "" then return redis.call("ZRANGE", kUsers(), 0, -1) end
return redis.call("ZRANGE", kDomain(ARGV[2]), 0, -1)
""")

#: Lua: forget everything of the account C{user@domain}; used by removal.
FORGET_ACCOUNT_LUA = r"""
local function forgetAccount(user, domain)
  local acct = user .. "@" .. domain
  redis.call("ZREM", kUsers(), user .. "\0" .. domain)
  redis.call("ZREM", kDomain(domain), user)
  redis.call("DEL", kCred(acct), kRoster(acct), kRosterVer(acct), kData(acct), kOffline(acct),
             kFast(acct))
  dropArchive("u:" .. acct)
  removeService(acct)
  removeEntity(acct)
end
"""

REMOVE_USER = Script("removeUser", keys.LUA + ARCHIVE_LUA + PUBSUB_LUA + FORGET_ACCOUNT_LUA + r"""
local user, domain = ARGV[1], ARGV[2]
local e = requireUser(user, domain) if e then return e end
forgetAccount(user, domain)
return 1
""")


def dumpCredential(credential: ScramCredential) -> str:
    """One credential as JSON text (the byte strings in base64)."""
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return json.dumps([b64(credential.salt), credential.iterations,
                       b64(credential.storedKey), b64(credential.serverKey)])


def loadCredential(text: str) -> ScramCredential:
    salt, iterations, storedKey, serverKey = json.loads(text)
    return ScramCredential(base64.b64decode(salt), int(iterations),
                           base64.b64decode(storedKey), base64.b64decode(serverKey))


def credentialArgs(credentials: Mapping[str, ScramCredential]) -> list[str]:
    """C{mechanism, JSON, mechanism, JSON, ...} for the scripts."""
    args = []
    for mechanism, credential in credentials.items():
        args += [mechanism, dumpCredential(credential)]
    return args


@implementer(IUserStore)
class RedisUserStore:
    """Accounts in the account index and one credentials hash each."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def addUser(self, username: str, domain: str,
                credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        return self._engine.write(ADD_USER, (), [username, domain]
                                  + credentialArgs(credentials)).addCallback(lambda _: None)

    def getCredentials(self, username: str, domain: str) -> defer.Deferred:
        d = self._engine.read(GET_CREDENTIALS, (), [username, domain])
        return d.addCallback(_credentialsFromReply)

    def setCredentials(self, username: str, domain: str,
                       credentials: Mapping[str, ScramCredential]) -> defer.Deferred:
        return self._engine.write(SET_CREDENTIALS, (), [username, domain]
                                  + credentialArgs(credentials)).addCallback(lambda _: None)

    def removeUser(self, username: str, domain: str) -> defer.Deferred:
        return self._engine.write(REMOVE_USER, (), [username, domain]).addCallback(
            lambda _: None)

    def userExists(self, username: str, domain: str) -> defer.Deferred:
        return self._engine.read(USER_EXISTS, (), [username, domain]).addCallback(
            lambda reply: bool(int(reply)))

    def listUsers(self, domain: str | None = None) -> defer.Deferred:
        if domain is None:
            d = self._engine.read(LIST_USERS, (), ["", ""])
            # Sorted by "user NUL domain": by username, then domain (NUL
            # sorts first), in byte order, which is code point order.
            return d.addCallback(lambda reply: [tuple(m.split("\0", 1)) for m in reply])
        d = self._engine.read(LIST_USERS, (), ["domain", domain])
        return d.addCallback(lambda reply: [(username, domain) for username in reply])


def _credentialsFromReply(reply) -> dict[str, ScramCredential] | None:
    if reply is None:
        return None
    return {reply[i]: loadCredential(reply[i + 1]) for i in range(0, len(reply), 2)}
