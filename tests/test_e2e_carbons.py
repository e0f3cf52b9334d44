"""
End-to-end: slixmpp clients with the XEP-0280 plugin keep all of a user's
devices in the conversation, on a real node (L{xmppd.features.carbons}).
"""

import asyncio

import pytest_twisted
from twisted.internet import defer

from tests.e2e import wait

ensureDeferred = pytest_twisted.ensureDeferred

NS_CARBONS = "urn:xmpp:carbons:2"


class CarbonsClient:
    """A logged-in client with carbons enabled, and the copies it received."""

    def __init__(self, client):
        self.client = client
        self.received: asyncio.Queue = asyncio.Queue()
        self.sent: asyncio.Queue = asyncio.Queue()
        client.xmpp.add_event_handler("carbon_received", self.received.put_nowait)
        client.xmpp.add_event_handler("carbon_sent", self.sent.put_nowait)

    @property
    def jid(self):
        return self.client.jid

    def nextReceived(self) -> defer.Deferred:
        """The message forwarded in the next <received/> copy."""
        return wait(self.received.get()).addCallback(lambda m: m["carbon_received"])

    def nextSent(self) -> defer.Deferred:
        """The message forwarded in the next <sent/> copy."""
        return wait(self.sent.get()).addCallback(lambda m: m["carbon_sent"])


async def carbonsClient(server, user, resource) -> CarbonsClient:
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0280")
    wrapped = CarbonsClient(client)
    await client.login()
    await wait(client.xmpp.plugin["xep_0280"].enable())
    return wrapped


async def users(server):
    await server.addUser("romeo")
    await server.addUser("juliet")


@ensureDeferred
async def test_serverAnnouncesCarbons(server):
    """The server lists urn:xmpp:carbons:2 among its disco features."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "garden")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost"))
    assert NS_CARBONS in info["disco_info"]["features"]


@ensureDeferred
async def test_receivedCopyReachesSecondResource(server):
    """A message to Romeo's garden client also shows up, as a received carbon, on his home client."""
    await users(server)
    garden = await carbonsClient(server, "romeo", "garden")
    home = await carbonsClient(server, "romeo", "home")
    juliet = await server.login("juliet", "balcony")

    juliet.send("romeo@localhost/garden", "What man art thou?")

    original = await garden.client.nextMessage()
    copy = await home.nextReceived()
    assert original["body"] == copy["body"] == "What man art thou?"
    assert copy["from"] == "juliet@localhost/balcony"
    assert copy["to"] == "romeo@localhost/garden"


@ensureDeferred
async def test_sentCopyReachesSecondResource(server):
    """What Romeo sends from home shows up on his garden client as a sent carbon."""
    await users(server)
    garden = await carbonsClient(server, "romeo", "garden")
    home = await carbonsClient(server, "romeo", "home")
    juliet = await server.login("juliet", "balcony")

    home.client.send("juliet@localhost/balcony", "Neither, fair saint")

    delivered = await juliet.nextMessage()
    copy = await garden.nextSent()
    assert delivered["body"] == copy["body"] == "Neither, fair saint"
    assert copy["from"] == "romeo@localhost/home"
    assert copy["to"] == "juliet@localhost/balcony"


@ensureDeferred
async def test_privateMessagesAreNotCopied(server):
    """Messages marked <private/> are copied to no other device, in either direction."""
    await users(server)
    garden = await carbonsClient(server, "romeo", "garden")
    home = await carbonsClient(server, "romeo", "home")
    juliet = await server.login("juliet", "balcony")

    secret = home.client.xmpp.make_message(
        mto="juliet@localhost/balcony", mbody="only for you", mtype="chat")
    secret.enable("carbon_private")
    secret.send()
    home.client.send("juliet@localhost/balcony", "for everyone")

    first = await juliet.nextMessage()
    assert first["body"] == "only for you"
    # XEP-0280 §9: the receiving server removes <private/> before delivery.
    assert first.xml.find("{%s}private" % NS_CARBONS) is None
    assert (await juliet.nextMessage())["body"] == "for everyone"
    assert (await garden.nextSent())["body"] == "for everyone"

    reply = juliet.xmpp.make_message(mto="romeo@localhost/garden", mbody="whisper",
                                     mtype="chat")
    reply.enable("carbon_private")
    reply.send()
    juliet.send("romeo@localhost/garden", "aloud")
    assert (await garden.client.nextMessage())["body"] == "whisper"
    assert (await garden.client.nextMessage())["body"] == "aloud"
    assert (await home.nextReceived())["body"] == "aloud"
    assert home.received.empty() and home.sent.empty() and garden.sent.empty()


@ensureDeferred
async def test_disabledResourceGetsNoCopies(server):
    """After disabling carbons, a client gets no more copies."""
    await users(server)
    garden = await carbonsClient(server, "romeo", "garden")
    home = await carbonsClient(server, "romeo", "home")
    juliet = await server.login("juliet", "balcony")
    await wait(home.client.xmpp.plugin["xep_0280"].disable())

    juliet.send("romeo@localhost/garden", "one")
    juliet.send("romeo@localhost/home", "two")

    assert (await garden.client.nextMessage())["body"] == "one"
    assert (await home.client.nextMessage())["body"] == "two"
    assert (await garden.nextReceived())["body"] == "two"
    assert home.received.empty()
