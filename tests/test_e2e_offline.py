"""
End-to-end: offline messages (XEP-0160) through a real node with SQLite
storage and slixmpp clients.  The sender uses stream management (XEP-0198)
so the test knows, as a client does, when the server has the message: its
acknowledgement comes only once the message is on disk.
"""

import asyncio
import datetime

import pytest_twisted

from tests.e2e import DOMAIN, TIMEOUT, password
from tests.offlinehelpers import acknowledged, asDeferred, available, useStreamManagement

ensureDeferred = pytest_twisted.ensureDeferred

JULIET = "juliet@" + DOMAIN


async def users(server, *names):
    for name in names:
        await server.addUser(name)


async def sender(server, user="romeo", resource="orchard"):
    """A logged-in client whose messages are acknowledged under stream management."""
    client = server.client(user, resource)
    useStreamManagement(client)
    await client.login()
    return client


async def recipient(server, user="juliet", resource="balcony"):
    """A client that logs in, reads delay stamps, and sends initial presence."""
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0203")
    await client.login()
    client.xmpp.send_presence()
    return client


async def nothingMore(client, sender, marker="marker"):
    """C{client} gets nothing before a marker sent to its full JID now."""
    await available(client)
    sender.send(client.jid.full, marker)
    assert (await client.nextMessage())["body"] == marker


def nextError(client):
    """The next message error C{client} gets (bodiless ones included)."""
    future = asyncio.get_running_loop().create_future()

    def onError(message):
        if not future.done():
            future.set_result(message)
        client.xmpp.del_event_handler("message_error", onError)

    client.xmpp.add_event_handler("message_error", onError)
    return asDeferred(asyncio.wait_for(future, TIMEOUT))


@ensureDeferred
async def test_arrivesOnLoginWithDelay(server):
    """A message to an offline account arrives at login, stamped with when the server got it."""
    await users(server, "romeo", "juliet")
    romeo = await sender(server)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    romeo.send(JULIET, "Wherefore art thou?")
    await acknowledged(romeo)
    after = datetime.datetime.now(datetime.timezone.utc)

    juliet = await recipient(server)

    message = await juliet.nextMessage()
    assert message["body"] == "Wherefore art thou?"
    assert message["from"] == "romeo@localhost/orchard" and message["type"] == "chat"
    assert message["delay"]["from"] == DOMAIN
    assert before <= message["delay"]["stamp"] <= after
    await nothingMore(juliet, romeo)


@ensureDeferred
async def test_arrivesOnceInOrder(server):
    """Several offline messages arrive oldest first, once; the next login gets none of them."""
    await users(server, "romeo", "juliet")
    romeo = await sender(server)
    for i in range(5):
        romeo.send(JULIET, "line %d" % i)
    await acknowledged(romeo)

    juliet = await recipient(server)
    assert [(await juliet.nextMessage())["body"] for _ in range(5)] == [
        "line %d" % i for i in range(5)]
    await juliet.disconnect()

    again = await recipient(server, resource="chamber")
    await nothingMore(again, romeo)


@ensureDeferred
async def test_chatStatesNotStored(server):
    """A chat state alone is not kept: the sender gets service-unavailable and the recipient never sees it."""
    await users(server, "romeo", "juliet")
    romeo = await sender(server)
    romeo.xmpp.register_plugin("xep_0085")
    error = nextError(romeo)
    state = romeo.xmpp.make_message(mto=JULIET, mtype="chat")
    state["chat_state"] = "composing"
    state.send()

    bounce = await error
    assert bounce["error"]["condition"] == "service-unavailable"
    romeo.send(JULIET, "A real line")
    await acknowledged(romeo)

    juliet = await recipient(server)
    message = await juliet.nextMessage()
    assert message["body"] == "A real line"
    assert message["chat_state"] in ("", None)


@ensureDeferred
async def test_overQuota(makeServer):
    """Past the quota the sender gets resource-constraint, and the recipient gets the rest."""
    server = await makeServer({"offline": {"max_messages": 2}})
    await users(server, "romeo", "juliet")
    romeo = await sender(server)
    for i in range(3):
        romeo.send(JULIET, "line %d" % i)
    await acknowledged(romeo)

    bounce = await romeo.nextMessage()
    assert bounce["type"] == "error" and bounce["body"] == "line 2"
    assert bounce["error"]["condition"] == "resource-constraint"

    juliet = await recipient(server)
    assert [(await juliet.nextMessage())["body"] for _ in range(2)] == ["line 0", "line 1"]
    await nothingMore(juliet, romeo)


@ensureDeferred
async def test_keptAcrossRestart(server):
    """A stored message survives a restart of the server."""
    await users(server, "romeo", "juliet")
    romeo = await sender(server)
    romeo.send(JULIET, "Still there?")
    await acknowledged(romeo)
    await romeo.disconnect()

    await server.stop()
    await server.start()

    juliet = await recipient(server)
    message = await juliet.nextMessage()
    assert message["body"] == "Still there?" and message["delay"]["from"] == DOMAIN


@ensureDeferred
async def test_removedWithTheAccount(stoppedServer):
    """Removing an account removes its offline messages: a new account of that name gets none."""
    server = stoppedServer
    # Accounts are made before the node opens the store, and changed by
    # xmppctl processes while it runs, as an operator would: a second
    # SQLite store opened inside the node's own process would release the
    # node's POSIX locks on the file when it closes.
    await users(server, "romeo", "juliet")
    await server.start()
    romeo = await sender(server)
    romeo.send(JULIET, "For the old Juliet")
    await acknowledged(romeo)

    for command in (["deluser", JULIET], ["adduser", JULIET, "--password", password("juliet")]):
        result = await server.xmppctl(*command)
        assert result.status == 0, result.err
    romeo.send(JULIET, "For the new Juliet")
    await acknowledged(romeo)

    juliet = await recipient(server)
    assert (await juliet.nextMessage())["body"] == "For the new Juliet"
    await nothingMore(juliet, romeo)


@ensureDeferred
async def test_discoAnnouncesMsgoffline(server):
    """The server lists msgoffline in its disco#info (XEP-0160 §4)."""
    await users(server, "romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()

    iq = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=TIMEOUT))

    assert "msgoffline" in iq["disco_info"]["features"]
