"""
Moderated message retraction in rooms (XEP-0425 0.3.0 and its 0.2.1 form,
with XEP-0424 tombstones in the room's archive): muc/features/moderation.py.
"""

from __future__ import annotations

from tests.helpers import parse
from tests.muchelpers import MUC, ROOM, errorCondition
from tests.test_muc_archive import NS_MAM, NS_SID, loggingRoom, query, stanzaIds

NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_MODERATE_0 = "urn:xmpp:message-moderate:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
ROMEO = "romeo@example.org/orchard"
JULIET = "juliet@example.org/balcony"
NURSE = "nurse@example.org/kitchen"
REASON = "This message contains inappropriate content for this forum"


def roomWithMessage(**config):
    """A logging room where Romeo (owner, so moderator), Juliet and the nurse are; Juliet spoke."""
    m = loggingRoom(**config)
    m.join(NURSE, "nurse")
    m.clear()
    m.say(JULIET, "DM me for free magic potions!")
    [(stanzaId, _)] = stanzaIds(m.take(NURSE)[0])
    m.clear()
    return m, stanzaId


def moderate(m: MUC, jid: str, stanzaId: str, reason: str = REASON, id: str = "mod1"):
    """XEP-0425 0.3.0 Example 4, as the moderator's client sends it."""
    m.send("<iq type='set' id='%s' from='%s' to='%s'>"
           "<moderate id='%s' xmlns='%s'><retract xmlns='%s'/><reason>%s</reason></moderate>"
           "</iq>" % (id, jid, ROOM, stanzaId, NS_MODERATE, NS_RETRACT, reason))


def moderateLegacy(m: MUC, jid: str, stanzaId: str, reason: str = REASON):
    """XEP-0425 0.2.1 Example 4 (Message Fastening), as older clients send it."""
    m.send("<iq type='set' id='mod0' from='%s' to='%s'>"
           "<apply-to id='%s' xmlns='%s'><moderate xmlns='%s'><retract xmlns='%s'/>"
           "<reason>%s</reason></moderate></apply-to></iq>"
           % (jid, ROOM, stanzaId, NS_FASTEN, NS_MODERATE_0, NS_RETRACT_0, reason))


def child(parent, uri, name):
    return next(parent.elements(uri, name), None)


def assertAnnouncement(message, stanzaId, by=ROOM + "/romeo", reason=REASON):
    """The room's moderation message carries the 0.3.0 form and the 0.2.1 form."""
    assert message.name == "message"
    assert message["from"] == ROOM and message["type"] == "groupchat"
    assert child(message, None, "body") is None
    retract = child(message, NS_RETRACT, "retract")
    assert retract["id"] == stanzaId
    moderated = child(retract, NS_MODERATE, "moderated")
    assert moderated["by"] == by
    assert child(moderated, NS_OCCUPANT_ID, "occupant-id")["id"]
    assert str(child(retract, NS_RETRACT, "reason")) == reason
    applyTo = child(message, NS_FASTEN, "apply-to")
    assert applyTo["id"] == stanzaId
    legacy = child(applyTo, NS_MODERATE_0, "moderated")
    assert legacy["by"] == by
    assert child(legacy, NS_RETRACT_0, "retract") is not None
    assert str(child(legacy, NS_MODERATE_0, "reason")) == reason


def test_everyOccupantGetsTheRetraction():
    """A moderator's retraction reaches every occupant, the moderator too, who then gets the result."""
    m, stanzaId = roomWithMessage()
    moderate(m, ROMEO, stanzaId)
    for jid in (JULIET, NURSE):
        [message] = m.take(jid)
        assertAnnouncement(message, stanzaId)
    announcement, result = m.take(ROMEO)
    assertAnnouncement(announcement, stanzaId)
    assert result.name == "iq" and result["type"] == "result" and result["id"] == "mod1"
    assert result["from"] == ROOM


def test_legacyRequestAccepted():
    """The 0.2.1 request (apply-to, urn:xmpp:fasten:0) retracts the message just the same."""
    m, stanzaId = roomWithMessage()
    moderateLegacy(m, ROMEO, stanzaId)
    [message] = m.take(NURSE)
    assertAnnouncement(message, stanzaId)
    [_, result] = m.take(ROMEO)
    assert result["type"] == "result" and result["id"] == "mod0"


def test_retractionIsSerializedOnce():
    """The same announcement, with one stanza-id of its own, goes to every occupant."""
    m, stanzaId = roomWithMessage()
    moderate(m, ROMEO, stanzaId)
    [toNurse] = m.take(NURSE)
    [toJuliet] = m.take(JULIET)
    assert toNurse["id"] == toJuliet["id"]
    [(announcementId, by)] = stanzaIds(toNurse)
    assert by == ROOM and announcementId != stanzaId
    assert stanzaIds(toJuliet) == [(announcementId, by)]


def test_archiveReturnsTheTombstone():
    """A MAM query on the room returns a tombstone without the body where the message was, then the retraction."""
    m, stanzaId = roomWithMessage()
    moderate(m, ROMEO, stanzaId)
    m.clear()
    results, answer = query(m, NURSE)
    assert answer["type"] == "result"
    assert len(results) == 2
    first = child(results[0], NS_MAM, "result")
    assert first["id"] == stanzaId
    tombstone = first.forwarded.message
    assert tombstone["from"] == ROOM + "/juliet"
    assert child(tombstone, None, "body") is None and child(tombstone, tombstone.uri, "body") is None
    assert "potions" not in tombstone.toXml()
    assert child(tombstone, NS_OCCUPANT_ID, "occupant-id")["id"]
    retracted = child(tombstone, NS_RETRACT, "retracted")
    assert retracted["stamp"]
    assert child(retracted, NS_MODERATE, "moderated")["by"] == ROOM + "/romeo"
    assert str(child(retracted, NS_RETRACT, "reason")) == REASON
    legacy = child(tombstone, NS_MODERATE_0, "moderated")
    assert legacy["by"] == ROOM + "/romeo"
    assert child(legacy, NS_RETRACT_0, "retracted")["stamp"] == retracted["stamp"]
    second = child(results[1], NS_MAM, "result").forwarded.message
    assert second["from"] == ROOM
    assert child(second, NS_RETRACT, "retract")["id"] == stanzaId


def test_tombstoneKeepsNothingOfTheContent():
    """Rich content (XHTML, links, replies) goes with the body; only ids stay."""
    m = loggingRoom()
    m.clear()
    m.send("<message type='groupchat' id='m1' from='%s' to='%s'><body>secret</body>"
           "<html xmlns='http://jabber.org/protocol/xhtml-im'><body>secret</body></html>"
           "<x xmlns='jabber:x:oob'><url>https://example.org/secret</url></x>"
           "<origin-id xmlns='%s' id='o1'/></message>" % (JULIET, ROOM, NS_SID))
    [(stanzaId, _)] = stanzaIds(m.take(ROMEO)[0])
    moderate(m, ROMEO, stanzaId)
    m.clear()
    results, _ = query(m, ROMEO)
    tombstone = child(results[0], NS_MAM, "result").forwarded.message
    assert "secret" not in tombstone.toXml()
    assert tombstone["id"] == "m1"
    assert child(tombstone, NS_SID, "origin-id")["id"] == "o1"
    assert {(c.uri, c.name) for c in tombstone.elements()} == {
        (NS_SID, "origin-id"), (NS_SID, "stanza-id"), (NS_OCCUPANT_ID, "occupant-id"),
        (NS_RETRACT, "retracted"), (NS_MODERATE_0, "moderated")}


def test_nonModeratorForbidden():
    """A participant who asks to retract someone's message gets forbidden, and nothing changes."""
    m, stanzaId = roomWithMessage()
    moderate(m, NURSE, stanzaId)
    [error] = m.take(NURSE)
    assert errorCondition(error) == "forbidden"
    assert m.take(JULIET) == [] and m.take(ROMEO) == []
    results, _ = query(m, ROMEO)
    assert "potions" in results[0].toXml()


def test_outsiderForbidden():
    """Someone who is not in the room and holds no affiliation may not moderate it."""
    m, stanzaId = roomWithMessage()
    moderateLegacy(m, "tybalt@example.org/street", stanzaId)
    [error] = m.take("tybalt@example.org/street")
    assert errorCondition(error) == "forbidden"


def test_absentOwnerMayModerate():
    """An owner not in the room (a moderator there) may retract; the room itself is named as moderator."""
    m, stanzaId = roomWithMessage()
    m.send("<presence type='unavailable' from='%s' to='%s/romeo'/>" % (ROMEO, ROOM))
    m.clear()
    moderate(m, "romeo@example.org/phone", stanzaId)
    [message] = m.take(NURSE)
    retract = child(message, NS_RETRACT, "retract")
    assert child(retract, NS_MODERATE, "moderated")["by"] == ROOM
    [result] = m.take("romeo@example.org/phone")
    assert result["type"] == "result"


def test_unknownStanzaIdItemNotFound():
    """A stanza-id the room never gave gets item-not-found, and no occupant hears of it."""
    m, _ = roomWithMessage()
    moderate(m, ROMEO, "no-such-id")
    [error] = m.take(ROMEO)
    assert errorCondition(error) == "item-not-found"
    assert m.take(NURSE) == []


def test_roomsOwnMessagesAreNotModerated():
    """The room's own retraction message cannot itself be retracted (not-acceptable)."""
    m, stanzaId = roomWithMessage()
    moderate(m, ROMEO, stanzaId)
    [(announcementId, _)] = stanzaIds(m.take(NURSE)[0])
    m.clear()
    moderate(m, ROMEO, announcementId, id="mod2")
    [error] = m.take(ROMEO)
    assert errorCondition(error) == "not-acceptable"


def test_badRequests():
    """A request without an id, a get, or a moderation that is not a retraction is refused."""
    m, stanzaId = roomWithMessage()
    m.send("<iq type='set' id='a' from='%s' to='%s'><moderate xmlns='%s'>"
           "<retract xmlns='%s'/></moderate></iq>" % (ROMEO, ROOM, NS_MODERATE, NS_RETRACT))
    m.send("<iq type='get' id='b' from='%s' to='%s'><moderate id='%s' xmlns='%s'>"
           "<retract xmlns='%s'/></moderate></iq>" % (ROMEO, ROOM, stanzaId, NS_MODERATE,
                                                       NS_RETRACT))
    m.send("<iq type='set' id='c' from='%s' to='%s'><moderate id='%s' xmlns='%s'/></iq>"
           % (ROMEO, ROOM, stanzaId, NS_MODERATE))
    replies = {r["id"]: errorCondition(r) for r in m.take(ROMEO)}
    assert replies == {"a": "bad-request", "b": "bad-request", "c": "feature-not-implemented"}
    assert m.take(NURSE) == []


def test_withoutReason():
    """A retraction without a reason carries no reason element."""
    m, stanzaId = roomWithMessage()
    m.send("<iq type='set' id='m' from='%s' to='%s'><moderate id='%s' xmlns='%s'>"
           "<retract xmlns='%s'/></moderate></iq>" % (ROMEO, ROOM, stanzaId, NS_MODERATE,
                                                      NS_RETRACT))
    [message] = m.take(NURSE)
    assert child(child(message, NS_RETRACT, "retract"), NS_RETRACT, "reason") is None


def test_newcomersDoNotGetTheMessageInHistory():
    """After a retraction, someone entering the room no longer gets the message in the history."""
    m, stanzaId = roomWithMessage()
    m.say(JULIET, "a kind word")
    moderate(m, ROMEO, stanzaId)
    got = m.join("benvolio@example.org/home", "benvolio")
    bodies = [str(s.body) for s in got if s.name == "message" and s.body is not None]
    assert bodies == ["a kind word"]


def test_retractedMessageGoneFromStoredHistory():
    """A persistent room saves its history without the retracted message, so a restart does not bring it back."""
    m, stanzaId = roomWithMessage(**{"muc#roomconfig_persistentroom": "1"})
    moderate(m, ROMEO, stanzaId)
    m.restart()
    got = m.join("benvolio@example.org/home", "benvolio")
    assert not any(s.name == "message" and s.body is not None for s in got)


def test_discoListsModeration():
    """disco#info of a logging room lists both moderation namespaces and tombstones; a room without logging does not."""
    m = loggingRoom()
    m.send("<iq type='get' id='d' from='%s' to='%s'>"
           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (JULIET, ROOM))
    [reply] = m.take(JULIET)
    features = {f["var"] for f in reply.query.elements(reply.query.uri, "feature")}
    assert {NS_MODERATE, NS_MODERATE_0, NS_RETRACT + "#tombstone"} <= features
    plain = MUC(rate=0)
    plain.create(ROMEO, "romeo")
    plain.send("<iq type='get' id='d' from='%s' to='%s'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (ROMEO, ROOM))
    [reply] = plain.take(ROMEO)
    features = {f["var"] for f in reply.query.elements(reply.query.uri, "feature")}
    assert NS_MODERATE not in features


def test_parsedAsAClientWouldReadIt():
    """The announcement, serialized and parsed again, still names the message by its stanza-id."""
    m, stanzaId = roomWithMessage()
    moderate(m, ROMEO, stanzaId)
    [message] = m.take(NURSE)
    again = parse(message.toXml())
    assert child(again, NS_RETRACT, "retract")["id"] == stanzaId
