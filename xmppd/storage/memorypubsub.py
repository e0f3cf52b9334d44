# -*- test-case-name: tests.test_storage_pubsub -*-
"""
Publish-subscribe nodes in memory (L{IPubSubStore}), for tests.

Items of a node are kept in a dict in publication order (Python dicts keep
insertion order): republishing an id removes and re-inserts it, so it
becomes the newest, as XEP-0060 §7.1.2 asks.  Everything handed out is a
frozen record or a copy, so callers cannot change what is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.storage.interfaces import (PUBSUB_AFFILIATIONS as AFFILIATIONS,
                                      PUBSUB_STATES as STATES, IPubSubStore, NodeExists,
                                      NoSuchNode, PubSubItem, PubSubNode, PubSubSubscription)


class _Node:
    """One node's whole state."""

    __slots__ = ("record", "items", "subscriptions", "affiliations")

    def __init__(self, record: PubSubNode):
        self.record = record
        #: item id -> PubSubItem, oldest first
        self.items: dict[str, PubSubItem] = {}
        #: (jid, subid) -> PubSubSubscription
        self.subscriptions: dict[tuple[str, str], PubSubSubscription] = {}
        #: bare JID -> affiliation
        self.affiliations: dict[str, str] = {}


@implementer(IPubSubStore)
class MemoryPubSubStore:
    """L{IPubSubStore} in a dict keyed by C{(service, node)}."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self._seconds = seconds
        self._nodes: dict[tuple[str, str], _Node] = {}

    def _node(self, service: str, node: str) -> _Node:
        found = self._nodes.get((service, node))
        if found is None:
            raise NoSuchNode(f"{service} node {node!r}")
        return found

    # -- nodes -----------------------------------------------------------------

    def createNode(self, service: str, node: str, config: dict, owner: str) -> defer.Deferred:
        if (service, node) in self._nodes:
            return defer.fail(NodeExists(f"{service} node {node!r}"))
        record = PubSubNode(service, node, copy.deepcopy(config), float(self._seconds()))
        state = self._nodes[(service, node)] = _Node(record)
        state.affiliations[owner] = "owner"
        return defer.succeed(_copy(record))

    def getNode(self, service: str, node: str) -> defer.Deferred:
        found = self._nodes.get((service, node))
        return defer.succeed(None if found is None else _copy(found.record))

    def listNodes(self, service: str) -> defer.Deferred:
        return defer.succeed(sorted((_copy(state.record) for (s, _), state in self._nodes.items()
                                     if s == service), key=lambda record: record.node))

    def configureNode(self, service: str, node: str, config: dict) -> defer.Deferred:
        return defer.maybeDeferred(self._configure, service, node, config)

    def _configure(self, service: str, node: str, config: dict) -> None:
        state = self._node(service, node)
        record = state.record
        state.record = PubSubNode(record.service, record.node, copy.deepcopy(config),
                                  record.created)

    def deleteNode(self, service: str, node: str) -> defer.Deferred:
        if self._nodes.pop((service, node), None) is None:
            return defer.fail(NoSuchNode(f"{service} node {node!r}"))
        return defer.succeed(None)

    def removeService(self, service: str) -> defer.Deferred:
        return defer.succeed(self.forgetService(service))

    def forgetService(self, service: str) -> list[str]:
        removed = sorted(node for (s, node) in self._nodes if s == service)
        for node in removed:
            del self._nodes[(service, node)]
        return removed

    def load(self, service: str, nodes) -> None:
        """
        Make C{nodes} (checked L{PubSubNodeRecord}s) the whole of
        C{service}, for L{IStorage.importAccounts}.
        """
        self.forgetService(service)
        created = float(self._seconds())
        for record in nodes:
            state = self._nodes[(service, record.node)] = _Node(
                PubSubNode(service, record.node, copy.deepcopy(record.config), created))
            state.affiliations[service] = "owner"
            state.affiliations.update(record.affiliations)
            for subscription in record.subscriptions:
                state.subscriptions[(subscription.jid, subscription.subid)] = (
                    PubSubSubscription(service, record.node, subscription.jid,
                                       subscription.subid, subscription.state,
                                       copy.deepcopy(subscription.options)))
            for item in record.items:
                state.items.pop(item.id, None)
                state.items[item.id] = item

    # -- items -----------------------------------------------------------------

    def publish(self, service: str, node: str, item: PubSubItem,
                maxItems: int | None = None) -> defer.Deferred:
        return defer.maybeDeferred(self._publish, service, node, item, maxItems)

    def _publish(self, service: str, node: str, item: PubSubItem,
                 maxItems: int | None) -> list[str]:
        items = self._node(service, node).items
        items.pop(item.id, None)
        items[item.id] = item
        removed: list[str] = []
        if maxItems is not None:
            while len(items) > max(maxItems, 1):
                oldest = next(iter(items))
                del items[oldest]
                removed.append(oldest)
        return removed

    def getItems(self, service: str, node: str, ids=None,
                 maxItems: int | None = None) -> defer.Deferred:
        return defer.maybeDeferred(self._getItems, service, node, ids, maxItems)

    def _getItems(self, service: str, node: str, ids, maxItems: int | None) -> list[PubSubItem]:
        items = self._node(service, node).items
        newest = [item for item in reversed(items.values())
                  if ids is None or item.id in ids]
        return newest if maxItems is None else newest[:max(maxItems, 0)]

    def retract(self, service: str, node: str, itemId: str) -> defer.Deferred:
        return defer.maybeDeferred(
            lambda: self._node(service, node).items.pop(itemId, None) is not None)

    def purge(self, service: str, node: str) -> defer.Deferred:
        return defer.maybeDeferred(lambda: self._node(service, node).items.clear())

    # -- subscriptions and affiliations ----------------------------------------

    def setSubscription(self, subscription: PubSubSubscription) -> defer.Deferred:
        return defer.maybeDeferred(self._subscribe, subscription)

    def _subscribe(self, subscription: PubSubSubscription) -> None:
        if subscription.state not in STATES:
            raise ValueError(f"not a subscription state: {subscription.state!r}")
        state = self._node(subscription.service, subscription.node)
        state.subscriptions[(subscription.jid, subscription.subid)] = _copy(subscription)

    def removeSubscription(self, service: str, node: str, jid: str,
                           subid: str) -> defer.Deferred:
        state = self._nodes.get((service, node))
        if state is None:
            return defer.succeed(False)
        return defer.succeed(state.subscriptions.pop((jid, subid), None) is not None)

    def getSubscriptions(self, service: str, node: str | None = None,
                         jid: str | None = None) -> defer.Deferred:
        found = [_copy(subscription)
                 for (s, n), state in self._nodes.items()
                 if s == service and (node is None or n == node)
                 for subscription in state.subscriptions.values()
                 if jid is None or subscription.jid == jid]
        found.sort(key=lambda sub: (sub.node, sub.jid, sub.subid))
        return defer.succeed(found)

    def setAffiliation(self, service: str, node: str, jid: str,
                       affiliation: str) -> defer.Deferred:
        return defer.maybeDeferred(self._affiliate, service, node, jid, affiliation)

    def _affiliate(self, service: str, node: str, jid: str, affiliation: str) -> None:
        if affiliation != "none" and affiliation not in AFFILIATIONS:
            raise ValueError(f"not an affiliation: {affiliation!r}")
        affiliations = self._node(service, node).affiliations
        if affiliation == "none":
            affiliations.pop(jid, None)
        else:
            affiliations[jid] = affiliation

    def getAffiliations(self, service: str, node: str | None = None,
                        jid: str | None = None) -> defer.Deferred:
        found = sorted((n, who, affiliation)
                       for (s, n), state in self._nodes.items()
                       if s == service and (node is None or n == node)
                       for who, affiliation in state.affiliations.items()
                       if jid is None or who == jid)
        return defer.succeed(found)

    def removeEntity(self, jid: str) -> defer.Deferred:
        self.forgetEntity(jid)
        return defer.succeed(None)

    def forgetEntity(self, jid: str) -> None:
        prefix = jid + "/"
        for state in self._nodes.values():
            for key in [key for key in state.subscriptions
                        if key[0] == jid or key[0].startswith(prefix)]:
                del state.subscriptions[key]
            state.affiliations.pop(jid, None)


def _copy(record):
    """A frozen record whose dict fields the caller may change freely."""
    return copy.deepcopy(record)
