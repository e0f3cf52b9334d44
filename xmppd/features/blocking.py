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

Enforcement is not here: the block list is read by the domain's one policy
check, L{xmppd.features.privacy.policy}, together with the privacy lists
of XEP-0016, so that both protocols agree (see that module for what a
blocked stanza becomes: the user appears offline to the blocked JID, and
the user's own messages and requests to it get C{not-acceptable} with
C{<blocked xmlns='urn:xmpp:blocking:errors'/>}, §3.3).

Presence side effects: blocking sends unavailable presence from each of the
user's available resources to the blocked JIDs allowed to see it (roster
subscription "from" or "both", RFC 6121 §4; and JIDs the resource sent
directed presence to, §4.6) — the MUST of §3.3; unblocking sends them the
resources' current presence (§3.4) and probes the unblocked contacts the
user is subscribed to (RFC 6121 §4.3), so presence dropped during the block
is brought up to date.  The other way round, the user's available resources
get unavailable presence from each resource of a newly blocked contact
whose presence they had (the presence state's record of what each account
heard), so the contact appears offline to the user too (§3.3); the probes
of the unblock bring their current presence back.

Implements: XEP-0191 1.3 (Blocking Command)
"""

from __future__ import annotations

import dataclasses
import itertools

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import DELIVER
from xmppd.core.events import SESSION_CLOSED
from xmppd.config import integer, option, section
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT, ownAccountSender
from xmppd.features.privacy.policy import (BLOCKLIST_KEY, NS_BLOCKING_ERRORS, PRIORITY, exempt,
                                           isBlocked, policyOf)

NS_BLOCKING = "urn:xmpp:blocking"

__all__ = ["NS_BLOCKING", "NS_BLOCKING_ERRORS", "PRIORITY", "isBlocked"]

BLOCKLIST_GET = "/iq[@type='get']/blocklist[@xmlns='%s']" % NS_BLOCKING
BLOCK_SET = "/iq[@type='set']/block[@xmlns='%s']" % NS_BLOCKING
UNBLOCK_SET = "/iq[@type='set']/unblock[@xmlns='%s']" % NS_BLOCKING

#: The account-data key of the list (see L{xmppd.storage.interfaces}).
STORAGE_KEY = BLOCKLIST_KEY


@section("blocking")
@dataclasses.dataclass(frozen=True)
class BlockingConfig:
    max_items: int = option(
        1000, integer(minimum=1),
        "most JIDs one account may block; a block beyond it gets policy-violation")


def sameAccount(a: JID, b: JID) -> bool:
    return a.user == b.user and a.host == b.host


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

    def __init__(self, domain, maxItems: int = 1000):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.maxItems = maxItems
        #: The domain's policy check, which enforces the lists this edits.
        self.policy = policyOf(domain)
        #: Bare JID -> ordered set (a dict) of blocked JIDs, shared with the
        #: policy.  A list that cannot be read is empty (a fresh dict:
        #: callers change what they get).
        self.cache = self.policy.blocklists
        self.policy.blocklistMax = maxItems
        self.policy.blocklistObservers.append(self.onBlocklistChanged)
        #: Full JID strings of the sessions that asked for the block list:
        #: they get pushes (§3.3).
        self.interested: set[str] = set()
        self.pushIds = itertools.count(1)

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)
        self.domain.hooks.add(SESSION_CLOSED, self.onSessionClosed, DELIVER)

    def onSessionClosed(self, session) -> None:
        """A closed session gets no more pushes."""
        if session.jid.host == self.host:
            self.interested.discard(session.jid.full())

    # -- the protocol ------------------------------------------------------

    def account(self, iq: domish.Element) -> JID:
        """
        The account whose list a request is about: the sender's own, asked
        with no C{to}, its own bare JID or its domain as C{to}.
        """
        return ownAccountSender(iq, self.host)

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
        added, _ = await self.policy.changeBlocklist(account, requested, [], notify=False)
        self.push(account, "block", requested)
        if added:
            await self.announceBlock(account, added)

    async def onUnblock(self, iq: domish.Element) -> None:
        """§3.4 and §3.5: remove the items (or all), push, send presence again."""
        sender = self.account(iq)
        requested = self.items(next(iq.elements(NS_BLOCKING, "unblock")))
        account = sender.userhostJID()
        _, removed = await self.policy.changeBlocklist(account, [], requested or None,
                                                       notify=False)
        self.push(account, "unblock", requested)
        if removed:
            await self.announceUnblock(account, removed)

    def onBlocklistChanged(self, account: JID, added: list[str], removed: list[str]) -> None:
        """
        The list was changed through privacy lists (XEP-0016): blocking
        clients hear it as if it had been a block or an unblock.
        """
        if added:
            self.push(account, "block", added)
        if removed:
            self.push(account, "unblock", removed)
        d = defer.ensureDeferred(self.announceChange(account, added, removed))
        d.addErrback(lambda failure: self.log.failure(
            "Cannot announce the block list change of {account}", failure,
            account=account.full()))

    async def announceChange(self, account: JID, added: list[str], removed: list[str]) -> None:
        if added:
            await self.announceBlock(account, added)
        if removed:
            await self.announceUnblock(account, removed)

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
        """
        §3.3: unavailable presence to the newly blocked JIDs allowed to see
        ours, and from each of their resources the user's resources saw
        available, to those resources: both sides see the other go.
        """
        available = self.domain.sessions.availableSessionsOf(account)
        if not available:
            return
        blocked = dict.fromkeys(jids)
        router = self.domain.router
        presenceState = self.domain.presence
        gone = []
        for heard in sorted(presenceState.heardFrom(account.userhost())):
            try:
                if isBlocked(blocked, parseJID(heard)):
                    gone.append(heard)
            except InvalidJID:
                continue
        for session in available:
            for contact in gone:
                router.route(exempt(makePresence(contact, session.jid.full(), "unavailable")))
        allowed, _ = await self.presenceTargets(account, jids)
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
            # An invisible resource stays hidden (XEP-0186).
            presence = presenceState.visiblePresence(full)
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
