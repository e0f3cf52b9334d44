"""
End-to-end: the publish-subscribe service (XEP-0060) at C{pubsub.localhost}
through a real node, with slixmpp's C{xep_0060} client: creating and
configuring a node, publishing, a subscriber notified, retracting with
notification, access models refusing and then allowing (whitelist, presence
through the owner's roster), a publish-options
precondition that fails, and deleting a node with notification.

These nodes run on the embedded default, SQLite, so a node, its items and
a subscription are also shown to survive a restart.
"""

from __future__ import annotations

import asyncio

import pytest_twisted
from slixmpp.xmlstream import ET
from twisted.internet import defer

from tests.e2e import DOMAIN, password, pubsubFailure, wait
from xmppd.core.scram import makeCredentials
from xmppd.storage.interfaces import RosterItem

ensureDeferred = pytest_twisted.ensureDeferred

SERVICE = "pubsub." + DOMAIN
NS_ENTRY = "urn:xmppd:test:entry"


class Events:
    """The pubsub notifications one client receives, by kind."""

    def __init__(self, client):
        self.queues = {kind: asyncio.Queue() for kind in ("publish", "retract", "delete")}
        for kind, queue in self.queues.items():
            client.xmpp.add_event_handler("pubsub_" + kind, queue.put_nowait)

    def next(self, kind: str) -> defer.Deferred:
        return wait(self.queues[kind].get())


async def login(server, user: str, resource: str):
    storage = server.service.storage
    if not await storage.users.userExists(user, DOMAIN):
        await storage.users.addUser(user, DOMAIN, makeCredentials(password(user)))
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0030")
    client.xmpp.register_plugin("xep_0004")
    client.xmpp.register_plugin("xep_0060")
    client.events = Events(client)
    await client.login()
    # Available, so notifications to the bare JID reach this resource (RFC 6121 §8.5.2).
    client.xmpp.send_presence()
    client.pubsub = client.xmpp.plugin["xep_0060"]
    return client


def form(client, fields: dict, formType: str = "submit"):
    made = client.xmpp.plugin["xep_0004"].make_form(ftype=formType)
    for var, value in fields.items():
        made.add_field(var=var, value=value)
    return made


def entry(text: str):
    element = ET.Element("{%s}entry" % NS_ENTRY)
    element.text = text
    return element


@ensureDeferred
async def test_serviceListedAndDiscovered(makeServer):
    """The domain's disco#items lists pubsub.localhost, whose disco#info says pubsub/service."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    disco = romeo.xmpp.plugin["xep_0030"]
    items = await wait(disco.get_items(jid=DOMAIN))
    assert SERVICE in {item[0] for item in items["disco_items"]["items"]}
    info = await wait(disco.get_info(jid=SERVICE))
    assert ("pubsub", "service") in {(i[0], i[1]) for i in info["disco_info"]["identities"]}
    assert "http://jabber.org/protocol/pubsub#publish" in info["disco_info"]["features"]


@ensureDeferred
async def test_publishNotifiesSubscriber(makeServer):
    """Romeo creates and configures a node, Juliet subscribes, and his item reaches her."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    await wait(romeo.pubsub.create_node(SERVICE, "sonnets",
                                        config=form(romeo, {"pubsub#title": "Sonnets"})))
    await wait(romeo.pubsub.set_node_config(SERVICE, "sonnets", form(
        romeo, {"FORM_TYPE": "http://jabber.org/protocol/pubsub#node_config",
                "pubsub#max_items": "5"})))
    config = await wait(romeo.pubsub.get_node_config(SERVICE, "sonnets"))
    values = config["pubsub_owner"]["configure"]["form"].get_values()
    assert values["pubsub#title"] == "Sonnets" and values["pubsub#max_items"] == "5"
    await wait(juliet.pubsub.subscribe(SERVICE, "sonnets"))

    result = await wait(romeo.pubsub.publish(SERVICE, "sonnets", id="18",
                                             payload=entry("Shall I compare thee")))
    assert result["pubsub"]["publish"]["item"]["id"] == "18"

    message = await juliet.events.next("publish")
    item = message["pubsub_event"]["items"]["item"]
    assert message["from"] == SERVICE and item["id"] == "18"
    assert item["payload"].text == "Shall I compare thee"
    items = await wait(juliet.pubsub.get_items(SERVICE, "sonnets"))
    assert [i["id"] for i in items["pubsub"]["items"]] == ["18"]


@ensureDeferred
async def test_keptAcrossRestart(makeServer):
    """A node, its items and a subscription survive a restart of the server (SQLite)."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    await wait(romeo.pubsub.create_node(SERVICE, "sonnets"))
    await wait(juliet.pubsub.subscribe(SERVICE, "sonnets"))
    for itemId, text in (("18", "Shall I compare thee"), ("116", "Let me not")):
        await wait(romeo.pubsub.publish(SERVICE, "sonnets", id=itemId, payload=entry(text)))
        await juliet.events.next("publish")
    await romeo.disconnect()
    await juliet.disconnect()

    await server.stop()
    await server.start()

    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    items = await wait(juliet.pubsub.get_items(SERVICE, "sonnets"))
    assert [(i["id"], i["payload"].text) for i in items["pubsub"]["items"]] == [
        ("116", "Let me not"), ("18", "Shall I compare thee")]
    await wait(romeo.pubsub.publish(SERVICE, "sonnets", id="130", payload=entry("My mistress")))
    message = await juliet.events.next("publish")
    assert message["pubsub_event"]["items"]["item"]["id"] == "130"


@ensureDeferred
async def test_retractNotifies(makeServer):
    """A retract with notify reaches the subscriber and the item is gone."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    await wait(romeo.pubsub.create_node(SERVICE, "sonnets", config=form(
        romeo, {"pubsub#send_last_published_item": "never"})))
    await wait(romeo.pubsub.publish(SERVICE, "sonnets", id="18", payload=entry("x")))
    await wait(juliet.pubsub.subscribe(SERVICE, "sonnets"))
    await wait(romeo.pubsub.retract(SERVICE, "sonnets", "18", notify=True))
    message = await juliet.events.next("retract")
    assert message["pubsub_event"]["items"]["retract"]["id"] == "18"
    items = await wait(juliet.pubsub.get_items(SERVICE, "sonnets"))
    assert list(items["pubsub"]["items"]) == []


@ensureDeferred
async def test_accessModelRefusesThenAllows(makeServer):
    """A whitelist node refuses Juliet until Romeo makes her a member."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    await wait(romeo.pubsub.create_node(SERVICE, "secrets", config=form(
        romeo, {"pubsub#access_model": "whitelist"})))
    assert await pubsubFailure(juliet.pubsub.subscribe(SERVICE, "secrets")) == ("not-allowed",
                                                                         "closed-node")
    assert (await pubsubFailure(juliet.pubsub.get_items(SERVICE, "secrets")))[0] == "not-allowed"
    await wait(romeo.pubsub.modify_affiliations(SERVICE, "secrets",
                                                [("juliet@" + DOMAIN, "member")]))
    subscribed = await wait(juliet.pubsub.subscribe(SERVICE, "secrets"))
    assert subscribed["pubsub"]["subscription"]["subscription"] == "subscribed"


@ensureDeferred
async def test_presenceAccessModel(makeServer):
    """A presence node serves Juliet, who sees Romeo's presence, and refuses the Nurse."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    nurse = await login(server, "nurse", "kitchen")
    await server.service.storage.rosters.setItem(
        "romeo", DOMAIN, RosterItem("juliet@" + DOMAIN, subscription="from"))
    await wait(romeo.pubsub.create_node(SERVICE, "mood", config=form(
        romeo, {"pubsub#access_model": "presence"})))
    await wait(romeo.pubsub.publish(SERVICE, "mood", id="now", payload=entry("in love")))
    items = await wait(juliet.pubsub.get_items(SERVICE, "mood"))
    assert [i["id"] for i in items["pubsub"]["items"]] == ["now"]
    assert await pubsubFailure(nurse.pubsub.get_items(SERVICE, "mood")) == (
        "not-authorized", "presence-subscription-required")


@ensureDeferred
async def test_preconditionFails(makeServer):
    """Publishing with a publish-options precondition the node does not meet is refused."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    await wait(romeo.pubsub.create_node(SERVICE, "diary"))
    options = form(romeo, {"FORM_TYPE": "http://jabber.org/protocol/pubsub#publish-options",
                           "pubsub#access_model": "whitelist"})
    assert await pubsubFailure(romeo.pubsub.publish(SERVICE, "diary", id="1", payload=entry("x"),
                                              options=options)) == ("conflict",
                                                                    "precondition-not-met")
    options = form(romeo, {"FORM_TYPE": "http://jabber.org/protocol/pubsub#publish-options",
                           "pubsub#access_model": "open"})
    await wait(romeo.pubsub.publish(SERVICE, "diary", id="1", payload=entry("x"),
                                    options=options))


@ensureDeferred
async def test_deleteNotifies(makeServer):
    """Deleting a node tells its subscriber, and the node is gone."""
    server = await makeServer()
    romeo = await login(server, "romeo", "orchard")
    juliet = await login(server, "juliet", "balcony")
    await wait(romeo.pubsub.create_node(SERVICE, "sonnets"))
    await wait(juliet.pubsub.subscribe(SERVICE, "sonnets"))
    await wait(romeo.pubsub.delete_node(SERVICE, "sonnets"))
    message = await juliet.events.next("delete")
    assert message["pubsub_event"]["delete"]["node"] == "sonnets"
    assert (await pubsubFailure(juliet.pubsub.get_items(SERVICE, "sonnets")))[0] == "item-not-found"


@ensureDeferred
async def test_remoteUserMayNotCreate(makeServer):
    """Romeo of the served domain creates nodes; the default policy is local users."""
    server = await makeServer(dict(pubsub={"node_creation": "admins"}))
    romeo = await login(server, "romeo", "orchard")
    assert (await pubsubFailure(romeo.pubsub.create_node(SERVICE, "x")))[0] == "forbidden"
