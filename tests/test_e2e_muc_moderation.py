"""
End-to-end: moderated message retraction in a room (XEP-0425, with the
XEP-0424 tombstones of the room's archive) through a real node on SQLite.
The moderator's request comes from slixmpp's own XEP-0425 plugin (the
0.3.0 form) or is built by hand in the 0.2.1 form older clients still send;
the other occupant's slixmpp recognises the retraction with its plugin, and
reads the room's archive with its XEP-0313 one.
"""

from __future__ import annotations

import itertools

import pytest_twisted
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e import TIMEOUT, wait
from tests.test_e2e_muc import Inbox, asDeferred, createRoom, join, roomJID, say

ensureDeferred = pytest_twisted.ensureDeferred

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_MODERATE_0 = "urn:xmpp:message-moderate:0"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
SPAM = "DM me for free magic potions!"
REASON = "spam"
RESOURCES = {"romeo": "orchard", "juliet": "balcony", "nurse": "kitchen"}
_queries = itertools.count()


async def client(server, user: str):
    """A logged-in client with an inbox and the MUC, moderation and archive plugins."""
    made = server.client(user, RESOURCES[user])
    for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0203", "xep_0313", "xep_0359",
                   "xep_0421", "xep_0424", "xep_0425"):
        made.xmpp.register_plugin(plugin)
    made.inbox = Inbox(made)
    await made.login()
    return made


async def cast(server, *names):
    clients = []
    for name in names:
        await server.addUser(name)
        clients.append(await client(server, name))
    return clients


def stanzaIdOf(message, room: str) -> str:
    """The stanza-id the room gave a message (XEP-0359: by the room's JID)."""
    [tag] = [t for t in message.xml.findall("{%s}stanza-id" % NS_SID) if t.get("by") == room]
    return tag.get("id")


async def spoken(juliet, nurse, room: str) -> str:
    """Juliet says something the room should not keep; its stanza-id, as the nurse got it."""
    await say(juliet, room, "juliet", SPAM)
    message = await nurse.inbox.next(lambda s: s.name == "message"
                                     and s["from"] == room + "/juliet" and s["body"] == SPAM)
    return stanzaIdOf(message, room)


def retraction(client, room: str):
    """The next message from the room itself retracting something."""
    return client.inbox.next(lambda s: s.name == "message" and s["from"] == room
                             and s.xml.find("{%s}retract" % NS_RETRACT) is not None)


async def _archive(client, room: str) -> list:
    """Every message of the room's archive, as (archive id, forwarded message), oldest first."""
    xmpp = client.xmpp
    iq = xmpp.make_iq_set(ito=room)
    queryId = "q%d" % next(_queries)
    iq["mam"]["queryid"] = queryId
    results = []

    def onResult(message):
        result = message["mam_result"]
        if result["queryid"] == queryId and message["from"] == room:
            results.append((result["id"], result["forwarded"]["stanza"]))

    name = "room-mam-" + queryId
    xmpp.register_handler(Callback(
        name, MatchXPath("{jabber:client}message/{%s}result" % NS_MAM), onResult))
    try:
        await iq.send(timeout=TIMEOUT)
    finally:
        xmpp.remove_handler(name)
    return results


def archive(client, room: str):
    return wait(_archive(client, room))


def assertTombstone(results, stanzaId: str, room: str) -> None:
    """The room's archive has the message's tombstone in its place, then the retraction."""
    assert [archiveId for archiveId, _ in results][0] == stanzaId
    tombstone = results[0][1]
    assert tombstone["from"] == room + "/juliet"
    assert tombstone["body"] == ""
    assert SPAM not in str(tombstone)
    retracted = tombstone.xml.find("{%s}retracted" % NS_RETRACT)
    assert retracted is not None and retracted.get("stamp")
    moderated = retracted.find("{%s}moderated" % NS_MODERATE)
    assert moderated.get("by") == room + "/romeo"
    assert retracted.find("{%s}reason" % NS_RETRACT).text == REASON
    assert tombstone.xml.find("{%s}moderated/{%s}retracted" % (NS_MODERATE_0, NS_RETRACT_0)) \
        is not None
    [(_, announcement)] = results[1:]
    assert announcement["from"] == room
    assert announcement["retract"]["id"] == stanzaId


@ensureDeferred
async def test_moderatorRetractsAMessage(server):
    """
    Romeo, moderator of a logging room, retracts Juliet's message with
    slixmpp's XEP-0425 plugin: the nurse's client sees it as a moderated
    retraction by Romeo, and the room's archive returns a tombstone without
    the body, also after the server restarts.
    """
    romeo, juliet, nurse = await cast(server, "romeo", "juliet", "nurse")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo", enablelogging="1", persistentroom="1")
    info = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT))
    assert NS_MODERATE in info["disco_info"]["features"]
    await join(juliet, room, "juliet")
    await join(nurse, room, "nurse")
    stanzaId = await spoken(juliet, nurse, room)

    moderatedEvents = []
    nurse.xmpp.add_event_handler("moderated_message", moderatedEvents.append)
    await wait(romeo.xmpp.plugin["xep_0425"].moderate(JID(room), stanzaId, REASON,
                                                       timeout=TIMEOUT))

    got = await retraction(nurse, room)
    assert got["retract"]["id"] == stanzaId
    assert got["retract"]["moderated"]["by"] == room + "/romeo"
    assert got["retract"]["moderated"]["occupant-id"]["id"]
    assert got["retract"]["reason"] == REASON
    assert [m["retract"]["id"] for m in moderatedEvents] == [stanzaId]
    mine = await retraction(romeo, room)
    assert mine["id"] == got["id"]
    assert (await retraction(juliet, room))["retract"]["id"] == stanzaId

    assertTombstone(await archive(nurse, room), stanzaId, room)

    for occupant in (romeo, juliet, nurse):
        await occupant.disconnect()
    await server.stop()
    await server.start()
    nurse = await client(server, "nurse")
    assertTombstone(await archive(nurse, room), stanzaId, room)
    _, _, _, history = await join(nurse, room, "nurse")
    assert SPAM not in [m["body"] for m in history]


@ensureDeferred
async def test_legacyRequestForm(server):
    """
    A moderation request in XEP-0425 0.2.1's form (apply-to, Message
    Fastening), built by hand as older Converse.js and Gajim send it, is
    carried out, and the notification also carries that older form.
    """
    romeo, juliet, nurse = await cast(server, "romeo", "juliet", "nurse")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo", enablelogging="1")
    await join(juliet, room, "juliet")
    await join(nurse, room, "nurse")
    stanzaId = await spoken(juliet, nurse, room)

    iq = romeo.xmpp.make_iq_set(ito=room)
    applyTo = ET.SubElement(iq.xml, "{%s}apply-to" % NS_FASTEN, {"id": stanzaId})
    moderate = ET.SubElement(applyTo, "{%s}moderate" % NS_MODERATE_0)
    ET.SubElement(moderate, "{%s}retract" % NS_RETRACT_0)
    ET.SubElement(moderate, "{%s}reason" % NS_MODERATE_0).text = REASON
    reply = await wait(iq.send(timeout=TIMEOUT))
    assert reply["type"] == "result"

    got = await retraction(nurse, room)
    legacy = got.xml.find("{%s}apply-to/{%s}moderated" % (NS_FASTEN, NS_MODERATE_0))
    assert got.xml.find("{%s}apply-to" % NS_FASTEN).get("id") == stanzaId
    assert legacy.get("by") == room + "/romeo"
    assert legacy.find("{%s}retract" % NS_RETRACT_0) is not None
    assertTombstone(await archive(juliet, room), stanzaId, room)


@ensureDeferred
async def test_onlyModeratorsAndKnownIds(server):
    """A participant's moderation request is forbidden; a moderator's for an unknown stanza-id is item-not-found."""
    romeo, juliet, nurse = await cast(server, "romeo", "juliet", "nurse")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo", enablelogging="1")
    await join(juliet, room, "juliet")
    await join(nurse, room, "nurse")
    stanzaId = await spoken(juliet, nurse, room)

    conditions = []
    for moderator, target in ((nurse, stanzaId), (romeo, "no-such-message")):
        try:
            await wait(moderator.xmpp.plugin["xep_0425"].moderate(JID(room), target,
                                                                   timeout=TIMEOUT))
        except IqError as e:
            conditions.append(e.iq["error"]["condition"])
    assert conditions == ["forbidden", "item-not-found"]
    [(archiveId, original)] = await archive(juliet, room)
    assert (archiveId, original["body"]) == (stanzaId, SPAM)
