# -*- test-case-name: tests.test_pep -*-
"""
One account's personal eventing service (XEP-0163): the XEP-0060 engine
(L{xmppd.features.pubsub.engine.PubSubEngine}) on the account's bare JID,
with what PEP changes:

  - §5 defaults: a node gets access model C{presence}, C{max_items} from
    C{[pep] default_max_items}, and C{send_last_published_item}
    C{on_sub_and_presence}; publish-options given on the first publish
    (XEP-0060 §7.1.5, XEP-0222, XEP-0223) are its configuration, and later
    ones are preconditions (the engine's);
  - §2.2, §3: only the account itself creates nodes, and a publish to a
    node that does not exist creates it (C{autoCreate});
  - §4: notifications go to the node's explicit subscribers, to every
    available resource of the owner, and to each full JID of a contact
    whose entity capabilities (XEP-0115, L{xmppd.features.clientcaps})
    say C{NODE+notify}, if the node's access model lets that contact see
    it (L{contactMaySee}: a presence subscription C{from}/C{both} for
    C{presence} and C{open}, an allowed roster group for C{roster}, an
    affiliation for C{whitelist} and C{authorize}); never to outcasts;
  - §4.3.4: L{PEPEngine.lastItemsFor} sends one full JID the last item of
    each node it wants and may see, at most C{limit} of them.

After a successful publish or retract (a purge or a deletion of a node
counts as a retract of all its items) the engine calls its C{changed}
callback with a L{PEPChangedEvent}; the PEP handler fires it as the hook
L{PEP_CHANGED} (C{"pep/changed"}), so features built on PEP (bookmarks
conversion, XEP-0411) learn what a client stored without PEP knowing them;
for a publish it also fires the narrower C{"pep/published"} (avatars,
nickname) from the same event.
The request is answered once the callbacks are done (a callback that waits
delays the answer, so the client's next read elsewhere sees the change;
callbacks must never fail).
A feature that publishes or retracts on the user's behalf passes its name
as C{origin}, which the event carries, so it can ignore its own writes.

Implements: XEP-0163 1.2.2
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.core.events import declare
from xmppd.features.pubsub.nodeconfig import defaults
from xmppd.features.pubsub.engine import PubSubEngine

__all__ = ["PEPChangedEvent", "PEPEngine", "PEP_CHANGED", "contactMaySee"]

#: Presence subscription states that let a contact see the owner's presence.
SUBSCRIBED = ("from", "both")
#: Affiliations that count as being on a node's list (XEP-0060 §4.5).
AFFILIATED = ("owner", "publisher", "member", "publish-only")


@dataclasses.dataclass(frozen=True)
class PEPChangedEvent:
    """Payload of L{PEP_CHANGED}: what one publish or retract changed."""

    #: The account (bare JID) whose node changed.
    owner: JID
    node: str
    #: Who published or retracted (a full JID, or the owner's bare JID for
    #: a write made by the server on the user's behalf).
    requester: JID
    #: The published C{<item/>} elements, ids set (empty for a retract).
    published: tuple[domish.Element, ...] = ()
    #: The retracted item ids (empty for a publish).
    retracted: tuple[str, ...] = ()
    #: The name of the feature that wrote on the user's behalf, or C{None}
    #: for a client's own request.
    origin: str | None = None


PEP_CHANGED = declare(
    "pep/changed", PEPChangedEvent, False,
    "an item of an account's PEP node was published or retracted, or the node "
    "purged or deleted (every item retracted), after it is stored and notified; "
    "the request is answered once callbacks that wait are done; PEPChangedEvent")


def contactMaySee(accessModel: str, rosterItem, affiliation: str,
                  rosterGroups=()) -> bool:
    """
    Whether a contact with the owner's C{rosterItem} (or C{None}) and
    C{affiliation} may receive the node's items unasked (XEP-0163 §4,
    XEP-0060 §4.5): the rules of L{xmppd.features.pubsub.access.Access}
    answered from a roster already read, for many contacts at once.
    """
    if affiliation == "outcast":
        return False
    if affiliation in AFFILIATED:
        return True
    subscribed = rosterItem is not None and rosterItem.subscription in SUBSCRIBED
    if accessModel in ("open", "presence"):
        return subscribed
    if accessModel == "roster":
        return subscribed and bool(set(rosterGroups).intersection(rosterItem.groups or ()))
    return False


class PEPEngine(PubSubEngine):
    """
    The PEP service of account C{service} (a bare JID).

    @param caps: the domain's L{xmppd.features.clientcaps.tracker.EntityCaps}.
    @param sessions: the node's session directory (the owner's resources).
    @param rosters: a callable returning the roster store.
    @param pepSettings: the C{[pep]} settings.
    @param cachedRoster: a callable returning the owner's roster kept in
        memory (by its user name), or C{None} when there is none: read
        before the roster store, which costs a worker-thread round trip on
        every publish.
    """

    def __init__(self, service: JID, store, settings, fanout, access, caps, sessions,
                 rosters, pepSettings, cachedRoster=lambda user: None,
                 changed: Callable[[PEPChangedEvent], object] | None = None):
        self.owner = service.userhost()
        PubSubEngine.__init__(self, service, store, settings, fanout, access=access,
                              mayCreate=lambda requester: requester.userhost() == self.owner)
        self.caps = caps
        self.sessions = sessions
        self.rosters = rosters
        self.pepSettings = pepSettings
        self.changed = changed
        self.cachedRoster = cachedRoster

    # -- §5 defaults and auto-create ----------------------------------------------

    def defaultConfig(self) -> dict:
        config = defaults(self.settings)
        config["pubsub#access_model"] = "presence"
        config["pubsub#max_items"] = str(min(self.pepSettings.default_max_items,
                                             self.settings.max_items))
        config["pubsub#send_last_published_item"] = "on_sub_and_presence"
        return config

    async def createNode(self, requester: JID, node: str | None,
                         config: dict | None = None) -> str:
        """XEP-0060 §8.1 with PEP's defaults under what the creator gave."""
        return await PubSubEngine.createNode(self, requester, node,
                                             dict(self.defaultConfig(), **(config or {})))

    async def publish(self, requester: JID, node: str, items, options: dict | None = None,
                      autoCreate: bool = True, origin: str | None = None) -> list[str]:
        """XEP-0163 §3: a first publish creates the node (with C{options})."""
        ids = await PubSubEngine.publish(self, requester, node, items, options,
                                         autoCreate=True)
        if self.changed is not None:
            published = []
            for item, itemId in zip(items, ids):
                item = item if item.getAttribute("id") == itemId else copyWithId(item, itemId)
                published.append(item)
            await waitFor(self.changed(PEPChangedEvent(
                self.service, node, requester, published=tuple(published), origin=origin)))
        return ids

    async def retract(self, requester: JID, node: str, ids: list[str],
                      notify: bool = False, origin: str | None = None) -> None:
        """XEP-0060 §7.2 on the account's node, then L{PEP_CHANGED}."""
        await PubSubEngine.retract(self, requester, node, ids, notify)
        if self.changed is not None:
            await waitFor(self.changed(PEPChangedEvent(
                self.service, node, requester, retracted=tuple(dict.fromkeys(ids)),
                origin=origin)))

    async def deleteNode(self, requester: JID, node: str, redirect: str | None = None) -> None:
        """XEP-0060 §8.4; L{PEP_CHANGED} sees every item retracted."""
        ids = await self.itemIds(node)
        await PubSubEngine.deleteNode(self, requester, node, redirect)
        await self.allRetracted(requester, node, ids)

    async def purgeNode(self, requester: JID, node: str) -> None:
        """XEP-0060 §8.5; L{PEP_CHANGED} sees every item retracted."""
        ids = await self.itemIds(node)
        await PubSubEngine.purgeNode(self, requester, node)
        await self.allRetracted(requester, node, ids)

    async def itemIds(self, node: str) -> list[str]:
        if self.changed is None or await self.store.getNode(self.serviceText, node) is None:
            return []
        return [item.id for item in await self.store.getItems(self.serviceText, node)]

    async def allRetracted(self, requester: JID, node: str, ids: list[str]) -> None:
        if self.changed is not None and ids:
            await waitFor(self.changed(PEPChangedEvent(self.service, node, requester,
                                                       retracted=tuple(ids))))

    # -- §4 who is notified --------------------------------------------------------

    def ownerJID(self) -> JID:
        return self.service

    async def roster(self) -> dict:
        """The owner's roster items by contact bare JID (empty for a gone account)."""
        user, _, host = self.owner.partition("@")
        cached = self.cachedRoster(user)
        if cached is not None:
            return cached.items
        try:
            roster = await self.rosters().getRoster(user, host)
        except Exception:
            return {}
        return roster.items

    async def recipients(self, node: str) -> list[str]:
        found = list(await PubSubEngine.recipients(self, node))
        record = await self.store.getNode(self.serviceText, node)
        if record is None:
            return found
        config = self.config(record)
        found.extend(session.jid.full() for session in
                     self.sessions.availableSessionsOf(self.service))
        affiliations = {jid: a for (_, jid, a) in
                        await self.store.getAffiliations(self.serviceText, node=node)}
        outcasts = {jid for jid, a in affiliations.items() if a == "outcast"}
        # Once per publish, not once per contact: the node's access rules.
        accessModel, rosterGroups = config.accessModel, config.rosterGroups
        affiliationOf, interested = affiliations.get, self.caps.interested
        for contact, item in (await self.roster()).items():
            if contactMaySee(accessModel, item, affiliationOf(contact, "none"), rosterGroups):
                for jid in interested(contact, node):
                    found.append(jid.full())
        if not outcasts:
            return list(dict.fromkeys(found))
        return [jid for jid in dict.fromkeys(found) if jid.partition("/")[0] not in outcasts]

    # -- §4.3.4 the last item for a new resource -----------------------------------

    async def lastItemsFor(self, jid: JID, limit: int, rosterItem=None) -> int:
        """
        Send C{jid} (a full JID: a contact's or the owner's own resource)
        the last item of each node it wants (C{NODE+notify}) and may see,
        at most C{limit} nodes; returns how many were sent.
        C{rosterItem} gives the owner's roster item for C{jid}'s account:
        a callable returning it (or a Deferred of it), called only once a
        node is wanted, so contacts who want nothing cost no roster read.
        """
        features = self.caps.features(jid)
        if not features or limit <= 0:
            return 0
        own = jid.userhost() == self.owner
        item, looked = None, False
        sent = 0
        for record in await self.store.listNodes(self.serviceText):
            if record.node + "+notify" not in features:
                continue
            config = self.config(record)
            if not config.persistItems or config.sendLastPublishedItem != "on_sub_and_presence":
                continue
            if not own:
                if not looked:
                    item, looked = (await rosterItem() if callable(rosterItem)
                                    else rosterItem), True
                affiliation = await self.affiliationOf(record.node, jid)
                if not contactMaySee(config.accessModel, item, affiliation,
                                     config.rosterGroups):
                    continue
            await self.sendLastItem(record.node, config, jid.full())
            sent += 1
            if sent >= limit:
                break
        return sent


def copyWithId(item: domish.Element, itemId: str) -> domish.Element:
    """An C{<item/>} like C{item} with the id the service gave it."""
    copy = domish.Element((item.uri, "item"))
    copy["id"] = itemId
    for child in item.elements():
        copy.addChild(child)
    return copy


async def waitFor(result) -> None:
    """Wait for C{result} if it is a Deferred (a hook whose callbacks waited)."""
    if isinstance(result, defer.Deferred):
        await result
