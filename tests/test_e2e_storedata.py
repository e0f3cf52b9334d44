"""
End-to-end: slixmpp clients use the per-account data the server keeps for
them, vCards (XEP-0054), private XML (XEP-0049) and last activity
(XEP-0012), on a real node with SQLite storage.
"""


import pytest_twisted
from slixmpp.xmlstream import ElementBase

from tests.e2e import TIMEOUT, wait
from xmppd.storage.interfaces import RosterItem

ensureDeferred = pytest_twisted.ensureDeferred


class Prefs(ElementBase):
    """A client's preferences, kept in private XML storage."""

    name = "prefs"
    namespace = "urn:xmppd:test:prefs"
    plugin_attrib = "prefs"
    interfaces = {"nick"}
    sub_interfaces = interfaces


async def login(server, user, resource, *plugins):
    client = server.client(user, resource)
    for plugin in plugins:
        client.xmpp.register_plugin(plugin)
    if "xep_0049" in plugins:
        client.xmpp.plugin["xep_0049"].register(Prefs)
    await client.login()
    return client


async def publish(client, **fields):
    vcards = client.xmpp.plugin["xep_0054"]
    vcard = vcards.make_vcard()
    for name, value in fields.items():
        vcard[name] = value
    await wait(vcards.publish_vcard(vcard))


@ensureDeferred
async def test_vcardReadByAnotherUser(server):
    """Juliet reads the vCard Romeo published, served by the server while he is online."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await login(server, "romeo", "orchard", "xep_0054")
    juliet = await login(server, "juliet", "balcony", "xep_0054")

    await publish(romeo, FN="Romeo Montague", NICKNAME="romeo")
    iq = await wait(juliet.xmpp.plugin["xep_0054"].get_vcard("romeo@localhost"))

    assert iq["type"] == "result"
    assert iq["from"] == "romeo@localhost"
    assert iq["vcard_temp"]["FN"] == "Romeo Montague"
    assert iq["vcard_temp"]["NICKNAME"] == ["romeo"]


@ensureDeferred
async def test_storedDataSurvivesRestart(server):
    """Romeo's vCard and private XML are still there after the server restarts."""
    await server.addUser("romeo")
    romeo = await login(server, "romeo", "orchard", "xep_0054", "xep_0049")
    await publish(romeo, FN="Romeo Montague")
    prefs = Prefs()
    prefs["nick"] = "Romeo"
    await wait(romeo.xmpp.plugin["xep_0049"].store(prefs))
    await romeo.disconnect()

    await server.stop()
    await server.start()
    romeo = await login(server, "romeo", "garden", "xep_0054", "xep_0049")
    vcard = await wait(romeo.xmpp.plugin["xep_0054"].get_vcard("romeo@localhost"))
    private = await wait(romeo.xmpp.plugin["xep_0049"].retrieve("prefs"))

    assert vcard["vcard_temp"]["FN"] == "Romeo Montague"
    assert private["private"]["prefs"]["nick"] == "Romeo"


@ensureDeferred
async def test_lastActivityOfOfflineContact(server):
    """Juliet, subscribed to Romeo, learns he logged out moments ago and his parting status."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    # Juliet may see Romeo's presence: "from" in his roster (RFC 6121 §3).
    await server.service.storage.rosters.setItem(
        "romeo", "localhost", RosterItem("juliet@localhost", subscription="from"))
    romeo = await login(server, "romeo", "orchard")
    romeo.xmpp.send_presence(ptype="unavailable", pstatus="Heading home")
    await romeo.disconnect()
    juliet = await login(server, "juliet", "balcony", "xep_0012")

    iq = await wait(juliet.xmpp.plugin["xep_0012"].get_last_activity("romeo@localhost"))

    assert iq["type"] == "result"
    assert 0 <= iq["last_activity"]["seconds"] <= TIMEOUT
    assert iq["last_activity"]["status"] == "Heading home"
