# -*- test-case-name: tests.test_s2s_incoming -*-
"""
Incoming server-to-server streams: the receiving side (RFC 6120 §4-§6,
§8.1.2.2; XEP-0178; XEP-0220 §2).

A peer opens a C{jabber:server} stream C{to} one of our domains (any other
is C{host-unknown}, RFC 6120 §4.9.3.6), is offered STARTTLS (required
unless C{s2s.require_encryption} is off), and after TLS authenticates each
pair of domains it wants to send for, (our domain, its domain), either

  - with SASL EXTERNAL (XEP-0178), offered when the certificate it
    presented is valid for the C{from} of its header; the authorization
    identity, if given, must be that domain; or
  - with dialback (XEP-0220), unless C{s2s.require_valid_certificates}:
    its C{<db:result/>} key is checked by asking the authoritative server
    of its domain over a connection of our own (L{S2SService.verifyDialback}),
    and we answer C{valid}, C{invalid} or C{error}.  Several pairs may be
    authenticated on one stream this way.

It may also ask us, as the authoritative server of one of our domains,
whether a key is ours (C{<db:verify/>}); keys are checked without state
(XEP-0185).

Stanzas are then accepted as L{xmppd.s2s.streams} says: C{to} a domain we
serve, C{from} a domain authenticated on this stream for it.

One address may hold at most C{limits.connections_per_ip} incoming
connections at once, counted apart from clients'; the next one gets our
header and C{policy-violation}, so a peer flooding us with sockets cannot
starve the node of them.

When C{s2s.bidi} is on, the peer is offered a bidirectional stream
(XEP-0288) once TLS is up: if it sends C{<bidi xmlns='urn:xmpp:bidi'/>},
every pair it authenticates also carries our stanzas the other way, from
our domain to its domain (L{S2SService.useBidiStream}), instead of a
connection of our own.  We send nothing before the pair is authenticated,
and only for that pair (XEP-0288 §2.2).

Implements: RFC 6120 §4, §5, §6 (receiving server), XEP-0178 1.2, XEP-0220 1.1.1, XEP-0288 1.0.1
"""

from __future__ import annotations

import base64
import binascii

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.s2s.dialback import NS_DIALBACK, featureElement, resultElement
from xmppd.s2s.streams import (NS_BIDI, NS_BIDI_FEATURE, NS_SASL, NS_TLS, S2SStream,
                               domainOf)

#: Dialback verifications one stream may have in flight at once.
MAX_PENDING_DIALBACK = 16
#: Failed SASL attempts before the stream is closed.
MAX_SASL_FAILURES = 3


class IncomingStream(S2SStream):
    """One connection from another server; see the module docstring."""

    log = Logger()
    direction = "in"
    elements = {
        (NS_TLS, "starttls"): "onStartTLS",
        (NS_SASL, "auth"): "onAuth",
        (NS_SASL, "abort"): "onAbort",
        (NS_DIALBACK, "result"): "onDialbackResult",
        (NS_DIALBACK, "verify"): "onDialbackVerify",
        (NS_BIDI, "bidi"): "onBidi",
    }

    def __init__(self, service, secure: bool = False):
        S2SStream.__init__(self, service, secure)
        #: (our domain, its domain) -> (method, since): what this stream may carry.
        self.pairs: dict[tuple[str, str], tuple[str, float]] = {}
        #: The verdict on the certificate for C{remoteDomain}, once TLS is up.
        self.certificate = None
        self.saslDone = False
        self.saslFailures = 0
        #: Dialback verifications in flight, by pair.
        self.pending: dict[tuple[str, str], defer.Deferred] = {}
        #: The routes sending through this stream (XEP-0288), told when it closes.
        self.routes: list = []
        #: The pairs whose reverse direction was offered to the service.
        self.reversed: set[tuple[str, str]] = set()

    # -- connection --------------------------------------------------------

    #: The address counted in C{service.peers} for this connection, or
    #: C{None}; set by L{IncomingFactory}.
    peerKey: str | None = None
    #: Why the connection is refused as soon as it is made (too many from
    #: its address), or C{None}.
    refusal: str | None = None

    def connectionMade(self) -> None:
        S2SStream.connectionMade(self)
        if self.refusal is not None:
            # The header first, then the error (RFC 6120 §4.9.1.2).
            return self.streamError("policy-violation", self.refusal)
        self.service.incoming.add(self)

    def connectionLost(self, reason) -> None:
        S2SStream.connectionLost(self, reason)
        self.service.incoming.discard(self)
        if self.peerKey is not None:
            self.service.peers.release(self.peerKey)
            self.peerKey = None
        pending, self.pending = self.pending, {}
        for verification in pending.values():
            verification.cancel()

    def sendHeader(self) -> None:
        self.streamId = self.service.newStreamId()
        attributes = " id='%s'" % (self.streamId,)
        if self.localDomain is not None:
            attributes += " from='%s'" % (self.localDomain,)
        if self.remoteDomain is not None:
            attributes += " to='%s'" % (self.remoteDomain,)
        self.writeHeader(attributes)

    # -- the header and features -----------------------------------------

    def onDocumentStart(self, root: domish.Element) -> None:
        to = root.getAttribute("to")
        local = domainOf(to)
        if local is not None and self.service.serves(local):
            # Known before any error, so that even an error header says who we are.
            self.localDomain = local
        sender = root.getAttribute("from")
        if sender is not None and domainOf(sender) is not None:
            self.remoteDomain = domainOf(sender)
        if not self.checkHeader(root):
            return
        if to is not None and (local is None or self.localDomain != local):
            self.log.info("Refused s2s stream from {peer}: {to!r} is not served here",
                          peer=self.peerAddress, to=to[:100])
            return self.streamError("host-unknown")
        if sender is not None and self.remoteDomain is None:
            return self.streamError("invalid-from", "the from of the header is not a domain")
        self.sendHeader()
        if self.secure and self.remoteDomain is not None:
            self.certificate = self.service.checkCertificate(self.transport, self.remoteDomain)
        if self.secure and self.service.requireValidCertificates and not self.saslDone:
            if self.certificate is None or not self.certificate.valid:
                reason = (self.certificate.reason if self.certificate is not None
                          else "the header names no domain")
                self.log.info("Refused s2s stream from {remote} ({peer}): its certificate "
                              "is required and {reason}", remote=self.remoteDomain,
                              peer=self.peerAddress, reason=reason)
                return self.streamError("not-authorized",
                                        "a valid certificate is required: " + reason)
        self.sendFeatures()
        # After SASL, the restarted stream may now carry our stanzas too.
        self.useForReverse()

    def sendFeatures(self) -> None:
        features = domish.Element((NS_STREAMS, "features"))
        if not self.secure and self.service.serverTLS is not None:
            starttls = features.addElement((NS_TLS, "starttls"))
            if self.service.requireEncryption:
                starttls.addElement("required")
        if self.secure or not self.service.requireEncryption:
            if self.externalAllowed():
                mechanisms = features.addElement((NS_SASL, "mechanisms"))
                mechanisms.addElement("mechanism", content="EXTERNAL")
            if self.bidiOffered():
                features.addElement((NS_BIDI_FEATURE, "bidi"))
            if not self.service.requireValidCertificates:
                features.addChild(featureElement())
        self.send(features)

    def externalAllowed(self) -> bool:
        return (self.secure and not self.saslDone and self.localDomain is not None
                and self.certificate is not None and self.certificate.valid)

    # -- STARTTLS and SASL EXTERNAL ----------------------------------------

    def onStartTLS(self, element: domish.Element) -> None:
        if self.secure or self.service.serverTLS is None:
            # RFC 6120 §5.4.2.2: failure, then the stream closes.
            self.send(domish.Element((NS_TLS, "failure")))
            self.closeStream()
            return
        self.send(domish.Element((NS_TLS, "proceed")))
        self.transport.startTLS(self.service.serverTLS)
        self.secure = True
        self.restart()

    def onAuth(self, element: domish.Element) -> None:
        if element.getAttribute("mechanism") != "EXTERNAL" or not self.externalAllowed():
            return self.saslFailure("invalid-mechanism" if self.secure
                                    else "encryption-required")
        text = str(element).strip()
        try:
            authzid = "" if text in ("", "=") else base64.b64decode(
                text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return self.saslFailure("incorrect-encoding")
        # XEP-0178 §3: the authorization identity, if any, is the domain the
        # certificate was checked for.
        if authzid and domainOf(authzid) != self.remoteDomain:
            return self.saslFailure("invalid-authzid")
        self.send(domish.Element((NS_SASL, "success")))
        self.saslDone = True
        self.authenticatePair(self.localDomain, self.remoteDomain, "EXTERNAL")
        self.restart()

    def onAbort(self, element: domish.Element) -> None:
        self.saslFailure("aborted")

    def saslFailure(self, condition: str) -> None:
        self.saslFailures += 1
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        self.send(failure)
        if self.saslFailures >= MAX_SASL_FAILURES:
            self.streamError("policy-violation", "too many failed authentications")

    # -- dialback (XEP-0220) ---------------------------------------------

    def dialbackAllowed(self) -> bool:
        """Dialback needs TLS first when encryption is required, and is off with required certificates."""
        if self.service.requireEncryption and not self.secure:
            self.streamError("policy-violation", "STARTTLS is required first")
            return False
        if self.service.requireValidCertificates:
            self.log.info("Refused dialback from {remote} ({peer}): valid certificates "
                          "are required", remote=self.remoteDomain, peer=self.peerAddress)
            self.streamError("not-authorized", "dialback is not accepted here")
            return False
        return True

    def dialbackAddresses(self, element: domish.Element) -> tuple[str, str] | None:
        """(our domain, its domain) of a dialback element; None after a stream error."""
        local = domainOf(element.getAttribute("to"))
        remote = domainOf(element.getAttribute("from"))
        if local is None or not self.service.serves(local):
            self.streamError("host-unknown")
            return None
        if remote is None or self.service.serves(remote):
            self.streamError("invalid-from")
            return None
        return local, remote

    def onDialbackResult(self, element: domish.Element) -> None:
        """The originating server asks to send for a pair of domains (XEP-0220 §2.1.2)."""
        if element.getAttribute("type") is not None:
            # An answer only comes on streams we open.
            return self.streamError("unsupported-stanza-type")
        if not self.dialbackAllowed():
            return
        pair = self.dialbackAddresses(element)
        if pair is None:
            return
        key = str(element).strip()
        if not key:
            return self.streamError("bad-format", "a dialback request needs a key")
        local, remote = pair
        if pair in self.pairs:
            self.send(resultElement(local, remote, resultType="valid"))
            return
        if pair in self.pending:
            return
        if len(self.pending) >= MAX_PENDING_DIALBACK:
            return self.streamError("policy-violation", "too many dialback requests at once")
        verification = self.service.verifyDialback(local, remote, self.streamId, key)
        self.pending[pair] = verification
        verification.addCallbacks(self.onVerified, self.onVerifyFailed,
                                  callbackArgs=(pair,), errbackArgs=(pair,))

    def onVerified(self, valid: bool, pair: tuple[str, str]) -> None:
        self.pending.pop(pair, None)
        if self.closing:
            return
        local, remote = pair
        if valid:
            self.authenticatePair(local, remote, "dialback")
            self.send(resultElement(local, remote, resultType="valid"))
            self.useForReverse()
        else:
            self.log.info("s2s in {local} <- {remote} ({peer}): dialback key refused by "
                          "the authoritative server", local=local, remote=remote,
                          peer=self.peerAddress)
            self.send(resultElement(local, remote, resultType="invalid"))

    def onVerifyFailed(self, failure, pair: tuple[str, str]) -> None:
        self.pending.pop(pair, None)
        if self.closing or failure.check(defer.CancelledError):
            return
        local, remote = pair
        condition = getattr(failure.value, "condition", "remote-server-timeout")
        self.log.info("s2s in {local} <- {remote} ({peer}): dialback could not be checked: "
                      "{reason}", local=local, remote=remote, peer=self.peerAddress,
                      reason=failure.getErrorMessage())
        self.send(resultElement(local, remote, resultType="error", condition=condition))

    def onDialbackVerify(self, element: domish.Element) -> None:
        """As the authoritative server: is this key ours (XEP-0220 §2.3)?"""
        if element.getAttribute("type") is not None:
            return self.streamError("unsupported-stanza-type")
        if self.service.requireEncryption and not self.secure:
            return self.streamError("policy-violation", "STARTTLS is required first")
        self.answerVerify(element)

    # -- authenticated -----------------------------------------------------

    def authenticatePair(self, local: str, remote: str, method: str) -> None:
        first = not self.pairs
        self.pairs[(local, remote)] = (method, self.clock.seconds())
        if first:
            self.accepted()
            self.startIdleTimer()
        self.service.authenticated(self, local, remote, method)

    def receivingPairs(self) -> dict[tuple[str, str], tuple[str, float]]:
        return self.pairs

    # -- bidirectional streams (XEP-0288) ----------------------------------

    def bidiOffered(self) -> bool:
        """
        Offered until something is authenticated, once TLS is up when it is
        required (XEP-0288 §2.1: STARTTLS comes first; as Prosody does).
        """
        return (self.service.bidi and not self.bidi and not self.saslDone and not self.pairs
                and (self.secure or not self.service.requireEncryption))

    def onBidi(self, element: domish.Element) -> None:
        """
        The initiating server asks to receive stanzas on this stream too
        (XEP-0288 §2.2; there is no answer).  Each pair authenticated on it,
        now or later, becomes the route of the reverse pair: from our domain
        to the peer's, which the peer reached through DNS (or its
        certificate) and so has authenticated us for (§2.2: the stream's
        C{to}, or the inverse of a dialback pair).
        """
        if not self.service.bidi:
            return self.streamError("unsupported-stanza-type",
                                    "bidirectional streams are not offered here")
        if self.service.requireEncryption and not self.secure:
            return self.streamError("policy-violation", "STARTTLS is required first")
        self.bidi = True
        self.useForReverse()

    def useForReverse(self) -> None:
        """
        Offer each authenticated pair's reverse direction to the service,
        once the peer knows it is authenticated: after the dialback
        C{valid} answer, or after the header of the stream restarted after
        SASL (nothing may follow C{<success/>} before it, RFC 6120 §6.4.6).
        """
        if not self.bidi or not self.headerSent or self.closing:
            return
        for pair in self.pairs:
            if pair not in self.reversed:
                self.reversed.add(pair)
                self.service.useBidiStream(self, *pair)

    def addRoute(self, route) -> None:
        self.routes.append(route)

    def streamClosing(self) -> None:
        routes, self.routes = self.routes, []
        for route in routes:
            route.streamGone(self)


class IncomingFactory(protocol.ServerFactory):
    """
    Builds an L{IncomingStream} per connection (C{secure}: direct TLS).
    ALPN (XEP-0368 §3) is answered by the TLS context
    (L{xmppd.s2s.verify.selectProtocol}), not through Twisted's
    C{IProtocolNegotiationFactory}, whose answer breaks STARTTLS.
    """

    noisy = False
    log = Logger()

    def __init__(self, service, secure: bool = False):
        self.service = service
        self.secure = secure

    def buildProtocol(self, addr) -> IncomingStream:
        stream = IncomingStream(self.service, self.secure)
        host = getattr(addr, "host", None) or "local"
        if self.service.peers.acquire(host):
            stream.peerKey = host
        else:
            self.service.server.metrics.reject("connections_per_ip")
            self.log.info("Refusing s2s connection from {host}: too many connections "
                          "from it", host=host, event="abuse", limit="connections_per_ip")
            stream.refusal = "too many connections from your address"
        return stream
