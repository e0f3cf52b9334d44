# -*- test-case-name: tests.test_sasl2 -*-
"""
Extensible SASL Profile (XEP-0388) and Resource Binding 2.0 (XEP-0386) on
client streams: authenticate, bind, and enable or resume stream management
in one round trip, which is what a phone reconnecting many times a day
wants.

SASL2 is offered beside RFC 6120 SASL, with the same mechanisms on the same
conditions (L{xmppd.c2s.negotiation.SASLInitializer.offeredMechanisms}:
C{[sasl] mechanisms}, -PLUS only where the connection can bind, PLAIN only
over TLS unless allowed), the same failure conditions (RFC 6120 §6.5, in
the C{urn:ietf:params:xml:ns:xmpp-sasl} namespace inside a SASL2
C{<failure/>}, XEP-0388 §2.6.2), and the same attempt limits and per-address
delays: the counter of failed attempts is the connection's, whichever
profile made them, and an unknown account fails like a wrong password,
after the same delay.  After C{<success/>} the stream is not restarted
(§2.6.1): the new stream features follow at once.

Requests are checked before any key derivation: a child of
C{<authenticate/>} whose namespace was not offered in the feature's
C{<inline/>}, a Bind 2 child whose namespace is not among Bind 2's inline
features, a second C{<bind/>} or C{<user-agent/>}, a C{<user-agent/>} whose
C{id} is not a UUID (§2.3), an unusable Bind 2 C{<tag/>}: each is answered
with C{<failure><malformed-request/><text/></failure>} and counts as a
failed attempt, so bad input costs the sender, not the server.  No
C{<continue/>} task is ever required; a C{<next/>} is answered with
C{malformed-request}.  Nothing of a request is kept beyond the attempt.

The inline seam, for features that live elsewhere (L{xmppd.core.events}):

  - C{"sasl2/features"}: a feature adds what it offers inside
    C{<authentication><inline/></authentication>} (stream management's
    C{<sm/>}, FAST's C{<fast/>}) and the namespaces it accepts inside a
    Bind 2 C{<bind/>} (listed as C{<feature var/>}, XEP-0386 §3);
  - C{"sasl2/mechanism"}: a feature provides a mechanism the password
    list does not have (FAST's C{HT-*} token mechanisms), given the request
    and its user agent;
  - C{"sasl2/inline"}: once the mechanism succeeded, features act on their
    children of C{<authenticate/>} (XEP-0198 C{<resume/>}, FAST's
    C{<request-token/>}) and answer into the C{<success/>};
  - C{"bind2/inline"}: once Bind 2 bound the session, features act on their
    children of C{<bind/>} and answer into C{<bound/>}.

Bind 2 (XEP-0386 §4): the resource is the client's C{<tag/>}, a dot, and a
part the server chooses: derived from the account and the user agent's id
with a keyed hash when the client sent one, so the same installation gets
the same resource every time (a reconnect replaces its own stale session
instead of leaving a ghost beside it), random otherwise.  If stream
management resumed a session inline, nothing is bound (XEP-0198 §5 inline).

Whatever is sent to the session between the bind and the C{<success/>}
(a message that arrives meanwhile) waits in L{HeldOutput} and follows the
C{<success/>} and the features, so the client never sees a stanza before
it knows it is bound.

Implements: XEP-0388 1.0 (Extensible SASL Profile), XEP-0386 0.4
(Bind 2), XEP-0198 1.6 (inline in SASL2 and Bind 2)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppd.core.events import (Bind2Event, SASL2FeaturesEvent, SASL2InlineEvent,
                               SASL2MechanismEvent, UserAgent)
from xmppd.core.jid import InvalidJID, parseJID, prepResourcepart
from xmppd.core.stanzas import hold
from xmppd.c2s.negotiation import NS_SASL, SASLInitializer
from xmppd.c2s.sasl import Mechanism, SASLFailure, Success

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"

#: XEP-0386 §4 wants a short tag ("the client's name"); longer is refused
#: rather than cut, so the client learns its tag is unusable.
MAX_TAG = 64
#: Free-text fields of <user-agent/>: enough for any device name.
MAX_USER_AGENT_TEXT = 256


class HeldOutput:
    """
    Stands in for the stream as the session's C{stream} from the Bind 2
    bind (or the inline resumption) until the C{<success/>} is out:
    stanzas sent to the session wait here; everything else is the
    stream's.
    """

    __slots__ = ("stream", "queue")

    def __init__(self, stream):
        self.stream = stream
        self.queue: list = []

    def send(self, obj) -> None:
        self.queue.append(obj)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def malformed(text: str) -> SASLFailure:
    return SASLFailure("malformed-request", text)


def textOf(element: domish.Element, limit: int) -> str | None:
    text = str(element).strip()
    if len(text) > limit:
        raise malformed("<%s/> is too long" % (element.name,))
    return text or None


def parseUserAgent(element: domish.Element) -> UserAgent:
    """XEP-0388 §2.3; the id must be a UUID (RFC 4122), kept in its canonical form."""
    identifier = element.getAttribute("id")
    if identifier is not None:
        try:
            if len(identifier) > 45:
                raise ValueError(identifier)
            identifier = str(uuid.UUID(identifier))
        except ValueError:
            raise malformed("the user-agent id must be a UUID")
    software = device = None
    for child in element.elements():
        if child.uri != NS_SASL2:
            continue
        if child.name == "software":
            software = textOf(child, MAX_USER_AGENT_TEXT)
        elif child.name == "device":
            device = textOf(child, MAX_USER_AGENT_TEXT)
    return UserAgent(identifier, software, device)


class Request:
    """What an C{<authenticate/>} asks for, checked (see the module docstring)."""

    __slots__ = ("element", "initial", "userAgent", "bind", "tag")

    def __init__(self, element: domish.Element, offered: frozenset[str],
                 bindFeatures: frozenset[str]):
        self.element = element
        self.initial: bytes | None = None
        self.userAgent: UserAgent | None = None
        self.bind: domish.Element | None = None
        self.tag: str | None = None
        seenInitial = False
        for child in element.elements():
            if child.uri == NS_SASL2:
                if child.name == "initial-response":
                    if seenInitial:
                        raise malformed("more than one <initial-response/>")
                    seenInitial = True
                    self.initial = decode(str(child).strip())
                elif child.name == "user-agent":
                    if self.userAgent is not None:
                        raise malformed("more than one <user-agent/>")
                    self.userAgent = parseUserAgent(child)
                elif child.name != "supported":
                    # <supported/> is informational (§2.3); nothing else
                    # of ours belongs here.
                    raise malformed("unexpected <%s/> in <authenticate/>" % (child.name,))
            elif child.uri == NS_BIND2 and child.name == "bind" and NS_BIND2 in offered:
                if self.bind is not None:
                    raise malformed("more than one <bind/>")
                self.bind = child
                self.checkBind(child, bindFeatures)
            elif child.uri not in offered:
                raise malformed("%s was not offered inline" % (child.uri or "no namespace",))

    def checkBind(self, bind: domish.Element, features: set[str]) -> None:
        for child in bind.elements():
            if child.uri == NS_BIND2 and child.name == "tag":
                if self.tag is not None:
                    raise malformed("more than one <tag/>")
                tag = textOf(child, MAX_TAG) or ""
                try:
                    self.tag = prepResourcepart(tag) if tag else ""
                except InvalidJID:
                    raise malformed("the bind tag is not a valid resource")
            elif child.uri not in features:
                raise malformed("%s was not offered for Bind 2"
                                % (child.uri or "no namespace",))


def decode(text: str) -> bytes:
    """XEP-0388 §2.2: base64, an empty element an empty string."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise SASLFailure("incorrect-encoding")


class SASL2Initializer(SASLInitializer):
    """XEP-0388 and XEP-0386; see the module docstring."""

    __slots__ = ("request", "holding", "current")
    ns = NS_SASL2
    log = Logger()

    elements = {
        (NS_SASL2, "authenticate"): "onAuthenticate",
        (NS_SASL2, "response"): "onResponse",
        (NS_SASL2, "abort"): "onAbort",
        (NS_SASL2, "next"): "onNext",
    }

    def __init__(self, stream):
        SASLInitializer.__init__(self, stream)
        self.request: Request | None = None
        self.holding: defer.Deferred | None = None
        self.current: domish.Element | None = None

    # -- the offer ---------------------------------------------------------

    def offer(self) -> SASL2FeaturesEvent:
        """What features offer inline on this stream (asked again at each use: it is stable)."""
        stream = self.stream
        event = SASL2FeaturesEvent(stream, domish.Element((NS_SASL2, "inline")))
        stream.factory.hooks.notify("sasl2/features", event, stream.domain)
        return event

    def offeredNamespaces(self) -> tuple[frozenset[str], frozenset[str]]:
        """
        The namespaces of what L{offer} offers inside C{<authenticate/>}
        and inside Bind 2's C{<bind/>}: asked at every request, and kept
        per stream state with the stream features
        (L{xmppd.c2s.stream.ClientStream.featuresKey}).
        """
        stream = self.stream
        cache = stream.factory.featuresCache
        key = ("sasl2",) + stream.featuresKey()
        namespaces = cache.get(key)
        if namespaces is None:
            event = self.offer()
            namespaces = (frozenset({child.uri for child in event.inline.elements()}
                                    | {NS_BIND2}), frozenset(event.bindFeatures))
            cache[key] = namespaces
        return namespaces

    def feature(self):
        stream = self.stream
        if stream.username is not None or (stream.requireTLS and not stream.secure):
            return None
        names = self.offeredMechanisms()
        if not names:
            # §2.1: never offered without a mechanism.
            return None
        authentication = domish.Element((NS_SASL2, "authentication"))
        for name in names:
            authentication.addElement("mechanism", content=name)
        event = self.offer()
        inline = authentication.addChild(event.inline)
        bind = inline.addElement((NS_BIND2, "bind"))
        if event.bindFeatures:
            features = bind.addElement("inline")
            for var in event.bindFeatures:
                features.addElement("feature")["var"] = var
        return authentication

    # -- requests ----------------------------------------------------------

    def onAuthenticate(self, element):
        if self.refuseAuth():
            return
        stream = self.stream
        if (stream.requireTLS and not stream.secure) or not self.offeredMechanisms():
            # Not offered now (TLS first): the same answer as RFC 6120's.
            self.fail(SASLFailure("encryption-required"))
            return
        offered, bindFeatures = self.offeredNamespaces()
        try:
            request = Request(element, offered, bindFeatures)
        except SASLFailure as failure:
            self.fail(failure)
            return
        name = element.getAttribute("mechanism")
        if not name:
            self.fail(malformed("no mechanism named"))
            return
        mechanism = self.mechanismFor(name)
        if isinstance(mechanism, SASLFailure) and mechanism.condition == "invalid-mechanism":
            provided = stream.factory.hooks.fire(
                "sasl2/mechanism", SASL2MechanismEvent(stream, name, element, request.userAgent),
                stream.domain)
            if isinstance(provided, (Mechanism, SASLFailure)):
                mechanism = provided
        if isinstance(mechanism, SASLFailure):
            self.fail(mechanism)
            return
        if not isinstance(mechanism, Mechanism):
            mechanism = self.makeMechanism(mechanism)
        self.request = request
        self.mechanism = mechanism
        self.current = element
        self.run(mechanism.start(request.initial))

    def onResponse(self, element):
        self.current = element
        SASLInitializer.onResponse(self, element)

    def onNext(self, element):
        # §2.6.3: a <next/> answers a <continue/>, which we never send.
        if self.refuseAuth():
            return
        self.fail(malformed("no task was offered"))

    # -- outcomes ----------------------------------------------------------

    def run(self, step):
        # RFC 6120 §10.1: what the client sends while this step runs waits
        # (XEP-0388 §2.4 allows it nothing but <abort/> anyway).
        self.release()
        if self.current is not None:
            self.holding = hold(self.current)
            self.current = None
        SASLInitializer.run(self, step)

    def release(self) -> None:
        holding, self.holding = self.holding, None
        if holding is not None:
            holding.callback(None)

    def stepped(self, result):
        if isinstance(result, Success) and not self.stream.closing:
            SASLInitializer.stepped(self, result)
            return
        try:
            SASLInitializer.stepped(self, result)
        finally:
            self.release()

    def fail(self, failure: SASLFailure):
        self.request = None
        self.current = None
        self.release()
        SASLInitializer.fail(self, failure)

    @staticmethod
    def failureElement(failure: SASLFailure) -> domish.Element:
        """§2.6.2: the RFC 6120 condition, in its namespace, inside ours."""
        element = domish.Element((NS_SASL2, "failure"))
        element.addElement((NS_SASL, failure.condition))
        if failure.text:
            element.addElement("text", content=failure.text)
        return element

    def succeeded(self, result: Success, mechanismName: str) -> None:
        stream = self.stream
        request, self.request = self.request, None
        stream.onAuthenticated(result.username, mechanismName, restart=False)
        stream.userAgent = request.userAgent
        event = SASL2InlineEvent(stream, request.element, request.userAgent, mechanismName)
        stream.heldOutput = HeldOutput(stream)
        d = defer.maybeDeferred(stream.factory.hooks.notify, "sasl2/inline", event,
                                stream.domain)
        d.addCallback(lambda _: self.bind2(request, event))
        d.addCallback(lambda _: self.finish(result, event))
        d.addErrback(self.inlineFailed)
        d.addBoth(lambda _: self.release())

    def bind2(self, request: Request, event: SASL2InlineEvent):
        """XEP-0386 §4, unless stream management resumed a session."""
        stream = self.stream
        if request.bind is None or event.resumed or stream.session is not None \
                or stream.closing:
            return None
        resource = self.resourceFor(request)
        jid = parseJID("%s@%s/%s" % (stream.username, stream.domain, resource))

        def bound(holding):
            if not holding:
                return None  # The connection went while the directory decided.
            boundElement = domish.Element((NS_BIND2, "bound"))
            event.answer(boundElement)
            return stream.factory.hooks.notify(
                "bind2/inline", Bind2Event(stream, request.bind, boundElement, event),
                stream.domain)
        return stream.bind(jid).addCallback(bound)

    def resourceFor(self, request: Request) -> str:
        """The tag, a dot, and a part stable per user agent (see the module docstring)."""
        stream = self.stream
        agent = request.userAgent
        if agent is not None and agent.id is not None:
            key = "bind2\0%s@%s\0%s" % (stream.username, stream.domain, agent.id)
            digest = hmac.new(stream.factory.saslSecret, key.encode("utf-8"),
                              hashlib.sha256).digest()
            unique = base64.urlsafe_b64encode(digest[:6]).decode("ascii")
        else:
            unique = secrets.token_urlsafe(6)
        return "%s.%s" % (request.tag, unique) if request.tag else unique

    def finish(self, result: Success, event: SASL2InlineEvent) -> None:
        """§2.6.1: C{<success/>}, the new features, then what waited."""
        stream = self.stream
        held, stream.heldOutput = stream.heldOutput, None
        if stream.closing:
            return
        success = domish.Element((NS_SASL2, "success"))
        if result.additionalData:
            success.addElement("additional-data",
                               content=base64.b64encode(result.additionalData).decode("ascii"))
        # A bare JID, or the full JID once a resource is bound (§2.6.1).
        identifier = (stream.jid.full() if stream.jid is not None
                      else "%s@%s" % (stream.username, stream.domain))
        success.addElement("authorization-identifier", content=identifier)
        for answer in event.answers:
            success.addChild(answer)
        stream.send(success)
        stream.sendFeatures()
        session = stream.session
        if session is not None and held is not None and session.stream is held:
            session.stream = stream
        for after in event.after:
            after()
        if held is not None:
            for obj in held.queue:
                stream.send(obj)

    def inlineFailed(self, failure) -> None:
        stream = self.stream
        stream.heldOutput = None
        self.log.failure("SASL2 inline requests of {user}@{domain} failed", failure,
                         user=stream.username, domain=stream.domain)
        session = stream.session
        if session is not None and session.stream is not stream:
            session.stream = stream
        stream.streamError("internal-server-error")


__all__ = ["NS_BIND2", "NS_SASL2", "HeldOutput", "SASL2Initializer"]
