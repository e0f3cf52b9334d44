# -*- test-case-name: tests.test_router -*-
"""
The router: which route gets a stanza, by the domain of its C{to} (DESIGN §2).

A route is anything with C{deliver(stanza)}: a served domain (L{LocalDomain}),
later a MUC service, a component stream or the S2S service.  The router knows
nothing of users or features; the one lookup per stanza is a dict access on
the destination domain.  Stanzas without C{to} belong to the sender's own
server (RFC 6120 §8.1.1.1), so they go to the route of the sender's domain.

A caller that has already parsed the stanza's addresses (a client stream
validates C{to} and stamps C{from} itself) hands them over with the stanza,
and a route that provides L{IAddressedRoute} receives them, so the JIDs of a
1:1 message are parsed once on its way from one client to another.

Until federation exists the default route is L{UnroutableRoute}, which answers
C{remote-server-not-found}.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from zope.interface import Attribute, Interface, implementer

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import errorReply


class IRoute(Interface):
    """A destination the router hands stanzas to."""

    def deliver(stanza):
        """
        Take C{stanza}, whose C{to} domain this route serves.  Must not raise
        for bad stanzas: answer them with stanza errors through the router.
        """


class IAddressedRoute(IRoute):
    """
    A route that takes a stanza together with its addresses, parsed by
    whoever routed it, and so need not parse them again.
    """

    def deliverAddressed(stanza, sender, recipient):
        """
        Like C{deliver(stanza)}.  C{sender} is the parsed C{from} of
        C{stanza} or C{None} when not known; C{recipient} is the parsed
        C{to}, or C{None} when the stanza has no C{to} or it is not known.
        A JID given is always equal to what parsing the attribute gives.
        """


class IRouter(Interface):
    """Domain -> route, plus a default route (DESIGN §3)."""

    defaultRoute = Attribute("L{IRoute} for domains no route serves")

    def addRoute(domain, route):
        """Serve C{domain} (a prepared domain string) with C{route}."""

    def removeRoute(domain, route):
        """Stop serving C{domain} with C{route}; other routes are kept."""

    def hasRoute(domain):
        """Whether C{domain} has a route of its own (not the default one)."""

    def route(stanza, sender=None, recipient=None):
        """
        Hand C{stanza} to the route of its destination.  C{sender} and
        C{recipient}, when given, are its C{from} and C{to} already parsed
        (see L{IAddressedRoute}); the caller guarantees they match them.
        """


@implementer(IRoute)
class UnroutableRoute:
    """
    The default route while there is no federation: every stanza for a domain
    we do not serve is answered with C{remote-server-not-found}.
    """

    def __init__(self, router: IRouter):
        self.router = router

    def deliver(self, stanza: domish.Element) -> None:
        reply = errorReply(stanza, "remote-server-not-found")
        if reply is not None:
            self.router.route(reply)


@implementer(IRouter)
class Router:
    log = Logger()

    def __init__(self):
        self.routes: dict[str, IRoute] = {}
        #: domain -> C{deliverAddressed} of the routes that provide
        #: L{IAddressedRoute}, looked up once when the route is added.
        self.addressed: dict[str, Callable] = {}
        self.defaultRoute: IRoute = UnroutableRoute(self)

    def addRoute(self, domain: str, route: IRoute) -> None:
        self.routes[domain] = route
        if IAddressedRoute.providedBy(route):
            self.addressed[domain] = route.deliverAddressed
        else:
            self.addressed.pop(domain, None)

    def removeRoute(self, domain: str, route: IRoute) -> None:
        if self.routes.get(domain) is route:
            del self.routes[domain]
            self.addressed.pop(domain, None)

    def hasRoute(self, domain: str) -> bool:
        return domain in self.routes

    def route(self, stanza: domish.Element, sender: JID | None = None,
              recipient: JID | None = None) -> None:
        if recipient is not None:
            domain = recipient.host
        elif sender is not None and not stanza.getAttribute("to"):
            domain = sender.host
        else:
            destination = stanza.getAttribute("to") or stanza.getAttribute("from")
            try:
                parsed = parseJID(destination)
            except (InvalidJID, TypeError):
                # Only stanzas built inside the server reach this point without a
                # valid address (client input is checked in c2s); dropping beats
                # bouncing an unaddressable stanza back into the router.
                self.log.warn("Dropping stanza with unroutable address {addr!r}",
                              addr=destination)
                return
            domain = parsed.host
            if destination is stanza.getAttribute("to"):
                recipient = parsed
        try:
            deliverAddressed = self.addressed.get(domain)
            if deliverAddressed is not None:
                deliverAddressed(stanza, sender, recipient)
            else:
                self.routes.get(domain, self.defaultRoute).deliver(stanza)
        except Exception:
            # One broken handler must not break delivery for everyone else.
            self.log.failure("Route for {domain} failed on a stanza", domain=domain)
