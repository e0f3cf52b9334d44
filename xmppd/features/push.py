# -*- test-case-name: tests.test_push -*-
"""
Push notifications (XEP-0357): a client names an app server and a node,
and the server publishes a short summary there whenever a message arrives
that its user would otherwise miss, so the app server can wake the phone.

Registering (§5): C{<enable jid=APPSERVER node=NODE/>} from the account
itself (no C{to}, or its own bare JID; anyone else gets
C{service-unavailable}), with an optional XEP-0004 submit form of
C{http://jabber.org/protocol/pubsub#publish-options} (the app server's
secret, usually), which is sent back as C{<publish-options/>} with every
publish.  A missing C{jid} or C{node}, a JID that is not one, a form of
another kind or one past the size limits below is C{bad-request}.  The pair
(app server, node) names a registration: enabling it again replaces its
form.  More than C{[push] max_registrations} per account is
C{policy-violation}, and nothing changes.  C{<disable jid=APPSERVER/>}
removes every registration with that app server, with C{node} only that
one (§5.2); disabling what is not enabled is not an error.  Registrations
are stored with the account (account data key C{"push"}, a JSON list), so
they survive restarts and work on every storage backend; the session that
enabled one also remembers it in memory until it closes.

When to push (§6, Prosody's mod_cloud_notify rules for what matters):

  - the account has no session that takes the message (hook
    C{"message/offline"}, observed before offline storage takes it): every
    registration of the account;
  - a message is queued for a session whose connection broke while stream
    management keeps it for resumption (hook C{"session/queued"}, fired by
    L{xmppd.features.sm} only for detached sessions, and at the break for
    the messages the client had not acknowledged): the registrations that
    session enabled (a phone re-enables push on every connection, and
    another device's registration is not woken by traffic for this one).

Only important messages push: a body that is not empty, or end-to-end
encrypted content (OMEMO, OpenPGP, XEP-0027) whose body cannot be looked
at, or a call proposal (XEP-0353); never errors, groupchat (a room's chatter
wakes no phone; a room's text fan-out goes to detached sessions serialized
and is never even parsed), subjects, carbon copies of the user's own sent
messages (a received carbon is judged by what it carries).

What is published (§6, Example 10): from the account's bare JID, an IQ set
to the app server with a C{<publish/>} of one item holding
C{<notification xmlns='urn:xmpp:push:0'/>} and the summary form
(C{urn:xmpp:push:summary}): C{message-count}, the important messages since
the registration last pushed; C{last-message-sender} only with
C{[push] include_sender}, C{last-message-body} only with
C{[push] include_body} (both off by default, as in Prosody: the app server
is often a third party, and Apple or Google after it).  A registration
pushes at most once per C{[push] min_interval} seconds; the messages in
between are counted into the next push's C{message-count}.

The app server's answer (§7.1): an error means the pair is disabled and
its registration is removed, except an error of type C{wait} (transient:
the server MAY keep it, and Prosody does).  An answer that never comes is
forgotten after C{[push] timeout} seconds and changes nothing; what is
waited for is bounded (L{MAX_PENDING}), and the hook that hears answers is
registered only while a push waits for one.

Implements: XEP-0357 0.4.1 (Push Notifications)
"""

from __future__ import annotations

import dataclasses
import itertools
import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.config import boolean, integer, number, option, section
from xmppd.core.events import ACCOUNT_REMOVED, MESSAGE_OFFLINE, SESSION_CLOSED, SESSION_QUEUED
from xmppd.core.hooks import COPY, FIRST, OBSERVE
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT, NS_SERVER, NS_STANZAS, ownAccountSender

NS_PUSH = "urn:xmpp:push:0"
NS_SUMMARY = "urn:xmpp:push:summary"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NS_DATA = "jabber:x:data"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"

ENABLE = "/iq[@type='set']/enable[@xmlns='%s']" % NS_PUSH
DISABLE = "/iq[@type='set']/disable[@xmlns='%s']" % NS_PUSH

#: The account-data key of an account's registrations.
STORAGE_KEY = "push"

#: Limits on what one registration keeps: the node's length, and the
#: publish-options form's fields and each value's length (characters).
MAX_NODE = 1024
MAX_FIELDS = 32
MAX_VALUE = 1024

#: Pushes waiting for the app server's answer, node-wide per domain; past it
#: a push is not sent (logged): an app server that never answers cannot
#: make the server keep more.
MAX_PENDING = 10000

#: Entries of the rate limiter before old ones are swept.
MAX_RATE_ENTRIES = 10000

#: Children that make a message worth a push although its body cannot be
#: read (Prosody's is_important): end-to-end encryption and call proposals.
IMPORTANT_CHILDREN = frozenset([
    ("eu.siacs.conversations.axolotl", "encrypted"),
    ("urn:xmpp:omemo:2", "encrypted"),
    ("urn:xmpp:omemo:0", "encrypted"),
    ("jabber:x:encrypted", "x"),
    ("urn:xmpp:openpgp:0", "openpgp"),
    ("urn:xmpp:jingle-message:0", "propose"),
])


@section("push")
@dataclasses.dataclass(frozen=True)
class PushConfig:
    max_registrations: int = option(
        5, integer(minimum=1),
        "push registrations (app server and node, XEP-0357) one account may keep; "
        "one more gets policy-violation")
    min_interval: float = option(
        10.0, number(minimum=0),
        "seconds between two pushes to one registration; messages in between are "
        "counted into the next push's message-count")
    timeout: float = option(
        60.0, number(minimum=1),
        "seconds to wait for an app server's answer to a push before forgetting it")
    include_sender: bool = option(
        False, boolean(),
        "send the last message's sender (last-message-sender) to the app server")
    include_body: bool = option(
        False, boolean(),
        "send the last message's text (last-message-body) to the app server")


@dataclasses.dataclass(frozen=True)
class Registration:
    """One app server and node an account enabled, with its publish options."""

    jid: str
    node: str
    #: (var, values) of the publish-options form, in order; empty: none.
    options: tuple = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.jid, self.node)

    def toJSON(self) -> dict:
        return {"jid": self.jid, "node": self.node,
                "options": [[var, list(values)] for var, values in self.options]}

    @classmethod
    def fromJSON(cls, data: dict) -> "Registration":
        return cls(str(data["jid"]), str(data["node"]),
                   tuple((str(var), tuple(str(v) for v in values))
                         for var, values in data.get("options", ())))


def loads(text: str | None) -> list[Registration]:
    """Stored registrations; an unreadable document holds none."""
    if not text:
        return []
    try:
        return [Registration.fromJSON(item) for item in json.loads(text)]
    except (ValueError, TypeError, KeyError):
        return []


def dumps(registrations: list[Registration]) -> str:
    return json.dumps([r.toJSON() for r in registrations], separators=(",", ":"))


def _child(element: domish.Element, uri: str, name: str) -> domish.Element | None:
    for child in element.elements(uri, name):
        return child
    return None


def _text(element: domish.Element, name: str) -> str | None:
    for child in element.elements():
        if child.name == name and child.uri in (None, NS_CLIENT, NS_SERVER):
            return str(child)
    return None


def isImportant(message: domish.Element) -> bool:
    """Whether C{message} is worth waking a device for; see the module docstring."""
    if message.name != "message":
        return False
    kind = message.getAttribute("type")
    if kind in ("error", "groupchat"):
        return False
    for child in message.elements():
        if child.uri == NS_CARBONS:
            if child.name != "received":
                return False  # A copy of what the user sent, or a private one.
            forwarded = _child(child, NS_FORWARD, "forwarded")
            inner = None if forwarded is None else _child(forwarded, NS_CLIENT, "message")
            return inner is not None and isImportant(inner)
        if (child.uri, child.name) in IMPORTANT_CHILDREN:
            return True
    body = _text(message, "body")
    return bool(body)


def parseOptions(enable: domish.Element) -> tuple:
    """
    The publish-options form of an C{<enable/>} as (var, values) pairs
    (§5, Example 9), C{()} without one; C{bad-request} when it is not a
    submit form of that kind or is past the limits.
    """
    forms = list(enable.elements(NS_DATA, "x"))
    if not forms:
        return ()
    if len(forms) > 1:
        raise StanzaError("bad-request", text="one publish-options form at most")
    form = forms[0]
    if form.getAttribute("type") != "submit":
        raise StanzaError("bad-request", text="the publish options must be a submit form")
    fields: dict[str, tuple[str, ...]] = {}
    for field in form.elements(NS_DATA, "field"):
        var = field.getAttribute("var")
        if not var:
            raise StanzaError("bad-request", text="a publish-options field without a var")
        values = tuple(str(value) for value in field.elements(NS_DATA, "value"))
        if len(var) > MAX_VALUE or any(len(value) > MAX_VALUE for value in values):
            raise StanzaError("bad-request", text="a publish-options value is too long")
        fields[var] = values
        if len(fields) > MAX_FIELDS:
            raise StanzaError("bad-request", text="too many publish-options fields")
    formType = fields.pop("FORM_TYPE", (NS_PUBLISH_OPTIONS,))
    if formType != (NS_PUBLISH_OPTIONS,):
        raise StanzaError("bad-request", text="the form must be pubsub#publish-options")
    if not fields:
        return ()
    return (("FORM_TYPE", (NS_PUBLISH_OPTIONS,)),) + tuple(fields.items())


def addField(form: domish.Element, var: str, values, fieldType: str | None = None) -> None:
    field = form.addElement((NS_DATA, "field"))
    field["var"] = var
    if fieldType is not None:
        field["type"] = fieldType
    for value in values:
        field.addElement("value", content=value)


@dataclasses.dataclass
class Waiting:
    """A push sent, waiting for the app server's answer."""

    account: JID
    registration: Registration
    timer: object


@implementer(IDisco)
class PushHandler(XMPPHandler, IQHandlerMixin):
    """XEP-0357 for the accounts of one served domain; see the module docstring."""

    iqHandlers = {ENABLE: "onEnable", DISABLE: "onDisable"}
    log = Logger()

    def __init__(self, domain, settings: PushConfig):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.settings = settings
        #: Full JID of a session -> the registrations it enabled, by key.
        self.enabledBy: dict[str, dict[tuple[str, str], Registration]] = {}
        #: (account, app server, node) -> [last push time, messages since].
        self.rates: dict[tuple[str, str, str], list] = {}
        #: IQ id -> the push it sent.
        self.pending: dict[str, Waiting] = {}
        self.ids = itertools.count(1)
        self.listening = False

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)
        hooks = self.domain.hooks
        # Before offline storage takes the message (DELIVER), never taking it.
        hooks.add(MESSAGE_OFFLINE, self.onOffline, COPY)
        hooks.add(SESSION_QUEUED, self.onQueued, OBSERVE)
        hooks.add(SESSION_CLOSED, self.onSessionClosed, OBSERVE)
        hooks.add(ACCOUNT_REMOVED, self.onAccountRemoved, OBSERVE)

    def connectionLost(self, reason) -> None:
        for waiting in self.pending.values():
            if waiting.timer.active():
                waiting.timer.cancel()
        self.pending.clear()
        self.listen(False)

    # -- enabling and disabling (§5) -----------------------------------------------

    async def load(self, account: JID) -> list[Registration]:
        text = await self.domain.storage.accountData.get(account.user, account.host, STORAGE_KEY)
        return loads(text)

    async def save(self, account: JID, registrations: list[Registration]) -> None:
        store = self.domain.storage.accountData
        if registrations:
            await store.set(account.user, account.host, STORAGE_KEY, dumps(registrations))
        else:
            await store.delete(account.user, account.host, STORAGE_KEY)

    async def onEnable(self, iq: domish.Element) -> None:
        sender = ownAccountSender(iq, self.host)
        enable = _child(iq, NS_PUSH, "enable")
        jidText, node = enable.getAttribute("jid"), enable.getAttribute("node")
        if not jidText or not node:
            raise StanzaError("bad-request", text="enable needs a jid and a node")
        if len(node) > MAX_NODE:
            raise StanzaError("bad-request", text="the node is too long")
        try:
            appServer = parseJID(jidText).full()
        except InvalidJID:
            raise StanzaError("bad-request", text="the app server's jid is not a JID") from None
        registration = Registration(appServer, node, parseOptions(enable))
        account = sender.userhostJID()
        registrations = [r for r in await self.load(account) if r.key != registration.key]
        if len(registrations) >= self.settings.max_registrations:
            # RFC 6120 §8.3.3.12; Twisted's table predates it, so the type is given.
            raise StanzaError("policy-violation", type="modify",
                              text="at most %d push registrations per account"
                              % (self.settings.max_registrations,))
        registrations.append(registration)
        await self.save(account, registrations)
        if self.domain.sessions.isBound(sender):
            self.enabledBy.setdefault(sender.full(), {})[registration.key] = registration
        self.log.info("{account} enabled push to {jid}", account=account.full(), jid=appServer)

    async def onDisable(self, iq: domish.Element) -> None:
        sender = ownAccountSender(iq, self.host)
        disable = _child(iq, NS_PUSH, "disable")
        jidText, node = disable.getAttribute("jid"), disable.getAttribute("node")
        if not jidText:
            raise StanzaError("bad-request", text="disable needs a jid")
        try:
            appServer = parseJID(jidText).full()
        except InvalidJID:
            raise StanzaError("bad-request", text="the app server's jid is not a JID") from None
        account = sender.userhostJID()
        await self.remove(account, lambda r: r.jid == appServer and node in (None, r.node))

    async def remove(self, account: JID, matches) -> list[Registration]:
        """Remove the account's registrations C{matches} picks, stored and in memory."""
        registrations = await self.load(account)
        kept = [r for r in registrations if not matches(r)]
        removed = [r for r in registrations if matches(r)]
        if removed:
            await self.save(account, kept)
        bare = account.userhost()
        for full, enabled in list(self.enabledBy.items()):
            if full.partition("/")[0] == bare:
                for key in [key for key, r in enabled.items() if matches(r)]:
                    del enabled[key]
        return removed

    def onSessionClosed(self, session) -> None:
        self.enabledBy.pop(session.jid.full(), None)

    def onAccountRemoved(self, event) -> None:
        bare = "%s@%s" % (event.username, event.domain)
        for full in [full for full in self.enabledBy if full.partition("/")[0] == bare]:
            del self.enabledBy[full]

    # -- when to push (§6) ---------------------------------------------------------------

    def onOffline(self, event) -> None:
        """No session takes the message: every registration of the account pushes."""
        if not isImportant(event.stanza):
            return None
        account = event.recipient.userhostJID()
        stanza = event.stanza
        d = defer.ensureDeferred(self.load(account))
        d.addCallback(lambda registrations: [self.push(account, r, stanza)
                                             for r in registrations])
        d.addErrback(lambda failure: self.log.failure(
            "Cannot read the push registrations of {account}", failure,
            account=account.full()))
        return None

    def onQueued(self, event) -> None:
        """A detached session got a stanza: the registrations it enabled push."""
        enabled = self.enabledBy.get(event.session.jid.full())
        stanza = event.stanza
        if not enabled or not isinstance(stanza, domish.Element) or not isImportant(stanza):
            return
        account = event.session.jid.userhostJID()
        for registration in list(enabled.values()):
            self.push(account, registration, stanza)

    # -- publishing ------------------------------------------------------------------------

    def push(self, account: JID, registration: Registration, message: domish.Element) -> None:
        """Publish a summary to C{registration}, unless it pushed too recently."""
        now = self.domain.clock.seconds()
        rateKey = (account.userhost(), registration.jid, registration.node)
        rate = self.rates.get(rateKey)
        if rate is not None and now - rate[0] < self.settings.min_interval:
            rate[1] += 1
            return
        count = 1 if rate is None else rate[1] + 1
        if len(self.rates) >= MAX_RATE_ENTRIES:
            self.sweep(now)
        self.rates[rateKey] = [now, 0]
        if len(self.pending) >= MAX_PENDING:
            self.log.warn("Too many pushes wait for an answer: not pushing to {jid}",
                          jid=registration.jid)
            return
        iq = self.publication(account, registration, message, count)
        waiting = Waiting(account, registration,
                          self.domain.clock.callLater(self.settings.timeout,
                                                      self.expire, iq["id"]))
        self.pending[iq["id"]] = waiting
        self.listen(True)
        self.domain.router.route(iq)

    def sweep(self, now: float) -> None:
        """Forget the rate entries whose interval is over (their counts start anew)."""
        interval = self.settings.min_interval
        for key in [key for key, (when, count) in self.rates.items()
                    if now - when >= interval]:
            del self.rates[key]

    def publication(self, account: JID, registration: Registration,
                    message: domish.Element, count: int) -> domish.Element:
        """The IQ of §6, Example 10."""
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "set"
        iq["id"] = "push-%d" % (next(self.ids),)
        iq["from"] = account.userhost()
        iq["to"] = registration.jid
        pubsub = iq.addElement((NS_PUBSUB, "pubsub"))
        publish = pubsub.addElement("publish")
        publish["node"] = registration.node
        notification = publish.addElement("item").addElement((NS_PUSH, "notification"))
        summary = notification.addElement((NS_DATA, "x"))
        summary["type"] = "submit"
        addField(summary, "FORM_TYPE", [NS_SUMMARY], "hidden")
        addField(summary, "message-count", [str(count)])
        if self.settings.include_sender and message.getAttribute("from"):
            addField(summary, "last-message-sender", [message["from"]])
        if self.settings.include_body:
            body = _text(message, "body")
            if body:
                addField(summary, "last-message-body", [body])
        if registration.options:
            form = pubsub.addElement("publish-options").addElement((NS_DATA, "x"))
            form["type"] = "submit"
            for var, values in registration.options:
                addField(form, var, values, "hidden" if var == "FORM_TYPE" else None)
        return iq

    def listen(self, on: bool) -> None:
        """Hear IQ answers to the account's bare JID only while a push waits for one."""
        if on and not self.listening:
            self.domain.hooks.add("iq/bare", self.onAnswer, FIRST)
            self.listening = True
        elif not on and self.listening:
            self.domain.hooks.remove("iq/bare", self.onAnswer)
            self.listening = False

    def forget(self, id: str) -> Waiting | None:
        waiting = self.pending.pop(id, None)
        if not self.pending:
            self.listen(False)
        return waiting

    def expire(self, id: str) -> None:
        """No answer in time: nothing changes, the next message pushes again."""
        if self.forget(id) is not None:
            self.log.info("No answer to push {id}", id=id)

    def onAnswer(self, event):
        """§7.1: an app server's result, or its error, which disables the registration."""
        stanza = event.stanza
        kind = stanza.getAttribute("type")
        if kind not in ("result", "error"):
            return None
        waiting = self.pending.get(stanza.getAttribute("id"))
        if waiting is None or event.sender is None or \
                event.sender.full() != waiting.registration.jid or \
                event.recipient.userhost() != waiting.account.userhost():
            return None
        self.forget(stanza["id"])
        if waiting.timer.active():
            waiting.timer.cancel()
        if kind == "result":
            return True
        error = next((child for child in stanza.elements() if child.name == "error"), None)
        errorType = None if error is None else error.getAttribute("type")
        condition = None
        if error is not None:
            for child in error.elements(NS_STANZAS):
                if child.name != "text":
                    condition = child.name
                    break
        if errorType == "wait":
            self.log.info("Push to {jid} failed for now ({condition}): kept",
                          jid=waiting.registration.jid, condition=condition)
            return True
        registration = waiting.registration
        self.log.info("Push to {jid} failed ({condition}): disabled for {account}",
                      jid=registration.jid, condition=condition,
                      account=waiting.account.full())
        d = defer.ensureDeferred(self.remove(waiting.account,
                                             lambda r: r.key == registration.key))
        d.addErrback(lambda failure: self.log.failure(
            "Cannot remove the push registration of {account}", failure,
            account=waiting.account.full()))
        return True

    # -- disco (§5: the account announces the feature) ------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier or target.user is None or target.resource is not None \
                or target.host != self.host:
            return []
        return [DiscoFeature(NS_PUSH)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> PushHandler:
    return PushHandler(domain, domain.config.push)
