"""
End to end, a cluster of two real C{twistd} nodes on one redis-server
(issue 14), with slixmpp clients on each node: messages and directed
presence cross nodes, and a message for a user whose node was killed
(SIGKILL) is not lost but stored for them (RFC 6121 §8.5.2.2.1), and
delivered when they log in again on the other node.
"""

from __future__ import annotations

import time

import pytest_twisted

from tests.clusterhelpers import HEARTBEAT, clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep, wait
from tests.test_e2e_muc import Inbox, PLUGINS, createRoom, join, roomJID
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from xmppd.core.rendezvous import choose, salt

ensureDeferred = pytest_twisted.ensureDeferred


def preferredNode(room: str) -> str:
    """The node of a and b that rendezvous hashing prefers for C{room}."""
    return choose(room, [(node, salt(node)) for node in ("a", "b")])


@ensureDeferred
async def test_twoNodes(makeServer, redisServer):
    """Clients on two nodes talk; killing one node loses no message sent to its user."""
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet"))
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        romeo = await a.login("romeo", "orchard")
        juliet = await b.login("juliet", "balcony")

        romeo.send("juliet@localhost/balcony", "But soft!")
        message = await juliet.nextMessage()
        assert message["body"] == "But soft!"
        assert message["from"] == "romeo@localhost/orchard"
        juliet.send("romeo@localhost/orchard", "Ay me!")
        assert (await romeo.nextMessage())["body"] == "Ay me!"
        for i in range(20):
            romeo.send("juliet@localhost/balcony", "line %d" % i)
        assert [(await juliet.nextMessage())["body"] for _ in range(20)] == [
            "line %d" % i for i in range(20)]

        # Directed presence (RFC 6121 §4.6) crosses too.
        arrived = juliet.xmpp.loop.create_future()
        juliet.xmpp.add_event_handler(
            "presence_available",
            lambda p: arrived.done() or arrived.set_result(p))
        romeo.xmpp.send_presence(pto="juliet@localhost/balcony", pstatus="in the orchard")
        presence = await wait(arrived)
        assert presence["from"] == "romeo@localhost/orchard"
        assert presence["status"] == "in the orchard"

        # Node b dies; Romeo writes before anyone noticed.
        await processes[1].kill("KILL")
        romeo.send("juliet@localhost/balcony", "Wherefore art thou?")
        # Node a takes b for dead once its lease is over...
        deadline = time.monotonic() + TIMEOUT
        while redisServer.command("SISMEMBER", "xmppd:c:nodes", "b") != b":0":
            assert time.monotonic() < deadline, "node b was never taken for dead"
            await sleep(0.1)
        # ...and Juliet, back on node a, finds the message stored for her.
        again = a.client("juliet", "garden")
        again.xmpp.register_plugin("xep_0203")
        await again.login()
        again.xmpp.send_presence()
        message = await again.nextMessage()
        assert message["body"] == "Wherefore art thou?"
        assert message["delay"]["from"] == "localhost"
    finally:
        for process in processes:
            await process.kill("TERM")


@ensureDeferred
async def test_roomAcrossNodes(makeServer, redisServer):
    """
    A room is owned by one node (a lease in Redis), the one rendezvous
    hashing prefers even when the room is created from the other; occupants
    on the other node join it and talk in it through the owner, and when
    the owner is killed the room is restored from storage on the other node.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet", "nurse"))
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))

        async def occupant(server, user, resource):
            client = server.client(user, resource)
            for plugin in PLUGINS:
                client.xmpp.register_plugin(plugin)
            client.inbox = Inbox(client)
            await client.login()
            return client
        romeo = await occupant(a, "romeo", "orchard")
        juliet = await occupant(b, "juliet", "balcony")
        room = roomJID("verona")
        # Rendezvous hashing over the live nodes gives this room to a.
        assert preferredNode(room) == "a"
        await createRoom(romeo, room, "romeo", persistentroom="1")
        owner = redisServer.command("GET", "xmppd:lease:room:" + room)
        assert owner.split()[-1] == b"a"

        await join(juliet, room, "juliet")
        assert (await romeo.inbox.presence(room + "/juliet"))["muc"]["role"] == "participant"
        juliet.xmpp.send_message(mto=room, mbody="Good pilgrim", mtype="groupchat")
        assert (await romeo.inbox.message(room + "/juliet", "groupchat"))["body"] == "Good pilgrim"
        romeo.xmpp.send_message(mto=room, mbody="Saints have hands", mtype="groupchat")
        assert (await juliet.inbox.message(room + "/romeo", "groupchat"))["body"] == \
            "Saints have hands"

        # A room that hashing gives to b, created by a client of a: a relays
        # its first stanza to b, which claims it and serves it.
        other = next(roomJID(name) for name in ("padua", "mantua", "milan", "ferrara", "rome")
                     if preferredNode(roomJID(name)) == "b")
        # Node a reads the live nodes at every heartbeat: give it two after
        # b's first, so that it counts b (until then it would claim itself).
        deadline = time.monotonic() + TIMEOUT
        while redisServer.command("EXISTS", "xmppd:c:node:b") != b":1":
            assert time.monotonic() < deadline, "node b never beat"
            await sleep(0.05)
        await sleep(3 * HEARTBEAT)
        await createRoom(romeo, other, "romeo", persistentroom="1")
        assert redisServer.command("GET", "xmppd:lease:room:" + other).split()[-1] == b"b"
        await join(juliet, other, "juliet")
        romeo.xmpp.send_message(mto=other, mbody="Thus from my lips", mtype="groupchat")
        assert (await juliet.inbox.message(other + "/romeo", "groupchat"))["body"] == \
            "Thus from my lips"

        # The owner dies: its lease runs out and node b restores the room
        # from the shared store at the next stanza for it.
        await processes[0].kill("KILL")
        deadline = time.monotonic() + TIMEOUT
        while redisServer.command("EXISTS", "xmppd:lease:room:" + room) != b":0":
            assert time.monotonic() < deadline, "the dead owner's lease never expired"
            await sleep(0.1)
        nurse = await occupant(b, "nurse", "kitchen")
        joined, _, _, _ = await join(nurse, room, "nurse")
        assert 201 not in joined["muc"]["status_codes"], "the room was created afresh"
        assert redisServer.command("GET", "xmppd:lease:room:" + room).split()[-1] == b"b"
    finally:
        for process in processes:
            await process.kill("TERM")
