"""
End-to-end: stream management (XEP-0198) with slixmpp's C{xep_0198} plugin
against a real node: acknowledgements, a connection cut mid-conversation and
resumed, and a client that never comes back.
"""

from __future__ import annotations

import asyncio

import pytest_twisted
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT, reactor
from xmppd.config.registry import isInstalled
from xmppd.core.hooks import POLICY
from xmppd.core.stanzas import meta

ensureDeferred = pytest_twisted.ensureDeferred

JULIET = "juliet@" + DOMAIN
BALCONY = JULIET + "/balcony"

#: Resumption times short enough for a test to wait them out.
QUICK = {"sm": {"resume_timeout": 0.5}}


def acceptanceOf(stanza):
    """The list of Deferreds holding C{stanza} (issue 5), made if there is none yet."""
    found = meta(stanza)
    if found.acceptance is None:
        found.acceptance = []
    return found.acceptance


def asDeferred(coroutine) -> defer.Deferred:
    """Run an asyncio coroutine as a task; a Deferred of its result."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


def nextEvent(xmpp, name: str) -> defer.Deferred:
    """Fires with the data of the next slixmpp event C{name} (within L{TIMEOUT})."""
    future = asyncio.get_running_loop().create_future()

    def handler(data):
        if not future.done():
            future.set_result(data)

    xmpp.add_event_handler(name, handler, disposable=True)
    return asDeferred(asyncio.wait_for(future, TIMEOUT))


async def users(server, *names):
    for name in names:
        await server.addUser(name)


async def managedLogin(server, user: str, resource: str):
    """A client that enables stream management with resumption; fires once enabled."""
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0198")
    client.xmpp.register_plugin("xep_0199")
    enabled = nextEvent(client.xmpp, "sm_enabled")
    await client.login()
    await enabled
    return client


async def pingingLogin(server, user: str, resource: str):
    """A client without stream management that can ping (see L{roundTrip})."""
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0199")
    await client.login()
    return client


async def _acknowledged(client) -> None:
    sm = client.xmpp.plugin["xep_0198"]
    done = asyncio.get_running_loop().create_future()

    def onAcked(stanza):
        if not sm.unacked_queue and not done.done():
            done.set_result(None)

    client.xmpp.add_event_handler("stanza_acked", onAcked)
    try:
        if sm.unacked_queue:
            sm.request_ack()
            await asyncio.wait_for(done, TIMEOUT)
    finally:
        client.xmpp.del_event_handler("stanza_acked", onAcked)


def acknowledged(client) -> defer.Deferred:
    """Fires once the server has acknowledged everything C{client} sent."""
    return asDeferred(_acknowledged(client))


async def roundTrip(client) -> None:
    """A ping to the server and its answer: everything sent before it was processed."""
    await asDeferred(asyncio.wait_for(
        client.xmpp.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT), TIMEOUT))


async def acknowledgeReceived(client) -> None:
    """Acknowledge, unasked, what C{client} received, and know the server has it."""
    client.xmpp.plugin["xep_0198"].send_ack()
    await roundTrip(client)


async def cut(client) -> None:
    """The client's TCP connection dies under it: no footer, no goodbye."""
    gone = nextEvent(client.xmpp, "disconnected")
    client.xmpp.transport.abort()
    await gone


async def reconnect(client):
    """Connect again and resume; fires with the <resumed/> slixmpp got."""
    resumed = nextEvent(client.xmpp, "session_resumed")
    client.xmpp.connect("127.0.0.1", client.server.starttlsPort)
    try:
        return await resumed
    finally:
        client.xmpp.cancel_connection_attempt()


async def leave(client) -> None:
    """Close the stream cleanly and wait until the connection is gone."""
    gone = nextEvent(client.xmpp, "disconnected")
    client.xmpp.disconnect(wait=2.0)
    await gone


async def bodies(client, count: int) -> list[str]:
    return [(await client.nextMessage())["body"] for _ in range(count)]


async def nothingBefore(client, sender, marker: str = "marker") -> None:
    """
    C{client} gets nothing more: a marker sent to its full JID travels
    behind anything sent before, so the next message must be the marker.
    """
    sender.send(client.jid.full, marker)
    assert (await client.nextMessage())["body"] == marker


@ensureDeferred
async def test_acksCountHandledStanzas(server):
    """The server acknowledges exactly the stanzas the client sent: slixmpp's count and the server's agree."""
    await users(server, "romeo", "juliet")
    juliet = await server.login("juliet", "balcony")
    romeo = await managedLogin(server, "romeo", "orchard")
    for n in range(7):
        romeo.send(BALCONY, "line %d" % n)
    assert await bodies(juliet, 7) == ["line %d" % n for n in range(7)]

    await roundTrip(romeo)
    await acknowledged(romeo)

    # Seven messages and the ping.
    assert romeo.xmpp.plugin["xep_0198"].last_ack == 8


@ensureDeferred
async def test_resumeGetsUnackedOnce(makeServer):
    """A client cut off mid-conversation resumes and gets every message it missed, exactly once."""
    server = await makeServer()
    await users(server, "romeo", "juliet")
    juliet = await managedLogin(server, "juliet", "balcony")
    romeo = await pingingLogin(server, "romeo", "orchard")
    for n in range(3):
        romeo.send(BALCONY, "before %d" % n)
    assert await bodies(juliet, 3) == ["before 0", "before 1", "before 2"]

    await cut(juliet)
    for n in range(3):
        romeo.send(BALCONY, "during %d" % n)
    # Processed (queued for Juliet's session) before she comes back.
    await roundTrip(romeo)

    resumed = await reconnect(juliet)

    assert resumed["previd"] == juliet.xmpp.plugin["xep_0198"].sm_id
    assert await bodies(juliet, 3) == ["during 0", "during 1", "during 2"]
    await nothingBefore(juliet, romeo)
    romeo.send(BALCONY, "after")
    assert (await juliet.nextMessage())["body"] == "after"
    await leave(juliet)


@ensureDeferred
async def test_neverBackGoesToOtherResource(makeServer):
    """A client that never comes back has its unacknowledged messages delivered to its other resource, delayed."""
    server = await makeServer(QUICK)
    await users(server, "romeo", "juliet")
    balcony = await managedLogin(server, "juliet", "balcony")
    chamber = await server.login("juliet", "chamber")
    chamber.xmpp.register_plugin("xep_0203")
    chamber.xmpp.send_presence()
    romeo = await server.login("romeo", "orchard")
    romeo.send(BALCONY, "seen")
    assert (await balcony.nextMessage())["body"] == "seen"
    await acknowledgeReceived(balcony)

    await cut(balcony)
    romeo.send(BALCONY, "unseen 1")
    romeo.send(BALCONY, "unseen 2")

    # After resume_timeout, in the order they were sent, "seen" not among them.
    messages = [await chamber.nextMessage() for _ in range(2)]
    assert [m["body"] for m in messages] == ["unseen 1", "unseen 2"]
    for message in messages:
        assert message["to"] == JULIET
        assert message["from"] == "romeo@%s/orchard" % DOMAIN
        assert message["delay"]["from"] == DOMAIN
    await nothingBefore(chamber, romeo)


if isInstalled("offline"):
    @ensureDeferred
    async def test_neverBackGoesOffline(makeServer):
        """A client that never comes back has its unacknowledged messages in offline storage for its next login."""
        server = await makeServer(QUICK)
        await users(server, "romeo", "juliet")
        balcony = await managedLogin(server, "juliet", "balcony")
        romeo = await server.login("romeo", "orchard")
        romeo.send(BALCONY, "seen")
        assert (await balcony.nextMessage())["body"] == "seen"
        await acknowledgeReceived(balcony)
        # What offline storage is offered, and the writes it then promises.
        offered = []
        twoOffered = defer.Deferred()

        def onOffline(event):
            offered.append(acceptanceOf(event.stanza))
            if len(offered) == 2:
                # Offline storage, below us, adds its write to the list now.
                reactor().callLater(0, twoOffered.callback, None)
        server.service.hooks.add("message/offline", onOffline, priority=POLICY)

        await cut(balcony)
        romeo.send(BALCONY, "unseen 1")
        romeo.send(BALCONY, "unseen 2")
        await twoOffered.addTimeout(TIMEOUT, reactor())
        await defer.gatherResults([d for writes in offered for d in writes])
        assert await server.service.storage.offline.count("juliet", DOMAIN) == 2

        again = server.client("juliet", "chamber")
        again.xmpp.register_plugin("xep_0203")
        await again.login()
        again.xmpp.send_presence()
        messages = [await again.nextMessage() for _ in range(2)]
        assert [m["body"] for m in messages] == ["unseen 1", "unseen 2"]
        assert all(m["delay"]["from"] == DOMAIN for m in messages)
        await nothingBefore(again, romeo)
