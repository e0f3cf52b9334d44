# -*- test-case-name: tests.test_router -*-
"""
The router: which route gets a stanza, by the domain of its C{to} (DESIGN §2).

A route is anything with C{deliver(stanza)}: a served domain (L{LocalDomain}),
later a MUC service, a component stream or the S2S service.  The router knows
nothing of users or features; the one lookup per stanza is a dict access on
the destination domain.  Stanzas without C{to} belong to the sender's own
server (RFC 6120 §8.1.1.1), so they go to the route of the sender's domain.

Until federation exists the default route is L{UnroutableRoute}, which answers
C{remote-server-not-found}.
"""

from __future__ import annotations

from twisted.logger import Logger
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


class IRouter(Interface):
    """Domain -> route, plus a default route (DESIGN §3)."""

    defaultRoute = Attribute("L{IRoute} for domains no route serves")

    def addRoute(domain, route):
        """Serve C{domain} (a prepared domain string) with C{route}."""

    def removeRoute(domain, route):
        """Stop serving C{domain} with C{route}; other routes are kept."""

    def hasRoute(domain):
        """Whether C{domain} has a route of its own (not the default one)."""

    def route(stanza):
        """Hand C{stanza} to the route of its destination."""


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
        self.defaultRoute: IRoute = UnroutableRoute(self)

    def addRoute(self, domain: str, route: IRoute) -> None:
        self.routes[domain] = route

    def removeRoute(self, domain: str, route: IRoute) -> None:
        if self.routes.get(domain) is route:
            del self.routes[domain]

    def hasRoute(self, domain: str) -> bool:
        return domain in self.routes

    def route(self, stanza: domish.Element) -> None:
        destination = stanza.getAttribute("to") or stanza.getAttribute("from")
        try:
            domain = parseJID(destination).host
        except (InvalidJID, TypeError):
            # Only stanzas built inside the server reach this point without a
            # valid address (client input is checked in c2s); dropping beats
            # bouncing an unaddressable stanza back into the router.
            self.log.warn("Dropping stanza with unroutable address {addr!r}",
                          addr=destination)
            return
        route = self.routes.get(domain, self.defaultRoute)
        try:
            route.deliver(stanza)
        except Exception:
            # One broken handler must not break delivery for everyone else.
            self.log.failure("Route for {domain} failed on a stanza", domain=domain)
