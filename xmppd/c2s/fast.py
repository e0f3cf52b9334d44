# -*- test-case-name: tests.test_fast -*-
"""
FAST tokens (XEP-0484) and the Hashed Token SASL mechanisms that use them
(draft-schmaus-kitten-sasl-ht-08, the version XEP-0484 names).

A client that logged in with its password over SASL2 may ask for a token
(C{<request-token mechanism='HT-SHA-256-NONE'/>}); the next time it logs in
in one round trip: C{authcid NUL HMAC(token, "Initiator" || cb-data)}, and
the server proves it knows the token too with C{HMAC(token, "Responder" ||
cb-data)} in the success's additional data.  The C{-NONE} mechanism binds
to nothing (web clients cannot see the TLS channel); C{-UNIQ} and C{-EXPR}
bind to C{tls-unique} (TLS 1.2) and C{tls-exporter} (TLS 1.3), offered
only where this connection has that binding, as the SCRAM C{-PLUS} ones.

Tokens are stored only as their SHA-256 (L{xmppd.storage.interfaces.FastToken}).
The server can still check the HMAC because every token it issues is longer
than SHA-256's 64-byte block, and HMAC (RFC 2104 §2) first hashes such a
key: C{HMAC(token, m) == HMAC(SHA-256(token), m)}.  What the store keeps
never reveals the token's text; it does let whoever steals it log in with
the HT mechanism until the token expires or is revoked, since HT is a proof
of possession of a shared secret and the server must be able to compute the
proof.  Expiry, rotation and revocation (C{xmppctl fast revoke}, a password
change) bound that.

Nothing tells an attacker why a token login failed: an unknown account, a
client (user agent) that has no token, a wrong, expired or revoked token,
or a token issued for another mechanism all fail with C{not-authorized},
after the same storage read and the same HMAC work, comparing in constant
time.

Implements: XEP-0484 0.1.0 (mechanisms and token lifecycle),
draft-schmaus-kitten-sasl-ht-08
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from twisted.logger import Logger

from xmppd.c2s.sasl import (ChannelBindings, Challenge, CredentialLookup, CredentialSave,
                            Mechanism, SASLFailure, Success, noChannelBindings)
from xmppd.storage.interfaces import FastToken

NS_FAST = "urn:xmpp:fast:0"

#: The tokens of one (account, client) of this domain, "new" slot first.
TokenLookup = Callable[[str], Awaitable["list[FastToken]"]]

#: Random bytes in a token: 64, so its text (86 characters of base64url) is
#: longer than SHA-256's block and HMAC keys on SHA-256(token) (see the
#: module docstring); far beyond the draft's 128 bits of entropy (§5).
TOKEN_BYTES = 64


def tokenHash(token: str) -> bytes:
    """What the store keeps of a token: SHA-256 of its UTF-8 text."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def newToken() -> str:
    """A fresh token from the system's secure random source."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    assert len(token.encode("utf-8")) > hashlib.sha256().block_size
    return token


@dataclass
class TokenSuccess(Success):
    """A successful HT login, with the stored token it matched."""

    token: FastToken | None = None


class HashedTokenMechanism(Mechanism):
    """
    One HT mechanism: C{hashName} is the HMAC hash, C{bindingType} the
    channel binding its cb-data comes from (C{None} for C{-NONE}).

    Besides what every mechanism gets, C{tokens} fetches the stored tokens
    of a user of this domain for the stream's client, and C{now} tells the
    time (for expiry).  Without C{tokens} (no user agent was given, so no
    token can be bound to the client) every attempt fails alike.
    """

    hashName = "sha256"
    bindingType: str | None = None

    def __init__(self, domain: str, lookup: CredentialLookup, secret: bytes,
                 channelBindings: ChannelBindings = noChannelBindings,
                 save: CredentialSave | None = None, *,
                 tokens: TokenLookup | None = None,
                 now: Callable[[], float] | None = None):
        Mechanism.__init__(self, domain, lookup, secret, channelBindings, save)
        self.tokens = tokens
        self.now = now
        self.matched: FastToken | None = None

    async def start(self, initial: bytes | None) -> Challenge | Success:
        if initial is None:
            # HT is client-first: the initiator message is the whole login.
            raise SASLFailure("malformed-request", "an initial response is required")
        authcid, sep, proof = initial.partition(b"\0")
        if not sep or not authcid or not proof:
            raise SASLFailure("malformed-request")
        try:
            text = authcid.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request")
        cbData = b""
        if self.bindingType is not None:
            cbData = self.channelBindings().get(self.bindingType)
            if cbData is None:
                raise SASLFailure("malformed-request",
                                  "channel binding type not supported on this connection")
        username = self.prepareUsername(text)
        stored = await self.tokens(username) if self.tokens is not None else []
        # Always two candidates and the same work, whatever was found.
        candidates = (stored + [None, None])[:2]
        initiator = b"Initiator" + cbData
        now = self.now() if self.now is not None else 0.0
        matched = None
        for token in candidates:
            key = token.hash if token is not None else self.secret
            expected = hmac.new(key, initiator, self.hashName).digest()
            good = hmac.compare_digest(expected, proof)
            if (good and token is not None and token.mechanism == self.name
                    and token.expiry > now and matched is None):
                matched = token
        if matched is None:
            raise SASLFailure("not-authorized")
        # The account's own checks, as for a password login: one an
        # administrator disabled (XEP-0133) is refused whatever the token.
        await self.lookup(username)
        #: What FAST's inline step promotes or rotates (L{FastTokens}).
        self.matched = matched
        responder = hmac.new(matched.hash, b"Responder" + cbData, self.hashName).digest()
        return TokenSuccess(username, responder, matched)


class HTSHA256NoneMechanism(HashedTokenMechanism):
    name = "HT-SHA-256-NONE"


class HTSHA256UniqMechanism(HashedTokenMechanism):
    name = "HT-SHA-256-UNIQ"
    bindingType = "tls-unique"
    plus = True


class HTSHA256ExprMechanism(HashedTokenMechanism):
    name = "HT-SHA-256-EXPR"
    bindingType = "tls-exporter"
    plus = True


class HTSHA256EndpMechanism(HashedTokenMechanism):
    name = "HT-SHA-256-ENDP"
    bindingType = "tls-server-end-point"
    plus = True


#: Every HT mechanism, channel-binding ones first (XEP-0484 §3.1: clients
#: must prefer them).
HT_MECHANISMS = {m.name: m for m in (HTSHA256ExprMechanism, HTSHA256UniqMechanism,
                                     HTSHA256EndpMechanism, HTSHA256NoneMechanism)}


def offeredHTMechanisms(bindings: dict[str, bytes]) -> list[str]:
    """The HT mechanisms this connection can use, strongest first."""
    return [name for name, m in HT_MECHANISMS.items()
            if m.bindingType is None or m.bindingType in bindings]


def dateTime(seconds: float) -> str:
    """XEP-0082 DateTime in UTC, as the C{expiry} of a C{<token/>}."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class IssuedToken:
    """A token to hand to the client in C{<token xmlns='urn:xmpp:fast:0'/>}."""

    token: str
    expiry: float

    @property
    def expiryText(self) -> str:
        return dateTime(self.expiry)


class FastTokens:
    """
    The token lifecycle of XEP-0484 over an L{IFastTokenStore}, for one
    server: issuing a token after a login, rotating it, promoting a token
    used for the first time (which invalidates the one it replaced), and
    invalidating on the client's request.

    @ivar lifetime: C{[sasl] fast_token_lifetime}, seconds.
    @ivar rotateAfter: C{[sasl] fast_rotate_after}: a token older than this
        is replaced at its next use (§3.5), the old one staying valid until
        the new one is used.
    """

    log = Logger()

    def __init__(self, store, lifetime: float, rotateAfter: float,
                 seconds: Callable[[], float]):
        self.store = store
        self.lifetime = lifetime
        self.rotateAfter = rotateAfter
        self.seconds = seconds

    def lookup(self, domain: str, userAgent: str | None) -> TokenLookup | None:
        """What an HT mechanism reads tokens with: this domain's, this client's."""
        if not userAgent:
            return None
        return lambda username: self.store.get(username, domain, userAgent)

    def makeMechanism(self, name: str, domain: str, userAgent: str | None, lookup,
                      secret: bytes, channelBindings: ChannelBindings
                      ) -> HashedTokenMechanism:
        """
        An HT mechanism for one login attempt.

        @raise KeyError: C{name} is no HT mechanism.
        """
        return HT_MECHANISMS[name](domain, lookup, secret, channelBindings,
                                   tokens=self.lookup(domain, userAgent), now=self.seconds)

    @staticmethod
    def checkRequest(mechanism: str | None, userAgent: str | None,
                     offered: list[str]) -> None:
        """
        Refuse a C{<request-token/>} that cannot be honoured, given the HT
        mechanisms C{offered} on the connection.

        @raise SASLFailure: no mechanism named, one not offered on this
            connection, or no user agent id to bind the token to.
        """
        if not mechanism:
            raise SASLFailure("malformed-request", "request-token needs a mechanism")
        if mechanism not in offered:
            raise SASLFailure("invalid-mechanism",
                              "%s is not a FAST mechanism offered here" % (mechanism,))
        if not userAgent:
            raise SASLFailure("malformed-request",
                              "a FAST token is bound to the user-agent id; send one")

    async def issue(self, username: str, domain: str, userAgent: str,
                    mechanism: str) -> IssuedToken:
        """A new token in the client's "new" slot; the token text leaves here only."""
        token = newToken()
        now = self.seconds()
        expiry = now + self.lifetime
        await self.store.issue(username, domain, FastToken(
            userAgent, mechanism, tokenHash(token), now, expiry))
        return IssuedToken(token, expiry)

    async def afterPasswordLogin(self, username: str, domain: str, userAgent: str | None,
                                 requested: str | None) -> IssuedToken | None:
        """After a login with another mechanism: a token if one was requested."""
        if requested is None or not userAgent:
            return None
        return await self.issue(username, domain, userAgent, requested)

    async def afterTokenLogin(self, username: str, domain: str, userAgent: str,
                              used: FastToken, invalidate: bool = False,
                              requested: str | None = None) -> IssuedToken | None:
        """
        After a login with token C{used}: invalidate it if the client
        asked (§3.6; a new token then only if requested as well), else
        promote it if it was new (§5.1), and rotate it when it is old
        enough or the client asked for a new one (§3.5).

        The promotion is durable before the C{<success/>} goes out: were
        the success sent first and the server to crash before the write,
        the token it rotated out would be valid again after the restart
        (a rotated-out token working twice), while the client, told of
        success, has dropped it.  Written the other way round, a crash
        between the write and the success leaves the client with both
        tokens and the server with the new one, which the client tries
        next: never locked out.  The write is grouped with the other logins'
        (the store's C{promote}), so a storm of first uses shares its
        commits and fsyncs instead of paying one each.
        """
        if invalidate:
            await self.store.revoke(username, domain, userAgent, used.hash)
            if requested is None:
                return None
            return await self.issue(username, domain, userAgent, requested)
        if used.slot == "new":
            await self.store.promote(username, domain, userAgent, used.hash)
        if requested is not None or self.seconds() - used.issued >= self.rotateAfter:
            return await self.issue(username, domain, userAgent,
                                    requested or used.mechanism)
        return None
