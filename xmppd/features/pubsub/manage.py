# -*- test-case-name: tests.test_pubsub_service,tests.test_pubsub_access -*-
"""
What node owners do about other entities (XEP-0060 §8.6-§8.9): approving
subscriptions to C{authorize} nodes with the authorization form, and
listing and changing a node's subscriptions and affiliations.  A part of
the engine (L{xmppd.features.pubsub.engine.PubSubEngine} inherits it), kept
apart so each module has one job.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import data_form

from xmppd.features.pubsub.errors import error
from xmppd.features.pubsub.fanout import Prepared
from xmppd.storage.interfaces import PubSubSubscription

NS_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"

#: Affiliations an owner may set (§8.9.2), "none" removes one.
AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "outcast", "none")
#: Subscription states an owner may set (§8.8.2), "none" removes one.
SUBSCRIPTION_STATES = ("subscribed", "pending", "unconfigured", "none")


def bare(jid: JID) -> str:
    return jid.userhost()


class OwnerUseCases:
    """
    §8.6-§8.9 on top of what the engine provides (C{store}, C{serviceText},
    C{fanout}, C{requireOwner}, C{event}).
    """

    def askOwners(self, subscription: PubSubSubscription, owners: list[str]) -> None:
        """§8.6: ask every owner to approve a pending subscription, with a form."""
        message = domish.Element((None, "message"))
        message["from"] = self.serviceText
        form = data_form.Form("form", title="PubSub subscriber request",
                              instructions=["Allow this address to subscribe to the node?"],
                              formNamespace=NS_AUTHORIZATION)
        form.addField(data_form.Field("hidden", var="pubsub#subid", value=subscription.subid))
        form.addField(data_form.Field("text-single", var="pubsub#node", label="Node ID",
                                      value=subscription.node))
        form.addField(data_form.Field("jid-single", var="pubsub#subscriber_jid",
                                      label="Subscriber Address", value=JID(subscription.jid)))
        form.addField(data_form.Field("boolean", var="pubsub#allow",
                                      label="Allow this JID to subscribe to this pubsub node?",
                                      value=False))
        message.addChild(form.toElement())
        self.fanout.send(Prepared(message), owners, later=True)

    async def authorize(self, requester: JID, values: dict) -> None:
        """
        §8.6: an owner's answer to L{askOwners} (the submitted form's
        values): the subscription becomes C{subscribed} or goes, and the
        subscriber is told (§8.6 "the service MUST notify the subscriber").
        """
        node = values.get("pubsub#node")
        subscriber = values.get("pubsub#subscriber_jid")
        if not isinstance(node, str) or not isinstance(subscriber, str):
            raise error("bad-request", text="the form names no node or subscriber")
        await self.requireOwner(node, requester)
        found = await self.store.getSubscriptions(self.serviceText, node=node, jid=subscriber)
        subid = values.get("pubsub#subid")
        found = [s for s in found if s.state == "pending" and (not subid or s.subid == subid)]
        if not found:
            return  # Answered already, or withdrawn: nothing to do.
        allow = str(values.get("pubsub#allow", "")).lower() in ("1", "true")
        for subscription in found:
            if allow:
                await self.store.setSubscription(PubSubSubscription(
                    subscription.service, node, subscription.jid, subscription.subid,
                    "subscribed", subscription.options))
            else:
                await self.store.removeSubscription(self.serviceText, node, subscription.jid,
                                                    subscription.subid)
        event = self.event()
        state = event.addElement("subscription")
        state["node"] = node
        state["jid"] = subscriber
        state["subscription"] = "subscribed" if allow else "none"
        self.fanout.send(Prepared(event.parent), [subscriber])

    async def nodeSubscriptions(self, requester: JID, node: str) -> list:
        await self.requireOwner(node, requester)
        return await self.store.getSubscriptions(self.serviceText, node=node)

    async def setNodeSubscriptions(self, requester: JID, node: str,
                                   changes: list[tuple[JID, str, str | None]]) -> None:
        """§8.8.2: C{(jid, state, subid)} each; state C{none} removes."""
        await self.requireOwner(node, requester)
        for jid, state, subid in changes:
            if state not in SUBSCRIPTION_STATES:
                raise error("not-acceptable", text=f"no subscription state {state!r}")
        for jid, state, subid in changes:
            found = await self.store.getSubscriptions(self.serviceText, node=node,
                                                      jid=jid.full())
            if subid is not None:
                found = [s for s in found if s.subid == subid]
            if state == "none":
                for subscription in found:
                    await self.store.removeSubscription(self.serviceText, node,
                                                        subscription.jid, subscription.subid)
                continue
            if found:
                for subscription in found:
                    await self.store.setSubscription(PubSubSubscription(
                        self.serviceText, node, subscription.jid, subscription.subid, state,
                        subscription.options))
            else:
                await self.store.setSubscription(PubSubSubscription(
                    self.serviceText, node, jid.full(), subid or self.newId(), state, {}))

    async def nodeAffiliations(self, requester: JID, node: str) -> dict[str, str]:
        await self.requireOwner(node, requester)
        return {jid: a for (_, jid, a) in
                await self.store.getAffiliations(self.serviceText, node=node)}

    async def setNodeAffiliations(self, requester: JID, node: str,
                                  changes: dict[str, str]) -> None:
        """§8.9.2: bare JID -> affiliation; the node keeps at least one owner."""
        await self.requireOwner(node, requester)
        for jid, affiliation in changes.items():
            if affiliation not in AFFILIATIONS:
                raise error("not-acceptable", text=f"no affiliation {affiliation!r}")
        current = await self.nodeAffiliations(requester, node)
        after = dict(current)
        for jid, affiliation in changes.items():
            if affiliation == "none":
                after.pop(jid, None)
            else:
                after[jid] = affiliation
        if "owner" not in after.values():
            raise error("not-acceptable", text="a node keeps at least one owner")
        for jid, affiliation in changes.items():
            await self.store.setAffiliation(self.serviceText, node, jid, affiliation)
            if affiliation == "outcast":
                # §8.9.2: an outcast loses its subscriptions.
                for subscription in await self.store.getSubscriptions(self.serviceText,
                                                                      node=node):
                    if bare(JID(subscription.jid)) == jid:
                        await self.store.removeSubscription(
                            self.serviceText, node, subscription.jid, subscription.subid)
