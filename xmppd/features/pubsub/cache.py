# -*- test-case-name: tests.test_pubsub_cache -*-
"""
A read cache in front of an L{xmppd.storage.interfaces.IPubSubStore} for
what every publish reads and almost nothing changes: a node's record, its
affiliations and subscriptions, and a service's node list (issue 12 item
6: a PEP publish read all of them from SQLite, one worker-thread round trip
each, for every item published).

Items are not cached: publishing, retracting and purging go straight to the
store and leave the cache as it is.  Every other write through the cache
forgets what is remembered for its service when it is issued and again
when it completes, and a read under way meanwhile is answered but not
remembered (each write gives the service a new token; a read remembers
only if the token it started with is still there), so a reader never sees
an answer older than a write the cache has seen.  A node created through
the cache with no other write to its service meanwhile is remembered as
the store made it (its record, its creator as owner, no subscriptions):
the first publish, which creates a PEP node, and the next ones then read
nothing.  Writes that do not go through the cache (removing an account in
storage) must be followed by L{CachingPubSubStore.forget}.  At most
C{services} services are remembered, the least recently used go first.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet import defer

__all__ = ["CachingPubSubStore"]

#: What a service's entry remembers, under these keys.
NODES = ("nodes",)


class Entry:
    """What is remembered of one service, and its current write token."""

    __slots__ = ("values", "token")

    def __init__(self):
        self.values: dict = {}
        self.token = object()


class CachingPubSubStore:
    """
    The L{IPubSubStore} C{store} (or a callable returning it: the server
    opens storage after building its services), with cached reads.
    """

    def __init__(self, store, services: int = 1000):
        self._store = store
        self.services = services
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        #: Entries dropped so far (to make room, or by L{forget}): a read
        #: started before cannot tell whether its service changed meanwhile.
        self._dropped = 0

    @property
    def store(self):
        return self._store() if callable(self._store) else self._store

    def forget(self, service: str | None = None) -> None:
        """Forget C{service}'s entries, or everything."""
        if service is None:
            self._dropped += 1
            self._entries.clear()
        else:
            self._changed(service)

    def _entry(self, service: str) -> Entry:
        entry = self._entries.get(service)
        if entry is None:
            entry = self._entries[service] = Entry()
            while len(self._entries) > self.services:
                self._entries.popitem(last=False)
                self._dropped += 1
        else:
            self._entries.move_to_end(service)
        return entry

    def _changed(self, service: str) -> Entry:
        """A write to C{service}: nothing remembered of it holds any more."""
        entry = self._entry(service)
        entry.values.clear()
        entry.token = object()
        return entry

    # -- reads -------------------------------------------------------------------

    def _cached(self, service: str, key, read) -> defer.Deferred:
        entry = self._entry(service)
        values = entry.values
        if key in values:
            return defer.succeed(values[key])
        token, dropped = entry.token, self._dropped

        def remember(value):
            if entry.token is token and self._dropped == dropped:
                values[key] = value
            return value

        return read().addCallback(remember)
    def getNode(self, service: str, node: str) -> defer.Deferred:
        return self._cached(service, ("node", node),
                            lambda: self.store.getNode(service, node))

    def listNodes(self, service: str) -> defer.Deferred:
        d = self._cached(service, NODES, lambda: self.store.listNodes(service))
        return d.addCallback(list)

    def getAffiliations(self, service: str, node: str | None = None,
                        jid: str | None = None) -> defer.Deferred:
        if node is None:
            return self.store.getAffiliations(service, node=node, jid=jid)
        d = self._cached(service, ("affiliations", node),
                         lambda: self.store.getAffiliations(service, node=node))
        if jid is None:
            return d.addCallback(list)
        return d.addCallback(lambda rows: [row for row in rows if row[1] == jid])

    def getSubscriptions(self, service: str, node: str | None = None,
                         jid: str | None = None) -> defer.Deferred:
        if node is None:
            return self.store.getSubscriptions(service, node=node, jid=jid)
        d = self._cached(service, ("subscriptions", node),
                         lambda: self.store.getSubscriptions(service, node=node))
        if jid is None:
            return d.addCallback(list)
        return d.addCallback(lambda rows: [row for row in rows if row.jid == jid])

    def getItems(self, service: str, node: str, ids=None, maxItems=None) -> defer.Deferred:
        return self.store.getItems(service, node, ids=ids, maxItems=maxItems)

    # -- writes that leave the cache as it is -------------------------------------

    def publish(self, service: str, node: str, item, maxItems=None) -> defer.Deferred:
        return self.store.publish(service, node, item, maxItems=maxItems)

    def retract(self, service: str, node: str, itemId: str) -> defer.Deferred:
        return self.store.retract(service, node, itemId)

    def purge(self, service: str, node: str) -> defer.Deferred:
        return self.store.purge(service, node)

    # -- writes that change what is cached ----------------------------------------

    def _write(self, service: str | None, write) -> defer.Deferred:
        if service is None:
            self.forget()
        else:
            self._changed(service)
        try:
            d = write()
        except Exception:
            self.forget(service)
            raise

        def done(result):
            self.forget(service)
            return result

        return d.addBoth(done)

    def createNode(self, service: str, node: str, config: dict, owner: str):
        entry = self._changed(service)
        token, dropped = entry.token, self._dropped
        try:
            d = self.store.createNode(service, node, config, owner)
        except Exception:
            self._changed(service)
            raise

        def created(record):
            alone = entry.token is token and self._dropped == dropped
            values = self._changed(service).values
            if alone and record is not None:
                # Nothing else was written to the service meanwhile: the
                # node is exactly what the store just made.
                values[("node", node)] = record
                values[("affiliations", node)] = [(node, owner, "owner")]
                values[("subscriptions", node)] = []
            return record

        def failed(failure):
            self._changed(service)
            return failure

        return d.addCallbacks(created, failed)

    def configureNode(self, service: str, node: str, config: dict):
        return self._write(service, lambda: self.store.configureNode(service, node, config))

    def deleteNode(self, service: str, node: str):
        return self._write(service, lambda: self.store.deleteNode(service, node))

    def removeService(self, service: str):
        return self._write(service, lambda: self.store.removeService(service))

    def setSubscription(self, subscription):
        return self._write(subscription.service,
                           lambda: self.store.setSubscription(subscription))

    def removeSubscription(self, service: str, node: str, jid: str, subid: str):
        return self._write(service, lambda: self.store.removeSubscription(
            service, node, jid, subid))

    def setAffiliation(self, service: str, node: str, jid: str, affiliation: str):
        return self._write(service, lambda: self.store.setAffiliation(
            service, node, jid, affiliation))

    def removeEntity(self, jid: str):
        return self._write(None, lambda: self.store.removeEntity(jid))
