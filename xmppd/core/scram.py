# -*- test-case-name: tests.test_sasl,tests.test_storage -*-
"""
SCRAM salted credentials (RFC 5802, RFC 7677).

The server never stores a password: only, per hash, the salt, the iteration
count and the two keys SCRAM needs (StoredKey, ServerKey).  Everything that
sets a password (registration, C{xmppctl adduser}, C{xmppctl passwd}, import)
calls L{makeCredentials}, so every account created here has credentials for
every mechanism in L{MECHANISMS}.  Accounts imported from servers that kept
fewer (ejabberd keeps SCRAM-SHA-1 only) get the others from
L{missingCredentials} at their next login that reveals the password (PLAIN).

Passwords are prepared with the PRECIS OpaqueString profile (RFC 8265), the
successor of SASLprep, before hashing; for the ASCII passwords almost everyone
uses both give the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from precis_i18n import get_profile

#: SASL mechanism name -> hashlib name, strongest first.
MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}

DEFAULT_ITERATIONS = 4096
SALT_BYTES = 16

_opaque = get_profile("OpaqueString")


class InvalidPassword(ValueError):
    """The password is empty or contains characters PRECIS forbids."""


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the server keeps of one password for one SCRAM hash."""

    salt: bytes
    iterations: int
    storedKey: bytes
    serverKey: bytes


def preparePassword(password: str) -> bytes:
    """Apply the OpaqueString profile; raise L{InvalidPassword} when it fails."""
    try:
        return _opaque.enforce(password).encode("utf-8")
    except (UnicodeError, ValueError) as e:
        raise InvalidPassword("password is empty or has forbidden characters") from e


def saltedPassword(hashName: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(hashName, password, salt, iterations)


def hmacDigest(hashName: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashName).digest()


def deriveCredential(hashName: str, password: str, salt: bytes | None = None,
                     iterations: int = DEFAULT_ITERATIONS) -> ScramCredential:
    """Derive the stored SCRAM credential of C{password} for one hash."""
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    salted = saltedPassword(hashName, preparePassword(password), salt, iterations)
    clientKey = hmacDigest(hashName, salted, b"Client Key")
    storedKey = hashlib.new(hashName, clientKey).digest()
    serverKey = hmacDigest(hashName, salted, b"Server Key")
    return ScramCredential(salt, iterations, storedKey, serverKey)


def makeCredentials(password: str, iterations: int = DEFAULT_ITERATIONS
                    ) -> dict[str, ScramCredential]:
    """Credentials for every mechanism in L{MECHANISMS}, each with its own salt."""
    return {mech: deriveCredential(hashName, password, iterations=iterations)
            for mech, hashName in MECHANISMS.items()}


def missingCredentials(password: str, credentials: dict[str, ScramCredential]
                       ) -> dict[str, ScramCredential]:
    """
    Credentials for the mechanisms of L{MECHANISMS} that C{credentials}
    lacks, derived from C{password} (already checked against them), each
    with a fresh salt and at least as many iterations as the account has.
    """
    iterations = max((c.iterations for c in credentials.values()),
                     default=DEFAULT_ITERATIONS)
    return {mech: deriveCredential(hashName, password,
                                   iterations=max(iterations, DEFAULT_ITERATIONS))
            for mech, hashName in MECHANISMS.items() if mech not in credentials}


def checkPassword(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """
    Whether C{password} matches C{credential}; used by SASL PLAIN, which gets
    the password itself and so verifies it against the same stored keys.
    """
    try:
        candidate = deriveCredential(MECHANISMS[mechanism], password,
                                     credential.salt, credential.iterations)
    except InvalidPassword:
        return False
    return hmac.compare_digest(candidate.storedKey, credential.storedKey)
