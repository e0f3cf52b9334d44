# -*- test-case-name: tests.test_pubsub_service -*-
"""
The wokkel C{IPubSubResource} of a service: turns each parsed request
(L{xmppd.features.pubsub.protocol.Request}) into one call of the engine
(L{xmppd.features.pubsub.engine.PubSubEngine}) and its answer into the
elements of XEP-0060's result examples.  It holds no state of its own.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import data_form, disco, pubsub
from wokkel.iwokkel import IPubSubResource
from wokkel.pubsub import NS_PUBSUB, NS_PUBSUB_OWNER
from zope.interface import implementer

from xmppd.features.pubsub import nodeconfig
from xmppd.features.pubsub.errors import error

NS_SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"

#: The C{pubsub#…} features of §10 this service has (disco#info).
FEATURES = (
    "access-authorize", "access-open", "access-presence", "access-roster", "access-whitelist",
    "config-node", "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
    "instant-nodes", "item-ids", "manage-affiliations", "manage-subscriptions",
    "meta-data", "modify-affiliations", "outcast-affiliation", "persistent-items",
    "publish", "publish-options", "publisher-affiliation", "publish-only-affiliation",
    "purge-nodes", "retract-items", "retrieve-affiliations", "retrieve-default",
    "retrieve-items", "retrieve-subscriptions", "subscribe", "subscription-options",
)


def run(coroutine) -> defer.Deferred:
    return defer.ensureDeferred(coroutine)


__all__ = ["FEATURES", "Resource", "subscriptionForm"]


@implementer(IPubSubResource)
class Resource:
    """One service's requests, answered by its C{engine}."""

    features = FEATURES
    discoIdentity = None

    #: Whether a publish to a missing node creates it (PEP, XEP-0163 §3).
    autoCreate = False

    def __init__(self, engine, name: str = "Publish-Subscribe"):
        self.engine = engine
        self.discoIdentity = disco.DiscoIdentity("pubsub", "service", name)

    def engineFor(self, target):
        """
        The engine of the service address C{target} (a L{JID}): this
        resource's one engine; PEP overrides it to pick the account's.
        """
        return self.engine

    def locateResource(self, request):
        return self

    # -- service discovery (§5) --------------------------------------------------

    def getInfo(self, requestor, service, nodeIdentifier):
        if not nodeIdentifier:
            return defer.succeed(None)
        return run(self._info(self.engineFor(service), nodeIdentifier))

    async def _info(self, engine, node):
        record = await engine.store.getNode(engine.serviceText, node)
        if record is None:
            return None
        config = record.config
        metaData = [{"var": "pubsub#title", "value": config.get("pubsub#title", "")},
                    {"var": "pubsub#type", "value": config.get("pubsub#type", "")},
                    {"var": "pubsub#access_model",
                     "value": config.get("pubsub#access_model", "open")}]
        return {"type": "leaf", "meta-data": metaData}

    def getNodes(self, requestor, service, nodeIdentifier):
        if nodeIdentifier:
            return defer.succeed([])
        return run(self._nodes(self.engineFor(service), requestor))

    async def _nodes(self, engine, requestor):
        return [record.node for record in await engine.listNodes(requestor)]

    def getConfigurationOptions(self):
        return {var: {"type": field.type, "label": field.label}
                for var, field in nodeconfig.FIELDS.items()}

    # -- entity use cases (§6, §7) ----------------------------------------------

    def publish(self, request):
        return run(self._publish(request))

    async def _publish(self, request):
        engine = self.engineFor(request.recipient)
        ids = await engine.publish(request.sender, request.nodeIdentifier, request.items or [],
                                   request.publishOptions, autoCreate=self.autoCreate)
        # §7.1.2: the id goes back (always: the publisher may not know it).
        response = domish.Element((NS_PUBSUB, "pubsub"))
        publish = response.addElement("publish")
        publish["node"] = request.nodeIdentifier
        for itemId in ids:
            publish.addElement("item")["id"] = itemId
        return response

    def retract(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.retract(request.sender, request.nodeIdentifier,
                                  request.itemIdentifiers or [], request.notify))

    def items(self, request):
        return run(self._items(request))

    async def _items(self, request):
        engine = self.engineFor(request.recipient)
        if request.subscriptionIdentifier is not None:
            await engine.subscription(request.sender, request.nodeIdentifier, request.sender,
                                      request.subscriptionIdentifier)
        found = await engine.items(request.sender, request.nodeIdentifier,
                                   request.itemIdentifiers or None, request.maxItems)
        return [engine.itemElement(item, NS_PUBSUB) for item in found]

    def subscribe(self, request):
        return run(self._subscribe(request))

    async def _subscribe(self, request):
        engine = self.engineFor(request.recipient)
        node = self.requireNode(request)
        options = None
        if request.options is not None and request.options.fields:
            options = nodeconfig.formValues(request.options)
        subscription = await engine.subscribe(request.sender, node, request.subscriber, options)
        return pubsub.Subscription(node, JID(subscription.jid), subscription.state,
                                   subscriptionIdentifier=subscription.subid)

    def unsubscribe(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.unsubscribe(request.sender, self.requireNode(request),
                                      request.subscriber, request.subscriptionIdentifier))

    def optionsGet(self, request):
        return run(self._optionsGet(request))

    async def _optionsGet(self, request):
        engine = self.engineFor(request.recipient)
        node = self.requireNode(request)
        subscription = await engine.subscription(request.sender, node, request.subscriber,
                                                 request.subscriptionIdentifier)
        response = domish.Element((NS_PUBSUB, "pubsub"))
        options = response.addElement("options")
        options["node"] = node
        options["jid"] = subscription.jid
        options["subid"] = subscription.subid
        options.addChild(subscriptionForm(subscription.options).toElement())
        return response

    def optionsSet(self, request):
        return run(self._optionsSet(request))

    async def _optionsSet(self, request):
        engine = self.engineFor(request.recipient)
        node = self.requireNode(request)
        values = nodeconfig.formValues(request.options)
        deliver = values.get("pubsub#deliver", "1")
        if str(deliver).lower() not in ("0", "1", "true", "false"):
            raise error("bad-request", "invalid-options")
        await engine.setSubscriptionOptions(request.sender, node, request.subscriber, values,
                                            request.subscriptionIdentifier)

    def subscriptions(self, request):
        return run(self._subscriptions(request))

    async def _subscriptions(self, request):
        engine = self.engineFor(request.recipient)
        found = await engine.entitySubscriptions(request.sender, request.nodeIdentifier)
        return [pubsub.Subscription(s.node, JID(s.jid), s.state, subscriptionIdentifier=s.subid)
                for s in found]

    def affiliations(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.entityAffiliations(request.sender, request.nodeIdentifier))

    # -- owner use cases (§8) ------------------------------------------------------

    def create(self, request):
        engine = self.engineFor(request.recipient)
        config = None
        if request.options is not None:
            config = nodeconfig.formValues(request.options)
        return run(engine.createNode(request.sender, request.nodeIdentifier, config))

    def default(self, request):
        if request.nodeType != "leaf":
            raise error("feature-not-implemented", "unsupported", feature="collections")
        return defer.succeed(self.engineFor(request.recipient).defaultConfig())

    def configureGet(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.getConfiguration(request.sender, self.requireNode(request)))

    def configureSet(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.configureNode(request.sender, self.requireNode(request),
                                        nodeconfig.formValues(request.options)))

    def delete(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.deleteNode(request.sender, request.nodeIdentifier, request.redirect))

    def purge(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.purgeNode(request.sender, request.nodeIdentifier))

    def subscriptionsGet(self, request):
        return run(self._subscriptionsGet(request))

    async def _subscriptionsGet(self, request):
        engine = self.engineFor(request.recipient)
        node = self.requireNode(request)
        response = domish.Element((NS_PUBSUB_OWNER, "pubsub"))
        listed = response.addElement("subscriptions")
        listed["node"] = node
        for s in await engine.nodeSubscriptions(request.sender, node):
            entry = listed.addElement("subscription")
            entry["jid"] = s.jid
            entry["subscription"] = s.state
            entry["subid"] = s.subid
        return response

    def subscriptionsSet(self, request):
        engine = self.engineFor(request.recipient)
        return run(engine.setNodeSubscriptions(request.sender, self.requireNode(request),
                                               request.subscriptions or []))

    def affiliationsGet(self, request):
        return run(self._affiliationsGet(request))

    async def _affiliationsGet(self, request):
        engine = self.engineFor(request.recipient)
        found = await engine.nodeAffiliations(request.sender, self.requireNode(request))
        return {JID(jid): affiliation for jid, affiliation in found.items()}

    def affiliationsSet(self, request):
        engine = self.engineFor(request.recipient)
        changes = {entity.userhost(): affiliation
                   for entity, affiliation in (request.affiliations or {}).items()}
        return run(engine.setNodeAffiliations(request.sender, self.requireNode(request),
                                              changes))

    def requireNode(self, request) -> str:
        """§6.1.3.3 and friends: the node is required here (no collections)."""
        if not request.nodeIdentifier:
            raise error("bad-request", "nodeid-required")
        return request.nodeIdentifier


def subscriptionForm(options: dict):
    """§6.3.2: the subscription options form (C{pubsub#deliver} is what we honour)."""
    form = data_form.Form("form", formNamespace=NS_SUBSCRIBE_OPTIONS)
    deliver = str(options.get("pubsub#deliver", "1")).lower() not in ("0", "false")
    form.addField(data_form.Field("boolean", var="pubsub#deliver",
                                  label="Enable delivery?", value=deliver))
    return form
