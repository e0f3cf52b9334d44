# -*- test-case-name: tests.test_drain -*-
"""
C{xmppctl cluster} and C{xmppctl drain} (issue 14, item 8): a cluster's
operations, through its Redis (C{[cluster] redis}, else C{[storage]
redis}), so they work from any machine that reaches it.

C{cluster} lists the nodes that joined, each alive or dead (by its
heartbeat key), draining or not, with its public client address, its
sessions (full JIDs, from the session directory) and the MUC rooms it
holds (the leases C{xmppd:lease:room:*}, found with C{SCAN}: an admin
command may walk the key space, the server never does); C{--json} prints
the same as one JSON object.

C{drain NODE} asks NODE, on its control channel (L{xmppd.admin.control}),
to send its clients to another live node (RFC 6120 §4.9.3.19
see-other-host) and take no new ones, waits at most C{--timeout} seconds
for its answer and prints it in one line; C{--undo} makes NODE take
clients again.  A node that never joined, whose heartbeat expired, or that
does not answer is an error (exit status 1).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from twisted.internet import defer

from xmppd.cli.common import OK, CtlError, say
from xmppd.cluster import keys
from xmppd.config import Config

COMMANDS = ("cluster", "drain")

#: These commands talk to Redis and the nodes, not to a store of their own.
PERSISTENT = False

#: Seconds C{drain} waits for the node's answer by default.
DRAIN_TIMEOUT = 10

ROOM_LEASES = "xmppd:lease:room:"


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    cluster = commands.add_parser(
        "cluster", help="list the cluster's nodes, their sessions and rooms")
    cluster.add_argument("--json", action="store_true", help="print one JSON object")
    drain = commands.add_parser(
        "drain", help="send a node's clients to another node (see-other-host) and take no "
        "new ones")
    drain.add_argument("node", metavar="NODE", help="the node's name ([cluster] node)")
    drain.add_argument("--undo", action="store_true", help="make NODE take clients again")
    drain.add_argument("--timeout", type=float, default=DRAIN_TIMEOUT,
                       help="seconds to wait for the node's answer (default %(default)s)")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    # Imported here: only these commands need the cluster's Redis.
    from xmppd.cluster.service import clusterAddress
    from xmppd.storage.redisclient import connectRedis
    address = clusterAddress(config)
    try:
        redis = await connectRedis(address, reconnect=False).addTimeout(DRAIN_TIMEOUT, reactor)
    except Exception as e:
        raise CtlError("cannot reach the cluster's Redis at %s:%s: %s" % (
            address.host, address.port, e or type(e).__name__))
    try:
        if args.command == "cluster":
            state = await clusterState(redis)
            for line in [json.dumps(state)] if args.json else formatCluster(state):
                say(line)
            return OK
        return await drain(redis, args.node, not args.undo, args.timeout)
    finally:
        await redis.disconnect()


async def clusterState(redis) -> dict:
    """Nodes, sessions and rooms, as C{xmppctl cluster --json} prints them."""
    nodes = sorted(await redis.smembers(keys.NODES))
    beats = await redis.mget([keys.heartbeatKey(n) for n in nodes]) if nodes else []
    addresses = await redis.mget([keys.addressKey(n) for n in nodes]) if nodes else []
    draining = set(await redis.smembers(keys.DRAINING))
    sessions: dict[str, list] = {}
    for jid, value in (await redis.hgetall(keys.SESSIONS)).items():
        sessions.setdefault(value.split(" ", 1)[0], []).append(jid)
    rooms: dict[str, list] = {}
    cursor = "0"
    while True:
        cursor, found = await redis.execute_command(
            "SCAN", cursor, "MATCH", ROOM_LEASES + "*", "COUNT", 1000)
        if found:
            for key, holder in zip(found, await redis.mget(found)):
                if holder is not None:
                    rooms.setdefault(holder, []).append(key[len(ROOM_LEASES):])
        if str(cursor) == "0":
            break
    # Sessions or rooms of a name that never joined (should not be) are shown too.
    names = sorted(set(nodes) | set(sessions) | set(rooms))
    known = dict(zip(nodes, zip(beats, addresses)))
    return {"nodes": [{
        "node": name,
        "alive": known.get(name, (None, None))[0] is not None,
        "draining": name in draining,
        "address": known.get(name, (None, None))[1],
        "sessions": sorted(sessions.get(name, [])),
        "rooms": sorted(rooms.get(name, [])),
    } for name in names]}


def formatCluster(state: dict) -> list[str]:
    """A table of the nodes, then each node's sessions and rooms, one a line."""
    nodes = state["nodes"]
    if not nodes:
        return ["no node has joined this cluster"]
    header = ("NODE", "STATE", "CLIENT ADDRESS", "SESSIONS", "ROOMS")
    rows = [(n["node"], ("alive" if n["alive"] else "dead") + (", draining" if n["draining"]
                                                               else ""),
             n["address"] or "-", str(len(n["sessions"])), str(len(n["rooms"])))
            for n in nodes]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header] + rows]
    for n in nodes:
        for jid in n["sessions"]:
            lines.append("%s session %s" % (n["node"], jid))
        for room in n["rooms"]:
            lines.append("%s room %s" % (n["node"], room))
    return lines


async def drain(redis, node: str, on: bool, timeout: float) -> int:
    """Ask C{node} to drain (or stop), print its answer in one line."""
    from xmppd.admin.control import newToken
    if not await redis.sismember(keys.NODES, node):
        known = sorted(await redis.smembers(keys.NODES))
        raise CtlError("no node %r in this cluster (nodes: %s)" % (
            node, ", ".join(known) if known else "none"))
    if await redis.get(keys.heartbeatKey(node)) is None:
        raise CtlError("node %s is dead (no heartbeat): it has no clients to drain" % (node,))
    token = newToken()
    op = "drain" if on else "undrain"
    listeners = await redis.publish(keys.controlChannel(node),
                                    json.dumps({"op": op, "reply": token}))
    if not int(listeners):
        raise CtlError("node %s does not listen on its control channel (%s)" % (
            node, keys.controlChannel(node)))
    answer = await redis.blpop([keys.replyKey(token)], max(1, int(round(timeout))))
    if not answer:
        raise CtlError("node %s did not answer within %g s" % (node, timeout))
    result = json.loads(answer[1])
    if not result.get("ok"):
        raise CtlError("node %s: %s" % (node, result.get("error", "refused")))
    if on:
        say("%s is draining: %d client stream%s sent to %s (%s); new clients are sent there "
            "too" % (node, result["streams"], "" if result["streams"] == 1 else "s",
                     result["to"], result["address"]))
    else:
        say("%s takes clients again" % (node,))
    return OK

