# -*- test-case-name: tests.test_lease -*-
"""
Leases in Redis: one node at a time holds a name, for a time it must keep
renewing (issue 14, item 6: "each room is owned by one node at a time
through a lease in Redis").

A lease is the key C{xmppd:lease:<name>} whose value is the holder's node
name and whose expiry is the lease's end.  Taking one is C{SET key node NX
PX ttl}; renewing and releasing compare the value with our node name
first, in a Lua script, so a node can never extend or delete a lease that
expired and was taken by another: the one whose renewal fails knows it has
lost the name.  Redis's expiry is in Redis's time; a holder therefore stops
acting as holder at I{its own} deadline, counted from the moment it sent
the request that set the lease (L{RoomOwnership.owns}), which is never
later than Redis's.  (Clocks running at very different rates are outside
this model, as for every lease.)

L{RoomOwnership} keeps the leases of the MUC rooms loaded on one node,
C{xmppd:lease:room:<room bare JID>}: L{RoomOwnership.claim} before a room
is loaded (only by the room's preferred node, see below), a renewal of all of them every third of the lease time while
they stay loaded, L{RoomOwnership.release} when one is unloaded, and word
(C{onLost}) when a renewal finds that another node holds a room now.  How
a MUC service uses it is described in L{muc.service}.

Which node tries first: a free room is taken by its I{preferred} node, the
one that rendezvous hashing of the room's bare JID over the live, not
draining nodes picks (L{xmppd.core.rendezvous}; the cluster service tells
L{RoomOwnership.setNodes} what its heartbeat read finds), so rooms spread
over the nodes instead of going to whichever node got a room's first
stanza.  Another node that gets a stanza for a free room hands it to the
preferred node (L{RoomOwnership.claim} answers that node), which takes the
lease when the stanza arrives relayed.  A dead or draining node is not a
candidate, so the next in rank takes its part.  The hashing only decides
who tries: the lease alone says who serves, so nodes whose views of the
live set differ for a moment still never serve one room twice, and a
relayed stanza is always claimed where it arrives (never relayed again),
so it cannot go back and forth.  A node that joins takes no room away from
its holder: it becomes preferred for about 1/N of the rooms, and gets each
of them only once the room is free again (unloaded when idle, or its
holder dead), so nothing moves under its occupants.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppd.core.rendezvous import choose, salt
from xmppd.storage.redisclient import logFailure

#: Every lease key starts with this (the cluster's keys are under "xmppd:").
LEASE_PREFIX = "xmppd:lease:"

#: Take the lease if free (unless ARGV[3] is '0': then only look), extend it
#: if ours; answer its holder either way, false when free and not taken.
#: (C{SET NX PX}, or C{PEXPIRE} when the value is ours, in one round trip.)
ACQUIRE = """
local owner = redis.call('GET', KEYS[1])
if not owner then
  if ARGV[3] == '0' then return false end
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
"""

#: Extend the lease only while it is still ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Delete the lease only while it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """
    The leases of one node (C{node}, unique in the cluster) in one Redis
    (a txredisapi connection, L{xmppd.storage.redisclient.connectRedis}),
    each lasting C{ttl} seconds from its last renewal.  Every method
    returns a Deferred; a Redis error fails it.
    """

    def __init__(self, redis, node: str, ttl: float):
        if ttl <= 0:
            raise ValueError("a lease must last some time")
        self.redis = redis
        self.node = node
        self.ttl = ttl
        self.ttlMilliseconds = str(max(1, int(ttl * 1000)))

    def key(self, name: str) -> str:
        return LEASE_PREFIX + name

    def acquire(self, name: str, take: bool = True) -> defer.Deferred:
        """
        Take lease C{name} if nobody holds it (only if C{take}), or extend
        it if we do; fires with its holder afterwards (our node name when it
        is ours), C{None} when it is free and C{take} is false.
        """
        return self.redis.eval(ACQUIRE, [self.key(name)],
                               [self.node, self.ttlMilliseconds, "1" if take else "0"])

    def renew(self, name: str) -> defer.Deferred:
        """Extend lease C{name} if it is still ours; fires with whether it was."""
        d = self.redis.eval(RENEW, [self.key(name)], [self.node, self.ttlMilliseconds])
        return d.addCallback(lambda n: int(n) == 1)

    def release(self, name: str) -> defer.Deferred:
        """Give lease C{name} up if it is ours; fires with whether it was."""
        d = self.redis.eval(RELEASE, [self.key(name)], [self.node])
        return d.addCallback(lambda n: int(n) == 1)

    def owner(self, name: str) -> defer.Deferred:
        """The node holding lease C{name}, or C{None}."""
        return self.redis.get(self.key(name))


def roomLease(room: str) -> str:
    """The lease name of a room (its bare JID, as a string)."""
    return "room:" + room


class RoomOwnership:
    """
    Which MUC rooms this node owns, through L{Leases}: see the module
    docstring.  Rooms are bare JIDs as strings.  C{onLost(room)} is called
    when a renewal finds another holder, or when a room's lease could not be
    renewed before its deadline: the caller must then drop the room from
    memory without saving it (its state is the new owner's now).
    """

    log = Logger()

    def __init__(self, leases: Leases, clock, onLost: Callable[[str], None] | None = None,
                 renewEvery: float | None = None):
        self.leases = leases
        self.clock = clock
        self.onLost = onLost
        self.renewEvery = renewEvery if renewEvery is not None else leases.ttl / 3
        #: Room -> clock time until which this node may act as its owner.
        self.deadlines: dict[str, float] = {}
        self.renewing: task.LoopingCall | None = None
        #: The live, not draining nodes as rendezvous candidates (L{setNodes});
        #: C{None} until known: this node then claims rooms itself.
        self.candidates: list[tuple[str, bytes]] | None = None
        self._salts: dict[str, bytes] = {}

    @property
    def node(self) -> str:
        return self.leases.node

    def owns(self, room: str) -> bool:
        """Whether this node may act as C{room}'s owner now (no Redis round trip)."""
        deadline = self.deadlines.get(room)
        return deadline is not None and self.clock.seconds() < deadline

    def setNodes(self, nodes) -> None:
        """The names of the live, not draining nodes (the cluster's heartbeat read)."""
        salts = self._salts
        candidates = []
        for node in sorted(set(nodes)):
            nodeSalt = salts.get(node)
            if nodeSalt is None:
                nodeSalt = salts[node] = salt(node)
            candidates.append((node, nodeSalt))
        self.candidates = candidates

    def preferred(self, room: str) -> str:
        """
        The node that should own C{room}: rendezvous hashing of its bare
        JID over the candidates, this node while none are known.
        """
        if not self.candidates:
            return self.node
        return choose(room, self.candidates)

    def ownerOf(self, room: str) -> defer.Deferred:
        """The node that owns C{room} now according to Redis, or C{None}."""
        return self.leases.owner(roomLease(room))

    @defer.inlineCallbacks
    def claim(self, room: str, relayed: bool = False):
        """
        Own C{room} if no other node does (or keep owning it) and this node
        is its preferred node, or C{relayed} (another node sent the stanza
        here to be served: see the module docstring); fires with the node
        to serve the room afterwards: this node's name when the claim
        succeeded, else its owner, else (free, and not ours to take) the
        preferred node.  A room claimed is renewed until L{release}d or
        lost.
        """
        sent = self.clock.seconds()
        preferred = self.preferred(room)
        take = relayed or preferred == self.node
        owner = yield self.leases.acquire(roomLease(room), take)
        if owner is None:
            owner = preferred
            if room in self.deadlines:
                self.lost(room)
        elif owner == self.node:
            self.deadlines[room] = sent + self.leases.ttl
            self.startRenewing()
        elif room in self.deadlines:
            self.lost(room)
        return owner

    @defer.inlineCallbacks
    def release(self, room: str):
        """The room left memory: give its lease up so another node may take it at once."""
        if self.deadlines.pop(room, None) is None:
            return False
        try:
            released = yield self.leases.release(roomLease(room))
        except Exception as e:
            # The lease then simply expires; another node waits that long.
            self.log.warn("Room {room}: releasing its lease failed: {error}", room=room, error=e)
            return False
        return released

    def lost(self, room: str) -> None:
        if self.deadlines.pop(room, None) is None:
            return
        self.log.warn("Room {room}: this node no longer owns it", room=room)
        if self.onLost is not None:
            try:
                self.onLost(room)
            except Exception:
                self.log.failure("Room {room}: dropping it failed", room=room)

    @defer.inlineCallbacks
    def renewAll(self):
        """Renew every owned room's lease once; rooms whose renewal fails are lost."""
        rooms = list(self.deadlines)
        if not rooms:
            return
        sent = self.clock.seconds()
        results = yield defer.DeferredList(
            [self.leases.renew(roomLease(room)) for room in rooms], consumeErrors=True)
        for room, (ok, result) in zip(rooms, results):
            if room not in self.deadlines:
                continue  # Released meanwhile.
            if ok and result:
                self.deadlines[room] = sent + self.leases.ttl
            elif ok:
                self.lost(room)
            else:
                self.log.warn("Room {room}: renewing its lease failed: {error}",
                              room=room, error=result.getErrorMessage())
                if self.clock.seconds() >= self.deadlines[room]:
                    self.lost(room)

    def startRenewing(self) -> None:
        if self.renewing is None:
            self.renewing = task.LoopingCall(self._renewRound)
            self.renewing.clock = self.clock
            self.renewing.start(self.renewEvery, now=False)

    def _renewRound(self):
        # A failing round must not stop the loop (LoopingCall stops on an error).
        return self.renewAll().addErrback(
            lambda f: logFailure(self.log, f, "Renewing room leases"))

    @defer.inlineCallbacks
    def stop(self):
        """Stop renewing and give every lease up (a node stopping cleanly)."""
        if self.renewing is not None and self.renewing.running:
            self.renewing.stop()
        self.renewing = None
        rooms, self.deadlines = list(self.deadlines), {}
        yield defer.DeferredList([self.leases.release(roomLease(room)) for room in rooms],
                                 consumeErrors=True)
