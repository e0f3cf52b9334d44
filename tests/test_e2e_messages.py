"""
End-to-end: slixmpp clients exchange messages through a real node (RFC 6121
§8.5) and query the server's disco (XEP-0030), version (XEP-0092) and ping
(XEP-0199), and the server pings a quiet client.
"""

import asyncio
import xml.etree.ElementTree as ET

import pytest
import pytest_twisted
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from twisted.internet import defer

from tests.e2e import TIMEOUT

ensureDeferred = pytest_twisted.ensureDeferred


def asDeferred(coroutine) -> defer.Deferred:
    """Run an asyncio coroutine as a task; a Deferred of its result."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


async def _available(client, priority: int) -> None:
    echoed = asyncio.get_running_loop().create_future()

    def onPresence(presence):
        if (presence["type"] == "available" and presence["from"] == client.xmpp.boundjid
                and presence["priority"] == priority and not echoed.done()):
            echoed.set_result(None)

    client.xmpp.add_event_handler("presence", onPresence)
    try:
        client.xmpp.send_presence(ppriority=priority)
        # RFC 6121 §4.2.2: the server sends the presence back to the
        # resource that sent it, once it has taken it into account.
        await asyncio.wait_for(echoed, TIMEOUT)
    finally:
        client.xmpp.del_event_handler("presence", onPresence)


def available(client, priority: int = 0) -> defer.Deferred:
    """Send available presence with C{priority}; fires once the server has it."""
    return asDeferred(_available(client, priority))


async def users(server, *names):
    for name in names:
        await server.addUser(name)


async def nothingBefore(client, sender, marker="marker"):
    """
    Assert C{client} got nothing more: C{sender} sends it a marker to its
    full JID, which travels the same path behind anything sent before, so
    the next message must be the marker.
    """
    sender.send(client.jid.full, marker)
    message = await client.nextMessage()
    assert message["body"] == marker


@ensureDeferred
async def test_chatToFullJID(server):
    """Romeo's chat to Juliet's full JID reaches that resource."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    juliet = await server.login("juliet", "balcony")

    romeo.send("juliet@localhost/balcony", "But soft!")

    message = await juliet.nextMessage()
    assert message["body"] == "But soft!"
    assert message["from"] == "romeo@localhost/orchard"
    assert message["to"] == "juliet@localhost/balcony"


@ensureDeferred
async def test_chatToBareJID(server):
    """Romeo's chat to Juliet's bare JID reaches her available resource, with 'to' left bare."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    juliet = await server.login("juliet", "balcony")
    await available(juliet)

    romeo.send("juliet@localhost", "What light through yonder window breaks?")

    message = await juliet.nextMessage()
    assert message["body"] == "What light through yonder window breaks?"
    assert message["to"] == "juliet@localhost"


@ensureDeferred
async def test_higherPriorityWins(server):
    """Of Juliet's two resources, only the one with the higher priority gets a bare-JID message."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    balcony = await server.login("juliet", "balcony")
    chamber = await server.login("juliet", "chamber")
    await available(balcony, 5)
    await available(chamber, 1)

    romeo.send("juliet@localhost", "It is my lady")

    assert (await balcony.nextMessage())["body"] == "It is my lady"
    await nothingBefore(chamber, romeo)


@ensureDeferred
async def test_equalPrioritiesBothGetIt(server):
    """When Juliet's resources share the highest priority, both get a bare-JID message."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    balcony = await server.login("juliet", "balcony")
    chamber = await server.login("juliet", "chamber")
    await available(balcony, 3)
    await available(chamber, 3)

    romeo.send("juliet@localhost", "O, she doth teach the torches to burn bright!")

    assert (await balcony.nextMessage())["body"].startswith("O, she doth")
    assert (await chamber.nextMessage())["body"].startswith("O, she doth")


@ensureDeferred
async def test_negativePriorityNeverGetsBareMessages(server):
    """A resource with a negative priority gets no bare-JID message; one with priority 0 does."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    shy = await server.login("juliet", "shy")
    garden = await server.login("juliet", "garden")
    await available(shy, -1)
    await available(garden, 0)

    romeo.send("juliet@localhost", "Speak again, bright angel")

    assert (await garden.nextMessage())["body"] == "Speak again, bright angel"
    await nothingBefore(shy, romeo)


@ensureDeferred
async def test_chatToOfflineResourceGoesToAnother(server):
    """A chat to a resource of Juliet's that is not online reaches her resource that is."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    chamber = await server.login("juliet", "chamber")
    await available(chamber)

    romeo.send("juliet@localhost/balcony", "Juliet?")

    message = await chamber.nextMessage()
    assert message["body"] == "Juliet?"


@ensureDeferred
async def test_unknownUserBounces(server):
    """A message to a user that does not exist comes back as a service-unavailable error."""
    await users(server, "romeo")
    romeo = await server.login("romeo", "orchard")

    romeo.send("rosaline@localhost", "Are you there?")

    bounce = await romeo.nextMessage()
    assert bounce["type"] == "error"
    assert bounce["error"]["condition"] == "service-unavailable"
    assert bounce["from"] == "rosaline@localhost"


@ensureDeferred
async def test_serverDisco(server):
    """The server's disco#info names it and lists the features it runs (XEP-0030)."""
    await users(server, "romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()

    iq = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT))

    info = iq["disco_info"]
    assert ("server", "im", None, "xmppd") in info["identities"]
    features = set(info["features"])
    assert {"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
            "jabber:iq:version", "urn:xmpp:ping"} <= features


@ensureDeferred
async def test_discoFollowsModules(makeServer):
    """A feature left out of server.modules is not announced."""
    server = await makeServer({"server": {"modules": ["disco", "version", "messages"]}})
    await users(server, "romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()

    iq = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT))

    features = set(iq["disco_info"]["features"])
    assert "jabber:iq:version" in features and "urn:xmpp:ping" not in features


@ensureDeferred
async def test_serverVersion(server):
    """The server tells its name and version but not its operating system (XEP-0092)."""
    import xmppd
    await users(server, "romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0092")
    await romeo.login()

    iq = await asDeferred(romeo.xmpp.plugin["xep_0092"].get_version("localhost", timeout=TIMEOUT))

    assert iq["software_version"]["name"] == "xmppd"
    assert iq["software_version"]["version"] == xmppd.__version__
    assert not iq["software_version"]["os"]


@ensureDeferred
async def test_pingServer(server):
    """A client's ping to its server is answered with a result (XEP-0199 §4.2)."""
    await users(server, "romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0199")
    await romeo.login()

    iq = await asDeferred(romeo.xmpp.plugin["xep_0199"].send_ping("localhost", timeout=TIMEOUT))

    assert iq["type"] == "result"


@ensureDeferred
async def test_pingOtherAccountRefused(server):
    """A ping to another user's bare JID is refused with service-unavailable."""
    await users(server, "romeo", "juliet")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0199")
    await romeo.login()

    with pytest.raises(IqError) as failed:
        await asDeferred(romeo.xmpp.plugin["xep_0199"].send_ping("juliet@localhost", timeout=TIMEOUT))

    assert failed.value.condition == "service-unavailable"


@ensureDeferred
async def test_quietClientIsPinged(makeServer):
    """A client that stays quiet is pinged by the server, answers, and keeps its stream (XEP-0199 §4.1)."""
    server = await makeServer({"ping": {"idle_timeout": 1, "timeout": 60}})
    await users(server, "romeo", "juliet")
    juliet = server.client("juliet", "balcony")
    juliet.xmpp.register_plugin("xep_0199")  # answers the server's pings
    pinged = asyncio.get_running_loop().create_future()

    def onPing(iq):
        if not pinged.done():
            pinged.set_result(iq)
    juliet.xmpp.register_handler(Callback(
        "ping watcher", MatchXPath("{jabber:client}iq/{urn:xmpp:ping}ping"), onPing))
    await juliet.login()

    iq = await asDeferred(asyncio.wait_for(pinged, TIMEOUT))

    assert iq["type"] == "get" and iq["from"] == "localhost"
    romeo = await server.login("romeo", "orchard")
    romeo.send("juliet@localhost/balcony", "still there?")
    assert (await juliet.nextMessage())["body"] == "still there?"
    assert juliet.streamErrors == []


@ensureDeferred
async def test_receiptsAndChatStatesPassThrough(server):
    """A receipt request, the receipt and chat states (XEP-0184, XEP-0085) arrive unharmed."""
    await users(server, "romeo", "juliet")
    romeo = await server.login("romeo", "orchard")
    juliet = await server.login("juliet", "balcony")

    request = romeo.xmpp.make_message(mto="juliet@localhost/balcony", mbody="Art thou there?",
                                      mtype="chat")
    request["id"] = "m1"
    request.xml.append(ET.fromstring("<request xmlns='urn:xmpp:receipts'/>"))
    request.xml.append(ET.fromstring("<active xmlns='http://jabber.org/protocol/chatstates'/>"))
    request.send()
    got = await juliet.nextMessage()
    assert got.xml.find("{urn:xmpp:receipts}request") is not None
    assert got.xml.find("{http://jabber.org/protocol/chatstates}active") is not None

    # A receipt has no body, and slixmpp's "message" event is only for
    # messages with one: watch for it directly.
    arrived = asyncio.get_running_loop().create_future()
    romeo.xmpp.register_handler(Callback(
        "receipt", MatchXPath("{jabber:client}message/{urn:xmpp:receipts}received"),
        lambda stanza: arrived.done() or arrived.set_result(stanza)))
    receipt = juliet.xmpp.make_message(mto="romeo@localhost/orchard", mtype="chat")
    receipt.xml.append(ET.fromstring("<received xmlns='urn:xmpp:receipts' id='m1'/>"))
    receipt.xml.append(ET.fromstring("<composing xmlns='http://jabber.org/protocol/chatstates'/>"))
    receipt.send()
    back = await asDeferred(asyncio.wait_for(arrived, TIMEOUT))
    assert back.xml.find("{urn:xmpp:receipts}received").get("id") == "m1"
    assert back.xml.find("{http://jabber.org/protocol/chatstates}composing") is not None
