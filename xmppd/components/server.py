# -*- test-case-name: tests.test_components -*-
"""
External components, the server's side (XEP-0114 §§1-3; stream errors of
RFC 6120 §4.9).

A component (a MUC service, a gateway) runs in a process of its own and
connects to C{components.listen}.  It opens a stream in the namespace
C{jabber:component:accept} addressed C{to} its domain, which must be a key
of C{components.secrets} (else C{host-unknown}); we answer with a header
carrying a fresh stream id, and it proves it knows the domain's secret by
sending C{<handshake/>} with the lowercase hex SHA-1 of the stream id
followed by the secret (XEP-0114 §3), compared in constant time.  A wrong
handshake, or anything else before it, is C{not-authorized} (a wrong one
answered after C{limits.auth_failure_delay}, doubling per failure from the
address, as for client logins, so that guessing the secret is slow); taking longer
than C{limits.negotiation_timeout} is C{connection-timeout}.  Success is an
empty C{<handshake/>}, and the stream becomes the router's route for the
domain.

A second authenticated connection for a connected domain either replaces
the first, which is closed with C{conflict} (C{on_conflict = "replace"},
the default, so a component that restarts before its old TCP connection
has timed out is not locked out), or is itself refused with C{conflict}
(C{"refuse"}).  A domain listed in C{components.balance} instead keeps
every connection and shares its stanzas among them by the recipient's
bare JID (L{xmppd.components.balance}): several processes of a MUC
service, each serving some of the rooms, as Tigase's C{ReceiverBareJidLB}
does.  There, only a second connection of the same I{instance} (the name
a component gives itself in its header) replaces the first.

Every stanza from a component must come C{from} a JID at exactly its
domain (XEP-0114 lets a component use any JID of its domain; DESIGN §3
"check a component's from"): anything else, a missing C{from} included,
closes the stream with C{invalid-from}.  A missing C{to} is answered with
C{bad-request} and a malformed one with C{jid-malformed}, back to the
component.  Inside the server stanzas are C{jabber:client}, as from c2s:
the component's namespace is rewritten on the way in, and stanzas go out
serialized without a namespace of their own, which on this stream means
C{jabber:component:accept}.

What a component sends is shaped like a client's, at its own rates
(C{components.bytes_per_second}, C{components.stanzas_per_second}, a
hundred times a client's): past them reading pauses until the bucket is
out of debt, so a flooding component is slowed, never dropped
(L{xmppd.stream.base}).

A configured domain whose component is not connected has a placeholder
route answering C{service-unavailable} (type C{wait}, as Prosody does),
instead of the C{remote-server-not-found} of a domain nobody serves
(RFC 6120 §10.4.3).  The route of a closing stream is given back to the
placeholder as soon as it starts closing, so no stanza is written into a
connection that is going away.

The client side, for running a service as a component, is
L{xmppd.components.client}; both build on L{xmppd.stream.base.StreamBase}.

Implements: XEP-0114 1.6
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets as randomness
from collections.abc import Mapping

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel.disco import DiscoItem
from zope.interface import implementer

from xmppd.components.balance import MAX_INSTANCE_LENGTH, NS_INSTANCE, BalancedRoute
from xmppd.core.hooks import DELIVER
from xmppd.stream.closing import CLOSE_TIMEOUT
from xmppd.config import (ConfigError, Table, choice, describe, domainList, endpointString,
                          integer, normalizeDomain, option, section, stringTable)
from xmppd.core.jid import InvalidJID, parseJID, prepDomainpart
from xmppd.stream.listening import listenOn
from xmppd.core.ordering import SharedInput
from xmppd.core.router import IRoute
from xmppd.core.stanzas import NS_CLIENT, errorReply, iqProblem
from xmppd.stream.base import StreamBase, StreamLimits
from xmppd.stream.limits import AuthFailureTracker



@section("components")
@dataclasses.dataclass(frozen=True)
class ComponentsConfig:
    listen: str = option(
        "", endpointString(allowEmpty=True),
        "listener for external components (XEP-0114), a Twisted endpoint string "
        "such as \"tcp:5347:interface=127.0.0.1\"; \"\" listens nowhere")
    secrets: Mapping[str, str] = option(
        Table(), stringTable('{"conference.example.org" = "secret"}', normalizeDomain,
                        keyName="domain name", secret=True),
        "component domain -> its shared secret; only these domains may connect")
    on_conflict: str = option(
        "replace", choice("replace", "refuse"),
        "a second connection for a connected component: \"replace\" closes the "
        "old one, \"refuse\" turns the new one away (both with conflict); not for "
        "the domains in balance")
    balance: tuple = option(
        (), domainList(allowEmpty=True),
        "component domains (keys of secrets) that may connect several times at once: "
        "each stanza goes to one of the connections, chosen by its recipient's bare "
        "JID with stable hashing (a room's stanzas all reach the same MUC process), "
        "and the stanzas of one that disconnects go to the others")
    max_stanza_size: int = option(
        1048576, integer(minimum=10000),
        "largest stanza in bytes a component may send; at least "
        "limits.max_stanza_size, so a client's stanza relayed by a component fits")
    send_queue_limit: int = option(
        16777216, integer(minimum=10000),
        "bytes queued for a component that does not read before it is disconnected")
    # A component (a MUC service, a gateway) speaks for many users, and is
    # usually on loopback: a hundred times a client's rates.
    bytes_per_second: int = option(
        10485760, integer(minimum=1024, zeroDisables=True),
        "bytes read per second on one component connection (reading pauses, "
        "nothing is dropped); 0 disables")
    stanzas_per_second: int = option(
        20000, integer(minimum=1, zeroDisables=True),
        "stanzas read per second on one component connection (reading pauses); "
        "0 disables")

    def validate(self) -> None:
        for domain in self.balance:
            if domain not in self.secrets:
                raise ConfigError(f"components.balance: {describe(domain)} has no secret "
                                  f"in components.secrets")
        if self.send_queue_limit < self.max_stanza_size:
            raise ConfigError("components.send_queue_limit: must be at least "
                              "components.max_stanza_size")


def handshakeDigest(streamId: str, secret: str) -> str:
    """The content of a component's C{<handshake/>} (XEP-0114 §3)."""
    return hashlib.sha1((streamId + secret).encode("utf-8")).hexdigest()


class ComponentStream(SharedInput, StreamBase):
    """
    The server's side of one component connection; once authenticated it is
    the router's route for the component's domain (L{deliver}).
    """

    def __init__(self, factory: "ComponentFactory"):
        StreamBase.__init__(self, None, factory.clock, factory.limits)
        self.factory = factory
        #: When the handshake succeeded (clock seconds), for L{ComponentService.connections}.
        self.since: float | None = None
        #: The name the component gave itself in its header, or C{None}
        #: (L{xmppd.components.balance}).
        self.instance: str | None = None
        #: A wrong handshake was given: nothing more is read while its
        #: C{not-authorized} waits (see L{onHandshake}).
        self.refused = False

    def connectionMade(self) -> None:
        StreamBase.connectionMade(self)
        self.factory.streams.add(self)

    def connectionLost(self, reason) -> None:
        StreamBase.connectionLost(self, reason)
        self.factory.streams.discard(self)

    def streamClosing(self) -> None:
        self.factory.service.streamGone(self)

    def rejected(self, limit: str) -> None:
        self.factory.service.server.metrics.reject(limit)

    def sendHeader(self) -> None:
        self.streamId = self.factory.newStreamId()
        attributes = " id='%s'" % self.streamId
        if self.domain is not None:
            attributes += " from='%s'" % self.domain
        self.writeHeader(attributes)

    def onDocumentStart(self, root: domish.Element) -> None:
        if not self.checkHeader(root):
            return
        try:
            requested = prepDomainpart(root.getAttribute("to") or "")
        except InvalidJID:
            requested = None
        if requested is None or requested not in self.factory.secrets:
            self.log.info("Refused component stream from {peer}: unknown domain {domain!r}",
                          peer=self.peerAddress, domain=_short(root.getAttribute("to")))
            return self.streamError("host-unknown")
        self.domain = requested
        instance = root.attributes.get((NS_INSTANCE, "instance"))
        if instance and len(instance) <= MAX_INSTANCE_LENGTH:
            self.instance = instance
        self.sendHeader()

    def onHandshake(self, element: domish.Element) -> None:
        expected = handshakeDigest(self.streamId, self.factory.secrets[self.domain])
        given = str(element).strip().lower()
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8")):
            self.log.info("Refused component {domain} from {peer}: wrong handshake",
                          domain=self.domain, peer=self.peerAddress, event="abuse",
                          limit="auth_failures")
            # Answered late, later at each wrong guess from the address, and
            # nothing after the guess is read meanwhile: what follows must
            # not tell a right secret from a wrong one sooner.
            host = getattr(self.transport.getPeer(), "host", None) or "local"
            tracker = self.factory.service.authFailures
            tracker.recordFailure(host)
            self.factory.service.server.metrics.reject("auth_failures")
            self.refused = True
            self.parser.halt()
            self.timers["refuse"] = self.clock.callLater(
                tracker.delayFor(host), self.streamError, "not-authorized")
            return
        self.factory.service.authFailures.recordSuccess(
            getattr(self.transport.getPeer(), "host", None) or "local")
        self.factory.service.componentAuthenticated(self)

    def accept(self, since: float) -> None:
        """Tell the component it is in (XEP-0114 §3: an empty handshake)."""
        self.accepted()
        self.since = since
        self.send(domish.Element((NS_CLIENT, "handshake")))

    def deliver(self, stanza: domish.Element) -> None:
        """IRoute: a stanza for the component's domain goes down this stream."""
        if self.closing:
            self.factory.service.routeAfter(self).deliver(stanza)
        else:
            self.send(stanza)

    def dataReceived(self, data: bytes) -> None:
        if not self.refused:
            StreamBase.dataReceived(self, data)

    def onElement(self, element: domish.Element) -> None:
        if not self.refused:
            StreamBase.onElement(self, element)

    def onStanza(self, stanza: domish.Element) -> None:
        sent = stanza.getAttribute("from")
        try:
            sender = parseJID(sent) if sent is not None else None
        except InvalidJID:
            sender = None
        if sender is None or sender.host != self.domain:
            self.log.info("Closing component {domain} ({peer}): stanza from {sender!r}",
                          domain=self.domain, peer=self.peerAddress, sender=_short(sent))
            self.streamError("invalid-from", "stanzas must come from %s" % (self.domain,))
            return
        stanza["from"] = sender.full()
        to = stanza.getAttribute("to")
        if to is None:
            self.sendError(stanza, "bad-request", "a component must address its stanzas")
            return
        try:
            stanza["to"] = parseJID(to).full()
        except InvalidJID:
            self.sendError(stanza, "jid-malformed")
            return
        if stanza.name == "iq" and not self.validIQ(stanza):
            return
        # RFC 6120 §10.1, per sender: a component speaks for many JIDs.
        self.processInOrder(stanza, stanza["from"])

    def processStanza(self, stanza: domish.Element) -> None:
        """L{SharedInput}: a checked stanza, its turn come, goes to the router."""
        self.factory.router.route(stanza)

    def streamError(self, condition: str, text: str | None = None) -> None:
        if not self.closing:
            self.dropWaiting()
        StreamBase.streamError(self, condition, text)

    def validIQ(self, iq: domish.Element) -> bool:
        """RFC 6120 §8.2.3 (L{xmppd.core.stanzas.iqProblem}); a bad one is answered."""
        problem = iqProblem(iq)
        if problem == "bad-request":
            self.sendError(iq, problem)
        return problem is None

    def sendError(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        """Answer C{stanza} on this stream (never an error to an error)."""
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            self.send(reply)


def _short(text: str | None, length: int = 100) -> str | None:
    """A peer's string cut short enough for a log line."""
    if text is not None and len(text) > length:
        return text[:length] + "..."
    return text


@implementer(IRoute)
class UnavailableRoute:
    """
    The route of a configured component domain while its component is not
    connected: C{service-unavailable}, type C{wait}, since trying later may
    work (RFC 6120 §8.3.3.19).
    """

    def __init__(self, router):
        self.router = router

    def deliver(self, stanza: domish.Element) -> None:
        reply = errorReply(stanza, "service-unavailable", "the component is not connected",
                           errorType="wait")
        if reply is not None:
            self.router.route(reply)


class ComponentFactory(protocol.ServerFactory):
    """Builds a L{ComponentStream} per connection; holds what they all share."""

    def __init__(self, service: "ComponentService"):
        self.service = service
        self.clock = service.clock
        self.router = service.router
        self.secrets = service.secrets
        self.limits = service.limits
        self.nodeId = service.nodeId
        self.streamCounter = 0
        #: Every open stream, authenticated or not, so stopping can close them.
        self.streams: set[ComponentStream] = set()

    def newStreamId(self) -> str:
        # Unpredictable: the handshake digest must not be replayable.
        self.streamCounter += 1
        return "%s-c%x-%s" % (self.nodeId, self.streamCounter, randomness.token_hex(8))

    def buildProtocol(self, addr) -> ComponentStream:
        return ComponentStream(self)


class ComponentService(service.Service):
    """
    External components for one node: the placeholder routes of configured
    domains from start to stop, and the listener on C{components.listen}
    (once storage is open, as for c2s).  C{ready} fires with the listening
    port (or C{None} when there is no listener); C{port} is it too.
    """

    name = "components"
    log = Logger()

    def __init__(self, server, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        config = server.config
        components = config.components
        served = sorted(set(components.secrets) & set(config.server.domains))
        if served:
            raise ConfigError(f"components.secrets: {describe(served[0])} is in "
                              f"server.domains too; a domain is served by this server "
                              f"or by a component, not both")
        # Services of features (an in-process MUC) are named by their domain.
        inProcess = sorted(domain for domain in components.secrets
                           if domain in getattr(server, "namedServices", {}))
        if inProcess:
            raise ConfigError(f"components.secrets: {describe(inProcess[0])} is served "
                              f"in this process already (see server.modules); a domain "
                              f"is served in the server or by a component, not both")
        if components.max_stanza_size < config.limits.max_stanza_size:
            raise ConfigError("components.max_stanza_size: must be at least "
                              "limits.max_stanza_size")
        self.server = server
        self.reactor = reactor
        self.clock = server.clock
        self.router = server.router
        self.nodeId = server.nodeId
        self.secrets = components.secrets
        self.onConflict = components.on_conflict
        self.listenOn = components.listen
        self.limits = StreamLimits(
            maxStanzaSize=components.max_stanza_size,
            maxStanzaSizeUnauthenticated=config.limits.max_stanza_size_unauthenticated,
            maxDepth=config.limits.max_depth,
            negotiationTimeout=config.limits.negotiation_timeout,
            sendQueueLimit=components.send_queue_limit,
            bytesPerSecond=components.bytes_per_second,
            stanzasPerSecond=components.stanzas_per_second)
        #: Domain -> its authenticated stream (domains not balanced).
        self.streams: dict[str, ComponentStream] = {}
        #: Balanced domain -> the route over its connections, while any is up.
        self.balanced: dict[str, BalancedRoute] = {}
        self.balance = frozenset(components.balance)
        self.placeholders = {domain: UnavailableRoute(self.router) for domain in self.secrets}
        #: Wrong handshakes per address, each answered later than the last
        #: (limits.auth_failure_delay, as for client logins): guessing a
        #: secret costs time, however many connections it takes.
        self.authFailures = AuthFailureTracker(config.limits.auth_failure_delay,
                                               config.limits.auth_failure_delay_max,
                                               server.clock)
        self.factory = ComponentFactory(self)
        self.port = None
        self.ready = defer.Deferred()

    def startService(self) -> None:
        service.Service.startService(self)
        for domain, placeholder in self.placeholders.items():
            self.router.addRoute(domain, placeholder)
        self.server.hooks.add("disco/items", self.onDiscoItems, DELIVER)
        if self.ready.called:
            self.ready = defer.Deferred()
        # Storage, and in a cluster the cluster's secret: a component's
        # stanza for another server must leave with a key the cluster verifies.
        d = self.server.whenReady()
        d.addCallback(lambda _: self.listen())
        d.addCallbacks(self.ready.callback, self.startFailed)

    @defer.inlineCallbacks
    def listen(self):
        if not self.listenOn:
            return None
        self.port = yield listenOn(self, "components.listen", self.listenOn, self.factory)
        return self.port

    def startFailed(self, failure) -> None:
        """The port could not be bound (or storage did not open): the node cannot run."""
        self.server.fatal(failure.getErrorMessage())
        self.ready.errback(failure)

    def onDiscoItems(self, event) -> None:
        """
        A served domain's disco#items (XEP-0030 §4) lists the configured
        components on its subdomains, as Prosody does, so that clients find
        a MUC service run as a component (XEP-0045 §6.1) like an in-process one.
        """
        target = event.target
        if event.nodeIdentifier or target.user is not None:
            return
        suffix = "." + target.host
        for domain in sorted(self.secrets):
            if domain.endswith(suffix):
                event.items.append(DiscoItem(parseJID(domain)))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop listening, close every component stream with C{system-shutdown}
        (RFC 6120 §4.9.3.22) and wait for them, boundedly; the domains are
        then unroutable, as they were before the start.
        """
        service.Service.stopService(self)
        self.server.hooks.remove("disco/items", self.onDiscoItems)
        port, self.port = self.port, None
        if port is not None:
            yield defer.maybeDeferred(port.stopListening)
        gone = []
        for stream in list(self.factory.streams):
            gone.append(stream.whenClosed())
            stream.streamError("system-shutdown")
        for domain, placeholder in self.placeholders.items():
            self.router.removeRoute(domain, placeholder)
        if gone:
            yield defer.DeferredList(gone).addTimeout(CLOSE_TIMEOUT + 1, self.clock)

    # -- streams -----------------------------------------------------------

    def componentAuthenticated(self, stream: ComponentStream) -> None:
        """A handshake succeeded: the stream takes the domain, or meets a conflict."""
        domain = stream.domain
        if domain in self.balance:
            return self.balancedAuthenticated(stream)
        current = self.streams.get(domain)
        if current is not None:
            if self.onConflict == "refuse":
                self.log.info("Refused component {domain} from {peer}: already connected "
                              "from {other}", domain=domain, peer=stream.peerAddress,
                              other=current.peerAddress)
                stream.streamError("conflict", "this component is already connected")
                return
            self.log.info("Component {domain} from {peer} replaces its connection from "
                          "{other}", domain=domain, peer=stream.peerAddress,
                          other=current.peerAddress)
            # Forgotten first, so that its closing leaves the route alone.
            del self.streams[domain]
            current.streamError("conflict", "replaced by a new connection")
        self.streams[domain] = stream
        stream.accept(self.clock.seconds())
        self.router.addRoute(domain, stream)
        self.log.info("Component {domain} connected from {peer}, authenticated by {method}",
                      domain=domain, peer=stream.peerAddress, method="handshake")

    def balancedAuthenticated(self, stream: ComponentStream) -> None:
        """
        One more connection of a balanced domain: it takes its share of the
        recipients (the first one takes the route from the placeholder).
        """
        domain = stream.domain
        route = self.balanced.get(domain)
        if route is None:
            route = self.balanced[domain] = BalancedRoute(domain)
        name = stream.instance
        if name is None:
            # Named by its connection: balanced, but only on this node.
            name = "%s %s" % (stream.peerAddress, stream.streamId)
        stream.accept(self.clock.seconds())
        old = route.add(name, stream)
        if old is not None:
            self.log.info("Component {domain} instance {instance} from {peer} replaces its "
                          "connection from {other}", domain=domain, instance=name,
                          peer=stream.peerAddress, other=old.peerAddress)
            old.streamError("conflict", "replaced by a new connection of this instance")
        if len(route) == 1:
            self.router.removeRoute(domain, self.placeholders[domain])
            self.router.addRoute(domain, route)
        self.log.info("Component {domain} instance {instance} connected from {peer}, "
                      "authenticated by {method}; {count} connections share its stanzas",
                      domain=domain, instance=name, peer=stream.peerAddress,
                      method="handshake", count=len(route))

    def routeAfter(self, stream: ComponentStream):
        """Where a stanza goes that reaches C{stream} while it closes."""
        route = self.balanced.get(stream.domain)
        if route is not None and len(route) and stream not in route.streams.values():
            return route
        return self.placeholders[stream.domain]

    def streamGone(self, stream: ComponentStream) -> None:
        """A stream closes: if it was its domain's route, the placeholder takes over."""
        domain = stream.domain
        route = self.balanced.get(domain)
        if route is not None:
            if not route.remove(stream):
                return
            if not len(route):
                del self.balanced[domain]
                self.router.removeRoute(domain, route)
                if self.running:
                    self.router.addRoute(domain, self.placeholders[domain])
            self.log.info("Component {domain} disconnected ({peer}); {count} connections "
                          "left to share its stanzas", domain=domain, peer=stream.peerAddress,
                          count=len(route))
            return
        if domain is None or self.streams.get(domain) is not stream:
            return
        del self.streams[domain]
        self.router.removeRoute(domain, stream)
        if self.running:
            self.router.addRoute(domain, self.placeholders[domain])
        self.log.info("Component {domain} disconnected ({peer}), authenticated by {method}",
                      domain=domain, peer=stream.peerAddress, method="handshake")

    def connections(self) -> list[tuple[str, str, float]]:
        """The connected components: (domain, peer address, connected since), by domain."""
        connected = [(domain, stream.peerAddress, stream.since)
                     for domain, stream in self.streams.items()]
        for domain, route in self.balanced.items():
            connected.extend((domain, stream.peerAddress, stream.since)
                             for stream in route.streams.values())
        return sorted(connected, key=lambda row: (row[0], row[2], row[1]))
