"""
End to end, a cluster of two real C{twistd} nodes on one redis-server
(issue 14), with slixmpp clients on each node: messages and directed
presence cross nodes, and a message for a user whose node was killed
(SIGKILL) is not lost but stored for them (RFC 6121 §8.5.2.2.1), and
delivered when they log in again on the other node.
"""

from __future__ import annotations

import asyncio
import time

import pytest_twisted
from slixmpp.xmlstream.handler import Callback
from slixmpp.plugins.xep_0198.stanza import RequestAck
from slixmpp.xmlstream.matcher import MatchXPath

from tests.clusterhelpers import HEARTBEAT, clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep, wait
from tests.offlinehelpers import _enabled, acknowledged
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


#: Who chats with whom in L{test_nodeKilledMidTraffic}: Romeo and Mercutio
#: log in on node a (which lives), Juliet and the Nurse on node b (which is
#: killed).  No pair has both ends on b (see the test's docstring).
FLOWS = (("romeo", "juliet"), ("juliet", "romeo"), ("mercutio", "nurse"),
         ("nurse", "mercutio"), ("romeo", "mercutio"), ("mercutio", "romeo"),
         ("juliet", "mercutio"), ("nurse", "romeo"))
#: Rounds of traffic (one message per flow each) before and after the kill,
#: one round every L{ROUND} seconds: a few seconds in all.
ROUNDS_BEFORE, ROUNDS_AFTER, ROUND = 60, 20, 0.02
#: How late Juliet, a lazy client, acknowledges (L{Chatter.login}).
LAZY = 0.3


class Chatter:
    """
    One user's side of L{test_nodeKilledMidTraffic}: the ids of the test's
    messages it received (live, or from offline storage at a new login, on
    any of its clients), and the ids of those it sent that the server
    acknowledged (XEP-0198 C{stanza_acked}), by recipient.
    """

    def __init__(self, name: str, server):
        self.name = name
        self.received: set[str] = set()
        self.acked: dict[str, set[str]] = {}
        self.removed: set[str] = set()
        self.client = None
        self.server = server

    async def login(self, server, lazy: bool = False):
        """
        A client on C{server} with stream management and MUC; available.
        A C{lazy} one answers the server's C{<r/>} L{LAZY} seconds late
        (XEP-0198 sets no time), as a client on a slow link may: its node
        may die with stanzas it received and had not acknowledged.
        """
        client = server.client(self.name, "r")
        for plugin in PLUGINS + ("xep_0198", "xep_0199"):
            client.xmpp.register_plugin(plugin)
        if lazy:
            sm = client.xmpp.plugin["xep_0198"]
            loop = asyncio.get_running_loop()
            late = []

            def answerLate(request) -> None:
                if not late or late[-1].cancelled() or late[-1].when() < loop.time():
                    late[:] = [loop.call_later(LAZY, sm.send_ack)]
            client.xmpp.remove_handler("Stream Management Request Ack")
            client.xmpp.register_handler(Callback(
                "Stream Management Request Ack", MatchXPath(RequestAck.tag_name()),
                answerLate, instream=True))
        client.inbox = Inbox(client)
        client.xmpp.add_event_handler("message", self.onMessage)
        client.xmpp.add_event_handler("stanza_acked", self.onAcked)
        # Not slixmpp's presence events: its MUC plugin silences them for occupants.
        client.xmpp.register_handler(Callback(
            "test presence", MatchXPath("{jabber:client}presence"), self.onPresence))
        await client.login()
        await wait(_enabled(client.xmpp))
        client.xmpp.send_presence()
        self.client = client
        return client

    def onMessage(self, message) -> None:
        if message["id"].startswith("t-") and message["type"] == "chat":
            self.received.add(message["id"])

    def onAcked(self, stanza) -> None:
        if stanza.name == "message" and stanza["id"].startswith("t-"):
            self.acked.setdefault(stanza["to"].user, set()).add(stanza["id"])

    def onPresence(self, presence) -> None:
        if presence["type"] == "unavailable" and 333 in presence["muc"]["status_codes"]:
            self.removed.add(presence["from"].resource)

    def send(self, to: str, number: int) -> None:
        message = self.client.xmpp.make_message(
            mto="%s@localhost/r" % to, mbody="%s to %s, %d" % (self.name, to, number),
            mtype="chat")
        message["id"] = "t-%s-%s-%d" % (self.name, to, number)
        message.send()


@ensureDeferred
async def test_nodeKilledMidTraffic(makeServer, redisServer):
    """
    Issue 14, item 9: clients on two nodes chat with stream management
    (XEP-0198) and sit in a room of the in-process MUC service; node b is
    killed (SIGKILL) in the middle of the traffic.  Its clients log in
    again on node a (the test points them there: slixmpp 1.17 does not
    follow see-other-host by itself), and every message a sender saw
    acknowledged reaches its recipient, live or from offline storage at the
    new login (counted by id: one the client received and had not
    acknowledged when b died may come twice), and the room, owned by a,
    goes on: a message to it after the kill reaches the occupant on a and
    the ones that joined again.

    The pairs are across nodes or on node a.  Two clients of the same
    killed node are the lone-server crash case: a message between them
    that b acknowledged, handed to the recipient's stream and kept in b's
    memory for stream management, dies with b (as it would with a lone
    server; test_fault_offline is what a lone node promises).
    """
    names = ("romeo", "mercutio", "juliet", "nurse")
    a = await clusterServer(makeServer, redisServer, "a", users=names)
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        chatters = {name: Chatter(name, a if name in ("romeo", "mercutio") else b)
                    for name in names}
        for chatter in chatters.values():
            await chatter.login(chatter.server, lazy=chatter.name == "juliet")
        room = roomJID("verona")
        romeo = chatters["romeo"].client
        await createRoom(romeo, room, "romeo", persistentroom="1")
        assert redisServer.command("GET", "xmppd:lease:room:" + room).split()[-1] == b"a"
        for name in names[1:]:
            await join(chatters[name].client, room, name)

        # Traffic; node b dies in the middle of it, and the clients on a
        # go on writing (to b's users too) for a while.
        killed = None
        for number in range(ROUNDS_BEFORE + ROUNDS_AFTER):
            for sender, recipient in FLOWS:
                if killed is None or chatters[sender].server is a:
                    chatters[sender].send(recipient, number)
            if number % 10 == 0:
                romeo.xmpp.send_message(mto=room, mbody="round %d" % number,
                                        mtype="groupchat")
            if number == ROUNDS_BEFORE:
                # While b handles this round's messages.
                killed = processes[1].kill("KILL")
            await sleep(ROUND)
        await killed
        for name in ("romeo", "mercutio"):
            await acknowledged(chatters[name].client)
        assert sum(len(ids) for chatter in chatters.values()
                   for ids in chatter.acked.values()) > len(FLOWS) * ROUNDS_BEFORE // 2

        # Node a takes b for dead; the room drops b's occupants when its
        # messages to them bounce (XEP-0045 §11.1, status 333).
        deadline = time.monotonic() + TIMEOUT
        while redisServer.command("SISMEMBER", "xmppd:c:nodes", "b") != b":0":
            assert time.monotonic() < deadline, "node b was never taken for dead"
            await sleep(0.05)
        romeo.xmpp.send_message(mto=room, mbody="who is there?", mtype="groupchat")
        while chatters["romeo"].removed != {"juliet", "nurse"}:
            assert time.monotonic() < deadline, "b's occupants are still in the room"
            await sleep(0.05)

        # b's users log in again, on a, and join the room again.
        for name in ("juliet", "nurse"):
            await chatters[name].login(a)
            await join(chatters[name].client, room, name)

        # Every acknowledged message arrived.
        def missing():
            return {sender: {recipient: sorted(ids - chatters[recipient].received)[:5]
                             for recipient, ids in chatter.acked.items()
                             if ids - chatters[recipient].received}
                    for sender, chatter in chatters.items()
                    if any(ids - chatters[recipient].received
                           for recipient, ids in chatter.acked.items())}
        deadline = time.monotonic() + TIMEOUT
        while missing() and time.monotonic() < deadline:
            await sleep(0.05)
        assert missing() == {}

        # The room goes on, for the occupant on a and those who came back.
        chatters["mercutio"].client.xmpp.send_message(
            mto=room, mbody="A plague o' both your houses", mtype="groupchat")
        for name in ("romeo", "juliet", "nurse"):
            message = await chatters[name].client.inbox.next(
                lambda s: s.name == "message" and s["type"] == "groupchat"
                and s["body"] == "A plague o' both your houses")
            assert message["from"] == room + "/mercutio"
    finally:
        for process in processes:
            await process.kill("TERM")
