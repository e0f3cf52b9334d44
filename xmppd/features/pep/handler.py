# -*- test-case-name: tests.test_pep -*-
"""
The C{"pep"} feature: personal eventing (XEP-0163) on the bare JID of
every account of a served domain, answered by one
L{xmppd.features.pep.engine.PEPEngine} per account.

  - §3, §4, XEP-0060 §6-§8: an IQ get or set with a C{pubsub} or
    C{pubsub#owner} payload to an account's bare JID (or with no C{to}: the
    sender's own) is taken at C{"iq/bare"} and answered through wokkel's
    pubsub protocol layer (L{xmppd.features.pubsub.protocol}) and the
    resource of the pubsub feature, which picks the account's engine by the
    address asked.  An account that does not exist is
    C{service-unavailable} (RFC 6121 §8.5.1).
  - §4.3.4 last items: when a full JID's caps become known or change
    (C{"caps/changed"}), a resource of this domain gets the last item of
    each node it wants of its own account and of the accounts here it is
    subscribed to (C{to}/C{both}); a resource of another domain gets those
    of the accounts here it sent available presence to (remembered,
    bounded, until it goes unavailable).  At most C{[pep] max_last_items}
    per event.
  - §6.1: disco#info on an account answers identity C{pubsub/pep} and the
    C{pubsub#…} features; the domain's own disco#info lists the features
    too; disco#items on an account lists the nodes the asker may see, and
    disco#info on one of them says pubsub/leaf (XEP-0060 §5.2, §5.3).
  - C{"pep/changed"} (L{xmppd.features.pep.engine.PEP_CHANGED}) is fired
    after each publish and retract, for features built on PEP.
  - C{"account/removed"}: the account's engine and what was remembered for
    it go (storage removes its nodes).

For the protocols that live on PEP (avatars, nickname, ...), the feature
declares the hook L{PEP_PUBLISHED} (C{"pep/published"}, a
L{PEPPublishedEvent}, C{notify}): an item was published to one of an
account's nodes, after it was stored and its notifications queued.  And
L{pepOf} gives the domain's running handler, whose L{PEPHandler.publishFor},
L{PEPHandler.itemsOf} and L{PEPHandler.accessModelOf} let such a feature publish on the account's
behalf and read its items, with the same rules and notifications as the
account's own requests.

Notifications are serialized once per event and sent by one
L{xmppd.features.pubsub.fanout.Fanout} per domain, in bounded batches.

Implements: XEP-0163 1.2.2
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature, DiscoIdentity, DiscoItem
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.core.events import declare
from xmppd.core.hooks import COPY, DELIVER, OBSERVE
from xmppd.core.jid import makeJID
from xmppd.core.stanzas import errorReply
from xmppd.features.clientcaps.tracker import CAPS_CHANGED, capsOf
from xmppd.features.pep.engine import PEP_CHANGED, PEPEngine
from xmppd.features.pep.settings import PEPConfig
from xmppd.features.roster import rosterManager
from xmppd.features.pubsub.access import Access, storageRosterLookup
from xmppd.features.pubsub.cache import CachingPubSubStore
from xmppd.features.pubsub.errors import StanzaError
from xmppd.features.pubsub.fanout import Fanout
from xmppd.features.pubsub.protocol import Service
from xmppd.features.pubsub.resource import FEATURES, Resource
from xmppd.stream.xmlparser import parseStored

__all__ = ["PEPHandler", "PEPPublishedEvent", "PEP_FEATURES", "PEP_PUBLISHED",
           "makeHandler", "pepOf"]

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"

#: The C{pubsub#…} features of PEP (XEP-0163 §8 and XEP-0060 §10): the
#: service's, and what PEP adds.  C{config-node-max} (C{max_items} C{max},
#: XEP-0060 §16.4.4) and C{multi-items} (nodes keep many items, Prosody's
#: name) are what clients check before they trust PEP with XEP-0402
#: bookmarks (Monal needs both, with C{#compat-pep}).
PEP_FEATURES = tuple(sorted(set(FEATURES) | {
    "auto-create", "auto-subscribe", "config-node-max", "filtered-notifications",
    "last-published", "multi-items", "presence-notifications", "presence-subscribe"}))


@dataclass
class PEPPublishedEvent:
    """Payload of L{PEP_PUBLISHED}: what was published, by whom, where."""

    #: The account's bare JID (the PEP service).
    owner: JID
    node: str
    #: The id the item was stored (or notified) under.
    itemId: str
    #: The item's payload element, or C{None} for an item without one.
    payload: domish.Element | None
    #: The full JID that published (the owner's resource, or the owner's
    #: bare JID when a feature published with L{PEPHandler.publishFor}).
    publisher: JID


#: An item was published to an account's PEP node (L{PEPPublishedEvent}).
PEP_PUBLISHED = declare("pep/published", PEPPublishedEvent, False,
                        "an item was published to one of an account's PEP nodes")

#: The running handler of each domain (L{pepOf}), like the caps tracker's
#: L{xmppd.features.clientcaps.tracker.capsOf}: gone with its domain.
_running: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def pepOf(domain) -> "PEPHandler | None":
    """The C{"pep"} feature running on C{domain}, or C{None} without it."""
    return _running.get(domain)


class PEPResource(Resource):
    """The pubsub resource answering for whichever account is asked."""

    autoCreate = True

    def __init__(self, handler):
        Resource.__init__(self, None, "Personal Eventing")
        self.handler = handler
        self.discoIdentity = DiscoIdentity("pubsub", "pep")

    def locateResource(self, request):
        # An IQ with no 'to' addresses the sender's own account (RFC 6120 §8.1.1.1).
        if request.recipient is None and request.sender is not None:
            request.recipient = request.sender.userhostJID()
        return self

    def engineFor(self, target):
        return self.handler.engineFor(target)


@implementer(IDisco)
class PEPHandler(XMPPHandler):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.settings = domain.config.pubsub
        self.pepSettings = domain.config.pep
        self.caps = capsOf(domain)
        self.fanout = Fanout(domain.router, domain.clock, self.settings.fanout_batch)
        self.access = Access(storageRosterLookup(lambda: domain.storage.rosters,
                                                 domain.config.server.domains))
        self.engines: OrderedDict[str, PEPEngine] = OrderedDict()
        #: Every engine's store: nodes, affiliations and subscriptions of
        #: the accounts in use read once, not on every publish.
        self.store = CachingPubSubStore(lambda: domain.storage.pubsub,
                                        self.pepSettings.nodes_cached)
        #: Full JIDs of other domains -> the bare JIDs here they sent available
        #: presence to, least recently heard first.
        self.remote: OrderedDict[JID, set] = OrderedDict()
        self.pubsub = Service(PEPResource(self))
        self.pubsub.parent = self
        _running[domain] = self

    def connectionInitialized(self) -> None:
        hooks = self.domain.hooks
        hooks.add("iq/bare", self.onBareIQ, DELIVER)
        hooks.add("presence/bare", self.onInboundPresence, COPY)
        hooks.add("presence/full", self.onInboundPresence, COPY)
        hooks.add(CAPS_CHANGED, self.onCapsChanged, OBSERVE)
        hooks.add("account/removed", self.onAccountRemoved, OBSERVE)

    def connectionLost(self, reason) -> None:
        self.fanout.stop()

    # -- engines -----------------------------------------------------------------

    def engineFor(self, target: JID) -> PEPEngine:
        """The engine of the account C{target} (any JID of it), made on first use."""
        bare = target.userhost()
        engine = self.engines.get(bare)
        if engine is not None:
            self.engines.move_to_end(bare)
            return engine
        domain = self.domain
        engine = PEPEngine(makeJID(target.user, target.host), self.store,
                           self.settings, self.fanout, self.access, self.caps,
                           domain.sessions, lambda: domain.storage.rosters, self.pepSettings,
                           rosterManager(domain).cachedRoster, changed=self.changed)
        self.engines[bare] = engine
        while len(self.engines) > self.pepSettings.engines_cached:
            self.engines.popitem(last=False)
        return engine

    def changed(self, event):
        """
        The engine's one callback after a write: L{PEP_PUBLISHED} for the
        first item a publish stored (not waited for: avatars and nickname
        convert after the client's answer), then L{PEP_CHANGED}, whose
        waiting callbacks (bookmarks) the client's answer waits for.
        """
        for item in event.published[:1]:
            self.domain.hooks.notify(PEP_PUBLISHED, PEPPublishedEvent(
                event.owner, event.node, item.getAttribute("id"), firstElement(item),
                event.requester))
        return self.domain.hooks.notify(PEP_CHANGED, event)

    # -- for features on top of PEP -------------------------------------------------

    async def publishFor(self, owner: JID, node: str, item: domish.Element,
                         options: dict | None = None) -> list[str]:
        """
        Publish C{item} (an C{<item/>}) to C{owner}'s C{node} as the account
        itself (a first publish creates the node with C{options});
        notifications go out as for the account's own publish.  Fails with
        the XEP-0060 error the account would get.
        """
        engine = self.engineFor(owner)
        return await engine.publish(engine.service, node, [item], options)

    async def itemsOf(self, owner: JID, node: str, ids=None,
                      maxItems: int | None = None) -> list:
        """
        C{(id, payload element or None)} of C{owner}'s C{node}, newest
        first (those C{ids}, else all, at most C{maxItems}); empty when the
        node does not exist.
        """
        engine = self.engineFor(owner)
        if await engine.store.getNode(engine.serviceText, node) is None:
            return []
        found = []
        for item in await engine.store.getItems(engine.serviceText, node, ids, maxItems):
            payloads = parseStored(item.payload) if item.payload else []
            found.append((item.id, payloads[0] if payloads else None))
        return found

    async def accessModelOf(self, owner: JID, node: str) -> str | None:
        """The access model of C{owner}'s C{node}, or C{None} when it does not exist."""
        engine = self.engineFor(owner)
        record = await engine.store.getNode(engine.serviceText, node)
        return None if record is None else engine.config(record).accessModel

    # -- requests ------------------------------------------------------------------

    def onBareIQ(self, event):
        stanza = event.stanza
        if event.domain is not self.domain or stanza.getAttribute("type") not in ("get", "set"):
            return None
        payload = firstElement(stanza)
        if payload is None or payload.name != "pubsub" or \
                payload.uri not in (NS_PUBSUB, NS_PUBSUB_OWNER):
            return None
        owner = event.recipient
        if event.sender is not None and event.sender.userhost() == owner.userhost():
            self.xmlstream.answer(self.pubsub.handleRequest, stanza)
            return True
        d = defer.maybeDeferred(self.domain.storage.users.userExists, owner.user, owner.host)
        d.addCallback(self.answerIfExists, stanza)
        d.addErrback(self.failed, stanza)
        return d

    def answerIfExists(self, exists, stanza) -> bool:
        if exists:
            self.xmlstream.answer(self.pubsub.handleRequest, stanza)
        else:
            self.bounce(stanza, "service-unavailable")
        return True

    def failed(self, failure, stanza) -> bool:
        condition = getattr(failure.value, "stanzaCondition", None)
        if condition is None:
            # A storage fault's condition (issue 18); the backend logged it.
            self.log.failure("PEP failed on a request", failure)
            condition = "internal-server-error"
        self.bounce(stanza, condition)
        return True

    def bounce(self, stanza, condition: str) -> None:
        reply = errorReply(stanza, condition)
        if reply is not None:
            self.send(reply)

    # -- §4.3.4 last items for new resources -------------------------------------

    def onInboundPresence(self, event):
        """A resource of another domain is available to (or leaves) an account here."""
        sender, recipient = event.sender, event.recipient
        if (event.domain is not self.domain or sender is None or sender.resource is None
                or sender.host == self.domain.domain or recipient.user is None):
            return None
        stanzaType = event.stanza.getAttribute("type")
        owner = recipient.userhost()
        if stanzaType == "unavailable":
            owners = self.remote.get(sender)
            if owners is not None:
                owners.discard(owner)
                if not owners:
                    del self.remote[sender]
            return None
        if stanzaType is not None or not self.pepSettings.max_remote_resources:
            return None
        owners = self.remote.get(sender)
        if owners is None:
            owners = self.remote[sender] = set()
            while len(self.remote) > self.pepSettings.max_remote_resources:
                self.remote.popitem(last=False)
        else:
            self.remote.move_to_end(sender)
        if owner in owners:
            return None
        owners.add(owner)
        if self.caps.features(sender) is not None:
            self.run(self.lastItemsTo(sender, [owner]))
        return None

    def onCapsChanged(self, event) -> None:
        jid = event.jid
        if jid.host == self.domain.domain:
            self.run(self.lastItemsToLocal(jid))
        else:
            owners = self.remote.get(jid)
            if owners:
                self.run(self.lastItemsTo(jid, sorted(owners)))

    async def lastItemsToLocal(self, jid: JID) -> None:
        """A resource here: its own account's nodes, then its contacts' here."""
        limit = self.pepSettings.max_last_items
        limit -= await self.engineFor(jid).lastItemsFor(jid, limit)
        roster = await self.domain.storage.rosters.getRoster(jid.user, jid.host)
        owners = [contact for contact, item in sorted(roster.items.items())
                  if item.subscription in ("to", "both")
                  and contact.partition("@")[2] == self.domain.domain
                  and "@" in contact]
        await self.lastItemsTo(jid, owners, limit)

    async def lastItemsTo(self, jid: JID, owners, limit: int | None = None) -> None:
        """C{jid} gets the last items of the accounts C{owners} (bare JIDs here)."""
        if limit is None:
            limit = self.pepSettings.max_last_items
        rosters = self.domain.storage.rosters
        contact = jid.userhost()
        for owner in owners:
            if limit <= 0:
                return
            user, _, host = owner.partition("@")
            engine = self.engineFor(JID(owner))
            limit -= await engine.lastItemsFor(
                jid, limit, lambda user=user, host=host: rosters.getItem(user, host, contact))

    def run(self, coroutine) -> None:
        d = defer.ensureDeferred(coroutine)
        d.addErrback(lambda failure: self.log.failure("PEP: sending last items", failure))

    # -- account removal -----------------------------------------------------------

    def onAccountRemoved(self, event) -> None:
        bare = "%s@%s" % (event.username, event.domain)
        self.engines.pop(bare, None)
        # Storage took the account's nodes, subscriptions and affiliations
        # everywhere, behind the cache's back.
        self.store.forget()
        for jid in [jid for jid, owners in self.remote.items() if bare in owners]:
            owners = self.remote[jid]
            owners.discard(bare)
            if not owners:
                del self.remote[jid]

    # -- IDisco (§6.1) -------------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.resource is not None:
            return []
        if nodeIdentifier:
            if target.user is None:
                return []
            return defer.ensureDeferred(self.nodeInfo(requestor, target, nodeIdentifier))
        features = [DiscoFeature(NS_PUBSUB)] + [
            DiscoFeature("%s#%s" % (NS_PUBSUB, name)) for name in PEP_FEATURES]
        if target.user is None:
            return features
        return [DiscoIdentity("pubsub", "pep")] + features

    async def nodeInfo(self, requestor, target, node):
        """XEP-0060 §5.3: a node of the account is a leaf, for whom may see it."""
        engine = self.engineFor(target)
        record = await engine.store.getNode(engine.serviceText, node)
        if record is None:
            return []
        try:
            await engine.checkAccess(record, requestor)
        except StanzaError:
            return []
        return [DiscoIdentity("pubsub", "leaf"), DiscoFeature(NS_PUBSUB)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier or target.user is None or target.resource is not None:
            return []
        return defer.ensureDeferred(self.nodeItems(requestor, target))

    async def nodeItems(self, requestor, target):
        engine = self.engineFor(target)
        return [DiscoItem(engine.service, record.node)
                for record in await engine.listNodes(requestor)]


def firstElement(parent: domish.Element) -> domish.Element | None:
    for element in parent.elements():
        return element
    return None


def makeHandler(domain) -> PEPHandler | None:
    """The C{"pep"} feature of a served domain; none without a publish-subscribe store."""
    if getattr(domain.storage, "pubsub", None) is None:
        PEPHandler.log.warn("No PEP for {domain}: the storage backend has no "
                            "publish-subscribe store", domain=domain.domain)
        return None
    return PEPHandler(domain)
