"""
MUC rooms in a cluster (issue 14, item 6): two MUC services standing for
two nodes share storage and own rooms through leases in a redis-server of
the test's own (L{xmppd.cluster.lease}); a stanza reaching the node that
does not own a room goes to the forwarding hook, a free room is claimed by
the node rendezvous hashing prefers, a room whose owner died is
restored on the other node from storage, and an owner that lost its lease
drops the room.

Leases expire in Redis's real time; each service's renewals run on its own
L{Clock}, so a node that "dies" simply stops renewing.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet.task import Clock, deferLater

from tests.muchelpers import MUC, ROOM, errorCondition, statuses
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from xmppd.cluster.lease import Leases, RoomOwnership
from xmppd.config.redisurl import parseRedisURL
from xmppd.core.stanzas import meta
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.redisclient import connectRedis

ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
PERSISTENT = {"muc#roomconfig_persistentroom": "1"}
#: Long enough for a lease to outlive a test that does not wait for expiry.
LONG = 30.0
SHORT = 0.2
WAIT = 5.0


def reactor():
    from twisted.internet import reactor
    return reactor


async def until(predicate, what: str) -> None:
    """Wait, boundedly, for Redis round trips to be done."""
    deadline = reactor().seconds() + WAIT
    while not predicate():
        assert reactor().seconds() < deadline, "timed out waiting for " + what
        await deferLater(reactor(), 0.01, lambda: None)


class Node:
    """One node's MUC service, owning rooms through its own Redis connection."""

    def __init__(self, name: str, storage, redis, ttl: float):
        self.clock = Clock()
        self.muc = MUC(storage=storage, clock=self.clock)
        self.redis = redis
        self.ownership = RoomOwnership(Leases(redis, name, ttl), self.clock)
        self.forwarded: list = []
        self.muc.service.useOwnership(self.ownership, None)

    def forwardTo(self, other: "Node") -> None:
        """Stand in for the inter-node transport: hand stanzas to C{other}'s service."""

        def forward(stanza, node):
            self.forwarded.append((stanza, node))
            # As the transport's reroute marks it on the other node.
            meta(stanza).clusterRelayed = True
            other.muc.service.deliver(stanza)

        self.muc.service.forward = forward

    async def join(self, jid: str, nick: str):
        self.muc.send("<presence from='%s' to='%s/%s'><x xmlns='http://jabber.org/protocol/"
                      "muc'/></presence>" % (jid, ROOM, nick))
        await until(lambda: self.muc.users.received.get(jid), "presence for " + jid)
        return self.muc.take(jid)

    async def close(self):
        if self.ownership.renewing is not None and self.ownership.renewing.running:
            self.ownership.renewing.stop()
        await self.redis.disconnect()


async def nodes(redisServer, ttl: float = LONG) -> tuple[Node, Node]:
    storage = MemoryStorage()
    url = parseRedisURL(redisServer.url)
    one = Node("n1", storage, await connectRedis(url, reconnect=False), ttl)
    two = Node("n2", storage, await connectRedis(url, reconnect=False), ttl)
    return one, two


async def createRoom(node: Node) -> None:
    got = await node.join(ALICE, "alice")
    assert "201" in statuses([s for s in got if "110" in statuses(s)][0])
    node.muc.configure(ALICE, PERSISTENT)
    node.muc.clear()


@pytest_twisted.ensureDeferred
async def test_stanzaForAnotherNodesRoomIsForwarded(redisServer):
    """A join reaching the node that does not own the room is forwarded to the owner, which seats the user."""
    one, two = await nodes(redisServer)
    try:
        await createRoom(one)
        assert await two.ownership.ownerOf(ROOM) == "n1"
        two.forwardTo(one)
        two.muc.send("<presence from='%s' to='%s/bob'><x xmlns='http://jabber.org/protocol/"
                     "muc'/></presence>" % (BOB, ROOM))
        await until(lambda: one.muc.users.received.get(BOB), "bob's presence")
        assert [node for _, node in two.forwarded] == ["n1"]
        assert "room" not in two.muc.service.rooms
        assert set(one.muc.service.rooms["room"].occupants) >= {"alice", "bob"}
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_withoutForwardingAnswersWait(redisServer):
    """Without an inter-node transport, a stanza for another node's room gets service-unavailable, type wait."""
    one, two = await nodes(redisServer)
    try:
        await createRoom(one)
        two.muc.send("<message type='groupchat' from='%s' to='%s'><body>hi</body></message>"
                     % (BOB, ROOM))
        await until(lambda: two.muc.users.received.get(BOB), "the error")
        [error] = two.muc.take(BOB)
        assert errorCondition(error) == "service-unavailable"
        assert error.error["type"] == "wait"
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_ownerDiesRoomRestoredElsewhere(redisServer):
    """When the owner dies, the room's next stanza on another node restores it there from storage."""
    one, two = await nodes(redisServer, ttl=SHORT)
    try:
        await createRoom(one)
        # n1 dies: it stops renewing; its lease runs out in Redis.
        one.ownership.renewing.stop()
        deadline = reactor().seconds() + WAIT
        while await two.ownership.ownerOf(ROOM) is not None:
            assert reactor().seconds() < deadline
            await deferLater(reactor(), 0.02, lambda: None)
        got = await two.join(BOB, "bob")
        own = [s for s in got if "110" in statuses(s)][0]
        assert "201" not in statuses(own)
        room = two.muc.service.rooms["room"]
        assert room.affiliations == {"alice@example.org": "owner"}
        assert await two.ownership.ownerOf(ROOM) == "n2"
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_ownerThatLostItsLeaseDropsTheRoom(redisServer):
    """Two nodes believing they own a room: the one whose renewal fails drops it and tells its occupants 332."""
    one, two = await nodes(redisServer, ttl=SHORT)
    try:
        await createRoom(one)
        await one.join(BOB, "bob")
        one.muc.clear()
        # n1 pauses (no renewal) long enough for n2 to take the room over.
        one.ownership.renewing.stop()
        one.ownership.renewing = None
        deadline = reactor().seconds() + WAIT
        while await two.ownership.ownerOf(ROOM) is not None:
            assert reactor().seconds() < deadline
            await deferLater(reactor(), 0.02, lambda: None)
        await two.join(ALICE, "alice")
        assert "room" in one.muc.service.rooms and "room" in two.muc.service.rooms
        # n1 wakes up and renews: it finds n2's lease.
        await one.ownership.renewAll()
        assert "room" not in one.muc.service.rooms
        gone = one.muc.take(BOB)
        assert [s.getAttribute("type") for s in gone] == ["unavailable"]
        assert "332" in statuses(gone[0])
        assert await one.ownership.ownerOf(ROOM) == "n2"
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_unloadReleasesTheLease(redisServer):
    """A room that leaves memory on its owner gives its lease up, and a query to no room keeps none."""
    one, two = await nodes(redisServer)
    try:
        await createRoom(one)
        one.muc.send("<presence type='unavailable' from='%s' to='%s/alice'/>" % (ALICE, ROOM))
        one.clock.advance(one.muc.settings.idle_unload)
        assert "room" not in one.muc.service.rooms
        deadline = reactor().seconds() + WAIT
        while await one.ownership.ownerOf(ROOM) is not None:
            assert reactor().seconds() < deadline, "the lease was not released"
            await deferLater(reactor(), 0.02, lambda: None)
        missing = "nobody@" + ROOM.split("@")[1]
        two.muc.send("<message type='groupchat' from='%s' to='%s'><body>hi</body></message>"
                     % (BOB, missing))
        await until(lambda: two.muc.users.received.get(BOB), "the error")
        assert errorCondition(two.muc.take(BOB)[0]) == "item-not-found"
        await until(lambda: not two.ownership.deadlines, "the release")
        assert await two.ownership.ownerOf(missing) is None
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_firstStanzaGoesToThePreferredNode(redisServer):
    """
    A room's first stanza reaching a node that hashing does not prefer is
    sent to the preferred node, which claims the room and creates it; the
    sender's next stanzas follow it there.
    """
    from tests.test_lease import roomPreferredBy
    one, two = await nodes(redisServer)
    try:
        for node in (one, two):
            node.ownership.setNodes(["n1", "n2"])
        one.forwardTo(two)
        room = roomPreferredBy("n2")
        one.muc.send("<presence from='%s' to='%s/alice'><x xmlns='http://jabber.org/protocol/"
                     "muc'/></presence>" % (ALICE, room))
        await until(lambda: two.muc.users.received.get(ALICE), "alice's presence")
        assert "201" in statuses([s for s in two.muc.take(ALICE) if "110" in statuses(s)][0])
        assert [node for _, node in one.forwarded] == ["n2"]
        name = room.split("@")[0]
        assert name not in one.muc.service.rooms and name in two.muc.service.rooms
        assert await one.ownership.ownerOf(room) == "n2"
        one.muc.send("<message type='groupchat' from='%s' to='%s'><body>hi</body></message>"
                     % (ALICE, room))
        await until(lambda: two.muc.users.received.get(ALICE), "the groupchat echo")
        assert [node for _, node in one.forwarded] == ["n2", "n2"]
        # A room hashing gives to n1 stays on n1.
        mine = roomPreferredBy("n1")
        one.muc.send("<presence from='%s' to='%s/bob'><x xmlns='http://jabber.org/protocol/"
                     "muc'/></presence>" % (BOB, mine))
        await until(lambda: one.muc.users.received.get(BOB), "bob's presence")
        assert await two.ownership.ownerOf(mine) == "n1"
        assert len(one.forwarded) == 2
    finally:
        await one.close()
        await two.close()
