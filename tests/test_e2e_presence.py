"""
End-to-end: slixmpp clients subscribe to each other's presence, see each
other come and go (including when a connection is simply cut), get requests
that arrived while they were away, use directed presence, and find their
roster again after a restart (RFC 6121 §2-§4).
"""

import asyncio

import pytest_twisted
from twisted.internet import defer

from tests.e2e import TIMEOUT

ensureDeferred = pytest_twisted.ensureDeferred


def asDeferred(coroutine) -> defer.Deferred:
    """Run an asyncio coroutine as a task; a Deferred of its result."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


class Presences:
    """
    Every presence a client receives, kept until a test waits for it:
    L{next} takes the first one (received or to come) that matches.
    """

    def __init__(self, client):
        self.unclaimed = []
        self.waiting = []
        client.xmpp.add_event_handler("presence", self.onPresence)

    def onPresence(self, presence) -> None:
        for entry in self.waiting:
            predicate, future = entry
            if not future.done() and predicate(presence):
                self.waiting.remove(entry)
                future.set_result(presence)
                return
        self.unclaimed.append(presence)

    def next(self, type="available", sender=None) -> defer.Deferred:
        """The next presence of C{type} from C{sender} (a full or bare JID); at most L{TIMEOUT}."""

        def matches(presence):
            if presence["type"] != type:
                return False
            if sender is None:
                return True
            return sender in (presence["from"].full, presence["from"].bare)

        for presence in self.unclaimed:
            if matches(presence):
                self.unclaimed.remove(presence)
                return defer.succeed(presence)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((matches, future))
        return asDeferred(asyncio.wait_for(future, TIMEOUT))


async def online(server, user, resource, **settings):
    """Log in, fetch the roster and send initial presence, as a client starting up does."""
    client = server.client(user, resource)
    for name, value in settings.items():
        setattr(client.xmpp.roster, name, value)
    client.presences = Presences(client)
    await client.login()
    await asDeferred(client.xmpp.get_roster())
    client.xmpp.send_presence()
    # RFC 6121 §4.2.2: the server reflects initial presence once it has it.
    await client.presences.next(sender=client.jid.full)
    return client


async def rosterOf(client):
    """The whole roster as the server has it: {jid: (subscription, ask, name, groups)}."""
    # Not get_roster(): slixmpp sends the version it has, and a client that
    # is up to date gets no items (RFC 6121 §2.6.3).
    iq = client.xmpp.Iq(stype="get")
    iq.enable("roster")
    iq = await asDeferred(iq.send(timeout=TIMEOUT))
    return {jid.bare: (item["subscription"], item["ask"], item["name"], sorted(item["groups"]))
            for jid, item in iq["roster"]["items"].items()}


async def mutualContacts(server):
    """Romeo and Juliet online, each subscribed to the other through the protocol."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await online(server, "romeo", "orchard")
    juliet = await online(server, "juliet", "balcony")
    # Juliet's slixmpp approves and asks back; so does Romeo's.
    romeo.xmpp.send_presence_subscription(pto="juliet@localhost")
    await romeo.presences.next(sender=juliet.jid.full)
    await juliet.presences.next(sender=romeo.jid.full)
    return romeo, juliet


@ensureDeferred
async def test_subscribeAndSeeEachOther(server):
    """Romeo and Juliet subscribe to each other and each sees the other online."""
    romeo, juliet = await mutualContacts(server)

    assert (await rosterOf(romeo))["juliet@localhost"][0] == "both"
    assert (await rosterOf(juliet))["romeo@localhost"][0] == "both"


@ensureDeferred
async def test_contactGoesOffline(server):
    """When Juliet logs out, Romeo sees her go offline."""
    romeo, juliet = await mutualContacts(server)

    await juliet.disconnect()

    gone = await romeo.presences.next("unavailable", sender=juliet.jid.full)
    assert gone["to"].bare == "romeo@localhost"


@ensureDeferred
async def test_droppedConnectionSeenAsOffline(server):
    """When Juliet's connection is simply cut, Romeo still sees her go offline (RFC 6121 §4.5.2)."""
    romeo, juliet = await mutualContacts(server)

    juliet.xmpp.transport.abort()

    await romeo.presences.next("unavailable", sender=juliet.jid.full)


@ensureDeferred
async def test_statusChangeSeen(server):
    """A status change of Juliet's reaches Romeo."""
    romeo, juliet = await mutualContacts(server)

    juliet.xmpp.send_presence(pshow="away", pstatus="at the window")

    changed = await romeo.presences.next("away", sender=juliet.jid.full)
    assert changed["status"] == "at the window"


@ensureDeferred
async def test_requestWhileOfflineDeliveredAtLogin(server):
    """A request sent while Juliet was offline reaches her when she logs in, and her answer reaches Romeo."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await online(server, "romeo", "orchard")
    romeo.xmpp.send_presence_subscription(pto="juliet@localhost")

    # Juliet answers herself rather than letting slixmpp approve.
    juliet = await online(server, "juliet", "balcony", auto_authorize=None,
                          auto_subscribe=False)

    request = await juliet.presences.next("subscribe", sender="romeo@localhost")
    assert request["from"].full == "romeo@localhost"
    juliet.xmpp.send_presence_subscription(pto="romeo@localhost", ptype="subscribed")
    await romeo.presences.next("subscribed", sender="juliet@localhost")
    await romeo.presences.next(sender=juliet.jid.full)
    assert (await rosterOf(romeo))["juliet@localhost"][0] == "to"


@ensureDeferred
async def test_directedPresence(server):
    """Directed presence reaches a non-contact, who is told when the sender logs out (RFC 6121 §4.6)."""
    await server.addUser("juliet")
    await server.addUser("nurse")
    nurse = await online(server, "nurse", "kitchen")
    juliet = await online(server, "juliet", "balcony")

    juliet.xmpp.send_presence(pto="nurse@localhost", pstatus="Nurse!")
    hello = await nurse.presences.next(sender=juliet.jid.full)
    assert hello["status"] == "Nurse!"

    juliet.xmpp.transport.abort()

    await nurse.presences.next("unavailable", sender=juliet.jid.full)


@ensureDeferred
async def test_rosterSurvivesRestart(server):
    """Romeo's contacts, names, groups and subscriptions are still there after a restart."""
    romeo, juliet = await mutualContacts(server)
    await asDeferred(romeo.xmpp.update_roster("juliet@localhost", name="Juliet",
                                              groups=["Capulets"]))
    await asDeferred(romeo.xmpp.update_roster("nurse@localhost", name="Nurse"))
    await romeo.disconnect()
    await juliet.disconnect()

    await server.stop()
    await server.start()
    romeo = await server.login("romeo", "orchard")

    assert await rosterOf(romeo) == {
        "juliet@localhost": ("both", "", "Juliet", ["Capulets"]),
        "nurse@localhost": ("none", "", "Nurse", []),
    }
