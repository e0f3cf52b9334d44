# -*- test-case-name: tests.test_router,tests.test_vhosts -*-
"""
The route of one served domain (DESIGN §2).

Every stanza for the domain is classified once, by kind (iq, message,
presence) and addressing (the domain, a bare JID, a full JID, or the sender
itself), and the matching hook of L{xmppd.core.events} is fired: features decide
there (RFC 6121 §8.5 delivery, presence, blocking, offline storage...).
What no hook takes gets the core's minimal behaviour below, which is also
what a node with every feature switched off does: IQs to the domain or to a
bare JID go to the domain's wokkel handlers, stanzas to a bound full JID are
delivered, and the rest is answered per RFC 6121 §8.5 without storing
anything.

The domain builds its features' handlers from C{server.modules} (see
L{xmppd.core.modules}) and hands each one this object, which carries what a
handler may use: C{domain}, C{router}, C{sessions} (the node's
L{xmppd.core.sessions.ISessionDirectory}), C{presence} (the domain's
L{xmppd.core.presencestate.PresenceState}), C{hooks}, C{storage},
C{clock}, C{config}.  Features never hand a stanza to a session
themselves: they route it, or, deciding a delivery inside this domain's
hooks, ask L{LocalDomain.deliverToSession}.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import XMPPHandlerCollection
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.core.dispatch import DomainStream, StanzaDispatcher
from xmppd.core.events import CATALOGUE, STANZA_OUTBOUND, STANZA_PREPARED, StanzaEvent
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.modules import featureServices, loadFeature
from xmppd.core.presencestate import PresenceState
from xmppd.core.router import IAddressedRoute
from xmppd.core.stanzas import errorReply

def leavesDomain(router, stanza: domish.Element, sender, recipient, proceed) -> bool:
    """
    Fire C{"stanza/outbound"} in the scope of the sender's domain, if that
    domain is served here, for a stanza going from it to another domain
    (served here too, or remote: the S2S service calls this as well), so
    the sender's features may stop what is sent on a user's behalf
    (blocking stops presence broadcasts to blocked contacts).  True when a
    callback took the stanza, or when the hook waits: then C{proceed()} is
    called once it is over, if no callback took the stanza.
    """
    origin = router.routes.get(sender.host)
    if not isinstance(origin, LocalDomain):
        return False
    taken = origin.hooks.fire(STANZA_OUTBOUND, StanzaEvent(stanza, sender, recipient, origin))
    if taken and isinstance(taken, defer.Deferred):
        taken.addCallback(_proceedUnlessTaken, proceed)
    return bool(taken)


def _proceedUnlessTaken(taken, proceed) -> None:
    if not taken:
        proceed()


class DomainHandlers(XMPPHandlerCollection):
    """
    The domain's wokkel handlers.  wokkel's handlers send through their
    parent (C{XMPPHandler.send} calls C{parent.send}), as they would through
    a C{StreamManager}; here that is the router, via the domain's stream.
    """

    def __init__(self, stream: DomainStream):
        XMPPHandlerCollection.__init__(self)
        self.stream = stream

    def send(self, obj) -> None:
        self.stream.send(obj)


#: (kind, addressing) -> hook, built once instead of per stanza.
HOOK_NAMES = {(kind, target): CATALOGUE["%s/%s" % (kind, target)]
              for kind in ("iq", "message", "presence")
              for target in ("host", "bare", "full", "self")
              if "%s/%s" % (kind, target) in CATALOGUE}


@implementer(IAddressedRoute)
class LocalDomain(service.Service):
    """
    One served virtual host.  Registered with the router while running, so a
    domain that is not started yet (or stopped) is simply not routable.
    """

    log = Logger()

    def __init__(self, domain: str, server, features=None):
        self.domain = domain
        self.name = domain
        self.server = server
        self.router = server.router
        self.sessions = server.sessions
        #: What the presence feature remembers per resource of this domain.
        self.presence = PresenceState()
        #: This domain's view of the node's hooks: features register here and
        #: hear only this domain's events (L{xmppd.core.hooks.ScopedHooks}).
        self.hooks = server.hooks.scoped(domain)
        self.dispatcher = StanzaDispatcher()
        self.stream = DomainStream(self.router, self.dispatcher)
        #: The domain's wokkel handlers; wokkel's DiscoHandler walks its siblings here.
        self.handlers = DomainHandlers(self.stream)
        self.features = tuple(server.config.server.modules if features is None else features)
        self.built = False

    @property
    def storage(self):
        return self.server.storage

    @property
    def clock(self):
        return self.server.clock

    @property
    def metrics(self):
        """The node's L{xmppd.core.metrics.Metrics}."""
        return self.server.metrics

    @property
    def invalidation(self):
        """The node's L{xmppd.core.invalidation.IInvalidation} (cached account data)."""
        return self.server.invalidation

    @property
    def config(self):
        return self.server.config

    def startService(self) -> None:
        service.Service.startService(self)
        if not self.built:
            self.built = True
            for name in self.features:
                handler = loadFeature(name).makeHandler(self)
                if handler is not None:
                    self.addHandler(handler)
            self.hooks.hooks.logTable(self.domain)
        self.router.addRoute(self.domain, self)

    def stopService(self) -> None:
        self.router.removeRoute(self.domain, self)
        return service.Service.stopService(self)

    def addHandler(self, handler) -> None:
        """Connect a wokkel C{XMPPHandler} to this domain (see L{xmppd.core.dispatch})."""
        handler.setHandlerParent(self.handlers)
        handler.makeConnection(self.stream)
        handler.connectionInitialized()

    # -- delivery ----------------------------------------------------------

    def deliver(self, stanza: domish.Element) -> None:
        self.deliverAddressed(stanza, None, None)

    def deliverAddressed(self, stanza: domish.Element, sender, recipient) -> None:
        """
        L{IAddressedRoute}: C{deliver} with C{from} and C{to} parsed by the
        router's caller when it knew them (C{None}: parsed here).
        """
        kind = stanza.name
        if sender is None:
            sent = stanza.getAttribute("from")
            if sent is not None:
                try:
                    sender = parseJID(sent)
                except InvalidJID:
                    sender = None
        to = stanza.getAttribute("to")
        if to is None:
            if sender is None:
                return
            recipient, toSelf = sender.userhostJID(), True
            target = "self" if kind == "presence" else "bare"
        else:
            if recipient is None:
                recipient = parseJID(to)
            toSelf = False
            if recipient.user is None:
                target = "host"
            elif recipient.resource is None:
                target = "bare"
            else:
                target = "full"
        event = StanzaEvent(stanza, sender, recipient, self, toSelf)
        if sender is not None and sender.host != self.domain and leavesDomain(
                self.router, stanza, sender, recipient,
                lambda: self.arrive(event, kind, target)):
            return
        # self.arrive(event, kind, target), inlined: every stanza comes here.
        taken = self.hooks.fire(HOOK_NAMES[(kind, target)], event)
        if taken:
            if taken is not True and isinstance(taken, defer.Deferred):
                taken.addCallback(self.arrived, event, kind, target)
            return
        self.arrived(None, event, kind, target)

    def arrive(self, event: StanzaEvent, kind: str, target: str) -> None:
        """Fire the stanza's hook; what no callback takes gets the core's answer."""
        taken = self.hooks.fire(HOOK_NAMES[(kind, target)], event)
        if taken:
            if isinstance(taken, defer.Deferred):
                # The chain waited (see xmppd.core.hooks): go on once it is
                # over, still under its hold.
                taken.addCallback(self.arrived, event, kind, target)
            return
        self.arrived(None, event, kind, target)

    def arrived(self, taken, event: StanzaEvent, kind: str, target: str) -> None:
        if taken:
            return
        stanza = event.stanza
        if target in ("host", "bare") or kind == "iq" and target == "self":
            if self.dispatcher.dispatch(stanza):
                return
        self.fallback(kind, target, event)

    def deliverToSession(self, session, stanza) -> None:
        """
        The last step of a delivery this domain's hooks decided (RFC 6121
        §8.5): hand C{stanza} to the bound resource C{session} (an
        L{xmppd.core.sessions.ISessionView}).  The one place where a
        feature's stanza leaves the router for a session; the directory's
        view takes it to the holder, wherever that is.
        """
        deliveries = self.server.metrics.deliveries
        kind = stanza.name
        if kind in deliveries:
            deliveries[kind] += 1
        session.send(stanza)

    def deliverPrepared(self, recipient, prepared) -> None:
        """
        Deliver a stanza serialized once for many recipients (a
        L{muc.broadcast.Prepared}: C{element}, its parsed C{sender},
        C{textFor} and C{elementFor}) to the full JID C{recipient}.  A bound
        session gets the text as it is, unless a C{"stanza/prepared"} hook
        (blocking) asks for the full path; then, and when no session is
        bound, the stanza takes the same way as any other.
        """
        session = self.sessions.get(recipient)
        if session is not None:
            # A "stanza/prepared" callback answers at once (it only looks
            # at what is in memory): the full path is where waiting happens.
            if not self.hooks.has(STANZA_PREPARED) or not self.hooks.fire(
                    STANZA_PREPARED,
                    StanzaEvent(prepared.element, prepared.sender, recipient, self)):
                session.sendPrepared(prepared, recipient.full())
                return
        self.deliver(prepared.elementFor(recipient.full()))

    def fallback(self, kind: str, target: str, event: StanzaEvent) -> None:
        """The core's answer when no feature took the stanza."""
        stanza = event.stanza
        if kind == "iq":
            if target == "full":
                session = self.sessions.get(event.recipient)
                if session is not None:
                    session.send(stanza)
                    return
            if stanza.getAttribute("type") in ("get", "set"):
                self.bounce(stanza, "service-unavailable")
        elif kind == "message":
            if target == "host":
                return  # RFC 6120 §10.4.1: messages to the server are ignored.
            session = self.sessions.get(event.recipient) if target == "full" else None
            if session is not None:
                session.send(stanza)
                return
            sessions = self.sessions.sessionsOf(event.recipient)
            if sessions and stanza.getAttribute("type") != "groupchat":
                for session in sessions:
                    session.send(stanza)
                return
            self.bounce(stanza, "service-unavailable")
        elif kind == "presence" and target == "full":
            session = self.sessions.get(event.recipient)
            if session is not None:
                session.send(stanza)

    def bounce(self, stanza: domish.Element, condition: str, text: str | None = None) -> None:
        """Answer C{stanza} with a stanza error through the router (never an error to an error)."""
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            self.router.route(reply)


def addDomain(server, domain: str) -> list:
    """
    Serve C{domain} on C{server}: its L{xmppd.core.local.LocalDomain} and
    the services of its features (L{xmppd.core.modules.featureServices}), added to the node
    (started at once when it runs: a live reload adds hosts this way).
    They are remembered in C{server.domainServices}, so the domain can be
    taken away again (L{removeDomain}).
    """
    services = [LocalDomain(domain, server)]
    services[0].setServiceParent(server)
    for featureService in featureServices(server, domain):
        featureService.setServiceParent(server)
        services.append(featureService)
    server.domainServices[domain] = services
    return services


def removeDomain(server, domain: str):
    """
    Stop serving C{domain}: its feature services, then the domain (whose
    route goes with it), in the reverse order of L{addDomain}.  A Deferred
    firing once they have stopped.
    """
    stopping = [defer.maybeDeferred(each.disownServiceParent)
                for each in reversed(server.domainServices.pop(domain, []))]
    return defer.gatherResults(stopping, consumeErrors=True)
