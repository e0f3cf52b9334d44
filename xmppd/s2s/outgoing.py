# -*- test-case-name: tests.test_s2s_outgoing -*-
"""
Outgoing server-to-server streams: the initiating side (RFC 6120 §4-§6;
XEP-0178; XEP-0220 §2.1, §2.3), and the route of one destination.

An L{OutgoingStream} opens a stream from one of our domains to a remote
one, does STARTTLS when offered (and gives up when it is not and
C{s2s.require_encryption} is on), then authenticates our domain:

  - SASL EXTERNAL (XEP-0178) when the peer's certificate is valid for its
    domain and the peer offers the mechanism, with our domain as the
    authorization identity; then the stream restarts;
  - dialback (XEP-0220) otherwise, unless C{s2s.require_valid_certificates}:
    C{<db:result/>} with our key (XEP-0185) for the stream id the peer gave
    us, and the peer answers C{valid}, C{invalid} or C{error}.

A stream opened for a dialback verification (C{verify}) authenticates
nothing: it asks the authoritative server whether a key is right and
closes once answered.

When C{s2s.bidi} is on and the peer offers bidirectional streams
(XEP-0288 §2.1), the stream asks for one (C{<bidi xmlns='urn:xmpp:bidi'/>},
after TLS and before authenticating, §2.2) and, once authenticated, also
accepts the peer's stanzas from its domain to ours (checked as
L{xmppd.s2s.streams} says); the peer then needs no connection of its own.
Otherwise streams carry stanzas one way only, and a stanza coming back on
one is C{unsupported-stanza-type}.

An L{OutgoingRoute} is what the S2S service keeps per pair (our domain,
remote domain): the authenticated stream, or a bounded queue of the
stanzas waiting for one (C{s2s.max_queue}; more bounce with
C{resource-constraint}).  The first waiting stanza starts a connection:
resolution (L{xmppd.s2s.resolver}), then each address in turn until a TCP
connection is made, then negotiation.  Everything waiting bounces with
C{remote-server-timeout} when the stream is not authenticated within
C{s2s.connect_timeout} or cannot be had, or with
C{remote-server-not-found} when the domain does not exist; errors are
never answered.

Implements: RFC 6120 §4, §5, §6 (initiating server), XEP-0178 1.2, XEP-0220 1.1.1, XEP-0288 1.0.1
"""

from __future__ import annotations

import base64
from collections import deque

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.s2s.dialback import (NS_DIALBACK, dialbackKey, errorCondition, resultElement,
                                verifyElement)
from xmppd.s2s.resolver import DomainNotFound
from xmppd.s2s.streams import NS_BIDI, NS_BIDI_FEATURE, NS_SASL, NS_TLS, S2SStream
from xmppd.core.stanzas import errorReply


class NegotiationFailed(Exception):
    """A stream could not be authenticated; C{condition} is the stanza error to bounce with."""

    def __init__(self, condition: str, reason: str):
        Exception.__init__(self, reason)
        self.condition = condition


class OutgoingStream(S2SStream):
    """
    One connection to another server.  C{done} fires with the method
    (C{"EXTERNAL"} or C{"dialback"}) once our domain is authenticated, or
    with the verdict (a bool) of a C{verify} stream; it fails with
    L{NegotiationFailed}; cancelling it closes the stream.
    """

    log = Logger()
    direction = "out"
    elements = {
        (NS_STREAMS, "features"): "onFeatures",
        (NS_TLS, "proceed"): "onProceed",
        (NS_TLS, "failure"): "onTLSFailure",
        (NS_SASL, "success"): "onSASLSuccess",
        (NS_SASL, "failure"): "onSASLFailure",
        (NS_DIALBACK, "result"): "onDialbackResult",
        (NS_DIALBACK, "verify"): "onDialbackVerify",
    }

    def __init__(self, service, local: str, remote: str, directTLS: bool = False,
                 verify: tuple[str, str] | None = None):
        S2SStream.__init__(self, service, secure=directTLS)
        self.localDomain = local
        self.remoteDomain = remote
        self.directTLS = directTLS
        #: (stream id, key) to ask about, for a dialback verification stream.
        self.verify = verify
        self.method: str | None = None
        self.since: float | None = None
        self.triedExternal = False
        self.externalDone = False
        self.route = None
        #: Set when nobody waits for C{done} any more.
        self.abandoned = False
        self.done = defer.Deferred(lambda _: self.abandon())

    def connectionMade(self) -> None:
        S2SStream.connectionMade(self)
        self.service.outgoing.add(self)
        self.sendHeader()

    def connectionLost(self, reason) -> None:
        S2SStream.connectionLost(self, reason)
        self.service.outgoing.discard(self)

    def streamClosing(self) -> None:
        self.fail("remote-server-timeout", "the connection closed during negotiation")
        if self.route is not None:
            route, self.route = self.route, None
            route.streamGone(self)

    def abandon(self) -> None:
        """Negotiation is no longer wanted (the route timed out): C{done} is cancelled."""
        self.abandoned = True
        if not self.closing:
            self.closeStream()

    def sendHeader(self) -> None:
        self.writeHeader(" from='%s' to='%s'" % (self.localDomain, self.remoteDomain))

    # -- outcome -----------------------------------------------------------

    def succeed(self, result) -> None:
        if not self.done.called:
            self.done.callback(result)

    def fail(self, condition: str, reason: str) -> None:
        if not self.done.called and not self.abandoned:
            self.done.errback(NegotiationFailed(condition, reason))

    def giveUp(self, reason: str, condition: str = "remote-server-timeout") -> None:
        """Negotiation cannot succeed: log why, fail C{done} and close the stream."""
        self.log.info("s2s out {stream!r} ({peer}): {reason}", stream=self,
                      peer=self.peerAddress, reason=reason)
        self.fail(condition, reason)
        self.closeStream()

    def authenticatedWith(self, method: str) -> None:
        self.method = method
        self.since = self.clock.seconds()
        self.accepted()
        self.startIdleTimer()
        self.service.authenticated(self, self.localDomain, self.remoteDomain, method)
        self.succeed(method)

    # -- negotiation -------------------------------------------------------

    def addRoute(self, route) -> None:
        self.route = route

    def onDocumentStart(self, root: domish.Element) -> None:
        if not self.checkHeader(root):
            self.fail("remote-server-timeout", "the peer's stream header was refused")
            return
        self.streamId = root.getAttribute("id")
        if not self.streamId:
            # Dialback keys depend on it (XEP-0220 §2.1.1, RFC 6120 §4.7.3).
            self.giveUp("the peer's stream header has no id")

    def onFeatures(self, features: domish.Element) -> None:
        offered = {(child.uri, child.name) for child in features.elements()}
        if not self.secure:
            if (NS_TLS, "starttls") in offered and self.service.clientTLS is not None:
                self.send(domish.Element((NS_TLS, "starttls")))
                return
            if self.service.requireEncryption:
                return self.giveUp("the peer offers no STARTTLS and encryption is required")
        if self.externalDone:
            return self.authenticatedWith("EXTERNAL")
        if self.verify is not None:
            streamId, key = self.verify
            self.send(verifyElement(self.localDomain, self.remoteDomain, streamId, key))
            return
        if self.service.bidi and not self.bidi and (NS_BIDI_FEATURE, "bidi") in offered:
            # XEP-0288 §2.2: no answer comes; authentication goes on at once.
            self.bidi = True
            self.send(domish.Element((NS_BIDI, "bidi")))
        check = self.service.checkCertificate(self.transport, self.remoteDomain) \
            if self.secure else None
        if check is not None and check.valid and self.externalOffered(features):
            self.triedExternal = True
            auth = domish.Element((NS_SASL, "auth"))
            auth["mechanism"] = "EXTERNAL"
            auth.addContent(base64.b64encode(self.localDomain.encode("utf-8")).decode("ascii"))
            self.send(auth)
            return
        self.dialback(check.reason if check is not None and not check.valid
                      else "the peer offers no SASL EXTERNAL")

    def externalOffered(self, features: domish.Element) -> bool:
        for mechanisms in features.elements(NS_SASL, "mechanisms"):
            for mechanism in mechanisms.elements(NS_SASL, "mechanism"):
                if str(mechanism).strip() == "EXTERNAL":
                    return True
        return False

    def dialback(self, whyNotExternal: str) -> None:
        """Authenticate with dialback, if allowed (XEP-0220 §2.1.1)."""
        if self.service.requireValidCertificates:
            return self.giveUp("cannot authenticate with a certificate (%s) and valid "
                               "certificates are required" % (whyNotExternal,))
        key = dialbackKey(self.service.secret, self.remoteDomain, self.localDomain,
                          self.streamId)
        self.send(resultElement(self.localDomain, self.remoteDomain, key))

    def onProceed(self, element: domish.Element) -> None:
        if self.secure:
            return self.streamError("unsupported-stanza-type")
        self.transport.startTLS(
            self.service.clientTLS.forDomain(self.remoteDomain, self.localDomain))
        self.secure = True
        self.restart()
        self.sendHeader()

    def onTLSFailure(self, element: domish.Element) -> None:
        self.giveUp("the peer failed STARTTLS")

    def onSASLSuccess(self, element: domish.Element) -> None:
        if not self.triedExternal or self.externalDone:
            return self.streamError("unsupported-stanza-type")
        self.externalDone = True
        self.restart()
        self.sendHeader()

    def onSASLFailure(self, element: domish.Element) -> None:
        if not self.triedExternal or self.externalDone:
            return self.streamError("unsupported-stanza-type")
        conditions = [child.name for child in element.elements() if child.name != "text"]
        self.dialback("SASL EXTERNAL failed: %s" % (conditions[0] if conditions else "?",))

    def onDialbackResult(self, element: domish.Element) -> None:
        resultType = element.getAttribute("type")
        if (self.verify is not None or resultType is None
                or element.getAttribute("from") != self.remoteDomain
                or element.getAttribute("to") != self.localDomain):
            return self.streamError("unsupported-stanza-type")
        if resultType == "valid":
            self.authenticatedWith("dialback")
        elif resultType == "error":
            condition = errorCondition(element) or "undefined-condition"
            self.giveUp("dialback failed at the peer: %s" % (condition,))
        else:
            self.giveUp("the peer refused our dialback key")

    def onDialbackVerify(self, element: domish.Element) -> None:
        verifyType = element.getAttribute("type")
        if verifyType is None and self.bidi and self.method is not None:
            # The peer routes its questions through this stream too.
            return self.answerVerify(element)
        if self.verify is None or verifyType is None \
                or element.getAttribute("id") != self.verify[0]:
            return self.streamError("unsupported-stanza-type")
        if verifyType == "error":
            condition = errorCondition(element) or "undefined-condition"
            self.fail("remote-server-not-found" if condition == "item-not-found"
                      else "remote-server-timeout",
                      "the authoritative server could not check the key: %s" % (condition,))
        else:
            self.succeed(verifyType == "valid")
        self.closeStream()

    def receivingPairs(self) -> tuple[tuple[str, str], ...]:
        """XEP-0288 §2.2: the peer sends for its domain (our stream's C{to}) to ours."""
        if self.method is None:
            return ()
        return ((self.localDomain, self.remoteDomain),)

    def onStanza(self, stanza: domish.Element) -> None:
        if not self.bidi:
            return self.streamError("unsupported-stanza-type", "this stream is one-way")
        S2SStream.onStanza(self, stanza)


class OutgoingFactory(protocol.ClientFactory):
    """Builds the one L{OutgoingStream} of a connection attempt."""

    noisy = False

    def __init__(self, service, local: str, remote: str, directTLS: bool = False,
                 verify: tuple[str, str] | None = None):
        self.service = service
        self.local = local
        self.remote = remote
        self.directTLS = directTLS
        self.verify = verify

    def buildProtocol(self, addr) -> OutgoingStream:
        return OutgoingStream(self.service, self.local, self.remote, self.directTLS,
                              self.verify)


class OutgoingRoute:
    """The route of one pair (our domain, remote domain); see the module docstring."""

    log = Logger()

    def __init__(self, service, local: str, remote: str):
        self.service = service
        self.local = local
        self.remote = remote
        self.queue: deque = deque()
        #: The authenticated stream, once there is one: ours, or the
        #: peer's bidirectional stream (XEP-0288) authenticated for the pair.
        self.stream: S2SStream | None = None
        #: The connection attempt in progress (a Deferred of the stream).
        self.attempt: defer.Deferred | None = None
        self.timer = None

    def __repr__(self) -> str:
        return "<OutgoingRoute %s -> %s>" % (self.local, self.remote)

    def deliver(self, stanza: domish.Element) -> None:
        stream = self.stream
        if stream is not None and not stream.closing:
            stream.send(stanza)
            return
        if len(self.queue) >= self.service.maxQueue:
            self.service.server.metrics.reject("s2s_max_queue")
            self.bounce(stanza, "resource-constraint",
                        "too many stanzas are waiting for %s" % (self.remote,))
            return
        self.queue.append(stanza)
        if self.attempt is None:
            self.connect()

    def connect(self) -> None:
        self.timer = self.service.clock.callLater(self.service.connectTimeout, self.onTimeout)
        self.attempt = defer.ensureDeferred(self.establish())
        self.attempt.addCallbacks(self.established, self.failed)

    async def establish(self) -> OutgoingStream:
        targets = await self.service.resolver.resolve(self.remote)
        reasons = []
        for target in targets:
            try:
                stream = await self.service.connectStream(target, self.local, self.remote)
            except defer.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - refused, unreachable, no address
                reasons.append("%s:%s: %s" % (target.host, target.port, type(e).__name__))
                continue
            await stream.done
            return stream
        raise NegotiationFailed("remote-server-timeout", "cannot connect to %s (%s)" % (
            self.remote, "; ".join(reasons) or "no address"))

    def established(self, stream: OutgoingStream) -> None:
        self.attempt = None
        self.cancelTimer()
        if stream.closing:
            return self.failed(NegotiationFailed("remote-server-timeout",
                                                 "the stream closed at once"))
        stream.addRoute(self)
        if self.stream is not None and not self.stream.closing:
            # A bidirectional stream came first (see useStream): ours
            # stays open for the peer, and idles out if it has no use.
            return
        self.stream = stream
        queue, self.queue = self.queue, deque()
        for stanza in queue:
            stream.send(stanza)

    def useStream(self, stream: S2SStream) -> bool:
        """
        Send through C{stream} (an incoming bidirectional stream on which
        the peer authenticated the reverse pair, XEP-0288, or a spare stream
        of ours), unless a stream is already in use.  Whether the stream is
        used comes back.

        A connection attempt of our own still in progress is left to end:
        when both servers connect to each other at once, each would
        otherwise close the stream the other has just started to use.
        """
        if self.stream is not None and not self.stream.closing:
            return False
        self.stream = stream
        stream.addRoute(self)
        queue, self.queue = self.queue, deque()
        for stanza in queue:
            stream.send(stanza)
        return True

    def failed(self, failure) -> None:
        self.attempt = None
        self.cancelTimer()
        error = getattr(failure, "value", failure)
        if isinstance(error, defer.CancelledError):
            return
        if isinstance(error, DomainNotFound):
            condition = "remote-server-not-found"
        else:
            condition = getattr(error, "condition", "remote-server-timeout")
            if condition != "remote-server-not-found":
                condition = "remote-server-timeout"
        self.log.info("s2s out {local} -> {remote} failed: {reason}; {count} stanza(s) "
                      "bounced with {condition}", local=self.local, remote=self.remote,
                      reason=str(error) or type(error).__name__, count=len(self.queue),
                      condition=condition)
        self.bounceAll(condition)
        self.service.routeIdle(self)

    def onTimeout(self) -> None:
        self.timer = None
        self.log.info("s2s out {local} -> {remote}: not authenticated within {timeout} s; "
                      "{count} stanza(s) bounced with remote-server-timeout",
                      local=self.local, remote=self.remote,
                      timeout=self.service.connectTimeout, count=len(self.queue))
        attempt, self.attempt = self.attempt, None
        if attempt is not None:
            attempt.cancel()
        self.bounceAll("remote-server-timeout")
        self.service.routeIdle(self)

    def cancelTimer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def streamGone(self, stream: S2SStream) -> None:
        """
        The authenticated stream closed: another one authenticated for the
        pair takes over (see L{S2SService.spareStream}), else the next
        stanza connects again.
        """
        if stream is self.stream:
            self.stream = None
            spare = self.service.spareStream(self.local, self.remote)
            if spare is not None:
                self.useStream(spare)
            elif self.attempt is None and not self.queue:
                self.service.routeIdle(self)

    def stop(self) -> None:
        """The service stops: no more attempts; what waits bounces."""
        self.cancelTimer()
        attempt, self.attempt = self.attempt, None
        if attempt is not None:
            attempt.cancel()
        self.bounceAll("remote-server-timeout")

    def bounceAll(self, condition: str) -> None:
        queue, self.queue = self.queue, deque()
        text = "%s could not be reached" % (self.remote,)
        for stanza in queue:
            self.bounce(stanza, condition, text)

    def bounce(self, stanza: domish.Element, condition: str, text: str) -> None:
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            self.service.router.route(reply)
