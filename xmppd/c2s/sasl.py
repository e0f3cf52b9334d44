# -*- test-case-name: tests.test_sasl -*-
"""
Server side of the SASL mechanisms (RFC 6120 §6, RFC 4616, RFC 5802, RFC 7677).

Mechanisms are pure state machines over bytes: the stream code
(L{xmppd.c2s.negotiation.SASLInitializer}) does the XML, base64, attempt counting
and delays.  A mechanism either returns the next challenge, returns a
L{Success}, or raises L{SASLFailure} with the RFC 6120 §6.5 condition.

Nothing here tells an attacker whether an account exists: an unknown user
fails with the same condition as a wrong password, after the same key
derivation, and SCRAM answers an unknown user with a salt that looks like a
real one (derived from a per-process secret, so it is stable across attempts).

Channel binding (the C{-PLUS} variants) binds the SCRAM exchange to the TLS
connection it runs on, so a man in the middle who terminates TLS cannot
relay it: C{tls-exporter} (RFC 9266) on TLS 1.3, C{tls-unique} (RFC 5929) on
TLS 1.2.  A client that says it could bind but believes the server cannot
(gs2 flag C{y}) while we offer binding is refused: that is a downgrade.

Accounts imported with keys for only some hashes (ejabberd exports
SCRAM-SHA-1 only) get the others at their next PLAIN login, which reveals
the password (L{PlainMechanism}).  Until then a SCRAM attempt with a hash
the account has no keys for fails with C{invalid-mechanism} right after the
client-first message: not C{not-authorized}, which clients report as a
wrong password (and which would count against the address), but the
condition that tells them to try another mechanism (RFC 6120 §6.5.7: not
supported, here for this account); slixmpp then tries the next one it
knows.  This tells a guesser that such an account exists and has not been
upgraded yet, a smaller leak than locking its owner out.

SCRAM downgrade protection (XEP-0474): the server-first message carries
C{h=}, the hash (with the mechanism's own hash function) of the mechanisms
and channel-binding types the server advertised, which the client checks
against what it saw and which its proof then signs.  A man in the middle
who struck the strong mechanisms or binding types from the features is
caught even without channel binding.  The stream code passes what it
advertised (C{advertised}); a mechanism given nothing sends no C{h=}.

ANONYMOUS (RFC 4505) is not a password mechanism and is kept apart from
L{MECHANISMS}: a served domain offers it only when its C{[hosts]} table says
C{anonymous = true} (XEP-0175 §3: never enabled by default).  It gives the
client a fresh account name, a UUID (XEP-0175 §3 recommends RFC 4122), that
no stored account can have, since UUIDs are not guessable in advance.

Implements: RFC 4616 (PLAIN), RFC 5802 (SCRAM-SHA-1, SCRAM-SHA-1-PLUS),
RFC 7677 (SCRAM-SHA-256, SCRAM-SHA-256-PLUS), RFC 5929, RFC 9266,
RFC 4505 (ANONYMOUS), XEP-0175 1.2, XEP-0474 0.6.0
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from xmppd.core import scram
from xmppd.core.jid import InvalidJID, prepLocalpart

CredentialLookup = Callable[[str], Awaitable["dict[str, scram.ScramCredential] | None"]]
#: C{save(username, seen, credentials)} stores C{credentials} for the account
#: unless its stored credentials are no longer C{seen} (changed meanwhile).
CredentialSave = Callable[[str, "dict[str, scram.ScramCredential]",
                           "dict[str, scram.ScramCredential]"], Awaitable[None]]
#: Channel binding type -> binding data of the current TLS connection.
ChannelBindings = Callable[[], "dict[str, bytes]"]
#: What the stream advertised before this exchange (XEP-0474): the SASL
#: mechanisms, and the channel-binding types if it sent a XEP-0440 list.
Advertised = "tuple[Sequence[str], Sequence[str] | None]"


def downgradeHash(hashName: str, mechanisms: Sequence[str],
                  bindingTypes: Sequence[str] | None) -> str:
    """
    XEP-0474 §4.1: the sorted mechanisms joined by %x1E, then, when
    channel-binding types were advertised, %x1F and the sorted types joined
    by %x1E; hashed with C{hashName} and in base64.  Sorting is "i;octet"
    (RFC 4790 §9.3): by UTF-8 bytes.
    """
    octets = lambda names: sorted(name.encode("utf-8") for name in names)  # noqa: E731
    text = b"\x1e".join(octets(mechanisms))
    if bindingTypes is not None:
        text += b"\x1f" + b"\x1e".join(octets(bindingTypes))
    return base64.b64encode(hashlib.new(hashName, text).digest()).decode("ascii")


def noChannelBindings() -> dict[str, bytes]:
    return {}


class SASLFailure(Exception):
    """Authentication failed with the RFC 6120 §6.5 C{condition}."""

    def __init__(self, condition: str, text: str | None = None):
        Exception.__init__(self, condition, text)
        self.condition = condition
        self.text = text


@dataclass
class Success:
    username: str
    additionalData: bytes | None = None


@dataclass
class Challenge:
    data: bytes


class Mechanism:
    """
    One authentication exchange.  C{lookup} fetches the stored credentials of
    a prepared localpart on C{domain}; C{secret} seeds plausible fake salts;
    C{save}, when given, stores credentials a login completed;
    C{advertised} is what the stream offered (L{Advertised}), for the
    mechanisms that protect it (SCRAM, XEP-0474).
    """

    name = ""
    #: Whether the mechanism binds to the TLS channel (the -PLUS ones).
    plus = False

    def __init__(self, domain: str, lookup: CredentialLookup, secret: bytes,
                 channelBindings: ChannelBindings = noChannelBindings,
                 save: CredentialSave | None = None, *, advertised=None):
        self.domain = domain
        self.lookup = lookup
        self.secret = secret
        self.channelBindings = channelBindings
        self.save = save
        self.advertised = advertised

    async def start(self, initial: bytes | None) -> Challenge | Success:
        raise NotImplementedError

    async def respond(self, data: bytes) -> Challenge | Success:
        raise SASLFailure("malformed-request", "unexpected response")

    def prepareUsername(self, authcid: str) -> str:
        """
        The account's localpart: clients send the localpart (RFC 6120
        §6.3.8), some send the bare JID of this domain; accept both.
        """
        if "@" in authcid:
            local, _, domain = authcid.rpartition("@")
            if domain.lower() == self.domain:
                authcid = local
        try:
            return prepLocalpart(authcid)
        except InvalidJID:
            raise SASLFailure("not-authorized")

    def checkAuthzid(self, authzid: str, username: str) -> None:
        """
        Only the user's own identity may be requested (RFC 6120 §6.3.8): an
        empty authzid, the bare JID or the localpart.
        """
        if authzid and authzid not in (username, "%s@%s" % (username, self.domain)):
            raise SASLFailure("invalid-authzid")


class PlainMechanism(Mechanism):
    """
    RFC 4616.  The password is checked against a stored SCRAM credential
    (SHA-256 when the account has one; accounts imported from servers that
    only kept SCRAM-SHA-1 have only that), so plain passwords are never
    stored.  An account that lacks the keys of a SCRAM hash gets them
    derived from the password now and saved before the success goes out,
    so the client's next login may use any SCRAM mechanism.
    """

    name = "PLAIN"
    checkedMechanisms = ("SCRAM-SHA-256", "SCRAM-SHA-1")

    async def start(self, initial: bytes | None) -> Challenge | Success:
        if initial is None:
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Success:
        try:
            authzid, authcid, password = data.decode("utf-8").split("\0")
        except ValueError:
            raise SASLFailure("malformed-request")
        username = self.prepareUsername(authcid)
        credentials = await self.lookup(username) or {}
        for mechanism in self.checkedMechanisms:
            credential = credentials.get(mechanism)
            if credential is not None:
                break
        else:
            # Same work as a real check, so timing does not reveal the answer.
            scram.deriveCredential("sha256", password or "x",
                                   salt=fakeSalt(self.secret, "SCRAM-SHA-256", username))
            raise SASLFailure("not-authorized")
        if not scram.checkPassword(mechanism, credential, password):
            raise SASLFailure("not-authorized")
        self.checkAuthzid(authzid, username)
        missing = scram.missingCredentials(password, credentials)
        if missing and self.save is not None:
            await self.save(username, credentials, {**credentials, **missing})
        return Success(username)


def fakeSalt(secret: bytes, mechanism: str, username: str) -> bytes:
    """A salt for an unknown user that is stable and indistinguishable from a real one."""
    return hmac.new(secret, ("%s\0%s" % (mechanism, username)).encode("utf-8"),
                    hashlib.sha256).digest()[:scram.SALT_BYTES]


def parseAttributes(message: str) -> list[tuple[str, str]]:
    """Split a SCRAM message into (name, value) pairs (RFC 5802 §7)."""
    pairs = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise SASLFailure("malformed-request")
        pairs.append((part[0], part[2:]))
    return pairs


def decodeSaslname(name: str) -> str:
    """RFC 5802 §5.1: ',' and '=' travel as '=2C' and '=3D'."""
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise SASLFailure("malformed-request")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramMechanism(Mechanism):
    """
    RFC 5802 / RFC 7677.  The plain variants take the gs2 flags C{n} and
    C{y}; the C{-PLUS} variants (L{plus}) require C{p=TYPE} with a binding
    type this connection has.
    """

    hashName = ""
    plus = False

    def __init__(self, domain: str, lookup: CredentialLookup, secret: bytes,
                 channelBindings: ChannelBindings = noChannelBindings,
                 save: CredentialSave | None = None, *, advertised=None):
        Mechanism.__init__(self, domain, lookup, secret, channelBindings, save,
                           advertised=advertised)
        self.step = self.clientFirst
        self.bindingData = b""

    async def start(self, initial: bytes | None) -> Challenge | Success:
        if initial is None:
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Challenge | Success:
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request")
        return await self.step(message)

    async def clientFirst(self, message: str) -> Challenge:
        parts = message.split(",", 2)
        if len(parts) != 3:
            raise SASLFailure("malformed-request")
        cbFlag, authzid, bare = parts
        self.checkBindingFlag(cbFlag)
        if authzid and not authzid.startswith("a="):
            raise SASLFailure("malformed-request")
        attrs = parseAttributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            # An 'm' extension or anything unexpected (RFC 5802 §5.1).
            raise SASLFailure("malformed-request")
        self.username = self.prepareUsername(decodeSaslname(attrs[0][1]))
        self.authzid = decodeSaslname(authzid[2:]) if authzid else ""
        clientNonce = attrs[1][1]
        credentials = await self.lookup(self.username)
        credential = credentials.get(self.credentialName) if credentials else None
        if credential is None and credentials:
            # An imported account without keys for this hash (see the
            # module docstring): let the client pick another mechanism.
            raise SASLFailure("invalid-mechanism",
                              "%s is not available for this account yet; use another "
                              "mechanism" % (self.name,))
        if credential is None:
            # Unknown user: a plausible salt, keys nobody can match.
            credential = scram.ScramCredential(
                fakeSalt(self.secret, self.credentialName, self.username),
                scram.DEFAULT_ITERATIONS, os.urandom(32), os.urandom(32))
        self.credential = credential
        self.gs2Header = cbFlag + "," + authzid + ","
        self.nonce = clientNonce + base64.b64encode(os.urandom(18)).decode("ascii")
        self.clientFirstBare = bare
        self.serverFirst = "r=%s,s=%s,i=%d" % (
            self.nonce, base64.b64encode(credential.salt).decode("ascii"),
            credential.iterations)
        if self.advertised is not None:
            # XEP-0474: the same for an unknown user, who must look real.
            self.serverFirst += ",h=" + downgradeHash(self.hashName, *self.advertised)
        self.step = self.clientFinal
        return Challenge(self.serverFirst.encode("utf-8"))

    async def clientFinal(self, message: str) -> Success:
        withoutProof, sep, proofText = message.rpartition(",p=")
        if not sep:
            raise SASLFailure("malformed-request")
        attrs = dict(parseAttributes(withoutProof))
        try:
            channel = base64.b64decode(attrs.get("c", ""), validate=True)
            proof = base64.b64decode(proofText, validate=True)
        except ValueError:
            raise SASLFailure("incorrect-encoding")
        expected = self.gs2Header.encode("utf-8") + self.bindingData
        if not hmac.compare_digest(channel, expected) or attrs.get("r") != self.nonce:
            raise SASLFailure("not-authorized")
        authMessage = ",".join((self.clientFirstBare, self.serverFirst,
                                withoutProof)).encode("utf-8")
        credential = self.credential
        signature = scram.hmacDigest(self.hashName, credential.storedKey, authMessage)
        if len(proof) != len(signature):
            raise SASLFailure("not-authorized")
        clientKey = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self.hashName, clientKey).digest(),
                                   credential.storedKey):
            raise SASLFailure("not-authorized")
        self.checkAuthzid(self.authzid, self.username)
        serverSignature = scram.hmacDigest(self.hashName, credential.serverKey, authMessage)
        self.step = self.done
        return Success(self.username,
                       b"v=" + base64.b64encode(serverSignature))

    async def done(self, message: str) -> Success:
        raise SASLFailure("malformed-request")

    def checkBindingFlag(self, cbFlag: str) -> None:
        """RFC 5802 §6 and §7 (gs2-cbind-flag), with the bindings we have."""
        if self.plus:
            bindingType = cbFlag[2:] if cbFlag.startswith("p=") else None
            bindings = self.channelBindings()
            if bindingType not in bindings:
                raise SASLFailure("malformed-request",
                                  "channel binding type not supported on this connection")
            self.bindingData = bindings[bindingType]
        elif cbFlag == "y":
            if self.channelBindings():
                # The client could bind and thinks we cannot: someone removed
                # the -PLUS mechanisms on the way (RFC 5802 §6).
                raise SASLFailure("not-authorized", "server does support channel binding")
        elif cbFlag != "n":
            raise SASLFailure("malformed-request",
                              "channel binding needs a -PLUS mechanism")


class ScramSHA1Mechanism(ScramMechanism):
    name = "SCRAM-SHA-1"
    #: Stored credentials are per hash: the -PLUS variant uses the same ones.
    credentialName = "SCRAM-SHA-1"
    hashName = "sha1"


class ScramSHA256Mechanism(ScramMechanism):
    name = "SCRAM-SHA-256"
    credentialName = "SCRAM-SHA-256"
    hashName = "sha256"


class ScramSHA1PlusMechanism(ScramSHA1Mechanism):
    name = "SCRAM-SHA-1-PLUS"
    plus = True


class ScramSHA256PlusMechanism(ScramSHA256Mechanism):
    name = "SCRAM-SHA-256-PLUS"
    plus = True


class AnonymousMechanism(Mechanism):
    """
    RFC 4505.  The client may send "trace information" (an email address
    or a token of at most 255 characters, §2 and §3); XEP-0175 §3 advises
    clients not to, and nothing is done with it beyond checking its form:
    it is neither logged nor kept, since it may identify the user.
    """

    name = "ANONYMOUS"
    #: RFC 4505 §3: trace information is at most 255 characters.
    maxTrace = 255

    async def start(self, initial: bytes | None) -> Challenge | Success:
        if initial is None:
            # RFC 6120 §6.4.2: no initial response, so an empty challenge
            # asks for the trace information.
            return Challenge(b"")
        return await self.respond(initial)

    async def respond(self, data: bytes) -> Success:
        try:
            trace = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request", "trace information must be UTF-8")
        if len(trace) > self.maxTrace or any(ord(c) < 0x20 or c == "\x7f" for c in trace):
            raise SASLFailure("malformed-request", "invalid trace information")
        return Success(newAnonymousName())


def newAnonymousName() -> str:
    """A temporary localpart nobody else has or can predict (XEP-0175 §3)."""
    return str(uuid.uuid4())


#: Every password mechanism, strongest first; C{[sasl] mechanisms} chooses
#: which are offered and in what order (L{xmppd.config.sections.SASL_MECHANISMS}
#: lists the same names, for the configuration to check).
MECHANISMS = {m.name: m for m in (ScramSHA256PlusMechanism, ScramSHA1PlusMechanism,
                                  ScramSHA256Mechanism, ScramSHA1Mechanism,
                                  PlainMechanism)}
