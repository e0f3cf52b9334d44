# -*- test-case-name: tests.test_register -*-
"""
In-band registration, password change and account removal (XEP-0077).

Registration (§3.1, §3.1.1 "Registration with a Server") happens on a
client stream before authentication: the C{<register/>} stream feature
(§8) is offered and C{jabber:iq:register} IQs are answered (on the
C{c2s/unauthenticated-iq} hook) only where registration is open on the
stream's domain (C{register} in its C{[hosts."domain"]} table, else
C{[register] allow} with C{domains}, empty for all of them: see
L{xmppd.config.hosts}) and, when the domain requires TLS (its C{require_tls},
else C{[c2s] require_tls}), only once the stream is encrypted: the password
travels in the clear inside TLS (§11).  Before that, such IQs are left to
c2s, which closes the stream with C{not-authorized} as for any stanza sent
before authentication (RFC 6120 §4.9.3.12).  Where registration is off, a
get or set is answered with C{service-unavailable} (§3.1: "If the host does
not support In-Band Registration, it MUST return a <service-unavailable/>
error") and the stream goes on.  After a successful registration the stream
continues to SASL as usual.

A registration request is refused with:
  - C{not-acceptable} (§3.1) when the username or password is missing or
    empty, the username is not a valid localpart (RFC 7622 §3.3), the
    password is shorter than C{min_password_length} or not a valid
    OpaqueString (RFC 8265), the stream already registered an account, or
    the client's IP address registered one less than C{interval_per_ip}
    seconds ago (§3.1.1 allows refusing entities that register too often;
    that one is of type C{wait});
  - C{conflict} (§3.1) when the account exists, or a session has that
    name (an anonymous one, XEP-0175: its account is not stored);
  - C{not-allowed} when the domain has C{max_users} accounts already
    (RFC 6120 §8.3.3.11: the server allows nobody to do it; the
    C{resource-constraint} of §8.3.3.18 would invite the client to retry
    later, which would not help);
  - C{unexpected-request} for a C{<remove/>} (§3.2's table: no account
    to remove on an unauthenticated stream).

Once authenticated, and whatever C{allow} says, an account can (on IQs to
its server, its own bare JID or with no C{to}; anyone else gets
C{service-unavailable}; an anonymous session, which has no account to
manage, gets C{not-allowed}):
  - read its registration: C{<registered/>} and its username (§3.1);
  - change its password (§3.3): C{<username/>} (its own) and a non-empty
    C{<password/>}, else C{bad-request} (§3.3's table; an empty password
    never replaces the existing one); the password rules above give
    C{not-acceptable}.  The other sessions of the account stay up;
  - remove itself (§3.2): C{<remove/>} as the only child (else
    C{bad-request}).  The server answers C{result}, cancels the account's
    presence subscriptions (the SHOULD of §3.2: unavailable presence and
    C{unsubscribed} to contacts subscribed to it, C{unsubscribe} to those
    it was subscribed to, RFC 6121 §3.2.2 and §3.3.2), deletes the account
    and everything stored with it, fires C{account/removed}, and closes
    every session of the account with a C{not-authorized} stream error
    (§3.2: "the server SHOULD then return a <not-authorized/> stream error
    and terminate all active sessions").

Errors never echo the request: it holds a password (§3.3: "SHOULD NOT
return the original XML sent in IQ error stanzas related to password
changes"; registration requests are treated the same way).

Implements: XEP-0077 2.5 (In-Band Registration)
"""

from __future__ import annotations

import dataclasses
import weakref

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import DELIVER
from xmppd.config import boolean, domainList, integer, number, option, section
from xmppd.core.events import AccountEvent
from xmppd.config.hosts import hostSettings
from xmppd.core.jid import InvalidJID, makeJID, parseJID, prepDomainpart, prepLocalpart
from xmppd.core.scram import InvalidPassword, makeCredentials
from xmppd.core.stanzas import NS_CLIENT, mayAnswer
from xmppd.storage.interfaces import NoSuchUser, UserExists

NS_REGISTER = "jabber:iq:register"
NS_FEATURE_REGISTER = "http://jabber.org/features/iq-register"

REGISTER_REQUEST = "/iq[@type='get' or @type='set']/query[@xmlns='%s']" % NS_REGISTER

INSTRUCTIONS = "Choose a username and password to register with this server."
REGISTERED_INSTRUCTIONS = ("You are registered. Send a new password to change it, "
                           "or <remove/> to delete your account.")


@section("register")
@dataclasses.dataclass(frozen=True)
class RegisterConfig:
    allow: bool = option(
        False, boolean(),
        "let anyone create an account in-band (XEP-0077) before logging in; "
        "password change and account removal work either way")
    domains: tuple[str, ...] = option(
        (), domainList(allowEmpty=True),
        "the served domains where registration is open when allow is true; "
        "[] means all of them")
    min_password_length: int = option(
        8, integer(minimum=1, maximum=1023),
        "shortest password, in characters, accepted at registration and password change")
    interval_per_ip: float = option(
        60.0, number(minimum=0),
        "seconds after a registration before the same IP address may register "
        "again; 0 disables the limit")


class PrivateStanzaError(StanzaError):
    """A stanza error whose reply leaves the request (and its password) out."""

    def toResponse(self, stanza: domish.Element) -> domish.Element:
        response = toResponse(stanza, stanzaType="error")
        response.addChild(self.getElement())
        return response


def errorReply(stanza: domish.Element, condition: str, text: str | None = None,
               errorType: str | None = None) -> domish.Element | None:
    if not mayAnswer(stanza):
        return None
    return PrivateStanzaError(condition, type=errorType, text=text).toResponse(stanza)


def childText(query: domish.Element, name: str) -> str | None:
    """The text of C{query}'s child C{name}, or C{None} without one."""
    for child in query.elements(NS_REGISTER, name):
        return str(child)
    return None


def firstChild(element: domish.Element) -> domish.Element | None:
    for child in element.children:
        if isinstance(child, domish.Element):
            return child
    return None


class IPThrottle:
    """
    One registration per IP address per C{interval} seconds.  Only
    addresses that registered within the interval are remembered, so memory
    stays proportional to recent registrations.
    """

    def __init__(self, interval: float, clock):
        self.interval = interval
        self.clock = clock
        self.last: dict[str, float] = {}

    def allowed(self, address: str) -> bool:
        if not self.interval:
            return True
        when = self.last.get(address)
        return when is None or self.clock.seconds() - when >= self.interval

    def record(self, address: str) -> None:
        if not self.interval:
            return
        now = self.clock.seconds()
        for old in [a for a, t in self.last.items() if now - t >= self.interval]:
            del self.last[old]
        self.last[address] = now

    def forget(self, address: str) -> None:
        self.last.pop(address, None)


@implementer(IDisco)
class RegisterHandler(XMPPHandler):
    """
    XEP-0077 for one served domain.  Requests are answered here rather than
    through wokkel's C{IQHandlerMixin}: errors must not echo the request,
    and a removal's result must reach the client before its stream closes.
    """

    log = Logger()

    def __init__(self, domain, settings: RegisterConfig | None = None):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.settings = settings if settings is not None else domain.config.register
        host = hostSettings(domain.config, self.host, self.settings)
        self.open = host.register
        self.maxUsers = host.maxUsers
        #: With a limit, accounts are created one at a time (see L{createAccount}).
        self.creating = defer.DeferredLock()
        self.throttle = IPThrottle(self.settings.interval_per_ip, domain.clock)
        #: Streams that registered an account (or are doing it): one each.
        self.registeredOn: weakref.WeakSet = weakref.WeakSet()

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(REGISTER_REQUEST, self.onRequest)
        hooks = self.domain.hooks
        hooks.add("c2s/features", self.onFeatures, DELIVER)
        hooks.add("c2s/unauthenticated-iq", self.onUnauthenticatedIQ, DELIVER)

    def checkPassword(self, password: str) -> dict:
        """The credentials for C{password}, or C{not-acceptable} saying why not."""
        minimum = self.settings.min_password_length
        if len(password) < minimum:
            raise PrivateStanzaError(
                "not-acceptable",
                text="the password must have at least %d characters" % (minimum,))
        try:
            return makeCredentials(password)
        except InvalidPassword:
            raise PrivateStanzaError("not-acceptable",
                                     text="the password has characters not allowed")

    # -- before authentication ---------------------------------------------

    def onFeatures(self, event) -> None:
        """§8: offer registration where it is open, on a stream safe for passwords."""
        stream = event.stream
        if (stream.domain != self.host or stream.username is not None or not self.open
                or (stream.requireTLS and not stream.secure)):
            return
        event.features.addElement((NS_FEATURE_REGISTER, "register"))

    def onUnauthenticatedIQ(self, event):
        stream, iq = event.stream, event.stanza
        if stream.domain != self.host:
            return None
        query = firstChild(iq)
        if query is None or (query.uri, query.name) != (NS_REGISTER, "query"):
            return None
        if stream.requireTLS and not stream.secure:
            return None
        to = iq.getAttribute("to")
        if to is not None:
            try:
                if prepDomainpart(to) != self.host:
                    return None
            except InvalidJID:
                return None
        iqType = iq.getAttribute("type")
        if iqType not in ("get", "set"):
            return True  # A result or error for nobody: ignored.
        if iq.getAttribute("id") is None or len(list(iq.elements())) != 1:
            self.reply(stream, errorReply(iq, "bad-request"))
        elif not self.open:
            self.reply(stream, errorReply(iq, "service-unavailable"))
        elif iqType == "get":
            response = toResponse(iq, "result")
            form = response.addElement((NS_REGISTER, "query"))
            form.addElement("instructions", content=INSTRUCTIONS)
            form.addElement("username")
            form.addElement("password")
            self.reply(stream, response)
        else:
            d = defer.ensureDeferred(self.register(stream, iq, query))
            d.addErrback(self.failed, iq, lambda reply: self.reply(stream, reply))
        return True

    def createAccount(self, username: str, credentials: dict) -> defer.Deferred:
        """
        Add the account.  With C{max_users}, unless the domain has that many
        already, and one at a time, so two clients cannot both take the last
        place.
        """
        users = self.domain.storage.users
        if not self.maxUsers:
            return defer.maybeDeferred(users.addUser, username, self.host, credentials)
        return self.creating.run(lambda: defer.ensureDeferred(
            self.createWithinLimit(username, credentials)))

    async def createWithinLimit(self, username: str, credentials: dict) -> None:
        users = self.domain.storage.users
        # Counting lists the domain's accounts: registrations are rare, and
        # the user store has no count of its own.
        if len(await users.listUsers(self.host)) >= self.maxUsers:
            self.log.info("Registration refused on {domain}: it has {limit} accounts "
                          "(max_users)", domain=self.host, limit=self.maxUsers)
            raise PrivateStanzaError("not-allowed",
                                     text="this server accepts no more accounts")
        await users.addUser(username, self.host, credentials)

    @staticmethod
    def reply(stream, element: domish.Element | None) -> None:
        if element is not None:
            stream.send(element)

    async def register(self, stream, iq: domish.Element, query: domish.Element) -> None:
        """§3.1: create the account named in the request."""
        if any(True for _ in query.elements(NS_REGISTER, "remove")):
            raise PrivateStanzaError("unexpected-request", text="log in to remove an account")
        username = (childText(query, "username") or "").strip()
        password = childText(query, "password") or ""
        if not username or not password:
            raise PrivateStanzaError("not-acceptable", text="a username and a password are required")
        if stream in self.registeredOn:
            raise PrivateStanzaError("not-acceptable",
                                     text="one account per connection: log in now")
        address = stream.peerAddress
        if not self.throttle.allowed(address):
            raise PrivateStanzaError("not-acceptable", type="wait",
                                     text="too many registrations from your address; "
                                          "try again later")
        try:
            username = prepLocalpart(username)
        except InvalidJID:
            raise PrivateStanzaError("not-acceptable", text="this username is not allowed")
        credentials = self.checkPassword(password)
        if self.domain.sessions.sessionsOf(makeJID(username, self.host)):
            # An anonymous session has this name and no stored account.
            raise PrivateStanzaError("conflict", text="this username is taken")
        self.registeredOn.add(stream)
        self.throttle.record(address)
        try:
            await self.createAccount(username, credentials)
        except UserExists:
            self.registeredOn.discard(stream)
            self.throttle.forget(address)
            raise PrivateStanzaError("conflict", text="this username is taken")
        except Exception:
            self.registeredOn.discard(stream)
            self.throttle.forget(address)
            raise
        self.log.info("{user}@{domain} registered in-band from {peer}",
                      user=username, domain=self.host, peer=address)
        self.reply(stream, toResponse(iq, "result"))

    def failed(self, failure, iq: domish.Element, send) -> None:
        if failure.check(StanzaError):
            error = failure.value
            if not isinstance(error, PrivateStanzaError):
                error = PrivateStanzaError(error.condition, type=error.type, text=error.text)
            send(error.toResponse(iq) if mayAnswer(iq) else None)
            return
        self.log.failure("In-band registration request failed", failure)
        send(errorReply(iq, "internal-server-error"))

    # -- authenticated -----------------------------------------------------

    def onRequest(self, iq: domish.Element) -> None:
        """A C{jabber:iq:register} get or set to the domain or a bare JID."""
        iq.handled = True
        d = defer.ensureDeferred(self.process(iq))
        d.addErrback(self.failed, iq, lambda reply: reply is not None and self.send(reply))

    async def process(self, iq: domish.Element) -> None:
        sender = self.account(iq)
        query = next(iq.elements(NS_REGISTER, "query"))
        if iq["type"] == "get":
            response = toResponse(iq, "result")
            form = response.addElement((NS_REGISTER, "query"))
            form.addElement("registered")
            form.addElement("instructions", content=REGISTERED_INSTRUCTIONS)
            form.addElement("username", content=sender.user)
            form.addElement("password")
            self.send(response)
        elif any(True for _ in query.elements(NS_REGISTER, "remove")):
            if len(list(query.elements())) != 1:
                raise PrivateStanzaError("bad-request", text="<remove/> must come alone")
            await self.remove(iq, sender.userhostJID())
        else:
            await self.changePassword(iq, query, sender)

    def account(self, iq: domish.Element) -> JID:
        """The sender, if it is one of our accounts asking about itself."""
        try:
            sender = parseJID(iq.getAttribute("from") or "")
        except InvalidJID:
            raise PrivateStanzaError("service-unavailable")
        if sender.user is None or sender.host != self.host:
            raise PrivateStanzaError("service-unavailable")
        to = iq.getAttribute("to")
        if to is not None and to not in (self.host, sender.userhost()):
            raise PrivateStanzaError("service-unavailable")
        session = self.domain.sessions.get(sender)
        if session is not None and getattr(session.stream, "anonymous", False):
            raise PrivateStanzaError("not-allowed",
                                     text="an anonymous session has no account to manage")
        return sender

    async def changePassword(self, iq: domish.Element, query: domish.Element,
                             sender: JID) -> None:
        """§3.3."""
        username = childText(query, "username")
        password = childText(query, "password")
        if not username or not password:
            raise PrivateStanzaError("bad-request",
                                     text="a username and a new password are required")
        try:
            same = prepLocalpart(username.strip()) == sender.user
        except InvalidJID:
            same = False
        if not same:
            raise PrivateStanzaError("bad-request", text="this is not your username")
        credentials = self.checkPassword(password)
        try:
            await self.domain.storage.users.setCredentials(sender.user, self.host, credentials)
        except NoSuchUser:
            raise PrivateStanzaError("registration-required")
        self.log.info("{user}@{domain} changed their password in-band",
                      user=sender.user, domain=self.host)
        self.send(toResponse(iq, "result"))

    async def remove(self, iq: domish.Element, account: JID) -> None:
        """§3.2: answer, cancel subscriptions, delete, close every session."""
        storage = self.domain.storage
        try:
            roster = await storage.rosters.getRoster(account.user, account.host)
        except Exception:
            self.log.failure("Cannot read the roster of {account}", account=account.full())
            roster = None
        try:
            await storage.users.removeUser(account.user, account.host)
        except NoSuchUser:
            raise PrivateStanzaError("registration-required")
        self.log.info("{account} removed their account in-band", account=account.full())
        self.send(toResponse(iq, "result"))
        if roster is not None:
            self.cancelSubscriptions(account, roster)
        self.domain.hooks.notify("account/removed", AccountEvent(account.user, account.host))
        sessions = self.domain.sessions
        for session in sessions.sessionsOf(account):
            sessions.terminate(session, "not-authorized", "account removed")

    def cancelSubscriptions(self, account: JID, roster) -> None:
        """
        §3.2's SHOULD: contacts stop seeing the account (unavailable, then
        C{unsubscribed}) and stop being watched by it (C{unsubscribe}).
        The sessions are marked unavailable so nothing else broadcasts for
        them while they close.
        """
        route = self.domain.router.route
        available = self.domain.sessions.availableSessionsOf(account)
        bare = account.full()
        for contact in sorted(roster.items):
            item = roster.items[contact]
            if item.subscription in ("from", "both"):
                for session in available:
                    route(presence(session.jid.full(), contact, "unavailable"))
            if item.subscription in ("from", "both") or item.pendingIn:
                route(presence(bare, contact, "unsubscribed"))
            if item.subscription in ("to", "both") or item.ask:
                route(presence(bare, contact, "unsubscribe"))
        sessions, presenceState = self.domain.sessions, self.domain.presence
        for session in available:
            full = session.jid.full()
            for target in sorted(presenceState.directedOf(full)):
                if target not in roster.items:
                    route(presence(full, target, "unavailable"))
            sessions.setAvailability(session.jid, False, 0)
            presenceState.forget(full)

    # -- disco -------------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        """§10: password change and removal are always there."""
        if nodeIdentifier or target.user is not None or target.host != self.host:
            return []
        return [DiscoFeature(NS_REGISTER)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def presence(sender: str, to: str, presenceType: str) -> domish.Element:
    element = domish.Element((NS_CLIENT, "presence"))
    element["from"] = sender
    element["to"] = to
    element["type"] = presenceType
    return element


def makeHandler(domain) -> RegisterHandler:
    return RegisterHandler(domain)
