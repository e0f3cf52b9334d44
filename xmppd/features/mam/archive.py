# -*- test-case-name: tests.test_mam -*-
"""
The message archive of each account (XEP-0313, C{urn:xmpp:mam:2}), with
archive ids handed to clients as XEP-0359 stanza-ids, and the archiving
preferences of XEP-0441.  Queries of the archive (XEP-0313 §4, §5, paged
with XEP-0059) are parsed and answered by L{xmppd.features.mam.query}.

Archiving.  Both sides of a conversation are archived, each in its own
account's archive with its own id (XEP-0313 §3):

  - Incoming: hooks C{"message/bare"} and C{"message/full"} at
    L{INCOMING_PRIORITY}, below blocking (a rejected message is not archived,
    §6.1) and above carbons and delivery, so the recipient's devices and the
    carbon copies see the C{<stanza-id by=bare JID/>} (§3.5).  Any
    C{<stanza-id/>} that claims to be the recipient's (C{by} = the account)
    is removed first: only the server may say that (XEP-0359 §5 rules 3-4).
  - Outgoing: hook C{"c2s/outgoing"} at L{OUTGOING_PRIORITY}, after blocking,
    before the sent-carbons hook, which then forwards the sender's archive id
    (the in-process mark C{archiveSentId}, §3.5: SHOULD).  The message the
    contact gets carries no id of the sender's archive (§3.5: MUST NOT).
    Messages to the user's own account are archived once, on arrival.

What is archived (§6.1.1): messages of type "chat" or "normal" with a
C{<body/>}, or with the XEP-0334 C{<store/>} hint (§4.4), never those with
C{<no-store/>} or C{<no-permanent-store/>} (§4.2, §4.1), never errors,
headlines or groupchat messages (§6.1.1 leaves groupchat to the server; we
do not announce C{#groupchat-field}), carbon copies, query results, or
replays of stored or unacknowledged messages (the in-process mark
C{replayed}: they were archived on their first way through).  A message to
a full JID that is bound nowhere and is not a chat is bounced by delivery
and not archived.  The archived stanza is the one the recipient gets, with
its stanza-id.  A message for an account with no session that offline
storage then refuses (quota) is in the archive nonetheless: the decision
is made before delivery.

Archive writes never delay delivery: C{storage.archive.append} is called
and not waited for; a failure is logged.  When storage fails (the disk is
full, the database locked or read-only: issue 18), the message is still
delivered and is missing from the archive: the archive is a copy of what
went through, and the delivery itself acknowledges the message, so
refusing a message that can be delivered because its copy cannot be kept
would lose more than it saves (Prosody and ejabberd do the same).  The
storage backend logs the fault for the operator once, not per message.
A message that must be stored to be delivered (to an account with no
session) is refused by offline storage with the error it says.  What may wait is the decision,
which needs the account's preferences (XEP-0441, stored as JSON under the
account-data key C{"mam:prefs"}): those of accounts with a session are kept
in memory (loaded at bind), a bounded number of others in a least recently
used cache.  When they are in memory (and so is the roster, for
C{default='roster'}) the decision is made at once, allocating nothing.
When not, an incoming message's hook callback returns a Deferred: its hook
chain (carbons, delivery) waits until it is decided and archived, and the
hooks hold it meanwhile (issue 5's durability contract), so stream
management does not acknowledge it before whoever takes it then (offline
storage) has it safe.  Later messages for the same account wait behind it,
in order (at most L{MAX_WAITING}, then C{resource-constraint}), so archive
order is arrival order (§3.1).  An outgoing message never waits: it is
archived once decided, in the same order.

Preferences (XEP-0441 §2): get and set of C{<prefs/>}; the default is
C{[mam] default}; a JID in both lists is never archived (privacy wins);
list entries match as XEP-0441 §2.3 says (bare entries match every
resource); C{default='roster'} archives a contact whose bare JID is a
visible item of the user's roster, and the user's own messages.

Queries (§4, §5): the IQs of C{<query/>} and C{<metadata/>} are
answered here once L{MAMHandler.owner} has said whose archive they are about: only
the account itself may ask (no C{to}, or its own bare JID); another
account's archive is C{forbidden} (§8.1), and the domain has none
(C{service-unavailable}).  The form, paging and the results themselves
are L{xmppd.features.mam.query}'s.

Retention: with C{[mam] retention_days} above 0, messages older than that
are removed from every archive once a day (from the oldest, §3.2).
Removing an account removes its archive (storage cascades it).

Disco (§7): accounts announce C{urn:xmpp:mam:2}, C{urn:xmpp:mam:2#extended}
and C{urn:xmpp:sid:0}.

Implements: XEP-0313 0.8.0 (Message Archive Management),
XEP-0441 0.2.0 (MAM preferences), XEP-0359 0.7.0 (stanza-id),
XEP-0334 0.3.0 (storage hints)
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import STAMP
from xmppd.core.events import C2S_OUTGOING, MESSAGE_BARE, MESSAGE_FULL
from xmppd.core.accountcache import AccountDataCache
from xmppd.features.carbons import isCarbon
from xmppd.config import choice, integer, number, option, section
from xmppd.core.jid import InvalidJID, makeJID, parseJID
from xmppd.features.mam.query import (NS_MAM, finElement, firstChild, metadata, newArchiveId, queryForm,
                                      resultMessage, runQuery)
from xmppd.features.roster import rosterManager
from xmppd.core.stanzas import NS_CLIENT, cloneStanza, hasBody, hasChild, marks, messageType, meta
from xmppd.storage.interfaces import ArchivedMessage, NoSuchUser, StorageFault

NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended"
NS_SID = "urn:xmpp:sid:0"
NS_HINTS = "urn:xmpp:hints"

QUERY_SET = "/iq[@type='set']/query[@xmlns='%s']" % NS_MAM
QUERY_GET = "/iq[@type='get']/query[@xmlns='%s']" % NS_MAM
PREFS_GET = "/iq[@type='get']/prefs[@xmlns='%s']" % NS_MAM
PREFS_SET = "/iq[@type='set']/prefs[@xmlns='%s']" % NS_MAM
METADATA_GET = "/iq[@type='get']/metadata[@xmlns='%s']" % NS_MAM

#: After blocking (policy), before carbons (copies) and delivery.
INCOMING_PRIORITY = STAMP
#: After blocking, before the sent carbons, which forward the id.
OUTGOING_PRIORITY = STAMP

#: The account-data key of the preferences.
PREFS_KEY = "mam:prefs"
DEFAULTS = ("always", "never", "roster")
#: Preferences of accounts without a session kept in memory.
RECENT_PREFS = 1024
#: Messages that may wait behind one account's undecided message; past it
#: the sender gets resource-constraint (DESIGN §4: every queue bounded).
MAX_WAITING = 1000
#: Most JIDs in each preference list.
MAX_PREFS_JIDS = 1000
#: Seconds between two retention sweeps.
RETENTION_INTERVAL = 86400.0


@section("mam")
@dataclasses.dataclass(frozen=True)
class MAMConfig:
    default: str = option(
        "always", choice(*DEFAULTS),
        "what is archived for an account that set no preference (XEP-0441): "
        "always, never, or roster (only contacts in the user's roster)")
    max_page: int = option(
        250, integer(1, 10000),
        "most messages one archive query returns; a client asking for more gets this many")
    retention_days: float = option(
        0, number(minimum=0),
        "days archived messages are kept; 0 keeps them forever")


# -- small helpers ------------------------------------------------------------

def serialize(stanza: domish.Element) -> str:
    """The stanza as archived: one C{jabber:client} element."""
    if stanza.uri != NS_CLIENT:
        stanza = cloneStanza(stanza)
    return stanza.toXml()


def hints(stanza: domish.Element) -> set[str]:
    return {child.name for child in stanza.elements() if child.uri == NS_HINTS}


def isArchivable(stanza: domish.Element) -> bool:
    """Whether a message is one a user archive keeps; see the module docstring."""
    found = marks(stanza)
    if found.replayed or found.carbonCopy or found.mamResult:
        return False
    kind = messageType(stanza)
    if kind not in ("chat", "normal"):
        return False
    given = hints(stanza)
    if "no-store" in given or "no-permanent-store" in given:
        return False
    if isCarbon(stanza) or hasChild(stanza, NS_MAM, "result"):
        return False
    return hasBody(stanza) or "store" in given


def removeForgedIds(stanza: domish.Element, by: str) -> None:
    """XEP-0359 §5 rules 3-4: drop every stanza-id claiming to be C{by}'s."""
    for child in stanza.children:
        if isinstance(child, domish.Element) and child.name == "stanza-id":
            break
    else:
        return  # The usual case: nothing to drop, no new list.
    stanza.children = [
        child for child in stanza.children
        if not (isinstance(child, domish.Element) and child.uri == NS_SID
                and child.name == "stanza-id" and child.getAttribute("by") == by)]


@dataclasses.dataclass(frozen=True)
class Prefs:
    """One account's archiving preferences (XEP-0441 §2)."""

    default: str
    always: frozenset = frozenset()
    never: frozenset = frozenset()

    def archives(self, target) -> bool | None:
        """
        Whether messages with C{target} (a JID) are archived, or C{None}
        when that depends on the roster (default "roster").
        """
        full, bare = target.full(), target.userhost()
        if full in self.never or bare in self.never:
            return False
        if full in self.always or bare in self.always:
            return True
        if self.default == "roster":
            return None
        return self.default == "always"

    def toJSON(self) -> str:
        return json.dumps({"default": self.default, "always": sorted(self.always),
                           "never": sorted(self.never)})

    @classmethod
    def fromJSON(cls, text: str, default: str) -> "Prefs":
        data = json.loads(text)
        chosen = data.get("default")
        return cls(chosen if chosen in DEFAULTS else default,
                   frozenset(data.get("always", ())), frozenset(data.get("never", ())))

    def toElement(self) -> domish.Element:
        prefs = domish.Element((NS_MAM, "prefs"))
        prefs["default"] = self.default
        for name, jids in (("always", self.always), ("never", self.never)):
            # XEP-0441 §2.1: both lists are present, even when empty.
            listed = prefs.addElement(name)
            for jid in sorted(jids):
                listed.addElement("jid", content=jid)
        return prefs


class Pending:
    """A message whose archiving waits for the account's preferences."""

    __slots__ = ("event", "outgoing", "account", "target", "peer", "stamp", "resume",
                 "archivable", "waiting")

    def __init__(self, event, outgoing: bool, account, target, stamp: float,
                 archivable: bool):
        self.event = event
        self.outgoing = outgoing
        self.account = account
        self.target = target
        self.peer = None if target is None else target.userhost()
        self.stamp = stamp
        #: What the incoming message's hook chain waits for.
        self.resume: defer.Deferred | None = None
        self.archivable = archivable
        #: A decision for it is on its way.
        self.waiting = False


@implementer(IDisco)
class MAMHandler(XMPPHandler, IQHandlerMixin):
    """The archives of one served domain's accounts; see the module docstring."""

    log = Logger()
    iqHandlers = {QUERY_SET: "onQuery", QUERY_GET: "onQueryForm", PREFS_GET: "onPrefsGet",
                  PREFS_SET: "onPrefsSet", METADATA_GET: "onMetadata"}

    def __init__(self, domain, config: MAMConfig | None = None):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.config = config or MAMConfig()
        #: Bare JID -> preferences.
        self.cache = AccountDataCache(domain, PREFS_KEY, self.parsePrefs,
                                      lambda: self.defaultPrefs, size=RECENT_PREFS,
                                      what="the archiving preferences")
        #: Bare JID -> messages waiting for their archiving decision, in order.
        self.queues: dict[str, deque[Pending]] = {}
        #: Accounts whose queue is being worked through right now.
        self.busy: set[str] = set()
        self.ids = 0
        self.retention = None

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)

    def register(self) -> None:
        hooks = self.domain.hooks
        hooks.add(MESSAGE_BARE, self.onIncoming, INCOMING_PRIORITY)
        hooks.add(MESSAGE_FULL, self.onIncoming, INCOMING_PRIORITY)
        hooks.add(C2S_OUTGOING, self.onOutgoing, OUTGOING_PRIORITY)
        self.cache.register()
        if self.config.retention_days > 0:
            self.retention = task.LoopingCall(self.expire)
            self.retention.clock = self.domain.clock
            self.retention.start(RETENTION_INTERVAL, now=True)

    # -- preferences in memory ------------------------------------------------

    @property
    def defaultPrefs(self) -> Prefs:
        return Prefs(self.config.default)

    def parsePrefs(self, text: str | None) -> Prefs:
        """
        Stored preferences.  Unreadable ones are the default, and are cached
        as such: reading them again would give the same.
        """
        if text is None:
            return self.defaultPrefs
        try:
            return Prefs.fromJSON(text, self.config.default)
        except (ValueError, TypeError, AttributeError):
            self.log.warn("Unreadable archiving preferences; using the default")
            return self.defaultPrefs

    # -- deciding -------------------------------------------------------------

    def decideCached(self, account, target) -> bool | None:
        """
        Whether a message between C{account} (bare) and C{target} is
        archived, if what that needs is in memory; C{None} if not.  The
        per-message path: no Deferred, no closure.
        """
        prefs = self.cache.cached(account.userhost())
        if prefs is None:
            return None
        decision = prefs.archives(target)
        if decision is not None:
            return decision
        bare = target.userhost()
        if bare == account.userhost():
            return True
        roster = rosterManager(self.domain).cachedRoster(account.user)
        if roster is None:
            return None
        item = roster.items.get(bare)
        return item is not None and item.visible

    def decide(self, account, target) -> defer.Deferred:
        """Whether a message between C{account} (bare) and C{target} is archived."""
        d = self.cache.load(account)

        def apply(prefs: Prefs):
            decision = prefs.archives(target)
            if decision is not None:
                return decision
            if target.userhost() == account.userhost():
                return True
            lookup = defer.ensureDeferred(rosterManager(self.domain).getItem(
                account.user, target.userhost()))
            return lookup.addCallback(lambda item: item is not None and item.visible)

        def failed(failure):
            self.log.failure("Deciding whether to archive for {jid} failed", failure,
                             jid=account.userhost())
            return self.config.default == "always"

        return d.addCallback(apply).addErrback(failed)

    # -- incoming (§3.5) ------------------------------------------------------

    def onIncoming(self, event):
        """
        C{message/bare}, C{message/full}: archive for the recipient, stamp
        the id.  Returns a Deferred, so the chain (carbons, delivery) waits,
        when the decision needs storage or a message of the account before
        this one still waits for its own.
        """
        if event.domain is not self.domain:
            return None
        recipient = event.recipient
        if recipient.user is None or event.sender is None:
            return None
        stanza = event.stanza
        found = marks(stanza)
        if found.replayed or found.carbonCopy or found.mamResult:
            return None
        key = recipient.userhost()
        removeForgedIds(stanza, key)
        archivable = isArchivable(stanza) and self.willDeliver(event)
        queue = self.queues.get(key)
        if queue is None:
            if not archivable:
                return None
            decision = self.decideCached(recipient, event.sender)
            if decision is not None:
                if decision:
                    self.archiveIncoming(event, self.domain.clock.seconds())
                return None
        return self.wait(key, Pending(event, False, recipient.userhostJID(), event.sender,
                                      self.domain.clock.seconds(), archivable))

    def willDeliver(self, event) -> bool:
        """Not a message delivery will bounce: one to a vanished resource that is not a chat."""
        recipient = event.recipient
        if recipient.resource is None or event.domain.sessions.get(recipient) is not None:
            return True
        return messageType(event.stanza) == "chat"

    def archiveIncoming(self, event, stamp: float) -> None:
        stanza = event.stanza
        account = event.recipient
        archiveId = newArchiveId()
        stanzaId = stanza.addElement((NS_SID, "stanza-id"))
        stanzaId["id"] = archiveId
        stanzaId["by"] = account.userhost()
        self.append(account, ArchivedMessage(
            archiveId, stamp, event.sender.userhost(), serialize(stanza)))

    def append(self, account, message: ArchivedMessage) -> None:
        """Write to the archive without waiting; failures are logged."""
        d = defer.maybeDeferred(self.domain.storage.archive.append,
                                account.user, account.host, message)

        def failed(failure):
            if failure.check(NoSuchUser):
                return None  # Delivery answers service-unavailable for it.
            if failure.check(StorageFault):
                return None  # Delivered all the same; the backend logged it.
            self.log.failure("Archiving a message for {jid} failed", failure,
                             jid=account.userhost())

        d.addErrback(failed)

    # -- outgoing -------------------------------------------------------------

    def onOutgoing(self, event):
        """
        C{c2s/outgoing}: archive a user's message in the user's own archive.
        The message never waits for the decision: one that needs storage is
        archived (in order) once decided, without the sent carbons' id.
        """
        session, stanza = event.session, event.stanza
        if session is None or stanza.name != "message" or session.jid.host != self.host:
            return None
        recipient = event.recipient
        if recipient is None or recipient.userhost() == session.jid.userhost():
            return None  # Archived once, when it arrives (see the module docstring).
        if not isArchivable(stanza):
            return None
        account = makeJID(session.jid.user, session.jid.host)
        key = account.userhost()
        stamp = self.domain.clock.seconds()
        if key not in self.queues:
            decision = self.decideCached(account, recipient)
            if decision is not None:
                if decision:
                    meta(stanza).archiveSentId = (key, self.archiveOutgoing(
                        account, recipient.userhost(), stanza, stamp))
                return None
        self.wait(key, Pending(event, True, account, recipient, stamp, True))
        return None

    def archiveOutgoing(self, account, peer: str, stanza, stamp: float) -> str:
        archiveId = newArchiveId()
        self.append(account, ArchivedMessage(archiveId, stamp, peer, serialize(stanza)))
        return archiveId

    # -- waiting for a decision -----------------------------------------------

    def wait(self, key: str, pending: Pending) -> defer.Deferred | bool | None:
        """
        Queue C{pending} behind the account's undecided messages, so archive
        order is arrival order (§3.1); an incoming one gets the Deferred its
        hook chain waits for (and so is held, issue 5), fired once it is
        decided and archived.  Past L{MAX_WAITING} an incoming message is
        refused with C{resource-constraint}.
        """
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = deque()
        elif len(queue) >= MAX_WAITING and not pending.outgoing:
            self.domain.bounce(pending.event.stanza, "resource-constraint")
            return True
        resume = None
        if not pending.outgoing:
            resume = pending.resume = defer.Deferred()
        queue.append(pending)
        if len(queue) == 1:
            self.process(key)
        return resume

    def process(self, key: str) -> None:
        """
        Decide the queued messages of C{key} in order, waiting where needed.
        Re-entrant calls (a resumed message routes another one for the
        same account) leave the work to the loop already running.
        """
        if key in self.busy:
            return
        self.busy.add(key)
        try:
            queue = self.queues.get(key)
            while queue:
                pending = queue[0]
                if pending.waiting:
                    return
                decision = (self.decideCached(pending.account, pending.target)
                            if pending.archivable else False)
                if decision is None:
                    pending.waiting = True
                    self.decide(pending.account, pending.target).addCallback(
                        self.decided, key, pending)
                    return
                queue.popleft()
                self.release(pending, decision)
            self.queues.pop(key, None)
        finally:
            self.busy.discard(key)

    def decided(self, decision: bool, key: str, pending: Pending) -> None:
        queue = self.queues.get(key)
        if not queue or queue[0] is not pending:
            return
        pending.waiting = False
        queue.popleft()
        self.busy.add(key)
        try:
            self.release(pending, decision)
        finally:
            self.busy.discard(key)
        self.process(key)

    def release(self, pending: Pending, decision: bool) -> None:
        """
        Act on a decision made after waiting: archive, then let an incoming
        message's hook chain go on (carbons, delivery), which it does at once.
        """
        if pending.outgoing:
            if decision:
                self.archiveOutgoing(pending.account, pending.peer, pending.event.stanza,
                                     pending.stamp)
            return
        if decision:
            try:
                self.archiveIncoming(pending.event, pending.stamp)
            except Exception:
                self.log.failure("Archiving a message after deciding on it failed")
        pending.resume.callback(None)

    # -- access ---------------------------------------------------------------

    def owner(self, iq: domish.Element):
        """The account whose archive C{iq} is about, if the sender may use it."""
        try:
            sender = parseJID(iq.getAttribute("from") or "")
            to = iq.getAttribute("to")
            target = sender.userhostJID() if to is None else parseJID(to)
        except InvalidJID:
            raise StanzaError("bad-request")
        if target.user is None:
            raise StanzaError("service-unavailable")  # The domain keeps no archive.
        if target.host != self.host or target.resource is not None:
            raise StanzaError("service-unavailable")
        if sender.userhost() != target.userhost():
            raise StanzaError("forbidden")  # §8.1: only the account itself.
        return makeJID(target.user, target.host)

    # -- IDisco (§7) ----------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is not None and not nodeIdentifier:
            return [DiscoFeature(NS_MAM), DiscoFeature(NS_MAM_EXTENDED), DiscoFeature(NS_SID)]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []

    # -- preferences (XEP-0441 §2) --------------------------------------------

    async def onPrefsGet(self, iq: domish.Element) -> domish.Element:
        account = self.owner(iq)
        prefs = await self.cache.load(account)
        return prefs.toElement()

    async def onPrefsSet(self, iq: domish.Element) -> domish.Element:
        account = self.owner(iq)
        element = firstChild(iq, NS_MAM, "prefs")
        current = await self.cache.load(account)
        default = element.getAttribute("default", current.default)
        if default not in DEFAULTS:
            raise StanzaError("bad-request", text="default must be always, never or roster")
        prefs = Prefs(default, self.jidList(element, "always"), self.jidList(element, "never"))
        await self.domain.storage.accountData.set(
            account.user, account.host, PREFS_KEY, prefs.toJSON())
        self.cache.keep(account, prefs)
        return prefs.toElement()

    @staticmethod
    def jidList(prefs: domish.Element, name: str) -> frozenset:
        jids = set()
        for listed in prefs.elements(NS_MAM, name):
            for item in listed.elements(NS_MAM, "jid"):
                try:
                    jids.add(parseJID(str(item).strip()).full())
                except InvalidJID:
                    raise StanzaError("jid-malformed", text="not a JID: %s" % (str(item)[:100],))
        if len(jids) > MAX_PREFS_JIDS:
            raise StanzaError("policy-violation",
                              text="at most %d JIDs in <%s/>" % (MAX_PREFS_JIDS, name))
        return frozenset(jids)

    # -- queries (§4, §5: xmppd.features.mam.query) -------------------------------------

    def onQueryForm(self, iq: domish.Element) -> domish.Element:
        """§4.1.5: the fields a query may use (none required)."""
        self.owner(iq)
        return queryForm()

    async def onMetadata(self, iq: domish.Element) -> domish.Element:
        """§5: the first and last message of the archive."""
        account = self.owner(iq)
        return await metadata(self.domain.storage.archive, account)

    async def onQuery(self, iq: domish.Element):
        account = self.owner(iq)
        query = firstChild(iq, NS_MAM, "query")
        messages, complete, count = await runQuery(
            self.domain.storage.archive, account, query, self.config.max_page)
        requester = iq["from"]
        queryId = query.getAttribute("queryid")
        shown = reversed(messages) if hasChild(query, NS_MAM, "flip-page") else messages
        for message in shown:
            self.ids += 1
            self.domain.router.route(
                resultMessage(account, requester, queryId, message, "mam-%d" % self.ids))
        return finElement(messages, complete, count)

    # -- retention ------------------------------------------------------------

    def expire(self) -> defer.Deferred | None:
        """Remove what is older than C{[mam] retention_days} from every archive."""
        if not self.domain.running:
            if self.retention is not None and self.retention.running:
                self.retention.stop()
            return None
        cutoff = self.domain.clock.seconds() - self.config.retention_days * 86400
        d = defer.maybeDeferred(self.domain.storage.archive.removeOlderThan, cutoff)
        d.addErrback(lambda failure: self.log.failure("Archive retention sweep failed", failure))
        return d


def makeHandler(domain) -> MAMHandler:
    handler = MAMHandler(domain, domain.config.mam)
    handler.register()
    return handler
