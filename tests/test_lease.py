"""
Tests for L{xmppd.cluster.lease}: leases in a redis-server of the test's
own, and MUC room ownership between nodes racing, dying and disagreeing.

Redis expires leases in real time, so the leases here last 200 ms and every
wait for an expiry is bounded; renewals are driven by a L{Clock} where the
test needs a node that has stopped renewing (paused, or dead).
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock, deferLater

from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from xmppd.cluster.lease import LEASE_PREFIX, Leases, RoomOwnership, roomLease
from xmppd.config.redisurl import parseRedisURL
from xmppd.storage.redisclient import connectRedis

TTL = 0.2
ROOM = "lounge@conference.example.org"
#: The longest a lease may take to expire in Redis, with a margin for a busy machine.
EXPIRY_TIMEOUT = 5.0


def reactor():
    from twisted.internet import reactor
    return reactor


async def connect(redisServer):
    return await connectRedis(parseRedisURL(redisServer.url), reconnect=False)


async def untilFree(ownership: RoomOwnership, room: str) -> None:
    """Wait, boundedly, until Redis has let C{room}'s lease expire."""
    deadline = reactor().seconds() + EXPIRY_TIMEOUT
    while await ownership.ownerOf(room) is not None:
        assert reactor().seconds() < deadline, "the lease did not expire"
        await deferLater(reactor(), 0.02, lambda: None)


class Node:
    """One node's view: its Redis connection, its ownership, the rooms it lost."""

    def __init__(self, redis, name: str, clock=None):
        self.redis = redis
        self.lostRooms: list[str] = []
        self.ownership = RoomOwnership(Leases(redis, name, TTL), clock or Clock(),
                                       onLost=self.lostRooms.append)

    async def close(self):
        if self.ownership.renewing is not None and self.ownership.renewing.running:
            self.ownership.renewing.stop()
        await self.redis.disconnect()


@pytest_twisted.ensureDeferred
async def test_leaseBasics(redisServer):
    """A lease is held by one node: others can neither take, renew nor release it until it is given up."""
    redis = await connect(redisServer)
    try:
        a, b = Leases(redis, "n1", TTL), Leases(redis, "n2", TTL)
        assert await a.acquire("x") == "n1"
        assert await b.acquire("x") == "n1"
        assert await a.acquire("x") == "n1"
        assert await redis.get(LEASE_PREFIX + "x") == "n1"
        assert 0 < int(await redis.execute_command("PTTL", LEASE_PREFIX + "x")) <= 200
        assert await b.renew("x") is False
        assert await b.release("x") is False
        assert await a.owner("x") == "n1"
        assert await a.renew("x") is True
        assert await a.release("x") is True
        assert await a.owner("x") is None
        assert await b.acquire("x") == "n2"
    finally:
        await redis.disconnect()


@pytest_twisted.ensureDeferred
async def test_racingNodesOneWins(redisServer):
    """Two nodes claiming the same rooms at the same moment: each room gets exactly one owner."""
    one, two = Node(await connect(redisServer), "n1"), Node(await connect(redisServer), "n2")
    try:
        rooms = ["room%d@conference.example.org" % i for i in range(20)]
        claims = []
        for room in rooms:
            claims += [one.ownership.claim(room), two.ownership.claim(room)]
        results = await defer.gatherResults(claims)
        for i, room in enumerate(rooms):
            first, second = results[2 * i], results[2 * i + 1]
            assert first == second in ("n1", "n2")
            assert one.ownership.owns(room) != two.ownership.owns(room)
            assert await one.ownership.ownerOf(room) == first
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_ownerDiesOtherClaimsAfterTTL(redisServer):
    """When the owner stops renewing (it died), another node claims the room once the lease expired."""
    dead = Node(await connect(redisServer), "n1")  # its Clock never moves: no renewal
    other = Node(await connect(redisServer), "n2")
    try:
        assert await dead.ownership.claim(ROOM) == "n1"
        assert await other.ownership.claim(ROOM) == "n1"
        assert not other.ownership.owns(ROOM)
        await untilFree(other.ownership, ROOM)
        assert await other.ownership.claim(ROOM) == "n2"
        assert other.ownership.owns(ROOM)
    finally:
        await dead.close()
        await other.close()


@pytest_twisted.ensureDeferred
async def test_renewalKeepsTheRoom(redisServer):
    """An owner that keeps renewing keeps its room well past the lease time."""
    owner = Node(await connect(redisServer), "n1", clock=reactor())
    other = Node(await connect(redisServer), "n2")
    try:
        assert await owner.ownership.claim(ROOM) == "n1"
        await deferLater(reactor(), 3 * TTL, lambda: None)
        assert await other.ownership.claim(ROOM) == "n1"
        assert owner.ownership.owns(ROOM)
        assert owner.lostRooms == []
    finally:
        await owner.close()
        await other.close()


@pytest_twisted.ensureDeferred
async def test_bothBelieveTheyOwnResolvedByTheLease(redisServer):
    """A paused owner whose lease passed to another node finds out at its next renewal and drops the room."""
    paused = Node(await connect(redisServer), "n1")
    other = Node(await connect(redisServer), "n2")
    try:
        assert await paused.ownership.claim(ROOM) == "n1"
        await untilFree(other.ownership, ROOM)
        assert await other.ownership.claim(ROOM) == "n2"
        # Both believe it: the paused node's own clock has not moved.
        assert paused.ownership.owns(ROOM) and other.ownership.owns(ROOM)
        paused.ownership.clock.advance(paused.ownership.renewEvery)
        await deferLater(reactor(), 0, lambda: None)
        for _ in range(100):
            if paused.lostRooms:
                break
            await deferLater(reactor(), 0.01, lambda: None)
        assert paused.lostRooms == [ROOM]
        assert not paused.ownership.owns(ROOM)
        assert await other.ownership.ownerOf(ROOM) == "n2"
        # It does not touch the other's lease either.
        assert await paused.ownership.release(ROOM) is False
        assert await other.ownership.ownerOf(ROOM) == "n2"
    finally:
        await paused.close()
        await other.close()


@pytest_twisted.ensureDeferred
async def test_ownerStopsActingAtItsDeadline(redisServer):
    """An owner that cannot reach Redis stops acting as owner once its lease may have expired."""
    node = Node(await connect(redisServer), "n1")
    try:
        assert await node.ownership.claim(ROOM) == "n1"
        redisServer.kill()
        node.ownership.clock.advance(TTL / 2)
        assert node.ownership.owns(ROOM)
        await node.ownership.renewAll()
        assert node.lostRooms == []
        node.ownership.clock.advance(TTL / 2)
        assert not node.ownership.owns(ROOM)
        await node.ownership.renewAll()
        assert node.lostRooms == [ROOM]
    finally:
        await node.close()


@pytest_twisted.ensureDeferred
async def test_stopReleases(redisServer):
    """A node that stops cleanly gives its rooms up, so another takes them at once."""
    one = Node(await connect(redisServer), "n1")
    two = Node(await connect(redisServer), "n2")
    try:
        assert await one.ownership.claim(ROOM) == "n1"
        await one.ownership.stop()
        assert await two.ownership.claim(ROOM) == "n2"
        assert roomLease(ROOM) == "room:" + ROOM
        assert await two.redis.get("xmppd:lease:room:" + ROOM) == "n2"
    finally:
        await one.close()
        await two.close()


def roomPreferredBy(node: str, nodes=("n1", "n2")) -> str:
    """A room name that rendezvous hashing over C{nodes} gives to C{node}."""
    from xmppd.core.rendezvous import choose, salt
    candidates = [(n, salt(n)) for n in nodes]
    for i in range(1000):
        room = "room%d@conference.example.org" % (i,)
        if choose(room, candidates) == node:
            return room
    raise AssertionError("no room for " + node)


@pytest_twisted.ensureDeferred
async def test_preferredNodeClaimsOthersPointToIt(redisServer):
    """
    A free room is taken by its preferred node only: another node's claim
    leaves it free and answers the preferred node, where the stanza goes.
    """
    one = Node(await connect(redisServer), "n1")
    two = Node(await connect(redisServer), "n2")
    try:
        room = roomPreferredBy("n2")
        for node in (one, two):
            node.ownership.setNodes(["n1", "n2"])
            assert node.ownership.preferred(room) == "n2"
        assert await one.ownership.claim(room) == "n2"
        assert await one.ownership.ownerOf(room) is None
        assert not one.ownership.owns(room)
        assert await two.ownership.claim(room) == "n2"
        assert two.ownership.owns(room)
        # Held: every node is sent to the holder, the hashing aside.
        assert await one.ownership.claim(room) == "n2"
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_relayedStanzaClaimsWhereItArrives(redisServer):
    """
    A node that was sent a stanza claims the room even if it would prefer
    another (views of the live nodes may differ for a moment): a stanza
    never goes back and forth.
    """
    one = Node(await connect(redisServer), "n1")
    two = Node(await connect(redisServer), "n2")
    try:
        room = roomPreferredBy("n1")
        two.ownership.setNodes(["n1", "n2"])
        assert await two.ownership.claim(room, relayed=True) == "n2"
        assert two.ownership.owns(room)
        # The lease decides, not the hashing: n1 is sent to n2.
        one.ownership.setNodes(["n1", "n2"])
        assert await one.ownership.claim(room) == "n2"
        assert not one.ownership.owns(room)
    finally:
        await one.close()
        await two.close()


@pytest_twisted.ensureDeferred
async def test_nextInRankWhenPreferredNodeLeaves(redisServer):
    """
    A dead or draining node is no candidate: its rooms go to the next in
    rank, and only its rooms move (rendezvous hashing); with no candidates
    known, a node claims rooms itself.
    """
    one = Node(await connect(redisServer), "n1")
    try:
        nodes = ["n1", "n2", "n3"]
        rooms = ["r%d@conference.example.org" % (i,) for i in range(60)]
        one.ownership.setNodes(nodes)
        before = {room: one.ownership.preferred(room) for room in rooms}
        assert set(before.values()) == set(nodes)
        one.ownership.setNodes(["n1", "n3"])
        after = {room: one.ownership.preferred(room) for room in rooms}
        for room in rooms:
            if before[room] != "n2":
                assert after[room] == before[room]
            else:
                assert after[room] in ("n1", "n3")
        room = roomPreferredBy("n2")
        one.ownership.setNodes(["n1"])
        assert await one.ownership.claim(room) == "n1"
        fresh = Node(one.redis, "n1")
        assert fresh.ownership.preferred(room) == "n1"
    finally:
        await one.close()
