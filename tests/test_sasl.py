"""
Tests for L{xmppd.c2s.sasl}: the server side of PLAIN and SCRAM, driven by a
client implemented independently here from RFC 5802's formulas.
"""

import base64
import hashlib
import hmac

import pytest
import pytest_twisted

from xmppd.core import scram
from xmppd.c2s.sasl import (Challenge, PlainMechanism, SASLFailure, ScramSHA1Mechanism,
                        ScramSHA1PlusMechanism, ScramSHA256Mechanism,
                        ScramSHA256PlusMechanism, Success)

SECRET = b"s" * 32
DOMAIN = "example.org"
ACCOUNTS = {"juliet": scram.makeCredentials("r0m30myr0m30")}


async def lookup(username):
    return ACCOUNTS.get(username)


def clientProof(hashName, password, salt, iterations, authMessage):
    salted = hashlib.pbkdf2_hmac(hashName, password.encode(), salt, iterations)
    clientKey = hmac.new(salted, b"Client Key", hashName).digest()
    storedKey = hashlib.new(hashName, clientKey).digest()
    signature = hmac.new(storedKey, authMessage, hashName).digest()
    serverKey = hmac.new(salted, b"Server Key", hashName).digest()
    proof = bytes(a ^ b for a, b in zip(clientKey, signature))
    return proof, hmac.new(serverKey, authMessage, hashName).digest()


async def scramExchange(mechanismClass, username, password, gs2="n,,", tamper=None,
                        bindings=None, clientBinding=b"", lookupWith=lookup):
    if bindings is None:
        mechanism = mechanismClass(DOMAIN, lookupWith, SECRET)
    else:
        mechanism = mechanismClass(DOMAIN, lookupWith, SECRET, lambda: bindings)
    first = "n=%s,r=clientnonce" % username
    challenge = await mechanism.start((gs2 + first).encode())
    assert isinstance(challenge, Challenge)
    serverFirst = challenge.data.decode()
    attrs = dict(part.split("=", 1) for part in serverFirst.split(","))
    salt = base64.b64decode(attrs["s"])
    final = "c=%s,r=%s" % (base64.b64encode(gs2.encode() + clientBinding).decode(),
                           attrs["r"])
    authMessage = ",".join((first, serverFirst, final)).encode()
    proof, serverSignature = clientProof(mechanismClass.hashName, password, salt,
                                         int(attrs["i"]), authMessage)
    if tamper:
        final = tamper(final)
    result = await mechanism.respond(
        (final + ",p=" + base64.b64encode(proof).decode()).encode())
    return result, serverSignature, serverFirst


@pytest.mark.parametrize("mechanism", [ScramSHA1Mechanism, ScramSHA256Mechanism])
@pytest_twisted.ensureDeferred
async def test_scramSuccess(mechanism):
    """The right password succeeds and the server proves it knows the key too."""
    result, serverSignature, _ = await scramExchange(mechanism, "juliet", "r0m30myr0m30")
    assert isinstance(result, Success)
    assert result.username == "juliet"
    assert result.additionalData == b"v=" + base64.b64encode(serverSignature)


@pytest.mark.parametrize("mechanism", [ScramSHA1Mechanism, ScramSHA256Mechanism])
@pytest_twisted.ensureDeferred
async def test_scramWrongPassword(mechanism):
    """A wrong password fails with not-authorized."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(mechanism, "juliet", "wrong")
    assert e.value.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_scramUnknownUserLooksLikeKnown():
    """An unknown user gets a stable, real-looking salt and the same failure."""
    mechanism = ScramSHA256Mechanism(DOMAIN, lookup, SECRET)
    c1 = await mechanism.start(b"n,,n=nobody,r=abc")
    c2 = await ScramSHA256Mechanism(DOMAIN, lookup, SECRET).start(b"n,,n=nobody,r=abc")
    salt1 = dict(p.split("=", 1) for p in c1.data.decode().split(","))["s"]
    salt2 = dict(p.split("=", 1) for p in c2.data.decode().split(","))["s"]
    assert salt1 == salt2
    assert len(base64.b64decode(salt1)) == scram.SALT_BYTES
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256Mechanism, "nobody", "whatever")
    assert e.value.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_scramOtherAuthzid():
    """Asking to act as another user fails with invalid-authzid."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256Mechanism, "juliet", "r0m30myr0m30",
                            gs2="n,a=romeo@example.org,")
    assert e.value.condition == "invalid-authzid"


@pytest_twisted.ensureDeferred
async def test_scramOwnAuthzid():
    """Naming one's own bare JID as authzid is allowed."""
    result, _, _ = await scramExchange(ScramSHA256Mechanism, "juliet", "r0m30myr0m30",
                                       gs2="n,a=juliet@example.org,")
    assert isinstance(result, Success)


@pytest_twisted.ensureDeferred
async def test_scramChannelBindingNeedsPlus():
    """Asking for channel binding on a plain SCRAM mechanism is refused."""
    with pytest.raises(SASLFailure) as e:
        await ScramSHA256Mechanism(DOMAIN, lookup, SECRET).start(
            b"p=tls-unique,,n=juliet,r=abc")
    assert e.value.condition == "malformed-request"


EXPORTER = {"tls-exporter": b"k" * 32}


@pytest.mark.parametrize("mechanism", [ScramSHA1PlusMechanism, ScramSHA256PlusMechanism])
@pytest_twisted.ensureDeferred
async def test_scramPlusSuccess(mechanism):
    """SCRAM-PLUS succeeds when the client binds to the same TLS data as the server."""
    result, _, _ = await scramExchange(mechanism, "juliet", "r0m30myr0m30",
                                       gs2="p=tls-exporter,,", bindings=EXPORTER,
                                       clientBinding=EXPORTER["tls-exporter"])
    assert result.username == "juliet"


@pytest_twisted.ensureDeferred
async def test_scramPlusOtherConnection():
    """A SCRAM-PLUS exchange relayed from another TLS connection (other binding data) fails."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256PlusMechanism, "juliet", "r0m30myr0m30",
                            gs2="p=tls-exporter,,", bindings=EXPORTER,
                            clientBinding=b"m" * 32)
    assert e.value.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_scramPlusUnavailableType():
    """A binding type this connection does not have is refused."""
    with pytest.raises(SASLFailure) as e:
        await ScramSHA256PlusMechanism(DOMAIN, lookup, SECRET, lambda: EXPORTER).start(
            b"p=tls-unique,,n=juliet,r=abc")
    assert e.value.condition == "malformed-request"


@pytest_twisted.ensureDeferred
async def test_scramPlusWithoutBindingFlag():
    """A -PLUS mechanism used without binding (flag n) is refused."""
    with pytest.raises(SASLFailure) as e:
        await ScramSHA256PlusMechanism(DOMAIN, lookup, SECRET, lambda: EXPORTER).start(
            b"n,,n=juliet,r=abc")
    assert e.value.condition == "malformed-request"


@pytest_twisted.ensureDeferred
async def test_scramDowngradeDetected():
    """Flag y (client could bind, thinks we cannot) while we offer binding is a downgrade and fails."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256Mechanism, "juliet", "r0m30myr0m30",
                            gs2="y,,", bindings=EXPORTER)
    assert e.value.condition == "not-authorized"


@pytest_twisted.ensureDeferred
async def test_scramFlagYWithoutBindings():
    """Flag y is fine where the connection offers no binding (no TLS)."""
    result, _, _ = await scramExchange(ScramSHA256Mechanism, "juliet", "r0m30myr0m30",
                                       gs2="y,,", bindings={})
    assert result.username == "juliet"


@pytest_twisted.ensureDeferred
async def test_scramTamperedNonce():
    """A final message with another nonce fails."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256Mechanism, "juliet", "r0m30myr0m30",
                            tamper=lambda final: final.replace("r=clientnonce", "r=x"))
    assert e.value.condition == "not-authorized"


@pytest.mark.parametrize("message", [b"", b"n,,", b"x,,n=juliet,r=a", b"n,,m=ext,n=a,r=b",
                                     b"n,,n=juliet", b"n,,n=ju=liet,r=a"])
@pytest_twisted.ensureDeferred
async def test_scramMalformedFirst(message):
    """Malformed client-first messages fail with malformed-request."""
    with pytest.raises(SASLFailure) as e:
        await ScramSHA1Mechanism(DOMAIN, lookup, SECRET).start(message)
    assert e.value.condition == "malformed-request"


@pytest_twisted.ensureDeferred
async def test_plainSuccess():
    """PLAIN with the right password succeeds."""
    result = await PlainMechanism(DOMAIN, lookup, SECRET).start(b"\0juliet\0r0m30myr0m30")
    assert result == Success("juliet")


@pytest_twisted.ensureDeferred
async def test_plainBareJIDAsUsername():
    """PLAIN accepts the bare JID of the served domain as the username."""
    result = await PlainMechanism(DOMAIN, lookup, SECRET).start(
        b"\0juliet@example.org\0r0m30myr0m30")
    assert result == Success("juliet")


@pytest.mark.parametrize("message,condition", [
    (b"\0juliet\0wrong", "not-authorized"),
    (b"\0nobody\0r0m30myr0m30", "not-authorized"),
    (b"romeo@example.org\0juliet\0r0m30myr0m30", "invalid-authzid"),
    (b"juliet", "malformed-request"),
    (b"\xff\0juliet\0x", "malformed-request"),
])
@pytest_twisted.ensureDeferred
async def test_plainFailures(message, condition):
    """Wrong and unknown accounts fail alike; others' authzids and garbage are refused."""
    with pytest.raises(SASLFailure) as e:
        await PlainMechanism(DOMAIN, lookup, SECRET).start(message)
    assert e.value.condition == condition


@pytest_twisted.ensureDeferred
async def test_plainNoInitialResponse():
    """Without an initial response PLAIN sends an empty challenge first."""
    result = await PlainMechanism(DOMAIN, lookup, SECRET).start(None)
    assert result == Challenge(b"")


@pytest_twisted.ensureDeferred
async def test_plainWithOnlySHA1Credentials():
    """An account imported with only SCRAM-SHA-1 credentials can still log in with PLAIN."""
    sha1Only = {"SCRAM-SHA-1": scram.makeCredentials("old secret")["SCRAM-SHA-1"]}

    async def lookupSHA1(username):
        return sha1Only if username == "nurse" else None

    result = await PlainMechanism(DOMAIN, lookupSHA1, SECRET).start(b"\0nurse\0old secret")
    assert result == Success("nurse")
    with pytest.raises(SASLFailure):
        await PlainMechanism(DOMAIN, lookupSHA1, SECRET).start(b"\0nurse\0wrong")


def sha1OnlyAccount(password="old secret"):
    """A store of one account imported with SCRAM-SHA-1 keys only, and what was saved."""
    stored = {"nurse": {"SCRAM-SHA-1": scram.deriveCredential("sha1", password,
                                                               iterations=5000)}}
    saved = []

    async def lookupStored(username):
        return stored.get(username)

    async def save(username, seen, credentials):
        saved.append((username, seen, credentials))
        stored[username] = credentials

    return stored, saved, lookupStored, save


@pytest_twisted.ensureDeferred
async def test_plainAddsMissingKeys():
    """A PLAIN login of an account with SCRAM-SHA-1 keys only stores SCRAM-SHA-256 keys of the same password, and the SHA-1 keys stay."""
    stored, saved, lookupStored, save = sha1OnlyAccount()
    sha1 = stored["nurse"]["SCRAM-SHA-1"]

    result = await PlainMechanism(DOMAIN, lookupStored, SECRET, save=save).start(
        b"\0nurse\0old secret")

    assert result == Success("nurse")
    [(username, seen, credentials)] = saved
    assert (username, seen) == ("nurse", {"SCRAM-SHA-1": sha1})
    assert credentials["SCRAM-SHA-1"] is sha1
    sha256 = credentials["SCRAM-SHA-256"]
    assert sha256.iterations == 5000
    assert scram.checkPassword("SCRAM-SHA-256", sha256, "old secret")
    result, _, _ = await scramExchange(ScramSHA256Mechanism, "nurse", "old secret",
                                       lookupWith=lookupStored)
    assert result == Success("nurse", result.additionalData)


@pytest_twisted.ensureDeferred
async def test_plainSavesNothingWhenComplete():
    """A PLAIN login of an account with keys for every hash, or with a wrong password, saves nothing."""
    saved = []

    async def save(*args):
        saved.append(args)

    await PlainMechanism(DOMAIN, lookup, SECRET, save=save).start(b"\0juliet\0r0m30myr0m30")
    _, _, lookupStored, saveStored = sha1OnlyAccount()
    with pytest.raises(SASLFailure):
        await PlainMechanism(DOMAIN, lookupStored, SECRET, save=save).start(
            b"\0nurse\0wrong")
    assert saved == []


@pytest.mark.parametrize("mechanism", [ScramSHA256Mechanism, ScramSHA256PlusMechanism])
@pytest_twisted.ensureDeferred
async def test_scramWithoutKeysOfItsHash(mechanism):
    """SCRAM-SHA-256 on an account with SCRAM-SHA-1 keys only fails at once with invalid-mechanism, so clients try another one; SCRAM-SHA-1 works."""
    _, _, lookupStored, _ = sha1OnlyAccount()
    bindings = {"tls-exporter": b"x" * 32}
    gs2 = b"p=tls-exporter,," if mechanism.plus else b"n,,"
    with pytest.raises(SASLFailure) as e:
        await mechanism(DOMAIN, lookupStored, SECRET, lambda: bindings).start(
            gs2 + b"n=nurse,r=clientnonce")
    assert e.value.condition == "invalid-mechanism"
    assert "SCRAM-SHA-256" in e.value.text

    result, _, _ = await scramExchange(ScramSHA1Mechanism, "nurse", "old secret",
                                       lookupWith=lookupStored)
    assert isinstance(result, Success)


@pytest_twisted.ensureDeferred
async def test_scramUnknownUserStillNotAuthorized():
    """An unknown user still gets a challenge and not-authorized, never invalid-mechanism."""
    with pytest.raises(SASLFailure) as e:
        await scramExchange(ScramSHA256Mechanism, "nobody", "guess")
    assert e.value.condition == "not-authorized"


def test_missingCredentials():
    """Only the hashes an account lacks are derived, never fewer iterations than the default."""
    sha1 = scram.deriveCredential("sha1", "pw", iterations=1000)
    missing = scram.missingCredentials("pw", {"SCRAM-SHA-1": sha1})
    assert list(missing) == ["SCRAM-SHA-256"]
    assert missing["SCRAM-SHA-256"].iterations == scram.DEFAULT_ITERATIONS
    assert scram.missingCredentials("pw", scram.makeCredentials("pw")) == {}


# SCRAM downgrade protection (XEP-0474).

def test_downgradeHashOfXEPExample():
    """The hash of XEP-0474's example lists is the example's h= value."""
    from xmppd.c2s.sasl import downgradeHash
    assert downgradeHash("sha1", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
                         ["tls-server-end-point", "tls-exporter"]) == \
        "G6k/rBLDqgOhRRaCuuatSDFkJ08="
    # Without a XEP-0440 list, no %x1F and nothing after it.
    assert downgradeHash("sha256", ["SCRAM-SHA-256", "PLAIN"], None) == \
        base64.b64encode(hashlib.sha256(b"PLAIN\x1eSCRAM-SHA-256").digest()).decode()


@pytest.mark.parametrize("username", ["juliet", "nobody"])
@pytest_twisted.ensureDeferred
async def test_serverFirstCarriesDowngradeHash(username):
    """
    Given what the stream advertised, the server-first message ends with
    h=, for an unknown user too; the client's proof signs it and the login
    succeeds.
    """
    from xmppd.c2s.sasl import downgradeHash
    advertised = (["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"], None)
    mechanism = ScramSHA256Mechanism(DOMAIN, lookup, SECRET, advertised=advertised)
    challenge = await mechanism.start(b"n,,n=%s,r=clientnonce" % username.encode())
    assert challenge.data.decode().endswith(
        ",h=" + downgradeHash("sha256", *advertised))

    class Advertising(ScramSHA256Mechanism):
        def __init__(self, *args, **kwargs):
            ScramSHA256Mechanism.__init__(self, *args, advertised=advertised, **kwargs)

    if username == "juliet":
        result, serverSignature, serverFirst = await scramExchange(
            Advertising, "juliet", "r0m30myr0m30")
        assert isinstance(result, Success)
        assert ",h=" in serverFirst


@pytest_twisted.ensureDeferred
async def test_noDowngradeHashWithoutAdvertised():
    """A mechanism not told what was advertised sends no h= (nothing to protect)."""
    mechanism = ScramSHA256Mechanism(DOMAIN, lookup, SECRET)
    challenge = await mechanism.start(b"n,,n=juliet,r=clientnonce")
    assert ",h=" not in challenge.data.decode()
