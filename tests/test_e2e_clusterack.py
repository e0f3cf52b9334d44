"""
End to end (issue 14, items 4 and 9): Redis goes away for a moment and
comes back (SIGKILL, then started again on its append-only file) while a
slixmpp client on node A sends a stream of messages under stream
management (XEP-0198, slixmpp's C{xep_0198}) to a client on node B, two
real C{twistd} nodes.  What the sender saw acknowledged reached B; a
message refused with an error was never acknowledged before its error; the
rest was held until Redis came back, then acknowledged and delivered.
And when the sender's node is killed while Redis is away, nothing it
forwarded meanwhile had been acknowledged (it never reached Redis).
"""

from __future__ import annotations

import asyncio

import pytest_twisted

from tests.clusterhelpers import clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep
from tests.offlinehelpers import acknowledged, asDeferred, useStreamManagement
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)

ensureDeferred = pytest_twisted.ensureDeferred

#: Messages sent, one every L{PACE} seconds; Redis is killed before the
#: one numbered L{DOWN} and started again before L{UP}.
COUNT = 60
PACE = 0.03
DOWN, UP = 20, 40


class Ledger:
    """What the sender's slixmpp saw, in the order it saw it."""

    def __init__(self, xmpp):
        self.events: list[tuple[str, str]] = []
        xmpp.add_event_handler("stanza_acked", self.onAcked)
        xmpp.add_event_handler("message_error", self.onError)

    def onAcked(self, stanza) -> None:
        if stanza.name == "message" and stanza["id"]:
            self.events.append(("acked", stanza["id"]))

    def onError(self, message) -> None:
        self.events.append(("error", message["id"]))

    def ids(self, kind: str) -> list[str]:
        return [i for k, i in self.events if k == kind]


async def collectUntil(client, wanted: set[str], received: set[str]) -> None:
    """Take C{client}'s messages into C{received} until it holds C{wanted} (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not wanted <= received and loop.time() < deadline:
        try:
            message = await asyncio.wait_for(client.messages.get(), deadline - loop.time())
        except asyncio.TimeoutError:
            break
        received.add(message["body"])


@ensureDeferred
async def test_redisRestartLosesNoAcknowledgedMessage(makeServer, redisServer):
    """
    Every message the sender saw acknowledged reaches its recipient on the
    other node (now, or from offline storage at the next login); none is
    acknowledged and then answered with an error; none stays unanswered.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet"))
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        juliet = await b.login("juliet", "balcony")
        romeo = a.client("romeo", "orchard")
        useStreamManagement(romeo)
        await romeo.login()
        sm = romeo.xmpp.plugin["xep_0198"]
        # Ask for an acknowledgement after every stanza: many chances for a
        # premature one while Redis is away.
        sm.window = 1
        ledger = Ledger(romeo.xmpp)
        await acknowledged(romeo)

        for n in range(COUNT):
            if n == DOWN:
                redisServer.kill()
                ledger.events.append(("redis", "down"))
            elif n == UP:
                redisServer.start()
                ledger.events.append(("redis", "up"))
            message = romeo.xmpp.make_message(mto=juliet.jid.full, mbody="line %d" % n,
                                              mtype="chat")
            message["id"] = "m%d" % n
            message.send()
            await sleep(PACE)

        # Redis is back: everything sent is answered, by an acknowledgement
        # at the latest (slixmpp's queue of unacknowledged stanzas empties).
        await acknowledged(romeo)
        sent = {"m%d" % n for n in range(COUNT)}
        acked, errors = ledger.ids("acked"), ledger.ids("error")
        assert set(acked) == sent, "some messages were never acknowledged nor answered"
        # An error is never preceded by an acknowledgement of the same message.
        for position, (kind, id) in enumerate(ledger.events):
            if kind == "error":
                assert ("acked", id) not in ledger.events[:position], \
                    "%s was acknowledged, then refused" % (id,)
        # What was sent while Redis was away was held: acknowledged only
        # once Redis was back (or refused with an error).
        up = ledger.events.index(("redis", "up"))
        early = [id for id in ledger.ids("acked")[:] if DOWN <= int(id[1:]) < UP
                 and ledger.events.index(("acked", id)) < up and id not in errors]
        assert early == [], "acknowledged while Redis was away"
        # Every message acknowledged and not refused reached Juliet: on
        # node B now, or stored for her if her binding went meanwhile.
        wanted = {"line %s" % id[1:] for id in sent - set(errors)}
        received: set[str] = set()
        await asDeferred(collectUntil(juliet, wanted, received))
        if not wanted <= received:
            await juliet.disconnect()
            again = a.client("juliet", "garden")
            await again.login()
            again.xmpp.send_presence()
            await asDeferred(collectUntil(again, wanted, received))
        assert sorted(wanted - received) == []
        print("acknowledged %d, refused with an error %d, delivered %d of %d"
              % (len(set(acked) - set(errors)), len(errors), len(received & wanted), COUNT))
    finally:
        for process in processes:
            await process.kill("TERM")


@ensureDeferred
async def test_senderNodeKilledWhileRedisAway(makeServer, redisServer):
    """
    Redis is away while the sender's node A forwards messages, and node A
    is killed (SIGKILL) before Redis is back: the forwards never reached
    Redis, so the sender must never have seen them acknowledged; what it
    saw acknowledged reached the recipient on node B.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet"))
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        juliet = await b.login("juliet", "balcony")
        romeo = a.client("romeo", "orchard")
        useStreamManagement(romeo)
        await romeo.login()
        sm = romeo.xmpp.plugin["xep_0198"]
        sm.window = 1
        ledger = Ledger(romeo.xmpp)
        await acknowledged(romeo)

        def send(n: int) -> None:
            message = romeo.xmpp.make_message(mto=juliet.jid.full, mbody="line %d" % n,
                                              mtype="chat")
            message["id"] = "m%d" % n
            message.send()

        for n in range(10):
            send(n)
        await acknowledged(romeo)
        redisServer.kill()
        for n in range(10, 20):
            send(n)
            await sleep(PACE)
        # Time for any acknowledgement node A would give while Redis is away.
        sm.request_ack()
        await sleep(1.0)
        await processes[0].kill("KILL")
        redisServer.start()

        acked = set(ledger.ids("acked")) - set(ledger.ids("error"))
        assert {"m%d" % n for n in range(10)} <= acked
        wanted = {"line %s" % id[1:] for id in acked}
        received: set[str] = set()
        await asDeferred(collectUntil(juliet, wanted, received))
        assert sorted(wanted - received) == [], "acknowledged, then lost"
        print("acknowledged %d of 20, delivered %d" % (len(acked), len(received)))
    finally:
        for process in processes:
            await process.kill("TERM")
