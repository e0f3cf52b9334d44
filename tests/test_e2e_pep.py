"""
End-to-end: personal eventing (XEP-0163) on the accounts of a real node
(SQLite storage), with slixmpp's plugins: a nickname (XEP-0172) published
by one contact reaches the other through its entity capabilities
(XEP-0115 C{+notify}), the last item reaches a contact that logs in
later, a stranger is refused a presence-access node, persistent and
private storage (XEP-0222, XEP-0223) through publish-options, and an item
survives a restart of the node.
"""

from __future__ import annotations

import asyncio

import pytest_twisted
from slixmpp.xmlstream import ET
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT, contacts, pubsubFailure, reactor, wait
from xmppd.core.hooks import OBSERVE
from xmppd.features.clientcaps.tracker import CAPS_CHANGED, capsOf
from xmppd.features.pep.handler import PEPHandler

ensureDeferred = pytest_twisted.ensureDeferred

NICK = "http://jabber.org/protocol/nick"
NS_NOTE = "urn:xmppd:test:note"
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0172",
           "xep_0222", "xep_0223")


def interestLearnt(domain, jid: str, node: str) -> defer.Deferred:
    """Fires once the node knows that C{jid} wants C{node} notifications; at most TIMEOUT."""
    caps = capsOf(domain)
    learnt = defer.Deferred()

    def onChanged(event):
        if event.jid.full() == jid and caps.wantsNotify(event.jid, node) and not learnt.called:
            learnt.callback(None)

    if caps.wantsNotify(jid, node):
        return defer.succeed(None)
    domain.hooks.add(CAPS_CHANGED, onChanged, OBSERVE)
    learnt.addBoth(lambda result: (domain.hooks.remove(CAPS_CHANGED, onChanged), result)[1])
    return learnt.addTimeout(TIMEOUT, reactor())


async def login(server, user: str, resource: str, nicks: bool = True):
    """
    C{user} logs in with PEP plugins, announces its caps (with nick+notify
    unless C{nicks} is false) and is available, once the node has learnt
    the caps.
    """
    client = server.client(user, resource)
    for plugin in PLUGINS:
        client.xmpp.register_plugin(plugin)
    client.nicks = asyncio.Queue()
    client.xmpp.add_event_handler("user_nick_publish", client.nicks.put_nowait)
    await client.login()
    if not nicks:
        client.xmpp.plugin["xep_0163"].remove_interest(NICK)
    await wait(client.xmpp.plugin["xep_0115"].update_caps(broadcast=False))
    domain = server.service.getServiceNamed(DOMAIN)
    learnt = interestLearnt(domain, client.jid.full, NICK) if nicks else None
    client.xmpp.send_presence()
    if learnt is not None:
        await learnt
    return client


def note(text: str):
    element = ET.Element("{%s}note" % NS_NOTE)
    element.text = text
    return element


class Note:
    """A payload slixmpp's PEP helpers can publish (they want C{.xml} and C{.namespace})."""

    namespace = NS_NOTE

    def __init__(self, text: str):
        self.xml = note(text)


@ensureDeferred
async def test_nickReachesContactThroughCaps(server):
    """Romeo publishes his nickname and Juliet, whose caps say nick+notify, is told."""
    await contacts(server, "romeo", "juliet")
    juliet = await login(server, "juliet", "balcony")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    message = await wait(juliet.nicks.get())
    assert message["from"] == "romeo@" + DOMAIN
    assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Romeo"


@ensureDeferred
async def test_lastNickOnLogin(server):
    """Juliet logging in after Romeo set his nickname gets it as the last item."""
    await contacts(server, "romeo", "juliet")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    juliet = await login(server, "juliet", "balcony")
    message = await wait(juliet.nicks.get())
    assert message["from"] == "romeo@" + DOMAIN
    assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Romeo"


@ensureDeferred
async def test_strangerRefused(server):
    """The Nurse, no contact of Romeo's, may not read his presence-access nickname node."""
    await contacts(server, "romeo", "juliet")
    await server.addUser("nurse")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    nurse = await login(server, "nurse", "kitchen", nicks=False)
    juliet = await login(server, "juliet", "balcony", nicks=False)
    pubsub = "xep_0060"
    assert await pubsubFailure(nurse.xmpp.plugin[pubsub].get_items("romeo@" + DOMAIN, NICK)) == (
        "not-authorized", "presence-subscription-required")
    items = await wait(juliet.xmpp.plugin[pubsub].get_items("romeo@" + DOMAIN, NICK))
    assert [i["id"] for i in items["pubsub"]["items"]] == ["current"]


@ensureDeferred
async def test_persistentStorage(server):
    """XEP-0222: stored data is read back by its owner and by a contact (presence access)."""
    await contacts(server, "romeo", "juliet")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    juliet = await login(server, "juliet", "balcony", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0222"].store(Note("public"), id="n1"))
    await wait(romeo.xmpp.plugin["xep_0222"].store(Note("again"), id="n1"))
    items = await wait(romeo.xmpp.plugin["xep_0222"].retrieve(NS_NOTE))
    assert [i["id"] for i in items["pubsub"]["items"]] == ["n1"]
    theirs = await wait(juliet.xmpp.plugin["xep_0060"].get_items("romeo@" + DOMAIN, NS_NOTE))
    assert [i["id"] for i in theirs["pubsub"]["items"]] == ["n1"]


@ensureDeferred
async def test_privateStorage(server):
    """XEP-0223: private data is read back by its owner and refused to a contact."""
    await contacts(server, "romeo", "juliet")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    juliet = await login(server, "juliet", "balcony", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0223"].store(Note("secret"), id="s1"))
    await wait(romeo.xmpp.plugin["xep_0223"].store(Note("secret again"), id="s1"))
    items = await wait(romeo.xmpp.plugin["xep_0223"].retrieve(NS_NOTE))
    [item] = items["pubsub"]["items"]
    assert item["id"] == "s1" and "secret again" in str(item)
    condition, _ = await pubsubFailure(
        juliet.xmpp.plugin["xep_0060"].get_items("romeo@" + DOMAIN, NS_NOTE))
    assert condition == "not-allowed"


@ensureDeferred
async def test_itemSurvivesRestart(server):
    """A PEP item published before a restart is still there after it."""
    await contacts(server, "romeo")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    await wait(romeo.xmpp.plugin["xep_0223"].store(Note("kept"), id="k1"))
    await romeo.disconnect()
    await server.stop()

    await server.start()
    romeo = await login(server, "romeo", "garden", nicks=False)
    items = await wait(romeo.xmpp.plugin["xep_0223"].retrieve(NS_NOTE))
    [item] = items["pubsub"]["items"]
    assert item["id"] == "k1" and "kept" in str(item)


@ensureDeferred
async def test_removedAccountLosesNodes(server):
    """An account that removes itself takes its PEP nodes along; made again, it has none."""
    await contacts(server, "romeo", "juliet")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    romeo.xmpp.register_plugin("xep_0077")
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    await wait(romeo.xmpp.plugin["xep_0077"].cancel_registration())
    assert await romeo.closedByServer() == ["not-authorized"]
    domain = server.service.getServiceNamed(DOMAIN)
    [pep] = [h for h in domain.handlers if isinstance(h, PEPHandler)]
    assert "romeo@" + DOMAIN not in pep.engines
    assert await server.service.storage.pubsub.listNodes("romeo@" + DOMAIN) == []

    await contacts(server, "romeo")
    again = await login(server, "romeo", "garden", nicks=False)
    assert await pubsubFailure(again.xmpp.plugin["xep_0060"].get_items(None, NICK)) == (
        "item-not-found", None)


def publishOptions(client, fields: dict):
    made = client.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    made.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields.items():
        made.add_field(var=var, value=value)
    return made


@ensureDeferred
async def test_openNodeAndPreconditions(server):
    """A node published open (as OMEMO does) is read by a stranger; a mismatching precondition is refused."""
    await contacts(server, "romeo")
    await server.addUser("nurse")
    romeo = await login(server, "romeo", "orchard", nicks=False)
    nurse = await login(server, "nurse", "kitchen", nicks=False)
    devices = "eu.siacs.conversations.axolotl.devicelist"
    await wait(romeo.xmpp.plugin["xep_0060"].publish(
        None, devices, id="current", payload=note("1234"),
        options=publishOptions(romeo, {"pubsub#access_model": "open"})))
    items = await wait(nurse.xmpp.plugin["xep_0060"].get_items("romeo@" + DOMAIN, devices))
    assert [i["id"] for i in items["pubsub"]["items"]] == ["current"]
    assert await pubsubFailure(romeo.xmpp.plugin["xep_0060"].publish(
        None, devices, id="current", payload=note("5678"),
        options=publishOptions(romeo, {"pubsub#access_model": "whitelist"}))) == (
        "conflict", "precondition-not-met")


@ensureDeferred
async def test_ownOtherResourceNotified(server):
    """Romeo's second client is told of the nickname his first one publishes."""
    await contacts(server, "romeo")
    garden = await login(server, "romeo", "garden")
    orchard = await login(server, "romeo", "orchard", nicks=False)
    await wait(orchard.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    message = await wait(garden.nicks.get())
    assert message["from"] == "romeo@" + DOMAIN
    assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Romeo"
