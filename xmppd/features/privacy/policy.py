# -*- test-case-name: tests.test_privacy,tests.test_blocking -*-
"""
The one policy check on a served domain's delivery path: the block list
(XEP-0191) and the privacy lists (XEP-0016) of its accounts, decided
together, so a client using either protocol sees the same behaviour.

For a stanza between one of our users and a peer, the user's block list
is read first (XEP-0191 §3.3: a blocked JID is cut off from every stanza,
both ways; XEP-0191 §5 places blocking before privacy lists), then the
privacy list that applies: the session's active list when the stanza is
addressed to, or sent by, a session that set one (XEP-0016 §2.4), else the
account's default list (§2.5).  The first refusal wins.  What a refused
stanza becomes is the same for both protocols, except the error a user's
own stanza gets:

  - inbound, to the user: presence dropped silently; messages and IQ
    get/set answered with C{service-unavailable} (the user looks offline,
    XEP-0191 §3.3, XEP-0016 §2.11-§2.13); other IQs dropped;
  - outbound, from the user: presence dropped; messages and IQ get/set
    answered with C{not-acceptable}, carrying C{<blocked
    xmlns='urn:xmpp:blocking:errors'/>} when the block list refused it
    (XEP-0191 §3.3's MUST), and plain for a privacy list (XEP-0016 §2.13).

Two things are never refused: a user's own resources, and the user's own
server (or a user who denied their own domain would lose every IQ result).
Errors and presence the policy features make carry the in-process mark
C{blockingExempt} so no list stops them.

Hooks, at priority L{PRIORITY} above delivery, offline storage, carbons and
archiving, so refused stanzas reach none of them: C{c2s/outgoing} for what
a client sends (its session's list), C{<kind>/bare} and C{<kind>/full} for
what arrives at a served domain, C{stanza/outbound} for what leaves for
another, and C{stanza/prepared} for a room's fan-out.

Presence notifications to a bare JID (a contact's broadcast) are checked
per available resource when any resource of the account set an active
list: those whose list refuses them do not get it.  Other stanzas to a bare
JID (messages, IQs) are checked against the default list, as the delivery
rules of RFC 6121 §8.5 choose a resource only afterwards.

Lists live in account data (C{"blocklist"}, C{"privacy"}), read through one
L{AccountDataCache} each: in memory for accounts with a session, a bounded
LRU for others.  A stanza needing a list (or a roster, for a privacy list
with group or subscription items) that is not in memory makes its hook
callback return a Deferred: the hook chain waits, holding the stanza
(issue 5), and goes on unless the decision refuses it.  A list that cannot
be read refuses nothing (logged): a storage failure must not silence a user.

Privacy lists are read only on a domain where the privacy feature runs
(L{Policy.enablePrivacy}); without it the check costs one block-list look-up.

The block list is also what privacy-list clients see as the list named
L{BLOCKLIST_NAME} (C{urn:xmpp:blocking}): one C{jid} item with action
C{deny} and no kinds per blocked JID, the very rule XEP-0191 §3.3 applies.
Either protocol may change it; L{Policy.replaceBlocklist} stores the new
list and tells the observers (the blocking feature pushes the change to
its clients and sends the presence §3.3-§3.4 ask for), so a JID blocked
through one protocol is blocked, and listed, in the other.
"""

from __future__ import annotations

import json
import weakref
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.core.accountcache import AccountDataCache
from xmppd.core.events import C2S_OUTGOING, SESSION_CLOSED, STANZA_OUTBOUND, STANZA_PREPARED
from xmppd.core.hooks import DELIVER, POLICY
from xmppd.core.stanzas import errorReply, marks, mayAnswer, meta
from xmppd.features.privacy.rules import PrivacyItem, PrivacyList, Stored, kindOf, matchKeys
from xmppd.features.roster import rosterManager

__all__ = ["BLOCKLIST_KEY", "BLOCKLIST_NAME", "NS_BLOCKING_ERRORS", "PRIORITY", "PRIVACY_KEY",
           "Policy", "blocklistAsList", "exempt", "isBlocked", "isExempt", "policyOf"]

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

#: The account-data keys of the block list and of the privacy lists.
BLOCKLIST_KEY = "blocklist"
PRIVACY_KEY = "privacy"

#: The name under which privacy-list clients see the block list.
BLOCKLIST_NAME = "urn:xmpp:blocking"

#: Above every delivery-side hook: a refused stanza must reach none of them.
PRIORITY = POLICY

#: How many lists of accounts without a session stay in memory.
RECENT_LISTS = 1024

#: Stanza hooks the check listens on.
STANZA_HOOKS = tuple("%s/%s" % (kind, target)
                     for kind in ("message", "presence", "iq")
                     for target in ("bare", "full"))

# What a decision says; None lets the stanza through.
BLOCKED_IN, BLOCKED_OUT, DENIED_IN, DENIED_OUT = "blocked-in", "blocked-out", "denied-in", "denied-out"


def isBlocked(items, jid: JID) -> bool:
    """Whether a block list (a container of prepared JID strings) covers C{jid}."""
    if not items:
        return False
    return any(key in items for key in matchKeys(jid))


def sameAccount(a: JID, b: JID) -> bool:
    return a.user == b.user and a.host == b.host


def exempt(stanza: domish.Element) -> domish.Element:
    """Mark a stanza a policy feature made so no list stops it."""
    meta(stanza).blockingExempt = True
    return stanza


def isExempt(stanza: domish.Element) -> bool:
    return marks(stanza).blockingExempt


def parseBlocklist(value: str | None) -> dict[str, None]:
    """A stored block list; raises if the value is not one (the cache logs it)."""
    if not value:
        return {}
    jids = json.loads(value)
    if not isinstance(jids, list) or not all(isinstance(jid, str) for jid in jids):
        raise ValueError("a stored block list is not a list of JIDs")
    return dict.fromkeys(jids)


def blocklistAsList(blocked) -> PrivacyList:
    """The block list as XEP-0016 sees it: a deny-everything JID item per blocked JID."""
    return PrivacyList(BLOCKLIST_NAME, tuple(
        PrivacyItem("deny", order, "jid", jid) for order, jid in enumerate(blocked, 1)))


def parsePrivacy(value: str | None) -> Stored:
    return Stored.fromJSON(json.loads(value)) if value else Stored()


class Side:
    """What the check needs about one account: its lists and, if they need it, its roster."""

    __slots__ = ("blocked", "stored", "roster")

    def __init__(self, blocked, stored: Stored | None, roster=None):
        self.blocked = blocked
        self.stored = stored
        self.roster = roster


class Policy:
    """
    The policy of one served domain; see the module docstring.  Get it with
    L{policyOf}: the blocking and privacy features share one instance.
    """

    log = Logger()

    def __init__(self, domain, recentLists: int = RECENT_LISTS):
        self.domain = domain
        self.host = domain.domain
        #: Bare JID -> ordered set (a dict) of blocked JIDs.
        self.blocklists = AccountDataCache(domain, BLOCKLIST_KEY, parseBlocklist, dict,
                                           size=recentLists, what="the block list")
        #: Bare JID -> L{Stored} privacy lists; None until the privacy feature runs.
        self.privacy: AccountDataCache | None = None
        self.recentLists = recentLists
        #: Full JID string -> name of the session's active list (XEP-0016 §2.4).
        self.active: dict[str, str] = {}
        #: Bare JID string -> how many of its sessions have an active list.
        self.activeCount: dict[str, int] = {}
        self.rosters = rosterManager(domain)
        #: Most JIDs a block list holds (the blocking feature sets it).
        self.blocklistMax = 1000
        #: Called with (account, added, removed) after a block list changed.
        self.blocklistObservers: list[Callable[[JID, list[str], list[str]], None]] = []
        hooks = domain.hooks
        for name in STANZA_HOOKS:
            hooks.add(name, self.onStanza, PRIORITY)
        hooks.add(C2S_OUTGOING, self.onOutgoing, PRIORITY)
        hooks.add(STANZA_PREPARED, self.onPrepared, PRIORITY)
        hooks.add(STANZA_OUTBOUND, self.onStanza, PRIORITY)
        hooks.add(SESSION_CLOSED, self.onSessionClosed, DELIVER)
        self.blocklists.register()

    def enablePrivacy(self) -> AccountDataCache:
        """Read privacy lists too (the privacy feature runs); the cache of them."""
        if self.privacy is None:
            self.privacy = AccountDataCache(self.domain, PRIVACY_KEY, parsePrivacy, Stored,
                                            size=self.recentLists, what="the privacy lists")
            self.privacy.register()
        return self.privacy

    # -- the block list ------------------------------------------------------

    def saveBlocklist(self, account: JID, items: dict[str, None]) -> defer.Deferred:
        """Store C{account}'s block list; once stored, the check applies it."""
        accountData = self.domain.storage.accountData
        if not items:
            d = accountData.delete(account.user, account.host, BLOCKLIST_KEY)
        else:
            d = accountData.set(account.user, account.host, BLOCKLIST_KEY,
                                json.dumps(list(items), ensure_ascii=False))
        return d.addCallback(lambda _: self.blocklists.keep(account, items))

    async def changeBlocklist(self, account: JID, add: list[str], remove: list[str] | None,
                              notify: bool = True) -> tuple[list[str], list[str]]:
        """
        Add C{add} to C{account}'s block list and take C{remove} off it
        (C{None}: everything); store it and, if C{notify}, tell the
        observers (the blocking feature's own commands tell their clients
        themselves).  What was really added and removed.  A list past
        L{blocklistMax} is C{policy-violation}, and nothing changes.
        """
        current = await self.blocklists.load(account)
        items = dict(current)
        removed = list(items) if remove is None else [jid for jid in remove if jid in items]
        for jid in removed:
            del items[jid]
        added = [jid for jid in add if jid not in items]
        if len(items) + len(added) > self.blocklistMax:
            raise StanzaError("policy-violation", type="modify",
                              text="a block list holds at most %d JIDs" % (self.blocklistMax,))
        items.update(dict.fromkeys(added))
        await self.saveBlocklist(account, items)
        if notify:
            for observer in self.blocklistObservers:
                observer(account, added, removed)
        return added, removed

    # -- active lists --------------------------------------------------------

    def setActive(self, full: JID, name: str | None) -> None:
        """Make C{name} the active list of the session C{full} (None: none)."""
        key, bare = full.full(), full.userhost()
        had = key in self.active
        if name is None:
            if had:
                del self.active[key]
                self.activeCount[bare] -= 1
                if not self.activeCount[bare]:
                    del self.activeCount[bare]
            return
        self.active[key] = name
        if not had:
            self.activeCount[bare] = self.activeCount.get(bare, 0) + 1

    def onSessionClosed(self, session) -> None:
        if session.jid.host == self.host:
            self.setActive(session.jid, None)

    # -- gathering what a decision needs -------------------------------------

    def isOurUser(self, jid: JID | None) -> bool:
        return jid is not None and jid.user is not None and jid.host == self.host

    def listFor(self, side: Side, full: JID | None) -> PrivacyList | None:
        """The privacy list that applies to C{full} (or the account's default)."""
        stored = side.stored
        if stored is None or not stored.lists:
            return None
        name = self.active.get(full.full()) if full is not None and full.resource else None
        if name is None:
            name = stored.default
        return stored.lists.get(name) if name is not None else None

    def sideNow(self, account: JID, full: JID | None) -> Side | None:
        """What is in memory about C{account}, or None if something must be read first."""
        bare = account.userhost()
        blocked = self.blocklists.cached(bare)
        if blocked is None:
            return None
        stored = None
        if self.privacy is not None:
            stored = self.privacy.cached(bare)
            if stored is None:
                return None
        side = Side(blocked, stored)
        privacyList = self.listFor(side, full)
        if privacyList is not None and privacyList.needsRoster:
            side.roster = self.rosters.cachedRoster(account.user)
            if side.roster is None:
                return None
        return side

    async def sideLater(self, account: JID) -> Side:
        """Everything about C{account} the check may need, read from storage."""
        bare = account.userhostJID()
        blocked = await self.blocklists.load(bare)
        stored = await self.privacy.load(bare) if self.privacy is not None else None
        roster = None
        if stored is not None and any(l.needsRoster for l in stored.lists.values()):
            try:
                roster = await self.rosters.getRoster(account.user)
            except Exception:
                self.log.failure("Cannot read the roster of {account}", account=bare.full())
        return Side(blocked, stored, roster)

    # -- the decision --------------------------------------------------------

    def judge(self, stanza: domish.Element, sender: JID, recipient: JID,
              inSide: Side | None, outSide: Side | None,
              inFull: JID | None, outFull: JID | None) -> str | None:
        """
        The verdict on C{stanza} from C{sender} to C{recipient}: C{inSide}
        is the recipient's (one of our users), C{outSide} the sender's.
        """
        if inSide is not None:
            if isBlocked(inSide.blocked, sender):
                return BLOCKED_IN
            privacyList = self.listFor(inSide, inFull)
            if privacyList is not None and privacyList.decide(
                    kindOf(stanza, True), sender, self.rosterItem(inSide, sender)) is False:
                return DENIED_IN
        if outSide is not None:
            if isBlocked(outSide.blocked, recipient):
                return BLOCKED_OUT
            privacyList = self.listFor(outSide, outFull)
            if privacyList is not None and privacyList.decide(
                    kindOf(stanza, False), recipient,
                    self.rosterItem(outSide, recipient)) is False:
                return DENIED_OUT
        return None

    @staticmethod
    def rosterItem(side: Side, peer: JID):
        if side.roster is None:
            return None
        return side.roster.items.get(peer.userhost())

    def apply(self, verdict: str | None, stanza: domish.Element) -> bool | None:
        """Carry out C{verdict}: refuse the stanza and return C{True}, or None."""
        if verdict is None:
            return None
        if verdict in (BLOCKED_IN, DENIED_IN):
            self.refuseInbound(stanza)
        else:
            self.refuseOutbound(stanza, verdict == BLOCKED_OUT)
        return True

    def refuseInbound(self, stanza: domish.Element) -> None:
        """The user appears offline to the peer."""
        if stanza.name == "presence":
            return
        if stanza.name == "iq" and stanza.getAttribute("type") not in ("get", "set"):
            return
        reply = errorReply(stanza, "service-unavailable")
        if reply is not None:
            self.domain.router.route(exempt(reply))

    def refuseOutbound(self, stanza: domish.Element, blocked: bool) -> None:
        """Not routed; messages and requests get not-acceptable."""
        if stanza.name == "presence" or not mayAnswer(stanza):
            return
        if stanza.name == "iq" and stanza.getAttribute("type") not in ("get", "set"):
            return
        appCondition = domish.Element((NS_BLOCKING_ERRORS, "blocked")) if blocked else None
        reply = StanzaError("not-acceptable", type="cancel",
                            appCondition=appCondition).toResponse(stanza)
        self.domain.router.route(exempt(reply))

    # -- hooks ---------------------------------------------------------------

    def onStanza(self, event):
        """C{<kind>/bare}, C{<kind>/full}, C{stanza/outbound}: a stanza between a user and a peer."""
        stanza = event.stanza
        sender, recipient = event.sender, event.recipient
        if sender is None or sameAccount(sender, recipient) or isExempt(stanza):
            return None
        inbound = (self.isOurUser(recipient)
                   and not (sender.user is None and sender.host == self.host))
        outbound = self.isOurUser(sender)
        if not inbound and not outbound:
            return None
        if (inbound and recipient.resource is None and stanza.name == "presence"
                and recipient.userhost() in self.activeCount
                and kindOf(stanza, True) is not None):
            return self.perResource(event)
        inSide = self.sideNow(recipient, recipient) if inbound else None
        outSide = self.sideNow(sender, sender) if outbound else None
        if (inbound and inSide is None) or (outbound and outSide is None):
            return defer.ensureDeferred(self.decideLater(event, inbound, outbound))
        return self.apply(self.judge(stanza, sender, recipient, inSide, outSide,
                                     recipient, sender), stanza)

    async def decideLater(self, event, inbound: bool, outbound: bool):
        sender, recipient = event.sender, event.recipient
        inSide = await self.sideLater(recipient) if inbound else None
        outSide = await self.sideLater(sender) if outbound else None
        return self.apply(self.judge(event.stanza, sender, recipient, inSide, outSide,
                                     recipient, sender), event.stanza)

    def perResource(self, event):
        """
        A presence notification to the bare JID of an account whose
        resources have lists of their own: each available resource gets it
        if its list lets it through.
        """
        return defer.ensureDeferred(self.deliverPerResource(event))

    async def deliverPerResource(self, event):
        stanza, sender, recipient = event.stanza, event.sender, event.recipient
        inSide = await self.sideLater(recipient)
        outSide = await self.sideLater(sender) if self.isOurUser(sender) else None
        verdicts = {}
        for session in self.domain.sessions.availableSessionsOf(recipient.userhostJID()):
            verdicts[session] = self.judge(stanza, sender, recipient, inSide, outSide,
                                           session.jid, sender)
        if not any(verdicts.values()):
            return None
        delivered = False
        for session, verdict in verdicts.items():
            if verdict is None:
                self.domain.deliverToSession(session, stanza)
                delivered = True
        if delivered:
            # What the presence feature notes for what it delivers itself.
            self.domain.presence.hear(recipient.userhost(), sender.full(),
                                      stanza.getAttribute("type") is None)
        return True

    def onPrepared(self, event):
        """
        C{stanza/prepared}: a stanza serialized once for many (a room's
        fan-out) takes the full path, where L{onStanza} decides, to a user
        whose lists would refuse it or are not in memory.
        """
        recipient = event.recipient
        if not self.isOurUser(recipient):
            return None
        side = self.sideNow(recipient, recipient)
        if side is None:
            return True
        if self.judge(event.stanza, event.sender, recipient, side, None, recipient, None):
            return True
        return None

    def onOutgoing(self, event):
        """C{c2s/outgoing}: what a user's client sends, checked against that session's lists."""
        session, recipient, stanza = event.session, event.recipient, event.stanza
        if session is None or recipient is None or session.jid.host != self.host:
            return None
        sender = session.jid
        if sameAccount(sender, recipient) or (
                recipient.user is None and recipient.host == self.host):
            return None
        if isExempt(stanza):
            return None
        side = self.sideNow(sender, sender)
        if side is None:
            # The hook chain waits for the lists (see the module docstring).
            return defer.ensureDeferred(self.outgoingLater(stanza, sender, recipient))
        return self.apply(self.judge(stanza, sender, recipient, None, side, None, sender),
                          stanza)

    async def outgoingLater(self, stanza, sender: JID, recipient: JID):
        side = await self.sideLater(sender)
        return self.apply(self.judge(stanza, sender, recipient, None, side, None, sender),
                          stanza)


_policies: "weakref.WeakKeyDictionary[Any, Policy]" = weakref.WeakKeyDictionary()


def policyOf(domain) -> Policy:
    """
    The L{Policy} of C{domain} (a L{xmppd.core.local.LocalDomain}), shared
    by the blocking and privacy features; made, and its hooks registered,
    on first use.  Kept beside the domain so the core needs no attribute
    for a feature.
    """
    policy = _policies.get(domain)
    if policy is None:
        policy = _policies[domain] = Policy(domain)
    return policy
