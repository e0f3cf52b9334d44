# -*- test-case-name: tests.test_storage_pubsub -*-
"""
The SQLite store of publish-subscribe nodes (L{IPubSubStore}, XEP-0060,
and PEP on every account, XEP-0163): the C{pubsub_nodes},
C{pubsub_items}, C{pubsub_subscriptions} and C{pubsub_affiliations}
tables.

Items, subscriptions and affiliations hang off a node's integer id with
C{ON DELETE CASCADE}, so deleting a node row takes everything of it, and a
node created again under the same name starts empty.  Items are ordered by
an C{AUTOINCREMENT} sequence: republishing an id deletes the old row and
inserts a new one, so the item becomes the newest (XEP-0060 §7.1.2), and
trimming to max items happens in the publish's own transaction.

Every write goes through L{SQLiteEngine.runGrouped}: PEP publishes come in
bursts (a client logging in republishes its avatar, nickname and OMEMO
bundle), each must be on disk before the publisher is answered, and group
commit lets them share their fsyncs.

Configurations and subscription options are JSON text.  A row that cannot
be read back as this contract promises (damaged JSON, a configuration that
is not an object, a non-numeric time) never fails a read: the damaged
field comes back empty (or 0.0) and a warning is logged, so one bad node
cannot make a user's whole PEP service unreadable.

L{forgetAccount} is how removing an account (L{xmppd.storage.sqlite.accounts})
takes the account's PEP service and its subscriptions and affiliations
everywhere, in the removal's own transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from xmppd.storage.interfaces import (PUBSUB_AFFILIATIONS, PUBSUB_STATES, IPubSubStore,
                                      NodeExists, NoSuchNode, PubSubItem, PubSubNode,
                                      PubSubSubscription)
from xmppd.storage.sqlite.engine import SQLiteEngine


@implementer(IPubSubStore)
class SQLitePubSubStore:
    """Publish-subscribe nodes in the C{pubsub_*} tables, every write grouped."""

    log = Logger()

    def __init__(self, storage: SQLiteEngine) -> None:
        self._storage = storage

    # -- nodes -----------------------------------------------------------------

    def createNode(self, service: str, node: str, config: dict, owner: str) -> defer.Deferred:
        # Serialized here, on the reactor thread: a configuration that is not
        # JSON fails at once, and the worker reads nothing the caller holds.
        try:
            text = _dumps(config)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        created = self._storage.seconds()
        d = self._storage.runGrouped(_createNode, service, node, text, created, owner)
        return d.addCallback(lambda _: PubSubNode(service, node, json.loads(text), created))

    def getNode(self, service: str, node: str) -> defer.Deferred:
        d = self._storage.runQuery(
            "SELECT service, node, config, created FROM pubsub_nodes"
            " WHERE service = ? AND node = ?", (service, node))
        return d.addCallback(lambda rows: _nodeFromRow(rows[0]) if rows else None)

    def listNodes(self, service: str) -> defer.Deferred:
        # BINARY collation: code point order, as Python's sorted().
        d = self._storage.runQuery(
            "SELECT service, node, config, created FROM pubsub_nodes WHERE service = ?"
            " ORDER BY node", (service,))
        return d.addCallback(lambda rows: [_nodeFromRow(row) for row in rows])

    def configureNode(self, service: str, node: str, config: dict) -> defer.Deferred:
        try:
            text = _dumps(config)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runGrouped(_configureNode, service, node, text)

    def deleteNode(self, service: str, node: str) -> defer.Deferred:
        return self._storage.runGrouped(_deleteNode, service, node)

    def removeService(self, service: str) -> defer.Deferred:
        return self._storage.runGrouped(removeServiceRows, service)

    # -- items -----------------------------------------------------------------

    def publish(self, service: str, node: str, item: PubSubItem,
                maxItems: int | None = None) -> defer.Deferred:
        try:
            row = _itemRow(item)
            limit = None if maxItems is None else int(maxItems)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runGrouped(_publish, service, node, row, limit)

    def getItems(self, service: str, node: str, ids=None,
                 maxItems: int | None = None) -> defer.Deferred:
        try:
            wanted = None if ids is None else json.dumps([str(i) for i in ids])
            limit = -1 if maxItems is None else max(int(maxItems), 0)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runReadInteraction(_getItems, service, node, wanted, limit)

    def retract(self, service: str, node: str, itemId: str) -> defer.Deferred:
        return self._storage.runGrouped(_retract, service, node, str(itemId))

    def purge(self, service: str, node: str) -> defer.Deferred:
        return self._storage.runGrouped(_purge, service, node)

    # -- subscriptions and affiliations ----------------------------------------

    def setSubscription(self, subscription: PubSubSubscription) -> defer.Deferred:
        if subscription.state not in PUBSUB_STATES:
            return defer.fail(ValueError(
                f"not a subscription state: {subscription.state!r}"))
        try:
            options = _dumps(subscription.options)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._storage.runGrouped(
            _setSubscription, subscription.service, subscription.node,
            (subscription.jid, subscription.subid, subscription.state, options))

    def removeSubscription(self, service: str, node: str, jid: str,
                           subid: str) -> defer.Deferred:
        return self._storage.runGrouped(_removeSubscription, service, node, jid, subid)

    def getSubscriptions(self, service: str, node: str | None = None,
                         jid: str | None = None) -> defer.Deferred:
        where, params = _filter(service, node, "s.jid", jid)
        d = self._storage.runQuery(
            "SELECT n.service, n.node, s.jid, s.subid, s.state, s.options"
            " FROM pubsub_subscriptions AS s JOIN pubsub_nodes AS n ON n.id = s.node_id"
            f" WHERE {where} ORDER BY n.node, s.jid, s.subid", params)
        return d.addCallback(lambda rows: [_subscriptionFromRow(row) for row in rows])

    def setAffiliation(self, service: str, node: str, jid: str,
                       affiliation: str) -> defer.Deferred:
        if affiliation != "none" and affiliation not in PUBSUB_AFFILIATIONS:
            return defer.fail(ValueError(f"not an affiliation: {affiliation!r}"))
        return self._storage.runGrouped(_setAffiliation, service, node, jid, affiliation)

    def getAffiliations(self, service: str, node: str | None = None,
                        jid: str | None = None) -> defer.Deferred:
        where, params = _filter(service, node, "a.jid", jid)
        d = self._storage.runQuery(
            "SELECT n.node, a.jid, a.affiliation"
            " FROM pubsub_affiliations AS a JOIN pubsub_nodes AS n ON n.id = a.node_id"
            f" WHERE {where} ORDER BY n.node, a.jid", params)
        return d.addCallback(lambda rows: [tuple(row) for row in rows])

    def removeEntity(self, jid: str) -> defer.Deferred:
        return self._storage.runGrouped(removeEntityRows, jid)


# -- reading rows back ---------------------------------------------------------


def _itemRow(item: PubSubItem) -> tuple:
    # Built on the reactor thread: nothing the caller holds is read by the worker.
    return (str(item.id), str(item.payload), str(item.publisher), float(item.published))


def _dumps(value: Any) -> str:
    if not isinstance(value, dict):
        raise TypeError("pubsub configurations and options are dicts")
    return json.dumps(value, ensure_ascii=False)


def _loadsDict(text: Any, what: str) -> dict:
    """A JSON object stored as text, or C{{}} (logged) when it is damaged."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        SQLitePubSubStore.log.warn("unreadable {what} in the database, read as empty",
                                   what=what)
        return {}
    return value


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _nodeFromRow(row: tuple) -> PubSubNode:
    service, node, config, created = row
    return PubSubNode(service, node, _loadsDict(config, f"configuration of {service} "
                                                       f"node {node!r}"), _seconds(created))


def _itemFromRow(row: tuple) -> PubSubItem:
    itemId, payload, publisher, published = row
    return PubSubItem(str(itemId), str(payload or ""), str(publisher or ""),
                      _seconds(published))


def _subscriptionFromRow(row: tuple) -> PubSubSubscription:
    service, node, jid, subid, state, options = row
    return PubSubSubscription(service, node, jid, subid, state,
                              _loadsDict(options, f"options of {jid}'s subscription "
                                                  f"to {service} node {node!r}"))


def _filter(service: str, node: str | None, jidColumn: str,
            jid: str | None) -> tuple[str, tuple]:
    where, params = ["n.service = ?"], [service]
    if node is not None:
        where.append("n.node = ?")
        params.append(node)
    if jid is not None:
        where.append(f"{jidColumn} = ?")
        params.append(jid)
    return " AND ".join(where), tuple(params)


# -- in the worker thread ------------------------------------------------------


def _nodeId(connection: sqlite3.Connection, service: str, node: str) -> int:
    row = connection.execute("SELECT id FROM pubsub_nodes WHERE service = ? AND node = ?",
                             (service, node)).fetchone()
    if row is None:
        raise NoSuchNode(f"{service} node {node!r}")
    return row[0]


def _createNode(connection: sqlite3.Connection, service: str, node: str, config: str,
                created: float, owner: str) -> None:
    cursor = connection.execute(
        "INSERT INTO pubsub_nodes (service, node, config, created) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (service, node) DO NOTHING", (service, node, config, created))
    if cursor.rowcount == 0:
        raise NodeExists(f"{service} node {node!r}")
    connection.execute(
        "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) VALUES (?, ?, 'owner')",
        (cursor.lastrowid, owner))


def _configureNode(connection: sqlite3.Connection, service: str, node: str,
                   config: str) -> None:
    if connection.execute("UPDATE pubsub_nodes SET config = ? WHERE service = ? AND node = ?",
                          (config, service, node)).rowcount == 0:
        raise NoSuchNode(f"{service} node {node!r}")


def _deleteNode(connection: sqlite3.Connection, service: str, node: str) -> None:
    # Items, subscriptions and affiliations go by ON DELETE CASCADE.
    if connection.execute("DELETE FROM pubsub_nodes WHERE service = ? AND node = ?",
                          (service, node)).rowcount == 0:
        raise NoSuchNode(f"{service} node {node!r}")


def removeServiceRows(connection: sqlite3.Connection, service: str) -> list[str]:
    """Delete every node of C{service} with all it holds; their names, sorted."""
    names = [name for (name,) in connection.execute(
        "SELECT node FROM pubsub_nodes WHERE service = ? ORDER BY node", (service,))]
    connection.execute("DELETE FROM pubsub_nodes WHERE service = ?", (service,))
    return names


def removeEntityRows(connection: sqlite3.Connection, jid: str) -> None:
    """
    Delete the subscriptions of the bare JID C{jid} and of its full JIDs,
    and its affiliations, on every service.  The full JIDs are the range
    from C{jid + "/"} up to (excluding) C{jid + "0"}, "0" being the code
    point after "/": an index range, and no LIKE wildcards to escape.
    """
    connection.execute(
        "DELETE FROM pubsub_subscriptions WHERE jid = ? OR (jid >= ? AND jid < ?)",
        (jid, jid + "/", jid + "0"))
    connection.execute("DELETE FROM pubsub_affiliations WHERE jid = ?", (jid,))


def forgetAccount(connection: sqlite3.Connection, username: str, domain: str) -> None:
    """What removing an account takes from publish-subscribe (see L{IPubSubStore})."""
    account = f"{username}@{domain}"
    removeServiceRows(connection, account)
    removeEntityRows(connection, account)


def pepRows(nodes) -> list[tuple]:
    """
    The rows of C{nodes} (L{PubSubNodeRecord}s) for L{loadServiceRows},
    built and checked on the reactor thread.

    @raise ValueError: a record L{PubSubNodeRecord.check} refuses.
    @raise TypeError: a configuration or options that are not JSON.
    """
    rows = []
    for record in nodes:
        record.check()
        rows.append((
            record.node, _dumps(record.config), dict(record.affiliations),
            [(s.jid, s.subid, s.state, _dumps(s.options)) for s in record.subscriptions],
            [_itemRow(i) for i in record.items]))
    return rows


def loadServiceRows(connection: sqlite3.Connection, service: str, nodes: list[tuple],
                    created: float) -> None:
    """
    Make C{nodes} (from L{pepRows}) the whole of C{service}: what an
    imported account's PEP service holds, in the import's transaction.
    """
    removeServiceRows(connection, service)
    for node, config, affiliations, subscriptions, items in nodes:
        nodeId = connection.execute(
            "INSERT INTO pubsub_nodes (service, node, config, created) VALUES (?, ?, ?, ?)",
            (service, node, config, created)).lastrowid
        affiliations = {service: "owner", **affiliations}
        connection.executemany(
            "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) VALUES (?, ?, ?)",
            [(nodeId, jid, affiliation) for jid, affiliation in affiliations.items()])
        connection.executemany(
            "INSERT INTO pubsub_subscriptions (node_id, jid, subid, state, options)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id, jid, subid) DO UPDATE SET"
            " state = excluded.state, options = excluded.options",
            [(nodeId,) + row for row in subscriptions])
        for row in items:
            connection.execute("DELETE FROM pubsub_items WHERE node_id = ? AND id = ?",
                               (nodeId, row[0]))
            connection.execute(
                "INSERT INTO pubsub_items (node_id, id, payload, publisher, published)"
                " VALUES (?, ?, ?, ?, ?)", (nodeId,) + row)


def _publish(connection: sqlite3.Connection, service: str, node: str, row: tuple,
             maxItems: int | None) -> list[str]:
    nodeId = _nodeId(connection, service, node)
    # Deleted and inserted again, not updated: the new sequence number makes
    # the item the newest.
    connection.execute("DELETE FROM pubsub_items WHERE node_id = ? AND id = ?",
                       (nodeId, row[0]))
    connection.execute(
        "INSERT INTO pubsub_items (node_id, id, payload, publisher, published)"
        " VALUES (?, ?, ?, ?, ?)", (nodeId,) + row)
    if maxItems is None:
        return []
    beyond = connection.execute(
        "SELECT seq, id FROM pubsub_items WHERE node_id = ? ORDER BY seq DESC"
        " LIMIT -1 OFFSET ?", (nodeId, max(maxItems, 1))).fetchall()
    beyond.reverse()
    connection.executemany("DELETE FROM pubsub_items WHERE seq = ?",
                           [(seq,) for seq, _ in beyond])
    return [itemId for _, itemId in beyond]


def _getItems(connection: sqlite3.Connection, service: str, node: str,
              wanted: str | None, limit: int) -> list[PubSubItem]:
    nodeId = _nodeId(connection, service, node)
    columns = "SELECT id, payload, publisher, published FROM pubsub_items"
    if wanted is None:
        rows = connection.execute(
            f"{columns} WHERE node_id = ? ORDER BY seq DESC LIMIT ?", (nodeId, limit))
    else:
        # One parameter however many ids: no limit on the number of variables.
        rows = connection.execute(
            f"{columns} WHERE node_id = ? AND id IN (SELECT value FROM json_each(?))"
            " ORDER BY seq DESC LIMIT ?", (nodeId, wanted, limit))
    return [_itemFromRow(row) for row in rows]


def _retract(connection: sqlite3.Connection, service: str, node: str, itemId: str) -> bool:
    nodeId = _nodeId(connection, service, node)
    return connection.execute("DELETE FROM pubsub_items WHERE node_id = ? AND id = ?",
                              (nodeId, itemId)).rowcount > 0


def _purge(connection: sqlite3.Connection, service: str, node: str) -> None:
    connection.execute("DELETE FROM pubsub_items WHERE node_id = ?",
                       (_nodeId(connection, service, node),))


def _setSubscription(connection: sqlite3.Connection, service: str, node: str,
                     row: tuple) -> None:
    connection.execute(
        "INSERT INTO pubsub_subscriptions (node_id, jid, subid, state, options)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id, jid, subid) DO UPDATE SET"
        " state = excluded.state, options = excluded.options",
        (_nodeId(connection, service, node),) + row)


def _removeSubscription(connection: sqlite3.Connection, service: str, node: str,
                        jid: str, subid: str) -> bool:
    return connection.execute(
        "DELETE FROM pubsub_subscriptions WHERE jid = ? AND subid = ? AND node_id ="
        " (SELECT id FROM pubsub_nodes WHERE service = ? AND node = ?)",
        (jid, subid, service, node)).rowcount > 0


def _setAffiliation(connection: sqlite3.Connection, service: str, node: str, jid: str,
                    affiliation: str) -> None:
    nodeId = _nodeId(connection, service, node)
    if affiliation == "none":
        connection.execute("DELETE FROM pubsub_affiliations WHERE node_id = ? AND jid = ?",
                           (nodeId, jid))
    else:
        connection.execute(
            "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) VALUES (?, ?, ?)"
            " ON CONFLICT (node_id, jid) DO UPDATE SET affiliation = excluded.affiliation",
            (nodeId, jid, affiliation))
