# -*- test-case-name: tests.test_blocking -*-
"""
The blocking command: a user keeps a list of JIDs the server stops all
traffic with, in both directions (XEP-0191).

The protocol (XEP-0191 §3.2-§3.5): a get of C{<blocklist/>} returns the
list and makes the requesting resource "interested"; C{<block/>} and
C{<unblock/>} (empty: unblock everything) change it, and every interested
resource of the account gets the change pushed as an IQ set from the
account's bare JID, as roster pushes are (RFC 6121 §2.1.6).  Requests must
come from the account itself (no C{to}, its own bare JID, or the domain);
anyone else gets C{service-unavailable}, as for any namespace an account
does not answer.  A block without items is C{bad-request} (§3.3), an item
that is not a JID C{jid-malformed} (RFC 6120 §8.3.3.8), and a list past
C{[blocking] max_items} C{policy-violation}; nothing changes then.

Items are stored prepared (RFC 7622), as a JSON list under the account-data
key C{"blocklist"}.  They match as XEP-0191 §6 says (after XEP-0016): a
full JID only itself, a bare JID every resource of it, C{domain/resource}
that resource at the domain, a domain everything from it.  Two things are
never blocked (§5's note): a user's own resources, and the user's own
server (or a user who blocked their own domain would lose every IQ
result).

Enforcement (§3.3), on hooks at priority L{PRIORITY}, above delivery,
offline storage, carbons and archiving, so blocked stanzas reach none of
them:

  - inbound, from a blocked JID to the user: presence dropped silently;
    messages answered with C{service-unavailable} (the SHOULD of §3.3, so
    the user looks offline to the contact); IQ get/set answered with
    C{service-unavailable}, other IQs dropped;
  - outbound, from the user to a blocked JID: messages and IQ get/set
    answered with C{not-acceptable} plus C{<blocked
    xmlns='urn:xmpp:blocking:errors'/>} (§3.3's MUST), never routed;
    presence (directed, subscriptions, the broadcasts of the presence
    feature) dropped silently, since an error in reply to presence helps no
    client.

Client stanzas are checked on C{c2s/outgoing}, whatever the destination;
stanzas arriving at a served domain are checked on C{<kind>/bare} and
C{<kind>/full}, for the recipient's list when the recipient is one of our
users and for the sender's when the sender is, which also covers what other
features send on a user's behalf.  Errors and presence this module makes
carry the in-process mark C{blockingExempt} so no list stops them.

The lists of accounts with a session are kept in memory (loaded on
C{session/bound}), and a bounded number of others in a least-recently-used
cache; with the list in memory the decision is made at once.  A stanza that
needs a list not in memory makes its hook callback return a Deferred: the
hook chain waits (holding the stanza, issue 5) while the list loads, and
goes on to the next callback, as if it had never waited, unless the list
refuses it.  A list that cannot be read blocks nothing (logged): a storage
failure must not silence a user.

Presence side effects: blocking sends unavailable presence from each of the
user's available resources to the blocked JIDs allowed to see it (roster
subscription "from" or "both", RFC 6121 §4; and JIDs the resource sent
directed presence to, §4.6) — the MUST of §3.3; unblocking sends them the
resources' current presence (§3.4) and probes the unblocked contacts the
user is subscribed to (RFC 6121 §4.3), so presence dropped during the block
is brought up to date.

Implements: XEP-0191 1.3 (Blocking Command)
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

from xmppd.core.hooks import DELIVER, POLICY
from xmppd.core.events import C2S_OUTGOING, SESSION_CLOSED, STANZA_OUTBOUND, STANZA_PREPARED
from xmppd.core.accountcache import AccountDataCache
from xmppd.config import integer, option, section
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT, errorReply, marks, mayAnswer, meta

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

BLOCKLIST_GET = "/iq[@type='get']/blocklist[@xmlns='%s']" % NS_BLOCKING
BLOCK_SET = "/iq[@type='set']/block[@xmlns='%s']" % NS_BLOCKING
UNBLOCK_SET = "/iq[@type='set']/unblock[@xmlns='%s']" % NS_BLOCKING

#: The account-data key of the list (see L{xmppd.storage.interfaces}).
STORAGE_KEY = "blocklist"

#: Above every delivery-side hook: a blocked stanza must reach none of them.
PRIORITY = POLICY

#: How many lists of accounts without a session stay in memory.
RECENT_LISTS = 1024

#: Stanza hooks the enforcement listens on.
STANZA_HOOKS = tuple("%s/%s" % (kind, target)
                     for kind in ("message", "presence", "iq")
                     for target in ("bare", "full"))


@section("blocking")
@dataclasses.dataclass(frozen=True)
class BlockingConfig:
    max_items: int = option(
        1000, integer(minimum=1),
        "most JIDs one account may block; a block beyond it gets policy-violation")


def matchKeys(jid: JID) -> list[str]:
    """
    The block list items that match C{jid} (XEP-0191 §6): itself, its bare
    JID, its domain/resource and its domain.
    """
    keys = [jid.full()]
    if jid.resource is not None:
        if jid.user is not None:
            keys.append(jid.userhost())
        keys.append("%s/%s" % (jid.host, jid.resource))
    if jid.user is not None or jid.resource is not None:
        keys.append(jid.host)
    return keys


def isBlocked(items, jid: JID) -> bool:
    """Whether a block list (a container of prepared JID strings) covers C{jid}."""
    if not items:
        return False
    return any(key in items for key in matchKeys(jid))


def sameAccount(a: JID, b: JID) -> bool:
    return a.user == b.user and a.host == b.host


def exempt(stanza: domish.Element) -> domish.Element:
    """Mark a stanza this module made so no block list stops it."""
    meta(stanza).blockingExempt = True
    return stanza


def isExempt(stanza: domish.Element) -> bool:
    return marks(stanza).blockingExempt


def blockedError(stanza: domish.Element) -> domish.Element | None:
    """XEP-0191 §3.3: the error for a stanza sent to a JID the sender blocked."""
    if not mayAnswer(stanza):
        return None
    error = StanzaError("not-acceptable", type="cancel",
                        appCondition=domish.Element((NS_BLOCKING_ERRORS, "blocked")))
    return error.toResponse(stanza)


def makePresence(sender: str, to: str, presenceType: str | None = None) -> domish.Element:
    presence = domish.Element((NS_CLIENT, "presence"))
    presence["from"] = sender
    presence["to"] = to
    if presenceType is not None:
        presence["type"] = presenceType
    return presence


def copyPresence(presence: domish.Element, sender: str, to: str) -> domish.Element:
    """A copy of a resource's last presence, addressed anew (children shared, not changed)."""
    copy = domish.Element((presence.uri or NS_CLIENT, "presence"))
    for name, value in presence.attributes.items():
        if name not in ("to", "from", "id"):
            copy[name] = value
    copy.children = list(presence.children)
    copy["from"] = sender
    copy["to"] = to
    return copy


@implementer(IDisco)
class BlockingHandler(XMPPHandler, IQHandlerMixin):
    """The block lists of one served domain's accounts; see the module docstring."""

    iqHandlers = {BLOCKLIST_GET: "onBlocklist", BLOCK_SET: "onBlock", UNBLOCK_SET: "onUnblock"}
    log = Logger()

    def __init__(self, domain, maxItems: int = 1000, recentLists: int = RECENT_LISTS):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.maxItems = maxItems
        #: Bare JID -> ordered set (a dict) of blocked JIDs.  A list that
        #: cannot be read is empty (a fresh dict: callers change what they get).
        self.cache = AccountDataCache(domain, STORAGE_KEY, self.parse, dict,
                                      size=recentLists, what="the block list")
        #: Full JID strings of the sessions that asked for the block list:
        #: they get pushes (§3.3).
        self.interested: set[str] = set()
        self.pushIds = itertools.count(1)


    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)
        hooks = self.domain.hooks
        for name in STANZA_HOOKS:
            hooks.add(name, self.onStanza, PRIORITY)
        hooks.add(C2S_OUTGOING, self.onOutgoing, PRIORITY)
        hooks.add(STANZA_PREPARED, self.onPrepared, PRIORITY)
        hooks.add(STANZA_OUTBOUND, self.onStanza, PRIORITY)
        hooks.add(SESSION_CLOSED, self.onSessionClosed, DELIVER)
        self.cache.register()

    @staticmethod
    def parse(value: str | None) -> dict[str, None]:
        """
        A stored list.  Raises if the value is not one: the cache logs it and
        gives an empty list, since a storage failure must not silence a user.
        """
        if not value:
            return {}
        jids = json.loads(value)
        if not isinstance(jids, list) or not all(isinstance(jid, str) for jid in jids):
            raise ValueError("a stored block list is not a list of JIDs")
        return dict.fromkeys(jids)

    def onSessionClosed(self, session) -> None:
        """A closed session gets no more pushes."""
        if session.jid.host == self.host:
            self.interested.discard(session.jid.full())

    # -- enforcement -------------------------------------------------------

    def isOurUser(self, jid: JID | None) -> bool:
        return jid is not None and jid.user is not None and jid.host == self.host

    def onStanza(self, event):
        """C{<kind>/bare}, C{<kind>/full}: a stanza arriving at a served domain."""
        stanza = event.stanza
        sender, recipient = event.sender, event.recipient
        if sender is None or sameAccount(sender, recipient) or isExempt(stanza):
            return None
        inbound = (self.isOurUser(recipient)
                   and not (sender.user is None and sender.host == self.host))
        outbound = self.isOurUser(sender)
        if not inbound and not outbound:
            return None
        inItems = self.cache.cached(recipient.userhost()) if inbound else None
        outItems = self.cache.cached(sender.userhost()) if outbound else None
        if (inbound and inItems is None) or (outbound and outItems is None):
            return self.decideLater(event, inbound, outbound)
        return self.decide(event, inbound and inItems, outbound and outItems)

    def onPrepared(self, event):
        """
        C{stanza/prepared}: a stanza serialized once for many (a room's
        fan-out) takes the full path, where L{onStanza} decides, to a user
        whose list covers its sender or is not in memory.
        """
        recipient = event.recipient
        if not self.isOurUser(recipient):
            return None
        items = self.cache.cached(recipient.userhost())
        if items is None or (items and isBlocked(items, event.sender)):
            return True
        return None

    def decide(self, event, inItems, outItems):
        """Refuse the stanza (and return C{True}) if a list covers it."""
        if inItems and isBlocked(inItems, event.sender):
            self.refuseInbound(event.stanza)
            return True
        if outItems and isBlocked(outItems, event.recipient):
            self.refuseOutbound(event.stanza)
            return True
        return None

    def decideLater(self, event, inbound: bool, outbound: bool) -> defer.Deferred:
        """Load the lists not in memory; the hook chain waits for the decision."""
        sender, recipient = event.sender, event.recipient
        loads = [self.cache.load(recipient.userhostJID()) if inbound else defer.succeed(None),
                 self.cache.load(sender.userhostJID()) if outbound else defer.succeed(None)]
        return defer.gatherResults(loads).addCallback(self.decideLoaded, event)

    def decideLoaded(self, lists, event):
        inItems, outItems = lists
        return self.decide(event, inItems, outItems)

    def onOutgoing(self, event):
        """C{c2s/outgoing}: a user's stanza to a JID the user blocked stops here."""
        session, recipient, stanza = event.session, event.recipient, event.stanza
        if session is None or recipient is None or session.jid.host != self.host:
            return None
        sender = session.jid
        if sameAccount(sender, recipient) or (
                recipient.user is None and recipient.host == self.host):
            return None
        if isExempt(stanza):
            return None
        items = self.cache.cached(sender.userhost())
        if items is None:
            # The hook chain waits for the list (see the module docstring).
            return self.cache.load(sender.userhostJID()).addCallback(
                self.refuseIfBlocked, stanza, recipient)
        return self.refuseIfBlocked(items, stanza, recipient)

    def refuseIfBlocked(self, items, stanza: domish.Element, recipient: JID):
        """Refuse a user's stanza to a JID the user blocked (and return C{True})."""
        if isBlocked(items, recipient):
            self.refuseOutbound(stanza)
            return True
        return None

    def refuseInbound(self, stanza: domish.Element) -> None:
        """§3.3: the user appears offline to the blocked JID."""
        if stanza.name == "presence":
            return
        if stanza.name == "iq" and stanza.getAttribute("type") not in ("get", "set"):
            return
        reply = errorReply(stanza, "service-unavailable")
        if reply is not None:
            self.domain.router.route(exempt(reply))

    def refuseOutbound(self, stanza: domish.Element) -> None:
        """§3.3: not routed; messages and requests get the <blocked/> error."""
        if stanza.name == "presence":
            return
        reply = blockedError(stanza)
        if reply is not None:
            self.domain.router.route(exempt(reply))

    # -- the protocol ------------------------------------------------------

    def account(self, iq: domish.Element) -> JID:
        """
        The account whose list a request is about: the sender's own, asked
        with no C{to}, its own bare JID or its domain as C{to}.
        """
        try:
            sender = parseJID(iq.getAttribute("from") or "")
        except InvalidJID:
            raise StanzaError("service-unavailable")
        to = iq.getAttribute("to")
        if not self.isOurUser(sender) or sender.resource is None:
            raise StanzaError("service-unavailable")
        if to is not None and to not in (self.host, sender.userhost()):
            raise StanzaError("service-unavailable")
        return sender

    @staticmethod
    def items(command: domish.Element) -> list[str]:
        """The prepared JIDs of a block or unblock, in order, without repeats."""
        jids: dict[str, None] = {}
        for item in command.elements(NS_BLOCKING, "item"):
            text = item.getAttribute("jid")
            if text is None:
                raise StanzaError("bad-request", text="an item without a jid")
            try:
                jids[parseJID(text).full()] = None
            except InvalidJID:
                raise StanzaError("jid-malformed", text="not a JID: %s" % (text[:100],))
        return list(jids)

    async def onBlocklist(self, iq: domish.Element) -> domish.Element:
        """§3.2: the list; the requesting resource now gets pushes."""
        sender = self.account(iq)
        items = await self.cache.load(sender.userhostJID())
        if self.domain.sessions.isBound(sender):
            self.interested.add(sender.full())
        blocklist = domish.Element((NS_BLOCKING, "blocklist"))
        for jid in items:
            blocklist.addElement("item")["jid"] = jid
        return blocklist

    async def onBlock(self, iq: domish.Element) -> None:
        """§3.3: add the items, push them, tell the blocked JIDs we are gone."""
        sender = self.account(iq)
        requested = self.items(next(iq.elements(NS_BLOCKING, "block")))
        if not requested:
            raise StanzaError("bad-request", text="block at least one JID")
        account = sender.userhostJID()
        items = await self.cache.load(account)
        added = [jid for jid in requested if jid not in items]
        if len(items) + len(added) > self.maxItems:
            raise StanzaError("policy-violation", type="modify",
                              text="a block list holds at most %d JIDs" % (self.maxItems,))
        for jid in added:
            items[jid] = None
        try:
            await self.save(account, items)
        except Exception:
            for jid in added:
                items.pop(jid, None)
            raise
        self.cache.keep(account, items)
        self.push(account, "block", requested)
        if added:
            await self.announceBlock(account, added)

    async def onUnblock(self, iq: domish.Element) -> None:
        """§3.4 and §3.5: remove the items (or all), push, send presence again."""
        sender = self.account(iq)
        requested = self.items(next(iq.elements(NS_BLOCKING, "unblock")))
        account = sender.userhostJID()
        items = await self.cache.load(account)
        before = dict(items)
        if requested:
            removed = [jid for jid in requested if jid in items]
        else:
            removed = list(items)
        for jid in removed:
            del items[jid]
        try:
            await self.save(account, items)
        except Exception:
            items.clear()
            items.update(before)
            raise
        self.cache.keep(account, items)
        self.push(account, "unblock", requested)
        if removed:
            await self.announceUnblock(account, removed)

    def save(self, account: JID, items: dict[str, None]) -> defer.Deferred:
        accountData = self.domain.storage.accountData
        if not items:
            return accountData.delete(account.user, account.host, STORAGE_KEY)
        return accountData.set(account.user, account.host, STORAGE_KEY,
                               json.dumps(list(items), ensure_ascii=False))

    def push(self, account: JID, name: str, jids: list[str]) -> None:
        """Send the change to every interested resource of the account."""
        interested = self.interested
        for session in self.domain.sessions.sessionsOf(account):
            if session.jid.full() not in interested:
                continue
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = "block-push-%d" % (next(self.pushIds),)
            iq["from"] = account.full()
            iq["to"] = session.jid.full()
            command = iq.addElement((NS_BLOCKING, name))
            for jid in jids:
                command.addElement("item")["jid"] = jid
            self.domain.router.route(iq)

    async def presenceTargets(self, account: JID, jids: list[str]):
        """
        Who among C{jids} may see the account's presence (roster "from" or
        "both", or a full JID of such a contact), and which of the account's
        roster contacts matched by C{jids} it is subscribed to.
        """
        try:
            roster = await self.domain.storage.rosters.getRoster(account.user, account.host)
        except Exception:
            self.log.failure("Cannot read the roster of {account}", account=account.full())
            return set(), set()
        blocked = dict.fromkeys(jids)
        fullJIDs = [jid for jid in map(parseJID, jids)
                    if jid.user is not None and jid.resource is not None]
        allowed, subscribed = set(), set()
        for contact, item in roster.items.items():
            try:
                contactJID = parseJID(contact)
            except InvalidJID:
                continue
            covered = isBlocked(blocked, contactJID)
            if item.subscription in ("from", "both"):
                if covered:
                    allowed.add(contact)
                else:
                    allowed.update(jid.full() for jid in fullJIDs
                                   if jid.userhost() == contact)
            if covered and item.subscription in ("to", "both"):
                subscribed.add(contact)
        return allowed, subscribed

    async def announceBlock(self, account: JID, jids: list[str]) -> None:
        """§3.3: unavailable presence to the newly blocked JIDs allowed to see ours."""
        available = self.domain.sessions.availableSessionsOf(account)
        if not available:
            return
        allowed, _ = await self.presenceTargets(account, jids)
        blocked = dict.fromkeys(jids)
        router = self.domain.router
        presenceState = self.domain.presence
        for session in self.domain.sessions.availableSessionsOf(account):
            targets = set(allowed)
            for directed in presenceState.directedOf(session.jid.full()):
                try:
                    if isBlocked(blocked, parseJID(directed)):
                        targets.add(directed)
                except InvalidJID:
                    continue
            for target in sorted(targets):
                router.route(exempt(makePresence(session.jid.full(), target, "unavailable")))

    async def announceUnblock(self, account: JID, jids: list[str]) -> None:
        """§3.4: current presence to the unblocked JIDs allowed to see it, and probes."""
        if not self.domain.sessions.availableSessionsOf(account):
            return
        allowed, subscribed = await self.presenceTargets(account, jids)
        router = self.domain.router
        presenceState = self.domain.presence
        for session in self.domain.sessions.availableSessionsOf(account):
            full = session.jid.full()
            presence = presenceState.lastPresence(full)
            if presence is None:
                continue
            for target in sorted(allowed):
                router.route(copyPresence(presence, full, target))
        for contact in sorted(subscribed):
            router.route(makePresence(account.full(), contact, "probe"))

    # -- disco -------------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        """§3.1: the server announces the feature."""
        if nodeIdentifier or target.user is not None or target.host != self.host:
            return []
        return [DiscoFeature(NS_BLOCKING)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> BlockingHandler:
    return BlockingHandler(domain, maxItems=domain.config.blocking.max_items)
