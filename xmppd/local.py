# -*- test-case-name: tests.test_local -*-
"""
The route of one served domain (DESIGN §2, RFC 6121 §8.5).

A stanza to a full JID goes to that session; one to the domain itself goes to
the domain's handlers.  What is here is the minimum that lets clients talk
through the server: RFC 6121's full delivery rules (bare JIDs by priority,
presence, offline storage) are built on top of it as handlers and hooks.

Handlers for stanzas addressed to the domain are looked up in a dict by
(stanza name, child namespace), so dispatch never scans all handlers.
"""

from __future__ import annotations

from typing import Callable

from twisted.application import service
from twisted.logger import Logger
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.jid import parseJID
from xmppd.router import IRoute, IRouter
from xmppd.sessions import SessionManager
from xmppd.stanzas import errorReply

StanzaHandler = Callable[[domish.Element], None]


def firstChildNamespace(stanza: domish.Element) -> str | None:
    for child in stanza.children:
        if isinstance(child, domish.Element):
            return child.uri
    return None


@implementer(IRoute)
class LocalDomain(service.Service):
    """
    One served virtual host.  Registered with the router while running, so a
    domain that is not started yet (or stopped) is simply not routable.
    """

    log = Logger()

    def __init__(self, domain: str, router: IRouter, sessions: SessionManager):
        self.domain = domain
        self.name = domain
        self.router = router
        self.sessions = sessions
        # (stanza name, namespace of its first child) -> handler
        self.domainHandlers: dict[tuple[str, str | None], StanzaHandler] = {}

    def startService(self) -> None:
        service.Service.startService(self)
        self.router.addRoute(self.domain, self)

    def stopService(self) -> None:
        self.router.removeRoute(self.domain, self)
        return service.Service.stopService(self)

    def addDomainHandler(self, stanzaName: str, namespace: str,
                         handler: StanzaHandler) -> None:
        """Handle stanzas named C{stanzaName} to the domain whose payload is C{namespace}."""
        self.domainHandlers[(stanzaName, namespace)] = handler

    def deliver(self, stanza: domish.Element) -> None:
        to = stanza.getAttribute("to")
        if to is None:
            self.toAccount(stanza, parseJID(stanza["from"]).userhostJID())
            return
        recipient = parseJID(to)
        if recipient.user is None:
            self.toDomain(stanza)
        elif recipient.resource is None:
            self.toAccount(stanza, recipient)
        else:
            self.toResource(stanza, recipient)

    def toDomain(self, stanza: domish.Element) -> None:
        handler = self.domainHandlers.get((stanza.name, firstChildNamespace(stanza)))
        if handler is not None:
            handler(stanza)
        elif stanza.name == "iq" and stanza.getAttribute("type") in ("get", "set"):
            self.bounce(stanza, "service-unavailable")
        # RFC 6120 §10.4.1: other stanzas to the server itself are ignored.

    def toResource(self, stanza: domish.Element, recipient) -> None:
        session = self.sessions.get(recipient)
        if session is not None:
            session.send(stanza)
        elif stanza.name == "iq":
            # RFC 6121 §8.5.3.2.1: an IQ to an unavailable resource.
            self.bounce(stanza, "service-unavailable")
        elif stanza.name == "message":
            # §8.5.3.2.1: a message to an offline full JID is treated as if
            # sent to the bare JID.
            self.toAccount(stanza, recipient.userhostJID())
        # presence to an offline resource is silently dropped (§8.5.3.2.1)

    def toAccount(self, stanza: domish.Element, account) -> None:
        """
        A stanza for the account itself (bare JID).  Until the IM handlers
        exist: messages reach every session of the account, IQs and anything
        else get C{service-unavailable} (RFC 6121 §8.5.2.1, §8.5.1).
        """
        if stanza.name == "message":
            sessions = self.sessions.sessionsOf(account)
            if sessions:
                for session in sessions:
                    session.send(stanza)
                return
            self.bounce(stanza, "service-unavailable")
        elif stanza.name == "iq":
            if stanza.getAttribute("type") in ("get", "set"):
                self.bounce(stanza, "service-unavailable")

    def bounce(self, stanza: domish.Element, condition: str) -> None:
        reply = errorReply(stanza, condition)
        if reply is not None:
            self.router.route(reply)
