"""
Tests for L{xmppd.c2s.fast}: the HT-SHA-256 mechanisms driven by a client
written here from draft-schmaus-kitten-sasl-ht-08's formulas (HMAC keyed
with the token text itself), and the XEP-0484 token lifecycle (issue,
rotation, invalidation) over the memory store and a L{Clock}.
"""

import hashlib
import hmac

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from xmppd.c2s.fast import (HT_MECHANISMS, FastTokens, HTSHA256ExprMechanism,
                            HTSHA256NoneMechanism, HTSHA256UniqMechanism, TokenSuccess,
                            dateTime, newToken, offeredHTMechanisms, tokenHash)
from xmppd.c2s.sasl import SASLFailure
from xmppd.core.scram import makeCredentials
from xmppd.storage import MemoryStorage

SECRET = b"s" * 32
DOMAIN = "example.org"
PHONE = "d4565fa7-4d72-4749-b3d3-740edbf87770"
LAPTOP = "laptop"
DAY = 86400


def initiator(username, token, cbData=b""):
    """The client's message, from the draft: authcid NUL HMAC(token, "Initiator" || cb)."""
    proof = hmac.new(token.encode(), b"Initiator" + cbData, hashlib.sha256).digest()
    return username.encode() + b"\0" + proof


def responder(token, cbData=b""):
    return hmac.new(token.encode(), b"Responder" + cbData, hashlib.sha256).digest()


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(1_700_000_000)
    return clock


@pytest.fixture
def setup(clock):
    storage = MemoryStorage()
    storage.users.addUser("juliet", DOMAIN, makeCredentials("x", iterations=2))
    storage.users.addUser("romeo", DOMAIN, makeCredentials("y", iterations=2))
    return storage, FastTokens(storage.fast, 21 * DAY, DAY, clock.seconds)


def mechanism(fast, name="HT-SHA-256-NONE", userAgent=PHONE, bindings=None):
    async def lookup(username):
        return None
    return fast.makeMechanism(name, DOMAIN, userAgent, lookup, SECRET,
                              lambda: bindings or {})


async def login(fast, username, token, name="HT-SHA-256-NONE", userAgent=PHONE,
                bindings=None, cbData=b""):
    return await mechanism(fast, name, userAgent, bindings).start(
        initiator(username, token, cbData))


@pytest_twisted.ensureDeferred
async def test_tokenLogin(setup):
    """A client logs in with the token it was given, and the server proves it knows it too."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet", issued.token)
    assert isinstance(result, TokenSuccess)
    assert result.username == "juliet"
    assert hmac.compare_digest(result.additionalData, responder(issued.token))


@pytest_twisted.ensureDeferred
async def test_bareJIDAuthcid(setup):
    """The authcid may be the bare JID, as with the password mechanisms."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet@example.org", issued.token)
    assert result.username == "juliet"


@pytest_twisted.ensureDeferred
async def test_onlyHashesStored(setup):
    """The store holds the token's SHA-256, never its text; the text is long enough to be hashed by HMAC."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    [stored] = await storage.fast.list("juliet", DOMAIN)
    assert stored.hash == hashlib.sha256(issued.token.encode()).digest()
    assert issued.token.encode() not in repr(stored).encode()
    assert len(issued.token) > 64
    assert (stored.userAgent, stored.mechanism, stored.slot) == (PHONE, "HT-SHA-256-NONE",
                                                                 "new")


def test_tokensAreUnique():
    """Every token is new: 64 random bytes each."""
    assert len({newToken() for _ in range(100)}) == 100


@pytest_twisted.ensureDeferred
async def test_sameFailureForEveryReason(setup, clock):
    """
    An unknown user, a wrong token, a token of another user or another
    client, an expired token and a token for another mechanism all get the
    same not-authorized.
    """
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    other = await fast.afterPasswordLogin("romeo", DOMAIN, PHONE, "HT-SHA-256-NONE")
    forExpr = await fast.afterPasswordLogin("juliet", DOMAIN, LAPTOP, "HT-SHA-256-EXPR")
    attempts = [
        dict(username="nobody", token=issued.token),
        dict(username="juliet", token=newToken()),
        dict(username="juliet", token=other.token),
        dict(username="juliet", token=issued.token, userAgent=LAPTOP),
        dict(username="juliet", token=issued.token, userAgent=None),
        dict(username="juliet", token=forExpr.token, userAgent=LAPTOP),
    ]
    for attempt in attempts:
        with pytest.raises(SASLFailure) as e:
            await login(fast, **attempt)
        assert (e.value.condition, e.value.text) == ("not-authorized", None), attempt
    clock.advance(21 * DAY)
    with pytest.raises(SASLFailure) as e:
        await login(fast, "juliet", issued.token)
    assert (e.value.condition, e.value.text) == ("not-authorized", None)


@pytest_twisted.ensureDeferred
async def test_sameWorkForUnknownUser(setup, monkeypatch):
    """An unknown user costs the same HMACs and comparisons as a known one."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    calls = []
    realCompare = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest",
                        lambda a, b: calls.append(len(a)) or realCompare(a, b))
    for username in ("juliet", "nobody"):
        with pytest.raises(SASLFailure):
            await login(fast, username, newToken())
    assert calls == [32, 32, 32, 32]


@pytest_twisted.ensureDeferred
async def test_malformed(setup):
    """An initial response that is not authcid NUL proof, or none at all, is malformed."""
    storage, fast = setup
    for data in (None, b"", b"juliet", b"juliet\0", b"\0abc", b"\xff\0abc"):
        with pytest.raises(SASLFailure) as e:
            await mechanism(fast).start(data)
        assert e.value.condition == "malformed-request"


@pytest_twisted.ensureDeferred
async def test_channelBinding(setup):
    """HT-SHA-256-EXPR mixes the tls-exporter data in both ways; another connection's fails."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-EXPR")
    bindings = {"tls-exporter": b"E" * 32}
    result = await login(fast, "juliet", issued.token, "HT-SHA-256-EXPR", bindings=bindings,
                         cbData=b"E" * 32)
    assert result.additionalData == responder(issued.token, b"E" * 32)
    with pytest.raises(SASLFailure) as e:
        await login(fast, "juliet", issued.token, "HT-SHA-256-EXPR", bindings=bindings,
                    cbData=b"F" * 32)
    assert e.value.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_bindingMissing(setup):
    """A channel-binding HT mechanism on a connection without that binding is refused."""
    storage, fast = setup
    with pytest.raises(SASLFailure) as e:
        await login(fast, "juliet", newToken(), "HT-SHA-256-UNIQ",
                    bindings={"tls-exporter": b"E" * 32})
    assert e.value.condition == "malformed-request"


def test_offered():
    """HT-SHA-256-NONE always; the binding ones where the connection has their binding."""
    assert offeredHTMechanisms({}) == ["HT-SHA-256-NONE"]
    assert offeredHTMechanisms({"tls-exporter": b"x"}) == ["HT-SHA-256-EXPR",
                                                           "HT-SHA-256-NONE"]
    assert offeredHTMechanisms({"tls-unique": b"x"}) == ["HT-SHA-256-UNIQ",
                                                         "HT-SHA-256-NONE"]
    assert HT_MECHANISMS["HT-SHA-256-NONE"] is HTSHA256NoneMechanism
    assert HTSHA256ExprMechanism.plus and HTSHA256UniqMechanism.plus
    assert not HTSHA256NoneMechanism.plus


def test_checkRequest():
    """A token request naming no mechanism, one not offered, or without a user agent is refused."""
    offered = offeredHTMechanisms({})
    FastTokens.checkRequest("HT-SHA-256-NONE", PHONE, offered)
    for mechanism, userAgent, condition in (
            (None, PHONE, "malformed-request"),
            ("HT-SHA-256-EXPR", PHONE, "invalid-mechanism"),
            ("SCRAM-SHA-1", PHONE, "invalid-mechanism"),
            ("HT-SHA-256-NONE", None, "malformed-request")):
        with pytest.raises(SASLFailure) as e:
            FastTokens.checkRequest(mechanism, userAgent, offered)
        assert e.value.condition == condition


# The lifecycle (XEP-0484 §3.5, §3.6, §5.1).

@pytest_twisted.ensureDeferred
async def test_expiry(setup, clock):
    """A token's expiry is the lifetime from now, in XEP-0082 form."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    assert issued.expiry == clock.seconds() + 21 * DAY
    assert issued.expiryText == "2023-12-05T22:13:20Z"
    assert dateTime(0) == "1970-01-01T00:00:00Z"


@pytest_twisted.ensureDeferred
async def test_noTokenWithoutRequest(setup):
    """A password login gets no token unless it asked, nor without a user agent."""
    storage, fast = setup
    assert await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, None) is None
    assert await fast.afterPasswordLogin("juliet", DOMAIN, None, "HT-SHA-256-NONE") is None
    assert await storage.fast.list("juliet", DOMAIN) == []


@pytest_twisted.ensureDeferred
async def test_firstUsePromotes(setup):
    """The first use of a new token makes it current; a young token is not rotated."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet", issued.token)
    assert await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token) is None
    [stored] = await storage.fast.list("juliet", DOMAIN)
    assert stored.slot == "current" and stored.hash == tokenHash(issued.token)


@pytest_twisted.ensureDeferred
async def test_rotation(setup, clock):
    """
    A token older than fast_rotate_after gets a successor; both work until
    the successor is used, then only the successor does.
    """
    storage, fast = setup
    first = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet", first.token)
    await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token)
    clock.advance(DAY)
    result = await login(fast, "juliet", first.token)
    second = await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token)
    assert second is not None and second.token != first.token
    # The answer carrying the second token was lost: the first still works.
    result = await login(fast, "juliet", first.token)
    assert result.token.hash == tokenHash(first.token)
    # That login rotated again, replacing the unused second token.
    third = await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token)
    with pytest.raises(SASLFailure):
        await login(fast, "juliet", second.token)
    result = await login(fast, "juliet", third.token)
    assert await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token) is None
    with pytest.raises(SASLFailure):
        await login(fast, "juliet", first.token)
    assert [t.slot for t in await storage.fast.list("juliet", DOMAIN)] == ["current"]


@pytest_twisted.ensureDeferred
async def test_requestWhileUsingToken(setup):
    """A token login that also requests a token gets one at once, for the mechanism requested."""
    storage, fast = setup
    first = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet", first.token)
    second = await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token,
                                        requested="HT-SHA-256-EXPR")
    [current, new] = await storage.fast.list("juliet", DOMAIN)
    assert (new.hash, new.mechanism) == (tokenHash(second.token), "HT-SHA-256-EXPR")
    assert current.hash == tokenHash(first.token)


@pytest_twisted.ensureDeferred
async def test_invalidate(setup, clock):
    """
    invalidate='true' ends the token at once and gives no new one, even when
    due for rotation, unless one was requested too (XEP-0484 §3.6).
    """
    storage, fast = setup
    first = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    clock.advance(2 * DAY)
    result = await login(fast, "juliet", first.token)
    assert await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token,
                                      invalidate=True) is None
    with pytest.raises(SASLFailure):
        await login(fast, "juliet", first.token)
    second = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    result = await login(fast, "juliet", second.token)
    third = await fast.afterTokenLogin("juliet", DOMAIN, PHONE, result.token,
                                       invalidate=True, requested="HT-SHA-256-NONE")
    assert [t.hash for t in await storage.fast.list("juliet", DOMAIN)] == [
        tokenHash(third.token)]


@pytest_twisted.ensureDeferred
async def test_replayAfterRevocation(setup):
    """A token revoked (xmppctl fast revoke) or invalidated by a new password no longer logs in."""
    storage, fast = setup
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    await storage.fast.revoke("juliet", DOMAIN, PHONE)
    with pytest.raises(SASLFailure):
        await login(fast, "juliet", issued.token)
    issued = await fast.afterPasswordLogin("juliet", DOMAIN, PHONE, "HT-SHA-256-NONE")
    await storage.users.setCredentials("juliet", DOMAIN, makeCredentials("z", iterations=2))
    with pytest.raises(SASLFailure):
        await login(fast, "juliet", issued.token)
