"""
Tests for the FAST token store of L{xmppd.storage} (XEP-0484), one contract
on every backend: two slots per client, hashes only, and tokens that go
with a password change or the account, then that SQLite keeps them across
a restart and migrates an older file.
"""

import hashlib

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from tests import test_storage
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_storage import CREDENTIALS, DOMAIN, OTHER_CREDENTIALS
from xmppd.core.scram import makeCredentials
from xmppd.storage import NoSuchUser, SQLiteStorage
from xmppd.storage.interfaces import FastToken, IFastTokenStore, IStorage

storage = test_storage.storage

PHONE = "d4565fa7-4d72-4749-b3d3-740edbf87770"
LAPTOP = "laptop\u00e9"


def _token(text: str, userAgent: str = PHONE, expiry: float = 2000.0,
           mechanism: str = "HT-SHA-256-NONE") -> FastToken:
    return FastToken(userAgent, mechanism, hashlib.sha256(text.encode()).digest(),
                     1000.0, expiry)


async def _romeo(storage):
    await storage.users.addUser("romeo", DOMAIN, CREDENTIALS)


def test_providesInterface(storage):
    """Every backend has a FAST token store behind IStorage."""
    assert verifyObject(IStorage, storage)
    assert verifyObject(IFastTokenStore, storage.fast)


@pytest_twisted.ensureDeferred
async def test_issuedTokenIsNew(storage):
    """A token just issued is in its client's "new" slot, as given."""
    await _romeo(storage)
    token = _token("one")
    await storage.fast.issue("romeo", DOMAIN, token)
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [token]
    assert await storage.fast.get("romeo", DOMAIN, LAPTOP) == []
    assert await storage.fast.get("juliet", DOMAIN, PHONE) == []


@pytest_twisted.ensureDeferred
async def test_issueForUnknownAccount(storage):
    """No token is issued for an account that does not exist."""
    with pytest.raises(NoSuchUser):
        await storage.fast.issue("nobody", DOMAIN, _token("one"))
    assert await storage.fast.list("nobody", DOMAIN) == []


@pytest_twisted.ensureDeferred
async def test_unusedTokenReplaced(storage):
    """A second token issued before the first was used replaces it (XEP-0484 §3.5)."""
    await _romeo(storage)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    second = _token("two", expiry=3000.0)
    await storage.fast.issue("romeo", DOMAIN, second)
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [second]


@pytest_twisted.ensureDeferred
async def test_rotation(storage):
    """
    A rotated token leaves the one in use valid until the new one is used
    once; then only the new one is (XEP-0484 §3.5 and §5.1).
    """
    await _romeo(storage)
    first = _token("one")
    await storage.fast.issue("romeo", DOMAIN, first)
    assert await storage.fast.promote("romeo", DOMAIN, PHONE, first.hash)
    second = _token("two", expiry=3000.0)
    await storage.fast.issue("romeo", DOMAIN, second)
    current = FastToken(PHONE, first.mechanism, first.hash, 1000.0, 2000.0, "current")
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [second, current]
    # Using the older token moves nothing.
    assert not await storage.fast.promote("romeo", DOMAIN, PHONE, first.hash)
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [second, current]
    assert await storage.fast.promote("romeo", DOMAIN, PHONE, second.hash)
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [
        FastToken(PHONE, second.mechanism, second.hash, 1000.0, 3000.0, "current")]


@pytest_twisted.ensureDeferred
async def test_revokeOneClient(storage):
    """Revoking one client's tokens leaves the other clients' alone."""
    await _romeo(storage)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.fast.promote("romeo", DOMAIN, PHONE, _token("one").hash)
    await storage.fast.issue("romeo", DOMAIN, _token("two"))
    await storage.fast.issue("romeo", DOMAIN, _token("three", userAgent=LAPTOP))
    assert await storage.fast.revoke("romeo", DOMAIN, PHONE) == 2
    assert [t.userAgent for t in await storage.fast.list("romeo", DOMAIN)] == [LAPTOP]
    assert await storage.fast.revoke("romeo", DOMAIN, PHONE) == 0


@pytest_twisted.ensureDeferred
async def test_revokeOneToken(storage):
    """Revoking by hash removes that token only (a client's invalidate='true')."""
    await _romeo(storage)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.fast.promote("romeo", DOMAIN, PHONE, _token("one").hash)
    await storage.fast.issue("romeo", DOMAIN, _token("two"))
    assert await storage.fast.revoke("romeo", DOMAIN, PHONE, _token("one").hash) == 1
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == [_token("two")]


@pytest_twisted.ensureDeferred
async def test_revokeAll(storage):
    """Revoking without a client removes every token of the account, and only its."""
    await _romeo(storage)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.fast.issue("romeo", DOMAIN, _token("two", userAgent=LAPTOP))
    await storage.fast.issue("juliet", DOMAIN, _token("three"))
    assert await storage.fast.revoke("romeo", DOMAIN) == 2
    assert await storage.fast.list("romeo", DOMAIN) == []
    assert await storage.fast.list("juliet", DOMAIN) == [_token("three")]


@pytest_twisted.ensureDeferred
async def test_listSorted(storage):
    """The list is sorted by client, then slot, the current token first."""
    await _romeo(storage)
    await storage.fast.issue("romeo", DOMAIN, _token("l", userAgent=LAPTOP))
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.fast.promote("romeo", DOMAIN, PHONE, _token("one").hash)
    await storage.fast.issue("romeo", DOMAIN, _token("two"))
    assert [(t.userAgent, t.slot) for t in await storage.fast.list("romeo", DOMAIN)] == [
        (PHONE, "current"), (PHONE, "new"), (LAPTOP, "new")]


@pytest_twisted.ensureDeferred
async def test_passwordChangeRevokes(storage):
    """A new password invalidates every FAST token of the account, and only its."""
    await _romeo(storage)
    await storage.users.addUser("juliet", DOMAIN, CREDENTIALS)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.fast.issue("juliet", DOMAIN, _token("two"))
    await storage.users.setCredentials("romeo", DOMAIN, OTHER_CREDENTIALS)
    assert await storage.fast.list("romeo", DOMAIN) == []
    assert await storage.fast.list("juliet", DOMAIN) == [_token("two")]


@pytest_twisted.ensureDeferred
async def test_addedKeysKeepTokens(storage):
    """
    Credentials that only add keys for another hash (PLAIN upgrading an
    imported account) are no new password: the tokens stay.
    """
    sha1Only = {"SCRAM-SHA-1": CREDENTIALS["SCRAM-SHA-1"]}
    await storage.users.addUser("romeo", DOMAIN, sha1Only)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.users.setCredentials("romeo", DOMAIN, CREDENTIALS)
    assert await storage.fast.list("romeo", DOMAIN) == [_token("one")]
    await storage.users.setCredentials("romeo", DOMAIN, CREDENTIALS)
    assert await storage.fast.list("romeo", DOMAIN) == [_token("one")]


@pytest_twisted.ensureDeferred
async def test_accountRemovalRevokes(storage):
    """Removing an account removes its tokens; a new account of that name has none."""
    await _romeo(storage)
    await storage.fast.issue("romeo", DOMAIN, _token("one"))
    await storage.users.removeUser("romeo", DOMAIN)
    await _romeo(storage)
    assert await storage.fast.list("romeo", DOMAIN) == []
    assert await storage.fast.get("romeo", DOMAIN, PHONE) == []


@pytest_twisted.ensureDeferred
async def test_sqliteKeepsTokens(tmp_path):
    """Tokens written to SQLite are there after the file is opened again."""
    path = str(tmp_path / "xmppd.sqlite")
    store = SQLiteStorage(path)
    await store.open()
    try:
        await store.users.addUser("romeo", DOMAIN, makeCredentials("x", iterations=2))
        await store.fast.issue("romeo", DOMAIN, _token("one"))
    finally:
        await store.close()
    store = SQLiteStorage(path)
    await store.open()
    try:
        assert await store.fast.get("romeo", DOMAIN, PHONE) == [_token("one")]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_sqlitePromotionsShareACommit(tmp_path):
    """The first uses of many clients' tokens at once are written in one transaction."""
    import threading
    from twisted.internet import defer
    store = SQLiteStorage(str(tmp_path / "xmppd.sqlite"))
    await store.open()
    try:
        await store.users.addUser("romeo", DOMAIN, makeCredentials("x", iterations=2))
        agents = ["%08d-4d72-4749-b3d3-740edbf87770" % n for n in range(5)]
        await defer.gatherResults([store.fast.issue("romeo", DOMAIN, _token(a, a))
                                   for a in agents])
        jobs = []
        inThread = store._inThread

        def counting(f, *args):
            jobs.append(f.__name__)
            return inThread(f, *args)

        store._inThread = counting
        release = threading.Event()
        busy = store.runInteraction(lambda connection: release.wait(10))
        promoted = [store.fast.promote("romeo", DOMAIN, a, _token(a, a).hash) for a in agents]
        release.set()
        await busy
        assert await defer.gatherResults(promoted) == [True] * 5
        assert jobs.count("_commitGroup") == 1
        assert [t.slot for a in agents for t in await store.fast.get("romeo", DOMAIN, a)] \
            == ["current"] * 5
    finally:
        await store.close()
