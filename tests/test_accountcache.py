"""
Tests for L{xmppd.core.accountcache}: per-account values read from account data,
kept while the account has a session and in a bounded cache otherwise.
"""

import json
from types import SimpleNamespace

from twisted.internet import defer
from twisted.logger import Logger

from xmppd.core.accountcache import AccountDataCache
from xmppd.core.events import AccountEvent
from xmppd.core.hooks import Hooks
from xmppd.core.invalidation import LocalInvalidation
from xmppd.core.jid import parseJID
from xmppd.core.scram import makeCredentials
from xmppd.core.sessions import SessionManager
from xmppd.storage.memory import MemoryStorage
from tests.sessionhelpers import bindNow

DOMAIN = "example.org"
KEY = "words"
JULIET = "juliet@%s" % DOMAIN


def parse(text):
    return [] if text is None else json.loads(text)


class SlowAccountData:
    """Account data that counts reads, and holds them until the test says so."""

    def __init__(self, real):
        self.real = real
        self.reads = []

    def get(self, *args):
        d = defer.Deferred()
        self.reads.append((d, args))
        return d

    def finish(self):
        for d, args in self.reads:
            if not d.called:
                self.real.get(*args).chainDeferred(d)

    def __getattr__(self, name):
        return getattr(self.real, name)


class World:
    """A served domain with what the cache uses of it: hooks, sessions, memory storage."""

    def __init__(self, size=1024):
        self.storage = MemoryStorage()
        for user in ("juliet", "romeo", "nurse"):
            self.storage.users.addUser(user, DOMAIN, makeCredentials("secret"))
        self.hooks = Hooks()
        self.sessions = SessionManager()
        self.domain = SimpleNamespace(domain=DOMAIN, hooks=self.hooks,
                                      sessions=self.sessions, storage=self.storage,
                                      invalidation=LocalInvalidation())
        self.cache = AccountDataCache(self.domain, KEY, parse, list, size=size)
        self.logged = []
        self.cache.log = Logger(observer=self.logged.append)
        self.cache.register()

    def store(self, user, value):
        self.storage.accountData.set(user, DOMAIN, KEY, json.dumps(value))

    def slow(self):
        slow = SlowAccountData(self.storage.accountData)
        self.storage.accountData = slow
        return slow

    def bind(self, jid):
        session = bindNow(self.sessions, parseJID(jid), object())
        self.hooks.notify("session/bound", session)
        return session

    def unbind(self, session):
        self.hooks.notify("session/closed", session)
        self.sessions.unbind(session)

    def load(self, bare):
        results = []
        self.cache.load(parseJID(bare)).addCallback(results.append)
        return results


def test_concurrentLoadsReadOnce():
    """Two loads of one account while its value is read share a single storage read."""
    world = World()
    world.store("juliet", ["a"])
    slow = world.slow()
    first, second = world.load(JULIET), world.load(JULIET)
    assert len(slow.reads) == 1 and first == second == []
    slow.finish()
    assert first == second == [["a"]] and first[0] is second[0]
    assert world.load(JULIET) == [["a"]] and len(slow.reads) == 1


def test_failedReadGivesDefaultNotCached():
    """A read that fails gives every waiter the default, is logged, and is tried again next time."""
    world = World()
    slow = world.slow()
    first, second = world.load(JULIET), world.load(JULIET)
    slow.reads[0][0].errback(RuntimeError("disk on fire"))
    assert first == second == [[]] and first[0] is not second[0]
    assert len(world.logged) == 1 and world.logged[0]["log_failure"].check(RuntimeError)
    assert world.cache.cached(JULIET) is None
    world.load(JULIET)
    assert len(slow.reads) == 2


def test_unparseableGivesDefault():
    """A stored value the parser refuses gives the default, logged and not cached."""
    world = World()
    world.storage.accountData.set("juliet", DOMAIN, KEY, "{not json")
    assert world.load(JULIET) == [[]]
    assert len(world.logged) == 1 and world.cache.cached(JULIET) is None


def test_pinnedWhileOnline():
    """An account's value is read at bind, kept while any session lives, then joins the LRU cache."""
    world = World(size=1)
    world.store("juliet", ["a"])
    balcony = world.bind(JULIET + "/balcony")
    garden = world.bind(JULIET + "/garden")
    assert world.cache.pinned == {JULIET: ["a"]}
    world.cache.keep(parseJID("romeo@" + DOMAIN), ["r"])
    world.cache.keep(parseJID("nurse@" + DOMAIN), ["n"])
    assert world.cache.cached(JULIET) == ["a"]
    world.unbind(balcony)
    assert JULIET in world.cache.pinned
    world.unbind(garden)
    assert world.cache.pinned == {} and list(world.cache.recent) == [JULIET]


def test_rebindTakesFromRecent():
    """An account binding again gets its value back from the LRU cache without a read."""
    world = World()
    world.cache.keep(parseJID(JULIET), ["a"])
    slow = world.slow()
    world.bind(JULIET + "/balcony")
    assert slow.reads == [] and world.cache.pinned == {JULIET: ["a"]}
    assert JULIET not in world.cache.recent


def test_recentBounded():
    """At most C{size} values of accounts without a session stay; the least recently used goes."""
    world = World(size=2)
    for user in ("juliet", "romeo"):
        world.cache.keep(parseJID("%s@%s" % (user, DOMAIN)), [user])
    world.cache.cached(JULIET)
    world.cache.keep(parseJID("nurse@" + DOMAIN), ["nurse"])
    assert list(world.cache.recent) == ["juliet@" + DOMAIN, "nurse@" + DOMAIN]


def test_keepDuringLoadWins():
    """A value kept while a read is on its way is what the read's waiters get."""
    world = World()
    world.store("juliet", ["old"])
    slow = world.slow()
    waiting = world.load(JULIET)
    world.cache.keep(parseJID(JULIET), ["new"])
    slow.finish()
    assert waiting == [["new"]] and world.cache.cached(JULIET) == ["new"]


def test_accountRemovedForgets():
    """A removed account's value is forgotten, pinned or not."""
    world = World()
    world.store("juliet", ["a"])
    world.bind(JULIET + "/balcony")
    world.cache.keep(parseJID("romeo@" + DOMAIN), ["r"])
    world.hooks.notify("account/removed", AccountEvent("juliet", DOMAIN))
    world.hooks.notify("account/removed", AccountEvent("romeo", DOMAIN))
    assert world.cache.pinned == {} and world.cache.recent == {}


def test_otherDomainIgnored():
    """Sessions and removals at another domain on the same node leave the cache alone."""
    world = World()
    slow = world.slow()
    other = world.bind("juliet@other.example/balcony")
    assert slow.reads == [] and world.cache.pinned == {}
    world.cache.keep(parseJID("juliet@other.example"), ["x"])
    world.hooks.notify("account/removed", AccountEvent("juliet", "other.example"))
    world.unbind(other)
    assert world.cache.pinned == {"juliet@other.example": ["x"]}


def test_missedChangesDropEverything():
    """
    When the node may have missed changes made elsewhere, every value goes;
    those of accounts with a session here are read again at once.
    """
    world = World()
    world.store("juliet", ["old"])
    world.bind(JULIET + "/balcony")
    world.cache.keep(parseJID("romeo@" + DOMAIN), ["r"])
    world.store("juliet", ["new"])
    slow = world.slow()
    world.cache.onMissed()
    assert world.cache.cached(JULIET) is None and world.cache.cached("romeo@" + DOMAIN) is None
    assert [args for _, args in slow.reads] == [("juliet", DOMAIN, KEY)]
    slow.finish()
    assert world.cache.pinned == {JULIET: ["new"]}


def test_loadUnderWayWhenMissedNotKept():
    """A read started before the node missed changes answers its caller but is not kept."""
    world = World()
    world.store("juliet", ["maybe stale"])
    slow = world.slow()
    waiting = world.load(JULIET)
    world.cache.onMissed()
    slow.finish()
    assert waiting == [["maybe stale"]] and world.cache.cached(JULIET) is None
    world.load(JULIET)
    assert len(slow.reads) == 2
