# -*- test-case-name: tests.test_storage_fast -*-
"""
The Redis store of FAST tokens (L{IFastTokenStore}, XEP-0484): one hash per
account, field C{"USERAGENT NUL SLOT"}, value the JSON C{[mechanism,
SHA-256 in base64, issued, expiry]}: never the token itself.  Account
removal and a password change clear it (L{xmppd.storage.redis.accounts}).
"""

from __future__ import annotations

import base64
import json

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import FAST_SLOTS, FastToken, IFastTokenStore
from xmppd.storage.redis import keys
from xmppd.storage.redis.engine import RedisEngine, Script

ISSUE = Script("issueFastToken", keys.LUA + r"""
local e = requireUser(ARGV[1], ARGV[2]) if e then return e end
redis.call("HSET", kFast(ARGV[1] .. "@" .. ARGV[2]), ARGV[3] .. "\0new", ARGV[4])
return 1
""")

GET = Script("getFastTokens", keys.LUA + r"""
local key = kFast(ARGV[1] .. "@" .. ARGV[2])
return {redis.call("HGET", key, ARGV[3] .. "\0new"),
        redis.call("HGET", key, ARGV[3] .. "\0current")}
""")

PROMOTE = Script("promoteFastToken", keys.LUA + r"""
local key = kFast(ARGV[1] .. "@" .. ARGV[2])
local new = redis.call("HGET", key, ARGV[3] .. "\0new")
if not new or cjson.decode(new)[2] ~= ARGV[4] then return 0 end
redis.call("HSET", key, ARGV[3] .. "\0current", new)
redis.call("HDEL", key, ARGV[3] .. "\0new")
return 1
""")

REVOKE = Script("revokeFastTokens", keys.LUA + r"""
local key = kFast(ARGV[1] .. "@" .. ARGV[2])
local all = redis.call("HGETALL", key)
local removed = 0
for i = 1, #all, 2 do
  local agent = string.match(all[i], "^(.*)%z[a-z]+$")
  if (ARGV[3] == "" or agent == ARGV[4])
     and (ARGV[5] == "" or cjson.decode(all[i + 1])[2] == ARGV[6]) then
    redis.call("HDEL", key, all[i])
    removed = removed + 1
  end
end
return removed
""")

LIST = Script("listFastTokens", keys.LUA + r"""
return redis.call("HGETALL", kFast(ARGV[1] .. "@" .. ARGV[2]))
""")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _load(userAgent: str, slot: str, text: str) -> FastToken:
    mechanism, hash, issued, expiry = json.loads(text)
    return FastToken(userAgent, mechanism, base64.b64decode(hash), float(issued),
                     float(expiry), slot)


@implementer(IFastTokenStore)
class RedisFastTokenStore:
    """FAST tokens in one hash per account."""

    def __init__(self, engine: RedisEngine) -> None:
        self._engine = engine

    def issue(self, username: str, domain: str, token: FastToken) -> defer.Deferred:
        value = json.dumps([token.mechanism, _b64(token.hash), float(token.issued),
                            float(token.expiry)])
        return self._engine.write(ISSUE, (), [username, domain, token.userAgent, value]
                                  ).addCallback(lambda _: None)

    def get(self, username: str, domain: str, userAgent: str) -> defer.Deferred:
        d = self._engine.read(GET, (), [username, domain, userAgent])
        return d.addCallback(lambda reply: [
            _load(userAgent, slot, text) for slot, text in zip(("new", "current"), reply)
            if text is not None])

    def promote(self, username: str, domain: str, userAgent: str,
                hash: bytes) -> defer.Deferred:
        d = self._engine.write(PROMOTE, (), [username, domain, userAgent, _b64(hash)])
        return d.addCallback(lambda reply: bool(int(reply)))

    def revoke(self, username: str, domain: str, userAgent: str | None = None,
               hash: bytes | None = None) -> defer.Deferred:
        args = [username, domain,
                "" if userAgent is None else "1", userAgent or "",
                "" if hash is None else "1", "" if hash is None else _b64(hash)]
        return self._engine.write(REVOKE, (), args).addCallback(int)

    def list(self, username: str, domain: str) -> defer.Deferred:
        def loaded(flat):
            tokens = []
            for i in range(0, len(flat), 2):
                userAgent, _, slot = flat[i].rpartition("\0")
                tokens.append(_load(userAgent, slot, flat[i + 1]))
            return sorted(tokens, key=lambda t: (t.userAgent, FAST_SLOTS.index(t.slot)))
        return self._engine.read(LIST, (), [username, domain]).addCallback(loaded)
