# -*- test-case-name: tests.test_c2s -*-
"""
Receiving-side stream negotiation for client streams (RFC 6120 §5, §6, §7;
RFC 3921 §3 legacy session).

Twisted and wokkel only implement the initiating side, so these are ours.
Each initializer offers at most one stream feature for the stream's current
state and handles its own top-level elements (or IQ payloads), which it
declares in C{elements} / C{iqPayloads} so the stream dispatches with one dict
lookup.  The stream restarts after TLS and after SASL; the initializers read
the stream's state (C{secure}, C{username}, C{session}) instead of keeping
their own copies.

What a stream offers depends on the domain its header named (virtual hosts,
L{xmppd.config.hosts}): whether TLS comes before authentication, and whether SASL
ANONYMOUS (XEP-0175) is among the mechanisms.

Implements: RFC 6120 (STARTTLS, SASL, resource binding), RFC 3921 §3 (session),
XEP-0440 0.4 (SASL channel-binding type capability), XEP-0175 1.2,
XEP-0474 0.6.0 (the advertised lists for SCRAM's downgrade protection)
"""

from __future__ import annotations

import base64
import binascii
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import hold
from xmppd.c2s.sasl import MECHANISMS, AnonymousMechanism, Challenge, SASLFailure, Success

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


class ReceivingInitializer:
    """
    One negotiation step on a L{xmppd.c2s.stream.ClientStream}.  C{elements} maps
    (namespace, name) of top-level elements to method names, C{iqPayloads}
    does the same for the payload of IQ stanzas.
    """

    __slots__ = ("stream",)
    elements: dict[tuple[str, str], str] = {}
    iqPayloads: dict[tuple[str, str], str] = {}

    def __init__(self, stream):
        self.stream = stream

    def feature(self) -> domish.Element | None:
        """The feature to offer in the next C{<stream:features/>}, if any."""
        return None


class StartTLSInitializer(ReceivingInitializer):
    """RFC 6120 §5: offered until the stream is encrypted."""

    __slots__ = ()

    elements = {(NS_TLS, "starttls"): "onStartTLS"}

    def feature(self):
        stream = self.stream
        if stream.secure or stream.username is not None or stream.tlsOptions is None:
            return None
        starttls = domish.Element((NS_TLS, "starttls"))
        if stream.requireTLS:
            starttls.addElement("required")
        return starttls

    def onStartTLS(self, element):
        stream = self.stream
        if self.feature() is None:
            # §5.4.2.2: failure, then the stream is closed.
            stream.send(domish.Element((NS_TLS, "failure")))
            stream.closeStream()
            return
        stream.send(domish.Element((NS_TLS, "proceed")))
        stream.transport.startTLS(stream.tlsOptions)
        stream.secure = True
        stream.restart()


class SASLInitializer(ReceivingInitializer):
    """
    RFC 6120 §6.  Failed attempts are counted per connection (over the limit
    the stream is closed with C{policy-violation}, §6.4.5) and delayed per IP
    address with a delay that doubles with each failure.
    """

    elements = {
        (NS_SASL, "auth"): "onAuth",
        (NS_SASL, "response"): "onResponse",
        (NS_SASL, "abort"): "onAbort",
    }
    __slots__ = ("mechanism", "busy")
    log = Logger()
    #: The namespace of the profile's elements; SASL2 (XEP-0388,
    #: L{xmppd.c2s.sasl2}) reuses this class with its own.
    ns = NS_SASL

    def __init__(self, stream):
        ReceivingInitializer.__init__(self, stream)
        self.mechanism = None
        self.busy = False

    def offeredMechanisms(self) -> list[str]:
        """
        The password mechanisms C{[sasl] mechanisms} lists, in its order,
        that this connection can use (channel binding for -PLUS, TLS for
        PLAIN), then ANONYMOUS where the domain allows it.
        """
        stream = self.stream
        canBind = bool(stream.channelBindings())
        offered = [name for name in stream.factory.saslMechanisms
                   if (canBind or not MECHANISMS[name].plus)
                   and (name != "PLAIN" or stream.secure or stream.plainWithoutTLS)]
        host = stream.host
        if host is not None and host.anonymous:
            # Last: a client that has an account and knows ANONYMOUS too
            # should not pick it by accident.
            offered.append(AnonymousMechanism.name)
        return offered

    def feature(self):
        stream = self.stream
        if stream.username is not None or (stream.requireTLS and not stream.secure):
            return None
        mechanisms = domish.Element((NS_SASL, "mechanisms"))
        for name in self.offeredMechanisms():
            mechanisms.addElement("mechanism", content=name)
        return mechanisms

    def refuseAuth(self) -> bool:
        """
        Whether an attempt to start authenticating must end the stream: the
        stream is authenticated, or an attempt (of either profile) is under
        way (XEP-0388 §2.4: nothing else while authenticating).
        """
        stream = self.stream
        if stream.username is not None:
            stream.streamError("policy-violation", "already authenticated")
            return True
        if stream.authenticating is not None and stream.authenticating is not self:
            stream.streamError("policy-violation", "authentication already in progress")
            return True
        if self.busy:
            stream.streamError("policy-violation", "authentication already in progress")
            return True
        return False

    def mechanismFor(self, name: str | None):
        """
        The class of the password (or ANONYMOUS) mechanism C{name}, or a
        L{SASLFailure} to answer with: unknown, switched off, or not
        offered on this connection.
        """
        stream = self.stream
        mechanismClass = (AnonymousMechanism if name == AnonymousMechanism.name
                          else MECHANISMS.get(name))
        if mechanismClass is None or (mechanismClass is not AnonymousMechanism
                                      and name not in stream.factory.saslMechanisms):
            # Unknown, or switched off by the operator ([sasl] mechanisms).
            return SASLFailure("invalid-mechanism")
        if stream.requireTLS and not stream.secure:
            return SASLFailure("encryption-required")
        if name not in self.offeredMechanisms():
            # A password mechanism held back is one that needs encryption
            # (PLAIN, the -PLUS ones); ANONYMOUS is simply not supported on
            # this domain (RFC 6120 §6.5.5), whatever other domains do.
            return SASLFailure("invalid-mechanism" if mechanismClass is AnonymousMechanism
                               else "encryption-required")
        return mechanismClass

    def makeMechanism(self, mechanismClass):
        stream = self.stream
        # XEP-0474: what the features said, the same in both profiles
        # (ChannelBindingInitializer lists the binding types whenever the
        # connection has any).
        bindings = stream.channelBindings()
        advertised = (self.offeredMechanisms(), list(bindings) if bindings else None)
        return mechanismClass(stream.domain, stream.lookupCredentials,
                              stream.factory.saslSecret,
                              stream.channelBindings, stream.saveCredentials,
                              advertised=advertised)

    def onAuth(self, element):
        if self.refuseAuth():
            return
        mechanismClass = self.mechanismFor(element.getAttribute("mechanism"))
        if isinstance(mechanismClass, SASLFailure):
            self.fail(mechanismClass)
            return
        text = str(element).strip()
        if not text:
            initial = None
        elif text == "=":
            initial = b""
        else:
            initial = self.decode(text)
            if initial is None:
                return
        self.mechanism = self.makeMechanism(mechanismClass)
        self.run(self.mechanism.start(initial))

    def onResponse(self, element):
        if self.busy:
            self.stream.streamError("policy-violation", "authentication step in progress")
            return
        if self.mechanism is None:
            self.fail(SASLFailure("malformed-request", "no authentication in progress"))
            return
        data = self.decode(str(element).strip())
        if data is not None:
            self.run(self.mechanism.respond(data))

    def onAbort(self, element):
        if self.mechanism is not None and not self.busy:
            self.fail(SASLFailure("aborted"))

    def decode(self, text: str) -> bytes | None:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.fail(SASLFailure("incorrect-encoding"))
            return None

    def run(self, step):
        self.busy = True
        self.stream.authenticating = self
        d = defer.Deferred.fromCoroutine(step)
        d.addCallbacks(self.stepped, self.failed)

    def stepped(self, result):
        self.busy = False
        stream = self.stream
        if stream.closing:
            return
        if isinstance(result, Challenge):
            stream.send(self.withData((self.ns, "challenge"), result.data))
        elif isinstance(result, Success):
            mechanismName, self.mechanism = self.mechanism.name, None
            stream.authenticating = None
            # The address's failure record is deliberately kept: a success
            # must not let someone with one valid account reset the delay
            # between guesses at others.  Successes are never delayed.
            self.succeeded(result, mechanismName)

    def succeeded(self, result: Success, mechanismName: str) -> None:
        """RFC 6120 §6.4.6: C{<success/>}, then the stream restarts."""
        self.stream.send(self.withData((NS_SASL, "success"), result.additionalData))
        self.stream.onAuthenticated(result.username, mechanismName)

    def failed(self, failure):
        self.busy = False
        if failure.check(SASLFailure):
            self.fail(failure.value)
        else:
            self.log.failure("SASL mechanism failed unexpectedly", failure)
            self.fail(SASLFailure("temporary-auth-failure"))

    def fail(self, failure: SASLFailure):
        """
        Answer a failed attempt after the per-address delay; close the stream
        once the attempts are used up.
        """
        stream = self.stream
        self.mechanism = None
        # Counted per connection over both profiles (RFC 6120 SASL and
        # SASL2): switching between them buys no extra guesses.
        stream.authFailureCount += 1
        tracker = stream.factory.authFailures
        if failure.condition in ("not-authorized", "invalid-authzid"):
            tracker.recordFailure(stream.peerAddress)
        delay = tracker.delayFor(stream.peerAddress)
        self.busy = True
        stream.callLater(delay, self.sendFailure, failure)

    def sendFailure(self, failure: SASLFailure):
        self.busy = False
        stream = self.stream
        if stream.authenticating is self:
            stream.authenticating = None
        if stream.closing:
            return
        stream.send(self.failureElement(failure))
        if stream.authFailureCount >= stream.limits.sasl_max_attempts:
            stream.streamError("policy-violation", "too many failed authentication attempts")

    @staticmethod
    def failureElement(failure: SASLFailure) -> domish.Element:
        element = domish.Element((NS_SASL, "failure"))
        element.addElement(failure.condition)
        if failure.text:
            element.addElement("text", content=failure.text)
        return element

    @staticmethod
    def withData(qname, data: bytes | None) -> domish.Element:
        element = domish.Element(qname)
        if data:
            element.addContent(base64.b64encode(data).decode("ascii"))
        return element


class ChannelBindingInitializer(ReceivingInitializer):
    """
    XEP-0440: tell clients which channel binding types the -PLUS mechanisms
    accept on this connection, so they need not guess (tls-unique is
    meaningless on TLS 1.3, tls-exporter unsafe on TLS 1.2 without EMS).
    """

    __slots__ = ()

    def feature(self):
        stream = self.stream
        if stream.username is not None:
            return None
        bindings = stream.channelBindings()
        if not bindings:
            return None
        advertisement = domish.Element((NS_SASL_CB, "sasl-channel-binding"))
        for bindingType in bindings:
            advertisement.addElement("channel-binding")["type"] = bindingType
        return advertisement


class BindInitializer(ReceivingInitializer):
    """
    RFC 6120 §7: binds a resource, generating one when the client asks for
    none; a full JID that is already bound replaces the older session.  The
    session directory settles a bind asynchronously; the result goes out
    once it has, and a second bind meanwhile is refused as after it.
    """

    __slots__ = ()

    iqPayloads = {(NS_BIND, "bind"): "onBind"}

    def feature(self):
        stream = self.stream
        if stream.username is None or stream.session is not None:
            return None
        return domish.Element((NS_BIND, "bind"))

    def onBind(self, iq, payload):
        stream = self.stream
        if iq.getAttribute("type") != "set":
            stream.sendError(iq, "bad-request")
            return
        if stream.session is not None or stream.binding:
            # One resource per stream (RFC 6120 §7.7.2.1 allows refusing more).
            stream.sendError(iq, "not-allowed")
            return
        requested = None
        for child in payload.elements(NS_BIND, "resource"):
            requested = str(child).strip() or None
        resource = requested or secrets.token_urlsafe(9)
        try:
            jid = parseJID("%s@%s/%s" % (stream.username, stream.domain, resource))
        except InvalidJID:
            stream.sendError(iq, "bad-request", "invalid resource")
            return

        def bound(holding):
            if not holding:
                return  # The connection went while the directory decided.
            response = toResponse(iq, "result")
            bind = response.addElement((NS_BIND, "bind"))
            bind.addElement("jid", content=jid.full())
            stream.send(response)

        def failed(failure):
            stream.log.failure("Binding {jid} failed", failure, jid=jid.full())
            if not stream.closing:
                stream.sendError(iq, "internal-server-error")

        # RFC 6120 §10.1: what the client sends after the bind request
        # (initial presence, a pipelining client's first stanzas) waits
        # until the resource is bound (xmppd.core.ordering).
        held = hold(iq)
        d = stream.bind(jid).addCallbacks(bound, failed)
        d.addBoth(lambda _: held.callback(None))


class SessionInitializer(ReceivingInitializer):
    """
    RFC 3921 §3: the legacy session IQ is a no-op since RFC 6121; offered as
    optional (RFC 6121 Appendix E) so old clients that still send it work.
    """

    __slots__ = ()

    iqPayloads = {(NS_SESSION, "session"): "onSession"}

    def feature(self):
        stream = self.stream
        if stream.username is None or stream.session is not None:
            return None
        session = domish.Element((NS_SESSION, "session"))
        session.addElement("optional")
        return session

    def onSession(self, iq, payload):
        stream = self.stream
        if stream.session is None:
            stream.streamError("not-authorized", "bind a resource first")
        elif iq.getAttribute("type") != "set":
            stream.sendError(iq, "bad-request")
        else:
            stream.send(toResponse(iq, "result"))

