# -*- test-case-name: tests.test_clustertokens -*-
"""
The HTTP API's tokens on a cluster (issue 17 item 6): the cluster's, not a
node's, so an integrator behind a load balancer uses one token on every
node.  Imported only by a node or an C{xmppctl} whose configuration has a
C{[cluster]} section; a lone node keeps L{xmppd.admin.apitokens.TokenFile}.

In Redis (L{xmppd.cluster.keys}): the hash C{xmppd:c:api_tokens}, a
token's name -> JSON C{{"sha256", "scope", "created"}}; as in the file,
only the token's SHA-256 is kept, never the token.  C{xmppctl api token
create} adds a field with C{HSETNX} (so two operators cannot make the same
name twice), C{revoke} removes it with C{HDEL}, and each then publishes
C{"(xmppctl) api_tokens NAME"} on the cluster's invalidation channel
(L{xmppd.cluster.invalidation}; C{(xmppctl)} is no node's name).

Each node checks a request's token against its copy in memory
(L{ClusterTokens}), a dict by digest, so the check stays synchronous and
costs one look-up: the copy is read whole (C{HGETALL}) at start (the
listeners wait for that first read, as for the cluster's secret), again
on each C{api_tokens} message, and again whenever the node's subscription
comes back (C{listenMissed}: a message may have been lost meanwhile).  A
revoked token so stops working on every node within the pub/sub delay.
When Redis does not answer, the node keeps the copy it has, logs one line
(no traceback) and tries again every L{RETRY} seconds until a read
succeeds, which it logs too.

A node of a cluster ignores C{data_dir/api_tokens.json}; when that file
holds tokens the node says so at start in one line, naming C{xmppctl api
token import}, which copies the file's tokens (their digests, names,
scopes and times) into Redis once, so integrators keep their tokens.
"""

from __future__ import annotations

import hmac
import json
import time

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from xmppd.admin.apitokens import (
    Token, TokenError, TokenFile, checkNew, digestOf, newToken)
from xmppd.cluster import keys

#: The kind of change published on the invalidation channel.
KIND = "api_tokens"
#: Who publishes a change: C{xmppctl}, under a name no node may have.
PUBLISHER = "(xmppctl)"
#: Seconds a node waits for Redis's answer to a read of the tokens.
READ_TIMEOUT = 10.0
#: Seconds between a failed read and the next.
RETRY = 5.0


def counted(count: int, noun: str = "token") -> str:
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


def encode(token: Token) -> str:
    return json.dumps({"sha256": token.digest, "scope": token.scope,
                       "created": token.created})


def decode(name: str, value: str) -> Token:
    try:
        row = json.loads(value)
        return Token(name, str(row["scope"]), float(row["created"]), str(row["sha256"]))
    except (ValueError, TypeError, KeyError):
        raise TokenError(f"the API token {name!r} in {keys.API_TOKENS} is not a token; "
                         "revoke it") from None


def decodeAll(rows: dict) -> tuple[list[Token], list[str]]:
    """The tokens of C{HGETALL}'s C{rows}, oldest first, and the names of the bad ones."""
    tokens, bad = [], []
    for name, value in rows.items():
        try:
            tokens.append(decode(name, value))
        except TokenError:
            bad.append(name)
    tokens.sort(key=lambda t: (t.created, t.name))
    return tokens, sorted(bad)


# -- what xmppctl does, on a connection to the cluster's Redis ---------------------


async def announce(redis, name: str) -> None:
    """Tell every node to read the tokens again."""
    await redis.publish(keys.INVALIDATE_CHANNEL, "%s %s %s" % (PUBLISHER, KIND, name))


async def listTokens(redis) -> list[Token]:
    tokens, _ = decodeAll(await redis.hgetall(keys.API_TOKENS))
    return tokens


async def createToken(redis, name: str, scope: str) -> str:
    """Make the token C{name}; the token itself, which is kept nowhere."""
    checkNew(name, scope)
    token = newToken()
    added = await redis.hsetnx(keys.API_TOKENS, name,
                               encode(Token(name, scope, time.time(), digestOf(token))))
    if not int(added):
        raise TokenError(f"there is a token {name!r} already; revoke it first")
    await announce(redis, name)
    return token


async def revokeToken(redis, name: str) -> None:
    if not int(await redis.hdel(keys.API_TOKENS, name)):
        raise TokenError(f"there is no token {name!r}")
    await announce(redis, name)


async def importTokens(redis, dataDir: str) -> tuple[list[str], list[str]]:
    """
    Copy the tokens of C{dataDir}'s file into Redis: the names copied, and
    those skipped because Redis has a token of that name already (with
    another digest; the same one counts as copied, so importing twice, or
    from two nodes that shared the file, is harmless).
    """
    copied, skipped = [], []
    for token in TokenFile(dataDir).load():
        if int(await redis.hsetnx(keys.API_TOKENS, token.name, encode(token))):
            copied.append(token.name)
            continue
        there = await redis.hget(keys.API_TOKENS, token.name)
        try:
            same = there is not None and decode(token.name, there).digest == token.digest
        except TokenError:
            same = False
        (copied if same else skipped).append(token.name)
    if copied:
        await announce(redis, "*")
    return copied, skipped


# -- what a node does ----------------------------------------------------------------


class ClusterTokens(service.Service):
    """
    A node's copy of the cluster's tokens (see the module docstring), with
    L{check} as L{xmppd.admin.apitokens.TokenFile} has.  Joins the node's
    services before its listeners (whose start waits for the first read).
    """

    log = Logger()
    name = "api-tokens"

    def __init__(self, server):
        self.server = server
        self.cluster = server.cluster
        self.clock = server.clock
        #: digest -> L{Token}: what L{check} looks up.
        self.byDigest: dict[str, Token] = {}
        #: Whether a read succeeded since the last failure was logged.
        self.failing = False
        self.loadedOnce = False
        #: Reads started, and the newest whose result is in L{byDigest}:
        #: an older read answering last never replaces a newer one.
        self.started = 0
        self.applied = 0
        self.retrying = None
        #: Reads not answered yet, cancelled at stop (each has a timeout).
        self.reading: set[defer.Deferred] = set()
        self.waiters: list[defer.Deferred] = []
        invalidation = self.cluster.invalidation
        invalidation.listen(KIND, lambda name: self.reload())
        invalidation.listenMissed(self.reload)
        server.startGates.append(self.whenLoaded)

    # -- the per-request check ------------------------------------------------------

    def check(self, token: str) -> Token | None:
        """The token C{token} is, or C{None}: one look-up, then a constant-time compare."""
        digest = digestOf(token)
        found = self.byDigest.get(digest)
        if found is not None and hmac.compare_digest(found.digest, digest):
            return found
        return None

    def load(self) -> list[Token]:
        return sorted(self.byDigest.values(), key=lambda t: (t.created, t.name))

    # -- keeping the copy ------------------------------------------------------------

    def startService(self) -> None:
        service.Service.startService(self)
        self.warnAboutFile()
        self.reload()

    def stopService(self):
        service.Service.stopService(self)
        if self.retrying is not None and self.retrying.active():
            self.retrying.cancel()
        self.retrying = None
        for d in list(self.reading):
            d.cancel()
        self._loaded()

    def whenLoaded(self) -> defer.Deferred:
        """A start gate: fires once the first read answered or failed (never fails)."""
        if self.loadedOnce:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self.waiters.append(waiter)
        return waiter

    def _loaded(self) -> None:
        self.loadedOnce = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def reload(self) -> defer.Deferred:
        """Read every token from Redis; the copy changes only when that succeeds."""
        redis = self.cluster.directory.redis
        if not self.running or redis is None:
            return defer.succeed(None)
        if self.retrying is not None and self.retrying.active():
            self.retrying.cancel()
        self.retrying = None
        self.started += 1
        d = redis.hgetall(keys.API_TOKENS)
        self.reading.add(d)
        d.addTimeout(READ_TIMEOUT, self.clock)
        d.addBoth(self._answered, d)
        d.addCallbacks(self._read, self._failed, callbackArgs=(self.started,),
                       errbackArgs=(self.started,))
        return d

    def _answered(self, result, d):
        self.reading.discard(d)
        return result

    def _read(self, rows: dict, number: int) -> None:
        if number > self.applied:
            self.applied = number
            tokens, bad = decodeAll(rows)
            self.byDigest = {t.digest: t for t in tokens}
            if bad:
                self.log.warn("api: {keyName} has entries that are no tokens, ignored: "
                              "{names}; revoke them", keyName=keys.API_TOKENS,
                              names=", ".join(bad))
            if self.failing:
                self.failing = False
                self.log.info("api: read the API tokens from the cluster's Redis again "
                              "({count})", count=counted(len(tokens)))
        self._loaded()

    def _failed(self, failure, number: int) -> None:
        if not self.running:
            # Stopping: the read was cancelled, or Redis's connection closed.
            self._loaded()
            return
        if not self.failing:
            self.failing = True
            error = failure.value
            address = self.cluster.address
            self.log.error(
                "api: cannot read the API tokens from the cluster's Redis at {host}:{port} "
                "({error}); this node keeps the {count} it read before and tries again "
                "every {retry:g} s", host=address.host, port=address.port,
                error="no answer within %g s" % READ_TIMEOUT
                if isinstance(error, defer.TimeoutError) else (str(error) or
                                                               type(error).__name__),
                count=counted(len(self.byDigest)), retry=RETRY)
        if self.retrying is None:
            self.retrying = self.clock.callLater(RETRY, self._retry)
        self._loaded()

    def _retry(self) -> None:
        self.retrying = None
        self.reload()

    def warnAboutFile(self) -> None:
        """Say, in one line, that a token file of this node's is ignored, and what to do."""
        tokens = TokenFile(self.server.config.server.data_dir)
        try:
            count = len(tokens.load())
        except TokenError:
            count = -1
        if count == 0:
            return
        self.log.warn(
            "api: {path} {holds} but a node of a cluster ignores it: the HTTP API's tokens "
            "are the cluster's, in its Redis ({keyName}); copy them there once with "
            "`xmppctl api token import` on this node (or make new ones with `xmppctl api "
            "token create`), then remove the file", path=tokens.path,
            holds="holds " + counted(count, "API token") if count > 0 else "cannot be read",
            keyName=keys.API_TOKENS)
