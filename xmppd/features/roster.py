# -*- test-case-name: tests.test_roster -*-
"""
Rosters (RFC 6121 §2): roster get with versioning (§2.6), roster set to add
or update an item (§2.3, §2.4), roster delete (§2.5), and roster pushes to
the account's interested resources (§2.1.6).

Two pieces live here.  L{RosterManager} is the one door to an account's
roster on a domain: it serializes every read-modify-write of one account
(subscription changes arrive from several places at once and must not
interleave), keeps the rosters of accounts with a bound session in memory so
a presence broadcast never waits for storage, and sends roster pushes.  The
presence feature changes rosters through it too (L{rosterManager}).
L{RosterHandler} answers the client's roster IQs.

Roster versions are the storage's per-account counter.  No history of
changes is kept, so a client whose version is not the current one gets the
whole roster (§2.6.3 allows it); one whose version is current gets an empty
result.

Items kept only to remember an inbound subscription request (RFC 6121
§3.1.3, "None + Pending In") are not the user's contacts yet: they are never
shown in results or pushes (L{RosterItem.visible}).

Implements: RFC 6121 §2
"""

from __future__ import annotations

import dataclasses
import itertools
import weakref
from dataclasses import replace
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppd.core.hooks import DELIVER, OBSERVE
from xmppd.config import integer, option, section
from xmppd.core.jid import InvalidJID, makeJID, parseJID
from xmppd.core.stanzas import subscriptionStanza, unavailableFrom
from xmppd.storage.interfaces import Roster, RosterItem, StorageFault

#: The roster's interface to other features (presence, the archive): the
#: domain's L{RosterManager}.  Anything else here is internal.
__all__ = ["RosterManager", "makeHandler", "rosterManager"]

NS_ROSTER = "jabber:iq:roster"
#: RFC 6121 §2.6.1: the stream feature announcing roster versioning.
NS_ROSTER_VER = "urn:xmpp:features:rosterver"

ROSTER_GET = "/iq[@type='get']/query[@xmlns='%s']" % NS_ROSTER
ROSTER_SET = "/iq[@type='set']/query[@xmlns='%s']" % NS_ROSTER


@section("roster")
@dataclasses.dataclass(frozen=True)
class RosterConfig:
    max_items: int = option(
        1000, integer(1, 1000000),
        "most contacts one account's roster may hold (pending requests included)")
    max_name_length: int = option(
        1023, integer(1, 65535),
        "longest contact name, in characters, a roster set may give (RFC 6121 §2.3.3)")
    max_group_length: int = option(
        1023, integer(1, 65535),
        "longest group name, in characters, a roster set may give (RFC 6121 §2.3.3)")


def itemElement(item: RosterItem) -> domish.Element:
    """The C{<item/>} of a roster result or push (RFC 6121 §2.1.2)."""
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = item.jid
    if item.name:
        element["name"] = item.name
    element["subscription"] = item.subscription
    # "ask" only means something while there is no subscription "to" yet.
    if item.ask and item.subscription in ("none", "from"):
        element["ask"] = "subscribe"
    # §2.1.2.1: shown because we support pre-approvals (§3.4).
    if item.approved:
        element["approved"] = "true"
    for group in item.groups:
        element.addElement("group", content=group)
    return element


def removedElement(jid: str) -> domish.Element:
    """The C{<item/>} of a push for a deleted item (RFC 6121 §2.5.2)."""
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = jid
    element["subscription"] = "remove"
    return element


class RosterManager:
    """
    The rosters of one domain's accounts; see the module docstring.  Get the
    domain's instance with L{rosterManager}, never build a second one: the
    cache and the per-account serialization only work if they are shared.
    """

    log = Logger()

    def __init__(self, domain):
        self.domain = domain
        #: username -> Roster, for accounts with at least one bound session.
        self._cache: dict[str, Roster] = {}
        #: username -> lock serializing that account's roster operations.
        self._locks: dict[str, defer.DeferredLock] = {}
        self._pushIds = itertools.count(1)
        #: Full JID strings of the resources that asked for the roster: the
        #: "interested resources" that get pushes (RFC 6121 §2.1.6).
        self.interested: set[str] = set()
        # Low priority: whoever broadcasts the session's unavailable presence
        # reads the roster first (operations on one account run in order).
        domain.hooks.add("session/closed", self.onSessionClosed, OBSERVE)
        domain.hooks.add("account/removed", self.onAccountRemoved, DELIVER)
        # A roster written on another node of a cluster (xmppd.core.invalidation).
        domain.invalidation.listen("roster", self.onChangedElsewhere)
        domain.invalidation.listenMissed(self.onMissed)

    @property
    def _store(self):
        return self.domain.storage.rosters

    # -- serialization -----------------------------------------------------

    def run(self, username: str, f: Callable[..., Any], *args, **kwargs) -> defer.Deferred:
        """
        Run C{f(*args, **kwargs)} (a coroutine function is fine) once every
        earlier operation on C{username}'s roster has finished; fires with
        its result.  Operations never wait for each other across accounts,
        so routing a stanza from inside one cannot deadlock.
        """
        lock = self._locks.get(username)
        if lock is None:
            lock = self._locks[username] = defer.DeferredLock()

        def release(result):
            if not lock.locked and not lock.waiting and self._locks.get(username) is lock:
                del self._locks[username]
            return result

        return lock.run(f, *args, **kwargs).addBoth(release)

    def busy(self, username: str) -> bool:
        """
        Whether operations on C{username}'s roster are running or waiting: a
        stanza the user sends after one of them must then wait its turn
        (RFC 6120 §10.1, in-order processing), through L{run}.
        """
        lock = self._locks.get(username)
        return lock is not None and lock.locked

    def runLogged(self, username: str, f: Callable[..., Any], *args, **kwargs) -> defer.Deferred:
        """
        L{run} for fire-and-forget work: a failure is logged, not left
        unhandled; a storage fault only once, by the backend, not here
        with a traceback per stanza (issue 18).
        """
        d = self.run(username, f, *args, **kwargs)

        def failed(failure):
            if not failure.check(StorageFault):
                self.log.failure("Roster operation for {user} failed", failure, user=username)

        d.addErrback(failed)
        return d

    # -- reading and writing (call these from inside L{run}) ------------------

    async def getRoster(self, username: str) -> Roster:
        """
        The account's roster, from memory while the account has a session
        on this node.  Not for an account whose sessions are all on other
        nodes of a cluster: those nodes write its roster, and this node
        would hold a copy only their invalidation keeps right, a moment
        late, for nobody here to read.
        """
        roster = self._cache.get(username)
        if roster is None:
            roster = await self._store.getRoster(username, self.domain.domain)
            if any(session.stream is not None
                   for session in self.domain.sessions.sessionsOf(self.bareJID(username))):
                self._cache[username] = roster
        return roster

    async def currentRoster(self, username: str) -> Roster:
        """
        The roster a client is shown when it asks (RFC 6121 §2.2).  In a
        cluster, read again from storage first, as if another node had
        said it changed (L{_reloadAndPush}, so this node's other interested
        resources get pushed what changed): the client may ask right after
        a stanza that another node's write caused (its contact's
        "subscribed"), which can arrive before that node's invalidation.
        """
        if self.domain.invalidation.shared:
            await self._reloadAndPush(username)
        return await self.getRoster(username)

    def cachedRoster(self, username: str) -> Roster | None:
        """The account's roster if it is in memory (the account has a session), else None."""
        return self._cache.get(username)

    async def getItem(self, username: str, jid: str, fresh: bool = False) -> RosterItem | None:
        """
        The item for C{jid}, from memory when the roster is cached.
        C{fresh}: the subscription state machine's read, which must see
        what another node of a cluster wrote just before the stanza that
        depends on it left (a "subscribed" answering a request sent from
        the other node can come back here faster than that node's
        invalidation): storage in a cluster (L{IInvalidation.shared}),
        the cache on a lone node, where every write goes through it.
        """
        roster = self._cache.get(username)
        if roster is not None and not (fresh and self.domain.invalidation.shared):
            return roster.items.get(jid)
        return await self._store.getItem(username, self.domain.domain, jid)

    async def setItem(self, username: str, item: RosterItem) -> int:
        """Store C{item}; returns the roster's new version."""
        version = await self._store.setItem(username, self.domain.domain, item)
        roster = self._cache.get(username)
        if roster is not None:
            items = dict(roster.items)
            items[item.jid] = item
            self._cache[username] = Roster(version, items)
        self.domain.invalidation.changed("roster", self.bareJID(username).userhost())
        return version

    async def removeItem(self, username: str, jid: str) -> int:
        """Delete the item for C{jid}; returns the roster's new version."""
        version = await self._store.removeItem(username, self.domain.domain, jid)
        roster = self._cache.get(username)
        if roster is not None:
            items = dict(roster.items)
            items.pop(jid, None)
            self._cache[username] = Roster(version, items)
        self.domain.invalidation.changed("roster", self.bareJID(username).userhost())
        return version

    async def update(self, username: str, old: RosterItem | None,
                     new: RosterItem | None) -> None:
        """
        Replace C{old} by C{new} (C{None}: delete) and push the change to the
        interested resources when what they see of the item changed.
        """
        jid = (new or old).jid
        if new is None:
            version = await self.removeItem(username, jid)
        else:
            version = await self.setItem(username, new)
        self.pushChange(username, old, new, version)

    def forget(self, username: str) -> None:
        """Drop the in-memory roster (the account's last session ended)."""
        self._cache.pop(username, None)

    def onSessionClosed(self, session) -> None:
        if session.jid.host == self.domain.domain:
            self.interested.discard(session.jid.full())
            self.runLogged(session.jid.user, self._forgetUnlessOnline, session)

    def markInterested(self, jid) -> None:
        """The bound resource C{jid} asked for the roster (§2.1.6): it gets pushes now."""
        self.interested.add(jid.full())

    def _forgetUnlessOnline(self, closing) -> None:
        # The closing session may or may not be unbound yet by now.
        if all(other is closing for other in self.domain.sessions.sessionsOf(closing.jid)):
            self.forget(closing.jid.user)

    def onAccountRemoved(self, event) -> None:
        if event.domain == self.domain.domain:
            self._cache.pop(event.username, None)

    def onChangedElsewhere(self, account: str) -> None:
        """
        Another node of a cluster changed C{account}'s roster: forget the
        cached one and, when resources here asked for the roster, push
        them what changed (RFC 6121 §2.1.6: the other node pushes to its
        own resources only, it does not know who asked here).
        """
        user, _, host = account.partition("@")
        if host == self.domain.domain:
            # In turn with the account's roster operations here.
            self.runLogged(user, self._reloadAndPush, user)

    def onMissed(self) -> None:
        """
        This node may have missed changes made elsewhere (a cluster's
        subscription was down): every cached roster goes as after
        L{onChangedElsewhere}, and so does one an operation under way may
        be about to cache (it runs before, in turn).
        """
        for username in set(self._cache) | set(self._locks):
            self.runLogged(username, self._reloadAndPush, username)

    async def _reloadAndPush(self, username: str) -> None:
        old = self._cache.pop(username, None)
        if old is None:
            return
        interested = self.interested
        if not any(session.jid.full() in interested
                   for session in self.domain.sessions.sessionsOf(self.bareJID(username))):
            return
        new = await self.getRoster(username)
        for jid in set(old.items) | set(new.items):
            before, after = old.items.get(jid), new.items.get(jid)
            if before != after:
                self.pushChange(username, before, after, new.version)

    def routeAfter(self, to: str, stanzas: list[domish.Element]) -> None:
        """
        Route C{stanzas} for C{to} once the subscription stanza just routed
        to it has been processed: for an account of this domain, that
        processing may be waiting for the account's earlier operations, and
        presence must not overtake it (RFC 6121 §3.1.5: "subscribed", then
        the presence).
        """
        if not stanzas:
            return
        recipient = parseJID(to)
        if recipient.user is not None and recipient.host == self.domain.domain:
            self.runLogged(recipient.user, self._routeAll, stanzas)
        else:
            self._routeAll(stanzas)

    def _routeAll(self, stanzas: list[domish.Element]) -> None:
        for stanza in stanzas:
            self.domain.router.route(stanza)

    # -- pushes ------------------------------------------------------------

    def bareJID(self, username: str):
        return makeJID(username, self.domain.domain)

    def pushChange(self, username: str, old: RosterItem | None,
                   new: RosterItem | None, version: int) -> None:
        """Push C{new} if it differs from C{old} as the user sees them."""
        shownOld = old is not None and old.visible
        shownNew = new is not None and new.visible
        if shownNew:
            if not shownOld or itemElement(old).toXml() != itemElement(new).toXml():
                self.push(username, itemElement(new), version)
        elif shownOld:
            self.push(username, removedElement(old.jid), version)

    def push(self, username: str, item: domish.Element, version: int) -> None:
        """
        Send a roster push of C{item} to every interested resource of the
        account (RFC 6121 §2.1.6), from the account's bare JID, which
        clients must accept (§2.1.6) and which lets their result find the way
        back to us.
        """
        bare = self.bareJID(username)
        interested = self.interested
        for session in self.domain.sessions.sessionsOf(bare):
            if session.jid.full() not in interested:
                continue
            iq = domish.Element((None, "iq"))
            iq["type"] = "set"
            iq["id"] = "push%d" % next(self._pushIds)
            iq["from"] = bare.full()
            iq["to"] = session.jid.full()
            query = iq.addElement((NS_ROSTER, "query"))
            query["ver"] = str(version)
            query.addChild(item)
            self.domain.router.route(iq)


_managers: "weakref.WeakKeyDictionary[Any, RosterManager]" = weakref.WeakKeyDictionary()


def rosterManager(domain) -> RosterManager:
    """
    The L{RosterManager} of C{domain} (a L{xmppd.core.local.LocalDomain}),
    shared by every feature that reads or changes rosters there.  Kept
    beside the domain rather than on it so the core needs no attribute for
    a feature; it goes when the domain goes.
    """
    manager = _managers.get(domain)
    if manager is None:
        manager = _managers[domain] = RosterManager(domain)
    return manager


def pushItem(domain, username: str, item: RosterItem, version: int) -> None:
    """Push C{item} of C{username}'s roster to the interested resources."""
    rosterManager(domain).push(username, itemElement(item), version)


class RosterHandler(XMPPHandler, IQHandlerMixin):
    """
    Roster get, set and delete for the accounts of one domain.  Only the
    account itself may read or change its roster: requests arrive without
    C{to} or addressed to the sender's own bare JID.
    """

    iqHandlers = {ROSTER_GET: "onRosterGet", ROSTER_SET: "onRosterSet"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.rosters = rosterManager(domain)

    @property
    def config(self) -> RosterConfig:
        return self.domain.config.roster

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(ROSTER_GET, self.handleRequest)
        self.xmlstream.addObserver(ROSTER_SET, self.handleRequest)
        self.domain.hooks.add("c2s/features", self.onFeatures, DELIVER)

    # -- hooks ---------------------------------------------------------------

    def onFeatures(self, event) -> None:
        # Only once authenticated (RFC 6121 §2.6.1: it is a post-auth feature).
        stream = event.stream
        if stream.username is not None and stream.domain == self.domain.domain:
            event.features.addElement((NS_ROSTER_VER, "ver"))

    # -- requests ------------------------------------------------------------

    def owner(self, iq: domish.Element, forbidden: str) -> Any:
        """
        The sender's JID when C{iq} is addressed to the sender's own account;
        otherwise the request is refused with C{forbidden}.
        """
        try:
            sender = parseJID(iq.getAttribute("from") or "")
        except InvalidJID:
            raise StanzaError("bad-request")
        to = iq.getAttribute("to")
        if (sender.user is None or sender.host != self.domain.domain
                or to is not None and parseJID(to) != sender.userhostJID()):
            raise StanzaError(forbidden)
        return sender

    async def onRosterGet(self, iq: domish.Element) -> domish.Element | None:
        # RFC 6120 §10.5.4: nobody else may see an account's roster, and we
        # do not say whether there is one.
        sender = self.owner(iq, "service-unavailable")
        if self.domain.sessions.isBound(sender):
            self.rosters.markInterested(sender)  # §2.1.6: now an interested resource
        roster = await self.rosters.run(sender.user, self.rosters.currentRoster, sender.user)
        clientVersion = iq.query.getAttribute("ver")
        if clientVersion is not None and clientVersion == str(roster.version):
            # §2.6.3: the client's copy is current; pushes bring what follows.
            return None
        query = domish.Element((NS_ROSTER, "query"))
        query["ver"] = str(roster.version)
        for item in roster.items.values():
            if item.visible:
                query.addChild(itemElement(item))
        return query

    async def onRosterSet(self, iq: domish.Element) -> None:
        # RFC 6121 §2.3.3: only the account's own resources may change it.
        sender = self.owner(iq, "forbidden")
        element = self.parseItem(iq.query)
        jid = self.parseItemJID(element, sender)
        if element.getAttribute("subscription") == "remove":
            await self.rosters.run(sender.user, self.removeItem, sender.user, jid)
            return None
        # §2.1.2: "subscription" other than "remove", "ask" and "approved"
        # are the server's to set; a client's values are ignored.
        name = element.getAttribute("name") or None
        if name is not None and len(name) > self.config.max_name_length:
            raise StanzaError("not-acceptable", text="the name is too long")
        groups = self.parseGroups(element)
        await self.rosters.run(sender.user, self.setItem, sender.user, jid, name, groups)
        return None

    def parseItem(self, query: domish.Element) -> domish.Element:
        # §2.3.3: a roster set carries exactly one item.
        items = [e for e in query.elements() if (e.uri, e.name) == (NS_ROSTER, "item")]
        if len(items) != 1:
            raise StanzaError("bad-request", text="a roster set carries exactly one item")
        return items[0]

    def parseItemJID(self, element: domish.Element, sender) -> str:
        text = element.getAttribute("jid")
        if not text:
            raise StanzaError("bad-request", text="the item has no jid")
        try:
            jid = parseJID(text)
        except InvalidJID:
            raise StanzaError("jid-malformed")
        if jid.resource is not None:
            # Subscriptions are between accounts (RFC 6121 §3): bare JIDs.
            raise StanzaError("bad-request", text="roster items are bare JIDs")
        if jid == sender.userhostJID():
            # The account's own resources see each other anyway (§4.2.2).
            raise StanzaError("not-allowed", text="you cannot add yourself")
        return jid.full()

    def parseGroups(self, element: domish.Element) -> tuple[str, ...]:
        groups: list[str] = []
        for group in element.elements(NS_ROSTER, "group"):
            name = str(group)
            # §2.3.3: empty or over-long groups are not-acceptable, and a
            # group given twice is a bad-request.
            if not name:
                raise StanzaError("not-acceptable", text="empty group name")
            if len(name) > self.config.max_group_length:
                raise StanzaError("not-acceptable", text="the group name is too long")
            if name in groups:
                raise StanzaError("bad-request", text="duplicate group")
            groups.append(name)
        return tuple(groups)

    async def setItem(self, username: str, jid: str, name: str | None,
                      groups: tuple[str, ...]) -> None:
        old = await self.rosters.getItem(username, jid)
        if old is None:
            roster = await self.rosters.getRoster(username)
            if len(roster.items) >= self.config.max_items:
                raise StanzaError("policy-violation", type="modify", text="the roster is full")
            new = RosterItem(jid, name=name, groups=groups)
        else:
            new = replace(old, name=name, groups=groups)
        # §2.3.2: the push goes to every interested resource, the sender
        # included, before the result.
        await self.rosters.update(username, old, new)

    async def removeItem(self, username: str, jid: str) -> None:
        old = await self.rosters.getItem(username, jid)
        if old is None:
            raise StanzaError("item-not-found")  # §2.5.3
        await self.rosters.update(username, old, None)
        # §2.5.2: end the subscriptions in both directions; pending requests
        # are answered too, as cancelling and denying them (as Prosody does).
        router = self.domain.router
        bare = self.rosters.bareJID(username).full()
        if old.subscription in ("to", "both") or old.ask:
            router.route(subscriptionStanza("unsubscribe", bare, jid))
        if old.subscription in ("from", "both") or old.pendingIn:
            router.route(subscriptionStanza("unsubscribed", bare, jid))
        if old.subscription in ("from", "both"):
            # The contact loses sight of us (§3.2.2): say we are gone.
            self.rosters.routeAfter(jid, [
                unavailableFrom(session, jid) for session in
                self.domain.sessions.availableSessionsOf(self.rosters.bareJID(username))])


def makeHandler(domain) -> RosterHandler:
    return RosterHandler(domain)
