"""
End-to-end: slixmpp clients with the XEP-0191 plugin block and unblock each
other on a real node (L{xmppd.features.blocking}).
"""

import asyncio

import pytest_twisted

from tests.e2e import contacts, wait

ensureDeferred = pytest_twisted.ensureDeferred

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


async def blockingClient(server, user, resource):
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0191")
    await client.login()
    return client


def blockedError(message) -> bool:
    return message["error"].xml.find("{%s}blocked" % NS_BLOCKING_ERRORS) is not None


@ensureDeferred
async def test_blockStopsMessagesBothWays(server):
    """Once Romeo blocks Juliet, her messages bounce as if he were offline and his come back <blocked/>; unblocking restores both."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await blockingClient(server, "romeo", "orchard")
    juliet = await server.login("juliet", "balcony")
    blocking = romeo.xmpp.plugin["xep_0191"]
    await wait(blocking.get_blocked())

    await wait(blocking.block("juliet@localhost"))
    juliet.send("romeo@localhost/orchard", "Wherefore art thou?")
    bounced = await juliet.nextMessage()
    romeo.send("juliet@localhost/balcony", "Speak again")
    refused = await romeo.nextMessage()

    assert bounced["type"] == "error"
    assert bounced["error"]["condition"] == "service-unavailable"
    assert refused["type"] == "error" and refused["from"].full == "juliet@localhost/balcony"
    assert refused["error"]["condition"] == "not-acceptable" and blockedError(refused)

    await wait(blocking.unblock("juliet@localhost"))
    juliet.send("romeo@localhost/orchard", "It is my lady")
    arrived = await romeo.nextMessage()
    romeo.send("juliet@localhost/balcony", "O, speak again")
    answered = await juliet.nextMessage()

    # Romeo's queue had nothing before: the blocked message never arrived.
    assert arrived["body"] == "It is my lady" and arrived["type"] == "chat"
    assert answered["body"] == "O, speak again"


@ensureDeferred
async def test_blockPushedToOtherResource(server):
    """A block made on one resource is pushed to another that fetched the list."""
    await server.addUser("romeo")
    orchard = await blockingClient(server, "romeo", "orchard")
    garden = await blockingClient(server, "romeo", "garden")
    pushed = asyncio.get_running_loop().create_future()
    garden.xmpp.add_event_handler(
        "blocked", lambda iq: pushed.done() or pushed.set_result(iq))
    await wait(garden.xmpp.plugin["xep_0191"].get_blocked())

    await wait(orchard.xmpp.plugin["xep_0191"].block("tybalt@localhost"))
    push = await wait(pushed)

    assert [str(item["jid"]) for item in push["block"]] == ["tybalt@localhost"]
    assert push["from"].full in ("", "romeo@localhost")


@ensureDeferred
async def test_blocklistSurvivesRestart(server):
    """The block list is stored: after a restart it is listed and still enforced."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await blockingClient(server, "romeo", "orchard")
    await wait(romeo.xmpp.plugin["xep_0191"].block(["juliet@localhost", "capulet.example"]))
    await romeo.disconnect()
    await server.stop()

    await server.start()
    again = await blockingClient(server, "romeo", "garden")
    blocked = await wait(again.xmpp.plugin["xep_0191"].get_blocked_jids())
    juliet = await server.login("juliet", "balcony")
    juliet.send("romeo@localhost", "Art thou not Romeo?")
    bounced = await juliet.nextMessage()

    assert {jid.full for jid in blocked} == {"juliet@localhost", "capulet.example"}
    assert bounced["error"]["condition"] == "service-unavailable"


@ensureDeferred
async def test_serverAnnouncesBlocking(server):
    """Service discovery on the server lists urn:xmpp:blocking (XEP-0191 §3.1)."""
    await server.addUser("romeo")
    romeo = await blockingClient(server, "romeo", "orchard")
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost"))
    assert "urn:xmpp:blocking" in info["disco_info"]["features"]


def presenceFrom(client, jid: str, presenceType: str) -> asyncio.Future:
    """A future for the next presence of C{presenceType} from C{jid}."""
    future = asyncio.get_running_loop().create_future()

    def onPresence(presence):
        if presence["from"].full == jid and presence["type"] == presenceType:
            if not future.done():
                future.set_result(presence)

    client.xmpp.add_event_handler("presence_" + presenceType, onPresence)
    return future


async def seesOnline(watcher, contact, status: str) -> None:
    """
    C{watcher} and its contact C{contact} send initial presence (the
    contact's with C{status}); returns once C{watcher} has seen the
    contact available.
    """
    online = presenceFrom(watcher, contact.jid.full, "available")
    watcher.xmpp.send_presence()
    contact.xmpp.send_presence(pstatus=status)
    await wait(online)


@ensureDeferred
async def test_blockHidesPresence(server):
    """A contact Romeo blocks sees him go offline, and sees him again once unblocked (XEP-0191 §3.3, §3.4)."""
    await contacts(server, "romeo", "juliet")
    juliet = await server.login("juliet", "balcony")
    romeo = await blockingClient(server, "romeo", "orchard")
    await seesOnline(juliet, romeo, "in the orchard")

    gone = presenceFrom(juliet, "romeo@localhost/orchard", "unavailable")
    await wait(romeo.xmpp.plugin["xep_0191"].block("juliet@localhost"))
    await wait(gone)

    back = presenceFrom(juliet, "romeo@localhost/orchard", "available")
    await wait(romeo.xmpp.plugin["xep_0191"].unblock("juliet@localhost"))
    presence = await wait(back)
    assert presence["status"] == "in the orchard"


@ensureDeferred
async def test_blockedContactAppearsOffline(server):
    """Romeo sees Juliet go offline when he blocks her, and online again when he unblocks her (XEP-0191 §3.3, §3.4)."""
    await contacts(server, "romeo", "juliet")
    romeo = await blockingClient(server, "romeo", "orchard")
    juliet = await server.login("juliet", "balcony")
    await seesOnline(romeo, juliet, "on the balcony")

    gone = presenceFrom(romeo, "juliet@localhost/balcony", "unavailable")
    await wait(romeo.xmpp.plugin["xep_0191"].block("juliet@localhost"))
    await wait(gone)

    back = presenceFrom(romeo, "juliet@localhost/balcony", "available")
    await wait(romeo.xmpp.plugin["xep_0191"].unblock("juliet@localhost"))
    presence = await wait(back)
    assert presence["status"] == "on the balcony"
