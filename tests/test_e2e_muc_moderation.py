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
from tests.test_e2e_muc import PLUGINS as MUC_PLUGINS
from tests.test_e2e_muc import asDeferred, createRoom, join, mucClient, roomJID, say
from tests.test_e2e_muc import cast as mucCast

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
_queries = itertools.count()
#: A MUC client's plugins, and those for archives and moderation.
PLUGINS = MUC_PLUGINS + ("xep_0313", "xep_0359", "xep_0421", "xep_0424", "xep_0425")


def cast(server, *names):
    """The named accounts, logged in with the MUC, moderation and archive plugins."""
    return mucCast(server, *names, plugins=PLUGINS)


def stanzaIdOf(message, room: str) -> str:
    """The stanza-id the room gave a message (XEP-0359: by the room's JID)."""
    [tag] = [t for t in message.xml.findall("{%s}stanza-id" % NS_SID) if t.get("by") == room]
    return tag.get("id")


async def spamInRoom(server, **fields):
    """
    Romeo makes a logging room (configured with C{fields} too), Juliet and
    the nurse enter and Juliet says L{SPAM}: the clients, the room and the
    message's stanza-id.
    """
    romeo, juliet, nurse = await cast(server, "romeo", "juliet", "nurse")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo", enablelogging="1", **fields)
    await join(juliet, room, "juliet")
    await join(nurse, room, "nurse")
    return romeo, juliet, nurse, room, await spoken(juliet, nurse, room)


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
    romeo, juliet, nurse, room, stanzaId = await spamInRoom(server, persistentroom="1")
    info = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT))
    assert NS_MODERATE in info["disco_info"]["features"]

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
    nurse = await mucClient(server, "nurse", plugins=PLUGINS)
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
    romeo, juliet, nurse, room, stanzaId = await spamInRoom(server)

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
    romeo, juliet, nurse, room, stanzaId = await spamInRoom(server)

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
