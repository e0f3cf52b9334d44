# -*- test-case-name: tests.test_pubsub_engine -*-
"""
The publish-subscribe engine (XEP-0060): nodes, items, subscriptions and
affiliations of one service address, the permission checks of §4.1, the
access models (through a pluggable L{xmppd.features.pubsub.access.Access}),
publish-options preconditions (§7.1.5), the limits of C{[pubsub]} and the
notifications of every event, serialized once per event
(L{xmppd.features.pubsub.fanout}).

The engine knows no XML requests and no streams: it takes JIDs, node names,
items as elements and configuration values, keeps everything in an
L{xmppd.storage.interfaces.IPubSubStore}, and raises the XEP-0060 stanza
error for everything a client can get wrong.  The service address is a
parameter, so the same engine serves C{pubsub.example.org} and, for PEP
(XEP-0163), an account's bare JID (C{PubSubEngine(JID("juliet@example.org"),
...)} with C{autoCreate} on publish).

What PEP overrides or passes in (and nothing else needs changing):
  - C{access}: an object with C{async check(config, owners, requester,
    affiliation, subscribed, subscribing)} (L{Access} reads rosters through
    a lookup function; PEP may pass its own);
  - C{mayCreate}: who may create nodes (PEP: the account itself);
  - L{PubSubEngine.recipients}: who gets a node's notifications (a
    subclass adds contacts whose caps say C{NODE+notify} and the owner's
    own resources);
  - L{PubSubEngine.sendLastItem}: the last item to one contact, for
    C{on_sub_and_presence} when a contact becomes available.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.features.pubsub import nodeconfig
from xmppd.features.pubsub.access import Access
from xmppd.features.pubsub.errors import error
from xmppd.features.pubsub.fanout import Fanout, Prepared
from xmppd.features.pubsub.manage import AFFILIATIONS, NS_AUTHORIZATION, OwnerUseCases
from xmppd.features.pubsub.nodeconfig import NodeConfig
from xmppd.storage.interfaces import NodeExists, PubSubItem, PubSubSubscription
from xmppd.stream.elements import serialize

__all__ = ["AFFILIATIONS", "NS_AUTHORIZATION", "NS_PUBSUB_EVENT", "PubSubEngine"]

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_DELAY = "urn:xmpp:delay"


#: §4.1 Table 4: who may publish, per affiliation and publish model.
PUBLISHERS = {"owner", "publisher", "publish-only"}


def bare(jid: JID) -> str:
    return jid.userhost()


def delayStamp(seconds: float) -> str:
    """C{seconds} since the epoch as an XEP-0082 DateTime in UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


class PubSubEngine(OwnerUseCases):
    """
    One publish-subscribe service address and its nodes.

    @param service: the service's address (a domain, or an account's bare
        JID for PEP).
    @param store: the L{IPubSubStore}, or a callable returning it (the
        server opens storage after building its services).
    @param settings: the C{[pubsub]} settings (limits and defaults).
    @param fanout: where notifications go (L{Fanout}).
    @param access: decides the access models (L{Access}).
    @param mayCreate: whether a (full) requester JID may create nodes.
    @param admins: bare JIDs that act as owner of every node (§4.1).
    @param newId: makes item ids the publisher did not give.
    """

    log = Logger()

    def __init__(self, service: JID, store, settings, fanout: Fanout,
                 access: Access | None = None,
                 mayCreate: Callable[[JID], bool] = lambda requester: True,
                 admins: Iterable[str] = (),
                 newId: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.service = service
        self.serviceText = service.full()
        self._store = store
        self.settings = settings
        self.fanout = fanout
        self.access = access or Access()
        self.mayCreate = mayCreate
        self.admins = frozenset(admins)
        self.newId = newId
        #: Epoch seconds for an item's publication time (the fan-out's clock).
        self.seconds = fanout.clock.seconds

    @property
    def store(self):
        return self._store() if callable(self._store) else self._store

    # -- what a node is --------------------------------------------------------

    async def node(self, node: str):
        """The stored node; C{item-not-found} when there is none (§6.1.3.12 etc.)."""
        record = await self.store.getNode(self.serviceText, node)
        if record is None:
            raise error("item-not-found", text=f"no node {node!r}")
        return record

    def config(self, record) -> NodeConfig:
        return NodeConfig(record.config, self.settings)

    async def affiliationOf(self, node: str, requester: JID) -> str:
        """The requester's affiliation (§4.1); service admins are owners."""
        who = bare(requester)
        if who in self.admins:
            return "owner"
        found = await self.store.getAffiliations(self.serviceText, node=node, jid=who)
        return found[0][2] if found else "none"

    async def owners(self, node: str) -> list[str]:
        return [jid for (_, jid, affiliation) in
                await self.store.getAffiliations(self.serviceText, node=node)
                if affiliation == "owner"]

    async def requireOwner(self, node: str, requester: JID):
        """The node, if the requester owns it (§8: else C{forbidden})."""
        record = await self.node(node)
        if await self.affiliationOf(node, requester) != "owner":
            raise error("forbidden", text="only an owner of the node may do this")
        return record

    async def checkAccess(self, record, requester: JID, subscribing: bool = False) -> str:
        """
        §4.1 and §4.5 for subscribing and retrieving items: C{"allow"} or
        C{"pending"}; raises the error of §6.1.3 / §6.5.
        """
        affiliation = await self.affiliationOf(record.node, requester)
        if affiliation == "outcast":
            raise error("forbidden", text="you are banned from this node")
        if affiliation in ("owner", "publisher"):
            return "allow"
        if affiliation == "publish-only" and not subscribing:
            raise error("forbidden", text="publish-only entities may not retrieve items")
        subscriptions = await self.store.getSubscriptions(self.serviceText, node=record.node)
        who = bare(requester)
        subscribed = any(bare(JID(s.jid)) == who and s.state == "subscribed"
                         for s in subscriptions)
        return await self.access.check(self.config(record), await self.owners(record.node),
                                       who, affiliation, subscribed, subscribing)

    # -- nodes (§8.1-§8.5) -------------------------------------------------------

    def defaultConfig(self) -> dict:
        """§8.3: what a node gets unless its creator says otherwise."""
        return nodeconfig.defaults(self.settings)

    async def createNode(self, requester: JID, node: str | None,
                         config: dict | None = None) -> str:
        """
        §8.1: create C{node} (an instant node with a generated name when
        C{None}) with C{config} (submitted var -> value) over the defaults;
        the requester becomes its owner.  Returns the node's name.
        """
        if bare(requester) not in self.admins and not self.mayCreate(requester):
            raise error("forbidden", text="you may not create nodes on this service")
        values = nodeconfig.validate(config or {}, self.settings)
        owner = bare(requester)
        owned = [n for (n, _, a) in await self.store.getAffiliations(self.serviceText, jid=owner)
                 if a == "owner"]
        if len(owned) >= self.settings.max_nodes_per_owner:
            raise error("policy-violation",
                        text=f"you own {len(owned)} nodes, the most allowed here")
        if node is None:
            node = self.newId()
        elif not node:
            raise error("bad-request", "nodeid-required")
        try:
            await self.store.createNode(self.serviceText, node, values, owner)
        except NodeExists:
            raise error("conflict", text=f"node {node!r} exists already")
        self.log.debug("{owner} created node {node} on {service}", owner=owner, node=node,
                       service=self.serviceText)
        return node

    async def getConfiguration(self, requester: JID, node: str) -> dict:
        """§8.2.1: the node's configuration, for its owners."""
        record = await self.requireOwner(node, requester)
        return dict(self.defaultConfig(), **record.config)

    async def configureNode(self, requester: JID, node: str, changes: dict) -> None:
        """§8.2.3: change the configuration; §8.2.4 notify when C{notify_config}."""
        record = await self.requireOwner(node, requester)
        values = nodeconfig.validate(changes, self.settings, base=dict(self.defaultConfig(),
                                                                         **record.config))
        await self.store.configureNode(self.serviceText, node, values)
        config = NodeConfig(values, self.settings)
        if config.maxItems < NodeConfig(record.config, self.settings).maxItems:
            # Fewer items kept now: the oldest go (§12.12 items beyond max_items).
            kept = await self.store.getItems(self.serviceText, node)
            for item in kept[config.maxItems:]:
                await self.store.retract(self.serviceText, node, item.id)
        if config.notifyConfig and config.deliverNotifications:
            event = self.event()
            configuration = event.addElement("configuration")
            configuration["node"] = node
            if config.deliverPayloads:
                configuration.addChild(nodeconfig.toForm(values, "result").toElement())
            await self.notify(node, config, event.parent)

    async def deleteNode(self, requester: JID, node: str, redirect: str | None = None) -> None:
        """§8.4: delete the node and tell its subscribers when C{notify_delete}."""
        record = await self.requireOwner(node, requester)
        config = self.config(record)
        recipients = await self.recipients(node)
        await self.store.deleteNode(self.serviceText, node)
        if config.notifyDelete:
            event = self.event()
            delete = event.addElement("delete")
            delete["node"] = node
            if redirect:
                delete.addElement("redirect")["uri"] = redirect
            self.send(event.parent, recipients, config)

    async def purgeNode(self, requester: JID, node: str) -> None:
        """§8.5: remove every item, and tell the subscribers."""
        record = await self.requireOwner(node, requester)
        config = self.config(record)
        if not config.persistItems:
            raise error("feature-not-implemented", "unsupported", feature="persistent-items",
                        text="this node keeps no items")
        await self.store.purge(self.serviceText, node)
        if config.deliverNotifications:
            event = self.event()
            event.addElement("purge")["node"] = node
            await self.notify(node, config, event.parent)

    async def listNodes(self, requester: JID) -> list:
        """The nodes disco#items lists (§5.2): all but those closed to the requester."""
        visible = []
        for record in await self.store.listNodes(self.serviceText):
            try:
                await self.checkAccess(record, requester)
            except Exception:
                continue
            visible.append(record)
        return visible

    # -- items (§6.5, §7.1, §7.2) -----------------------------------------------

    async def publish(self, requester: JID, node: str, items: list[domish.Element],
                      options: dict | None = None, autoCreate: bool = False) -> list[str]:
        """
        §7.1: publish C{items} (C{<item/>} elements, at most one; §7.1.3.x
        for the errors) with publish-options C{options} (§7.1.5).  With
        C{autoCreate} (PEP, XEP-0163 §3) a missing node is created with the
        publish-options as its configuration.  Returns the published ids.
        """
        if self.fanout.backlog >= self.settings.max_backlog:
            # Every queue bounded (DESIGN §4): the publisher may retry ("wait").
            raise error("resource-constraint",
                        text="too many notifications waiting; try again shortly")
        record = await self.store.getNode(self.serviceText, node)
        if record is None:
            if not autoCreate:
                raise error("item-not-found", text=f"no node {node!r}")
            # Created below, once the item is known to be acceptable.
            config = NodeConfig(nodeconfig.validate(options or {}, self.settings),
                                self.settings)
        else:
            if options:
                self.checkPreconditions(record, options)
            config = self.config(record)
            affiliation = await self.affiliationOf(node, requester)
            if not await self.mayPublish(record, config, requester, affiliation):
                raise error("forbidden", text="you may not publish to this node")
        if len(items) > 1:
            raise error("bad-request", "invalid-payload", "publish one item at a time")
        item = items[0] if items else None
        payloads = [] if item is None else list(item.elements())
        if len(payloads) > 1:
            raise error("bad-request", "invalid-payload", "an item carries one payload element")
        if item is None and config.persistItems:
            raise error("bad-request", "item-required", "this node keeps items: send one")
        if not payloads and (config.persistItems or config.deliverPayloads):
            if item is not None:
                raise error("bad-request", "payload-required", "an item needs a payload here")
        if item is not None and not config.persistItems and not config.deliverPayloads:
            raise error("bad-request", "item-forbidden",
                        "this node sends notifications without items")
        payload = serialize(payloads[0]) if payloads else ""
        if len(payload.encode("utf-8")) > self.settings.max_payload_size:
            raise error("not-acceptable", "payload-too-big",
                        f"payloads are limited to {self.settings.max_payload_size} bytes")
        itemId = (item.getAttribute("id") if item is not None else None) or self.newId()
        if record is None:
            await self.createNode(requester, node, options or {})
        if config.persistItems:
            await self.store.publish(self.serviceText, node, PubSubItem(
                itemId, payload, requester.full(), self.seconds()), maxItems=config.maxItems)
        if config.deliverNotifications:
            event = self.event()
            itemsElement = event.addElement("items")
            itemsElement["node"] = node
            if item is not None or payloads:
                notified = itemsElement.addElement("item")
                notified["id"] = itemId
                notified["publisher"] = bare(requester)
                if config.deliverPayloads and payloads:
                    notified.addChild(payloads[0])
            await self.notify(node, config, event.parent)
        return [itemId]

    async def mayPublish(self, record, config: NodeConfig, requester: JID,
                         affiliation: str) -> bool:
        """§4.1 and the publish models of §16.4.4 C{pubsub#publish_model}."""
        if affiliation == "outcast":
            return False
        if affiliation in PUBLISHERS:
            return True
        if config.publishModel == "open":
            return True
        if config.publishModel == "subscribers":
            who = bare(requester)
            return any(bare(JID(s.jid)) == who and s.state == "subscribed" for s in
                       await self.store.getSubscriptions(self.serviceText, node=record.node))
        return False

    def checkPreconditions(self, record, options: dict) -> None:
        """§7.1.5: every publish-option must equal the node's configuration."""
        current = dict(self.defaultConfig(), **record.config)
        for var, value in options.items():
            if var == "FORM_TYPE":
                continue
            try:
                wanted = nodeconfig.canonical(var, value, self.settings) \
                    if var in nodeconfig.FIELDS else None
            except Exception:
                wanted = None
            if wanted is None or wanted != current.get(var):
                raise error("conflict", "precondition-not-met",
                            f"the node's {var} is not what the publish-options require")

    async def retract(self, requester: JID, node: str, ids: list[str],
                      notify: bool = False) -> None:
        """§7.2: delete items; notify subscribers when asked and C{notify_retract}."""
        record = await self.node(node)
        config = self.config(record)
        if not ids:
            raise error("bad-request", "item-required", "name the item to retract")
        if not config.persistItems:
            raise error("feature-not-implemented", "unsupported", feature="persistent-items",
                        text="this node keeps no items")
        affiliation = await self.affiliationOf(node, requester)
        if affiliation not in PUBLISHERS:
            raise error("forbidden", text="you may not retract items from this node")
        found = await self.store.getItems(self.serviceText, node, ids=ids)
        if len(found) != len(set(ids)):
            raise error("item-not-found", text="no such item")
        if affiliation != "owner":
            mine = bare(requester)
            if any(bare(JID(item.publisher)) != mine for item in found):
                raise error("forbidden", text="you may only retract your own items")
        for itemId in ids:
            await self.store.retract(self.serviceText, node, itemId)
        if notify and config.notifyRetract:
            event = self.event()
            items = event.addElement("items")
            items["node"] = node
            for itemId in ids:
                items.addElement("retract")["id"] = itemId
            await self.notify(node, config, event.parent)

    async def items(self, requester: JID, node: str, ids: list[str] | None = None,
                    maxItems: int | None = None) -> list[PubSubItem]:
        """§6.5: the node's items, newest first, for whom the access model allows."""
        record = await self.node(node)
        if await self.checkAccess(record, requester) != "allow":
            raise error("not-authorized", "not-subscribed")
        if not self.config(record).persistItems:
            raise error("feature-not-implemented", "unsupported", feature="persistent-items",
                        text="this node keeps no items")
        return await self.store.getItems(self.serviceText, node, ids=ids or None,
                                         maxItems=maxItems)

    # -- subscriptions (§6.1-§6.4) ----------------------------------------------

    async def subscribe(self, requester: JID, node: str, subscriber: JID,
                        options: dict | None = None) -> PubSubSubscription:
        """
        §6.1: subscribe C{subscriber} (the requester's bare or full JID);
        sends the last item (§6.1.7) when C{send_last_published_item} says so.
        """
        if bare(subscriber) != bare(requester):
            raise error("bad-request", "invalid-jid",
                        "you may only subscribe your own address")
        record = await self.node(node)
        config = self.config(record)
        decision = await self.checkAccess(record, requester, subscribing=True)
        affiliation = await self.affiliationOf(node, requester)
        if affiliation == "publish-only":
            raise error("forbidden", text="publish-only entities may not subscribe")
        existing = [s for s in await self.store.getSubscriptions(
            self.serviceText, node=node, jid=subscriber.full())]
        if existing:
            # §6.1.6: one subscription per JID here; subscribing again
            # returns it (and its state may improve from pending).
            subscription = existing[0]
            if options:
                subscription = PubSubSubscription(
                    subscription.service, subscription.node, subscription.jid,
                    subscription.subid, subscription.state, dict(options))
                await self.store.setSubscription(subscription)
            return subscription
        held = await self.store.getSubscriptions(self.serviceText, jid=subscriber.full())
        if len(held) >= self.settings.max_subscriptions:
            raise error("policy-violation", "too-many-subscriptions",
                        f"at most {self.settings.max_subscriptions} subscriptions")
        state = "subscribed" if decision == "allow" else "pending"
        subscription = PubSubSubscription(self.serviceText, node, subscriber.full(),
                                          self.newId(), state, dict(options or {}))
        await self.store.setSubscription(subscription)
        if state == "subscribed" and config.sendLastPublishedItem != "never" \
                and config.persistItems:
            await self.sendLastItem(node, config, subscriber.full())
        elif state == "pending":
            self.askOwners(subscription, await self.owners(node))
        return subscription

    async def sendLastItem(self, node: str, config: NodeConfig, to: str) -> None:
        """§6.1.7: the newest item, to one subscriber (PEP calls this on presence too)."""
        last = await self.store.getItems(self.serviceText, node, maxItems=1)
        if not last:
            return
        event = self.event()
        items = event.addElement("items")
        items["node"] = node
        items.addChild(self.itemElement(last[0], NS_PUBSUB_EVENT, config.deliverPayloads))
        message = event.parent
        message["type"] = config.notificationType
        # §6.1.7 (Example 50): an item published earlier says when (XEP-0203).
        delay = message.addElement((NS_DELAY, "delay"))
        delay["from"] = self.serviceText
        delay["stamp"] = delayStamp(last[0].published)
        self.fanout.send(Prepared(message), [to], later=True)

    async def unsubscribe(self, requester: JID, node: str, subscriber: JID,
                          subid: str | None = None) -> None:
        """§6.2: remove a subscription of the requester's own address."""
        record = await self.node(node)
        if bare(subscriber) != bare(requester) and \
                await self.affiliationOf(record.node, requester) != "owner":
            raise error("forbidden", text="you may only unsubscribe your own address")
        found = await self.findSubscription(node, subscriber, subid)
        await self.store.removeSubscription(self.serviceText, node, subscriber.full(),
                                            found.subid)

    async def subscription(self, requester: JID, node: str, subscriber: JID,
                           subid: str | None = None) -> PubSubSubscription:
        """§6.3: the subscription whose options are asked for or set."""
        await self.node(node)
        if bare(subscriber) != bare(requester) and \
                await self.affiliationOf(node, requester) != "owner":
            raise error("forbidden", text="you may only see your own subscription options")
        return await self.findSubscription(node, subscriber, subid)

    async def findSubscription(self, node: str, subscriber: JID,
                               subid: str | None) -> PubSubSubscription:
        """
        The subscriber's subscription to C{node} named by C{subid}, or its
        only one (§6.2.3, §6.3.4: not-subscribed, subid-required,
        invalid-subid otherwise).
        """
        found = await self.store.getSubscriptions(self.serviceText, node=node,
                                                  jid=subscriber.full())
        if not found:
            raise error("unexpected-request", "not-subscribed", "you are not subscribed")
        if subid is None:
            if len(found) > 1:
                raise error("bad-request", "subid-required")
            return found[0]
        for subscription in found:
            if subscription.subid == subid:
                return subscription
        raise error("not-acceptable", "invalid-subid")

    async def setSubscriptionOptions(self, requester: JID, node: str, subscriber: JID,
                                     options: dict, subid: str | None = None) -> None:
        """§6.3.5: replace the subscription's options."""
        subscription = await self.subscription(requester, node, subscriber, subid)
        await self.store.setSubscription(PubSubSubscription(
            subscription.service, subscription.node, subscription.jid, subscription.subid,
            subscription.state, dict(options)))

    async def entitySubscriptions(self, requester: JID, node: str | None = None) -> list:
        """§5.6: the requester's own subscriptions (its bare and full JIDs)."""
        who = bare(requester)
        return [s for s in await self.store.getSubscriptions(self.serviceText, node=node or None)
                if bare(JID(s.jid)) == who]

    async def entityAffiliations(self, requester: JID, node: str | None = None) -> list:
        """§5.7: the requester's own affiliations as (node, affiliation)."""
        return [(n, a) for (n, _, a) in await self.store.getAffiliations(
            self.serviceText, node=node or None, jid=bare(requester))]

    # -- notifications -----------------------------------------------------------

    def event(self) -> domish.Element:
        """A new C{<event/>} inside a C{<message/>} from the service."""
        message = domish.Element((None, "message"))
        message["from"] = self.serviceText
        return message.addElement((NS_PUBSUB_EVENT, "event"))

    def itemElement(self, item: PubSubItem, uri: str, withPayload: bool = True):
        element = domish.Element((uri, "item"))
        element["id"] = item.id
        if withPayload and item.payload:
            element.addRawXml(item.payload)
        return element

    async def recipients(self, node: str) -> list[str]:
        """
        The addresses of the node's active subscriptions (without
        C{pubsub#deliver} false), each once: who a notification goes to.
        PEP overrides this to add interested contacts (XEP-0163 §4).
        """
        return list(dict.fromkeys(
            s.jid for s in await self.store.getSubscriptions(self.serviceText, node=node)
            if s.state == "subscribed" and s.options.get("pubsub#deliver", "1")
            not in ("0", "false")))

    async def notify(self, node: str, config: NodeConfig, message: domish.Element) -> None:
        self.send(message, await self.recipients(node), config)

    def send(self, message: domish.Element, recipients: list[str], config: NodeConfig) -> None:
        """Serialize C{message} once and hand it to the fan-out (§7.1.2.1)."""
        if not recipients:
            return
        message["type"] = config.notificationType
        self.fanout.send(Prepared(message), recipients)



