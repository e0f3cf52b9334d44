# -*- test-case-name: tests.test_storage_redis -*-
"""
Every key the C{redis} storage backend writes, in one place.

Everything lives under C{xmppd:s:} (the cluster uses C{xmppd:c:} and
C{xmppd:lease:}, so they never collide).  A key has one fixed prefix and at
most one variable part, at its end; where two are needed (an archive's
index per peer) they are separated by a space, which neither a bare JID's
localpart nor a domain can contain.  An account is named C{user@domain}
(a localpart cannot contain C{@}); a room's archive C{r:name@service}, an
account's C{u:user@domain}; a publish-subscribe node gets a number when it
is created, and its keys hang off that number, so node names (any text)
never appear inside a key.

The same names are given to the Lua scripts by L{LUA} (a preamble of
functions), so Python and Lua cannot disagree on them.

    key                               type    holds
    xmppd:s:users                     zset    "user NUL domain" (score 0: sorted by name)
    xmppd:s:domain:DOMAIN             zset    usernames of DOMAIN (score 0)
    xmppd:s:cred:ACCT                 hash    mechanism -> JSON [salt, iterations, storedKey, serverKey] (base64)
    xmppd:s:roster:ACCT               hash    contact bare JID -> JSON roster item
    xmppd:s:rosterver:ACCT            string  roster version (INCR)
    xmppd:s:data:ACCT                 hash    key -> value (vCard, private XML, blocklist, ...)
    xmppd:s:fast:ACCT                 hash    "USERAGENT NUL SLOT" -> JSON [mechanism, SHA-256 (base64),
                                              issued, expiry] (FAST tokens, XEP-0484)
    xmppd:s:offline:ACCT              list    "ID STAMP XML", oldest first (RPUSH)
    xmppd:s:offline:nextid            string  offline message ids, never reused (INCR)
    xmppd:s:mam:seq                   string  archive order, for every archive (INCR)
    xmppd:s:mam:order:OWNER           zset    archive id -> seq (archive order)
    xmppd:s:mam:stamp:OWNER           zset    archive id -> stamp (time ranges, retention)
    xmppd:s:mam:msg:OWNER             hash    archive id -> the serialized <message/>
    xmppd:s:mam:meta:OWNER            hash    archive id -> "SEQ STAMP PEER"
    xmppd:s:mam:peer:OWNER PEER       zset    archive id -> seq, the messages with PEER
    xmppd:s:mam:peers:OWNER           set     the PEERs that have such a zset
    xmppd:s:mam:owners                set     every OWNER with an archive (retention)
    xmppd:s:room:SERVICE              hash    room name -> JSON [state, updated]
    xmppd:s:ps:nextnode               string  node numbers (INCR)
    xmppd:s:ps:seq                    string  item order, for every node (INCR)
    xmppd:s:ps:nodes:SERVICE          hash    node name -> node number N
    xmppd:s:ps:node:N                 hash    service, node, config (JSON), created
    xmppd:s:ps:items:N                hash    item id -> JSON [payload, publisher, published]
    xmppd:s:ps:order:N                zset    item id -> seq (newest last)
    xmppd:s:ps:subs:N                 hash    "JID NUL SUBID" -> JSON [state, options]
    xmppd:s:ps:aff:N                  hash    bare JID -> affiliation
    xmppd:s:ps:entity:BAREJID         set     node numbers where BAREJID (or a full JID of it)
                                              is subscribed or affiliated (account removal)
"""

from __future__ import annotations

PREFIX = "xmppd:s:"

USERS = PREFIX + "users"
OFFLINE_IDS = PREFIX + "offline:nextid"
MAM_SEQ = PREFIX + "mam:seq"
MAM_OWNERS = PREFIX + "mam:owners"
PS_NEXTNODE = PREFIX + "ps:nextnode"
PS_SEQ = PREFIX + "ps:seq"


def account(username: str, domain: str) -> str:
    return f"{username}@{domain}"


def userMember(username: str, domain: str) -> str:
    """The member of L{USERS}: sorts by username, then domain."""
    return f"{username}\0{domain}"


def domainUsers(domain: str) -> str:
    return PREFIX + "domain:" + domain


def credentials(acct: str) -> str:
    return PREFIX + "cred:" + acct


def roster(acct: str) -> str:
    return PREFIX + "roster:" + acct


def rosterVersion(acct: str) -> str:
    return PREFIX + "rosterver:" + acct


def data(acct: str) -> str:
    return PREFIX + "data:" + acct


def fastTokens(acct: str) -> str:
    return PREFIX + "fast:" + acct


def offline(acct: str) -> str:
    return PREFIX + "offline:" + acct


def userArchive(acct: str) -> str:
    """The OWNER of an account's archive."""
    return "u:" + acct


def roomArchive(service: str, name: str) -> str:
    """The OWNER of a room's archive."""
    return f"r:{name}@{service}"


def rooms(service: str) -> str:
    return PREFIX + "room:" + service


def pubsubNodes(service: str) -> str:
    return PREFIX + "ps:nodes:" + service


#: Lua functions naming the same keys, put before every script that needs them.
LUA = r"""
local P = "%(prefix)s"
local function kUsers() return P .. "users" end
local function kDomain(d) return P .. "domain:" .. d end
local function kCred(a) return P .. "cred:" .. a end
local function kRoster(a) return P .. "roster:" .. a end
local function kRosterVer(a) return P .. "rosterver:" .. a end
local function kData(a) return P .. "data:" .. a end
local function kOffline(a) return P .. "offline:" .. a end
local function kFast(a) return P .. "fast:" .. a end
local function kMamOrder(o) return P .. "mam:order:" .. o end
local function kMamStamp(o) return P .. "mam:stamp:" .. o end
local function kMamMsg(o) return P .. "mam:msg:" .. o end
local function kMamMeta(o) return P .. "mam:meta:" .. o end
local function kMamPeer(o, peer) return P .. "mam:peer:" .. o .. " " .. peer end
local function kMamPeers(o) return P .. "mam:peers:" .. o end
local function kRooms(s) return P .. "room:" .. s end
local function kPsNodes(s) return P .. "ps:nodes:" .. s end
local function kPsNode(n) return P .. "ps:node:" .. n end
local function kPsItems(n) return P .. "ps:items:" .. n end
local function kPsOrder(n) return P .. "ps:order:" .. n end
local function kPsSubs(n) return P .. "ps:subs:" .. n end
local function kPsAff(n) return P .. "ps:aff:" .. n end
local function kPsEntity(j) return P .. "ps:entity:" .. j end
-- Commands taking many arguments, in chunks: Lua's unpack() has a limit.
local function callMany(command, key, list)
  local reply = {}
  for first = 1, #list, 1000 do
    local part = redis.call(command, key, unpack(list, first, math.min(first + 999, #list)))
    if type(part) == "table" then
      for _, value in ipairs(part) do reply[#reply + 1] = value end
    end
  end
  return reply
end
local function userExists(user, domain)
  return redis.call("ZSCORE", kUsers(), user .. "\0" .. domain) ~= false
end
local function requireUser(user, domain)
  if not userExists(user, domain) then
    return redis.error_reply("NOSUCHUSER " .. user .. "@" .. domain)
  end
end
""" % {"prefix": PREFIX}
