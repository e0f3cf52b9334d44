"""
Tests for L{xmppd.components.balance}: rendezvous hashing of bare JIDs over
component instances, and a node's component service sharing one domain's
stanzas among several connections (C{components.balance}), driven over
L{StringTransport}s as components would see it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.helpers import parse
from tests.test_components import (COMPONENT, SECRET, Component, Harness, assertStreamError,
                                   stanzaError)
from xmppd.components.balance import NS_INSTANCE, BalancedRoute, choose, instanceSalt
from xmppd.components.server import handshakeDigest
from xmppd.config import ConfigError
from xmppd.stream.base import NS_COMPONENT

ROOMS = ["room%d@%s" % (i, COMPONENT) for i in range(1000)]


def instances(*names: str) -> list[tuple[str, bytes]]:
    return [(name, instanceSalt(name)) for name in names]


def assignment(names) -> dict[str, str]:
    pool = instances(*names)
    return {room: choose(room, pool) for room in ROOMS}


# -- the hashing ---------------------------------------------------------------


def test_choiceIsStable():
    """A room goes to the same instance whatever the order the instances connected in."""
    forward = assignment(["muc-a", "muc-b", "muc-c"])
    backward = assignment(["muc-c", "muc-b", "muc-a"])
    assert forward == backward
    assert choose("room1@" + COMPONENT, instances()) is None


def test_evenSpread():
    """1000 rooms over 4 instances: each gets its quarter within 20 %."""
    counts = Counter(assignment(["muc-a", "muc-b", "muc-c", "muc-d"]).values())
    assert set(counts) == {"muc-a", "muc-b", "muc-c", "muc-d"}
    for count in counts.values():
        assert 200 <= count <= 300, counts


def test_leavingMovesOnlyItsRooms():
    """When an instance leaves, only its rooms move, and they spread over the others."""
    before = assignment(["muc-a", "muc-b", "muc-c"])
    after = assignment(["muc-a", "muc-c"])
    for room in ROOMS:
        if before[room] != "muc-b":
            assert after[room] == before[room]
    moved = Counter(after[room] for room in ROOMS if before[room] == "muc-b")
    assert set(moved) == {"muc-a", "muc-c"}


def test_joiningTakesAboutOneNth():
    """A fourth instance takes about a quarter of the rooms, and only rooms it now serves move."""
    before = assignment(["muc-a", "muc-b", "muc-c"])
    after = assignment(["muc-a", "muc-b", "muc-c", "muc-d"])
    moved = [room for room in ROOMS if before[room] != after[room]]
    assert all(after[room] == "muc-d" for room in moved)
    assert 200 <= len(moved) <= 300


def test_routeOverStreams():
    """The route gives a room's every stanza, to the room or an occupant, to one stream."""

    class Stream:
        def __init__(self):
            self.stanzas = []

        def deliver(self, stanza):
            self.stanzas.append(stanza)

    route = BalancedRoute(COMPONENT)
    a, b = Stream(), Stream()
    route.add("muc-a", a)
    route.add("muc-b", b)
    for i in range(40):
        room = "room%d@%s" % (i, COMPONENT)
        for to in (room, room + "/romeo", room + "/juliet"):
            route.deliver(parse("<message to='%s'/>" % (to,)))
        [receiver] = [s for s in (a, b) if s.stanzas and s.stanzas[-1]["to"].startswith(room)]
        assert [s["to"] for s in receiver.stanzas[-3:]] == [room, room + "/romeo",
                                                           room + "/juliet"]
    assert a.stanzas and b.stanzas
    assert len(a.stanzas) + len(b.stanzas) == 120


# -- the service -----------------------------------------------------------------


class Instance(Component):
    """A component connection that names its instance in its header."""

    def start(self, to: str = COMPONENT, instance: str | None = None):
        attributes = "" if instance is None else (
            " xmlns:xi='%s' xi:instance='%s'" % (NS_INSTANCE, instance))
        reply = self.exchange(
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
            "streams' xmlns='%s' to='%s'%s>" % (NS_COMPONENT, to, attributes))
        self.streamId = reply.header and reply.header.get("id")
        return reply

    def loginAs(self, instance: str | None) -> "Instance":
        self.start(instance=instance)
        reply = self.exchange("<handshake>%s</handshake>"
                              % handshakeDigest(self.streamId, SECRET))
        assert reply.names == ["handshake"], reply
        return self


def connect(harness: Harness, instance: str | None) -> Instance:
    component = harness.connect()
    return Instance(component.stream, component.transport).loginAs(instance)


@pytest.fixture
def balanced(tmp_path):
    return Harness(tmp_path, {"balance": [COMPONENT]})


def sendToRooms(harness: Harness, count: int = 30) -> None:
    for i in range(count):
        room = "room%d@%s" % (i, COMPONENT)
        harness.router.route(parse(
            "<presence from='juliet@example.org/b' to='%s/juliet'/>" % (room,)))
        harness.router.route(parse(
            "<message from='juliet@example.org/b' to='%s' type='groupchat'/>" % (room,)))


def rooms(component: Instance) -> set[str]:
    """The rooms whose stanzas reached C{component}, each a presence then a message."""
    stanzas = component.received().elements
    return {s["to"].split("/")[0] for s in stanzas}


def test_severalConnectionsShareTheRooms(balanced):
    """Two instances of a balanced domain both stay connected, and each room's stanzas all reach one."""
    a = connect(balanced, "muc-a")
    b = connect(balanced, "muc-b")
    sendToRooms(balanced)
    roomsA, roomsB = rooms(a), rooms(b)
    assert roomsA and roomsB
    assert not roomsA & roomsB
    assert len(roomsA | roomsB) == 30
    expected = {"room%d@%s" % (i, COMPONENT) for i in range(30)
                if choose("room%d@%s" % (i, COMPONENT), instances("muc-a", "muc-b")) == "muc-a"}
    assert roomsA == expected
    assert len(balanced.service.connections()) == 2


def test_disconnectMovesItsRoomsToTheOthers(balanced):
    """When one instance disconnects, the stanzas of its rooms go to the one left."""
    a = connect(balanced, "muc-a")
    b = connect(balanced, "muc-b")
    sendToRooms(balanced)
    roomsA, roomsB = rooms(a), rooms(b)
    assert roomsA and roomsB
    b.disconnect()
    sendToRooms(balanced)
    assert rooms(a) == roomsA | roomsB
    assert balanced.local.stanzas == []
    a.disconnect()
    balanced.router.route(parse("<message from='juliet@example.org/b' to='room1@%s'/>"
                                % (COMPONENT,)))
    [error] = balanced.local.stanzas
    assert stanzaError(error) == ("wait", "service-unavailable")


def test_sameInstanceReplacesItsOldConnection(balanced):
    """A restarted instance, connecting before its old connection timed out, replaces it."""
    old = connect(balanced, "muc-a")
    other = connect(balanced, "muc-b")
    new = connect(balanced, "muc-a")
    assertStreamError(old, old.received(), "conflict")
    sendToRooms(balanced)
    assert rooms(old) == set()
    assert len(rooms(new) | rooms(other)) == 30
    assert len(balanced.service.connections()) == 2


def test_unnamedInstancesAreBalancedToo(balanced):
    """Components that give no instance name are still kept side by side and balanced."""
    a = connect(balanced, None)
    b = connect(balanced, None)
    sendToRooms(balanced)
    assert rooms(a) and rooms(b)


def test_domainStanzasGoToOne(balanced):
    """Stanzas to the component's own domain (disco) go to exactly one instance."""
    a = connect(balanced, "muc-a")
    b = connect(balanced, "muc-b")
    for i in range(5):
        balanced.router.route(parse(
            "<iq type='get' id='d%d' from='juliet@example.org/b' to='%s'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (i, COMPONENT)))
    counts = sorted([len(a.received().elements), len(b.received().elements)])
    assert counts == [0, 5]


def test_notBalancedStillConflicts(harness):
    """Without components.balance, a second connection still replaces the first."""
    first = connect(harness, "muc-a")
    connect(harness, "muc-b")
    assertStreamError(first, first.received(), "conflict")


def test_balanceNeedsASecret(tmp_path):
    """A balanced domain without a secret is a configuration error naming the key."""
    with pytest.raises(ConfigError, match="components.balance: .*no secret"):
        Harness(tmp_path, {"balance": ["other.example.org"]})


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


def test_stanzaReachingAClosingConnectionGoesToAnother(balanced):
    """A stanza that reaches an instance's connection as it closes is given to one still connected."""
    a = connect(balanced, "muc-a")
    b = connect(balanced, "muc-b")
    b.stream.streamError("system-shutdown")
    b.received()
    b.stream.deliver(parse("<message from='juliet@example.org/b' to='room1@%s'/>"
                           % (COMPONENT,)))
    assert rooms(a) == {"room1@" + COMPONENT}
    assert b.received().data == b""
    assert balanced.local.stanzas == []
