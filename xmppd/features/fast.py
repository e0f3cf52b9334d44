# -*- test-case-name: tests.test_fast_inline -*-
"""
FAST (XEP-0484) inline in SASL2 (L{xmppd.c2s.sasl2}): the C{<fast/>} inline
feature listing the HT mechanisms this connection can use, the token
mechanisms themselves, C{<request-token/>} answered with a C{<token/>} in
the C{<success/>}, and a token login's C{<fast/>} (with C{invalidate}),
which promotes, rotates or ends the token (L{xmppd.c2s.fast.FastTokens}).

FAST is offered where PLAIN is: over TLS, or without when the operator
allowed C{c2s.plain_without_tls} (a token is as good as a password for
whoever sees it).  No token is given to an anonymous login, nor to a client
without a C{<user-agent id/>} (a token is bound to it).

Requests that cannot be honoured: a token login without C{<fast/>}, a
C{count} that is not a positive integer, or a token mechanism not offered
on this connection fail before any token is looked at
(C{malformed-request}, C{invalid-mechanism}), counting as failed attempts.
A C{<request-token/>} naming a mechanism not offered here, or sent without
a user agent id, gets no token (the login itself succeeds: XEP-0484 defines
no error for it, and the client then falls back to its password next
time).  C{count} is accepted but not needed: this server never takes
authentication in TLS 0-RTT data (no C{tls-0rtt} in the offer), the only
case where XEP-0484 §3.4 requires replay counting.

Hooks: C{"sasl2/features"}, C{"sasl2/mechanism"}, C{"sasl2/inline"}.

Implements: XEP-0484 0.1.0
"""

from __future__ import annotations

import weakref

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.c2s.fast import (HT_MECHANISMS, NS_FAST, FastTokens, HashedTokenMechanism,
                            offeredHTMechanisms)
from xmppd.c2s.sasl import SASLFailure
from xmppd.core.hooks import DELIVER


class FastHandler:
    """FAST for the client streams of one domain; see the module docstring."""

    log = Logger()

    def __init__(self, domain):
        self.domain = domain
        sasl = domain.config.sasl
        self.tokens = FastTokens(domain.storage.fast, sasl.fast_token_lifetime,
                                 sasl.fast_rotate_after, domain.clock.seconds)
        #: The token mechanism of each stream whose SASL2 login uses one,
        #: for the inline step to see which token matched.
        self.logins: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def register(self) -> None:
        hooks = self.domain.hooks
        hooks.add("sasl2/features", self.onSASL2Features, DELIVER)
        hooks.add("sasl2/mechanism", self.onSASL2Mechanism, DELIVER)
        hooks.add("sasl2/inline", self.onSASL2Inline, DELIVER)

    @staticmethod
    def offered(stream) -> list[str]:
        """The HT mechanisms this stream may use (none before TLS, as PLAIN)."""
        if not (stream.secure or stream.plainWithoutTLS):
            return []
        return offeredHTMechanisms(stream.channelBindings())

    def onSASL2Features(self, event) -> None:
        names = self.offered(event.stream)
        if names:
            fast = event.inline.addElement((NS_FAST, "fast"))
            for name in names:
                fast.addElement("mechanism", content=name)

    def onSASL2Mechanism(self, event):
        if event.name not in HT_MECHANISMS:
            return None
        stream = event.stream
        if event.name not in self.offered(stream):
            return SASLFailure("invalid-mechanism",
                               "%s is not offered on this connection" % (event.name,))
        fast = next(event.request.elements(NS_FAST, "fast"), None)
        if fast is None:
            return SASLFailure("malformed-request",
                               "a token login carries <fast xmlns='%s'/>" % (NS_FAST,))
        count = fast.getAttribute("count")
        if count is not None and not (count.isdigit() and count.isascii()
                                      and 0 < int(count) < 2 ** 63):
            return SASLFailure("malformed-request", "count must be a positive integer")
        userAgent = event.userAgent.id if event.userAgent is not None else None
        mechanism = self.tokens.makeMechanism(event.name, stream.domain, userAgent,
                                              stream.lookupCredentials,
                                              stream.factory.saslSecret,
                                              stream.channelBindings)
        self.logins[stream] = mechanism
        return mechanism

    def onSASL2Inline(self, event):
        stream = event.stream
        mechanism = self.logins.pop(stream, None)
        request = next(event.request.elements(NS_FAST, "request-token"), None)
        if request is None and not isinstance(mechanism, HashedTokenMechanism):
            return None
        return defer.Deferred.fromCoroutine(self.inline(event, mechanism, request))

    async def inline(self, event, mechanism, request) -> None:
        stream = event.stream
        userAgent = event.userAgent.id if event.userAgent is not None else None
        requested = None
        if request is not None and not stream.anonymous:
            wanted = request.getAttribute("mechanism")
            try:
                FastTokens.checkRequest(wanted, userAgent, self.offered(stream))
                requested = wanted
            except SASLFailure as failure:
                self.log.info("{user}@{domain}: no FAST token ({reason})",
                              user=stream.username, domain=stream.domain,
                              reason=failure.text or failure.condition)
        username, domain = stream.username, stream.domain
        try:
            if (isinstance(mechanism, HashedTokenMechanism) and mechanism.matched is not None
                    and event.mechanism == mechanism.name):
                fast = next(event.request.elements(NS_FAST, "fast"), None)
                invalidate = fast is not None and fast.getAttribute("invalidate") in (
                    "1", "true")
                issued = await self.tokens.afterTokenLogin(
                    username, domain, userAgent, mechanism.matched, invalidate, requested)
            else:
                issued = await self.tokens.afterPasswordLogin(username, domain, userAgent,
                                                              requested)
        except Exception:
            # The login stands; the client keeps what it had, or logs in
            # with its password next time.
            self.log.failure("FAST tokens of {user}@{domain} could not be stored",
                             user=username, domain=domain)
            return
        if issued is not None:
            token = domish.Element((NS_FAST, "token"))
            token["expiry"] = issued.expiryText
            token["token"] = issued.token
            event.answer(token)


def makeHandler(domain) -> None:
    """FAST only listens to hooks: no wokkel handler to add to the domain."""
    FastHandler(domain).register()
    return None
