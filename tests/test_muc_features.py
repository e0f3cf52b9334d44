"""
Tests for L{muc.features}: each room option as a client notices it, by
entering, speaking and asking the room's disco#info (XEP-0045 §6.4, §7,
§10.2, XEP-0421).  No network: a MUC service on a real router with
recording user domains (L{tests.muchelpers}).
"""

import pytest

from tests.muchelpers import (
    MUC, NS_ADMIN, NS_MUC, ROOM, errorCondition, item, statuses)

ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
CAROL = "carol@example.org/laptop"
DAVE = "dave@example.org/tablet"
ERIN = "erin@example.org/home"

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def room(**config):
    """A room owned by Alice (nick 'alice'), configured with those muc#roomconfig fields."""
    m = MUC()
    m.create(ALICE, "alice", config={"muc#roomconfig_" + k: v for k, v in config.items()})
    m.clear()
    return m


def grant(m, bare, affiliation):
    m.send("<iq type='set' id='g1' from='%s' to='%s'><query xmlns='%s'>"
           "<item jid='%s' affiliation='%s'/></query></iq>"
           % (ALICE, ROOM, NS_ADMIN, bare, affiliation))
    [reply] = [s for s in m.take(ALICE) if s.name == "iq"]
    assert reply["type"] == "result", reply.toXml()


def features(m, sender=ALICE):
    """The features of the room's disco#info."""
    m.take(sender)
    m.send("<iq type='get' id='i1' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (sender, ROOM, NS_DISCO_INFO))
    [reply] = m.take(sender)
    assert reply["type"] == "result", reply.toXml()
    [query] = reply.elements(NS_DISCO_INFO, "query")
    return {f["var"] for f in query.elements(NS_DISCO_INFO, "feature")}


def roomInfo(m, sender=ALICE):
    """The muc#roominfo fields of the room's disco#info: var -> values."""
    m.send("<iq type='get' id='i1' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (sender, ROOM, NS_DISCO_INFO))
    [reply] = m.take(sender)
    [query] = reply.elements(NS_DISCO_INFO, "query")
    fields = {}
    for x in query.elements("jabber:x:data", "x"):
        for field in x.elements("jabber:x:data", "field"):
            fields[field["var"]] = [str(v) for v in field.elements("jabber:x:data", "value")]
    return fields


def entered(stanzas):
    """The occupant's own presence (status 110) among what entering returned, or None."""
    for stanza in stanzas:
        if stanza.name == "presence" and "110" in statuses(stanza):
            return stanza
    return None


def refused(stanzas):
    [error] = stanzas
    return errorCondition(error)


def presenceFroms(stanzas):
    return [s["from"] for s in stanzas if s.name == "presence"]


# -- password (§7.2.6) --------------------------------------------------------------

def test_passwordRequired():
    """Entering a password-protected room without the password, or with a wrong one, gets not-authorized."""
    m = room(passwordprotectedroom="1", roomsecret="s3cret")

    assert refused(m.join(BOB, "bob")) == "not-authorized"
    assert refused(m.join(BOB, "bob", extra="<password>guess</password>")) == "not-authorized"
    assert "bob" not in m.service.rooms["room"].occupants


def test_passwordRightEnters():
    """Entering with the right password gets in."""
    m = room(passwordprotectedroom="1", roomsecret="s3cret")

    assert entered(m.join(BOB, "bob", extra="<password>s3cret</password>")) is not None


def test_passwordDisco():
    """disco#info says muc_passwordprotected for a room with a password, muc_unsecured otherwise."""
    assert "muc_passwordprotected" in features(room(passwordprotectedroom="1",
                                                    roomsecret="s3cret"))
    assert "muc_unsecured" in features(room())


# -- members-only (§7.2.7, §9.3) ------------------------------------------------------

def test_membersOnlyRefusesNonMembers():
    """A non-member entering a members-only room gets registration-required; a member gets in."""
    m = room(membersonly="1")
    grant(m, "carol@example.org", "member")

    assert refused(m.join(BOB, "bob")) == "registration-required"
    assert entered(m.join(CAROL, "carol")) is not None
    assert "muc_membersonly" in features(m)


def test_switchingMembersOnlyRemovesNonMembers():
    """Making a room members-only removes those who are not members, with status 322."""
    m = room()
    grant(m, "carol@example.org", "member")
    m.join(BOB, "bob")
    m.join(CAROL, "carol")
    m.clear()

    m.configure(ALICE, {"muc#roomconfig_membersonly": "1"})

    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable" and statuses(gone) == {"322", "110"}
    assert item(gone)["role"] == "none"
    seen = [s for s in m.take(CAROL) if s.name == "presence"]
    assert [(s["from"], statuses(s)) for s in seen] == [(ROOM + "/bob", {"322"})]
    assert set(m.service.rooms["room"].occupants) == {"alice", "carol"}


# -- moderated (§7.4, §8.3) ---------------------------------------------------------------

def test_moderatedVisitorsMayNotSpeak():
    """In a moderated room a newcomer is a visitor, and its message gets forbidden and reaches nobody."""
    m = room(moderatedroom="1")

    assert item(entered(m.join(BOB, "bob")))["role"] == "visitor"
    m.clear()
    m.say(BOB, "hello")

    assert refused(m.take(BOB)) == "forbidden"
    assert m.take(ALICE) == []


def test_moderatedDisco():
    """disco#info says muc_moderated for a moderated room, muc_unmoderated otherwise."""
    assert "muc_moderated" in features(room(moderatedroom="1"))
    assert "muc_unmoderated" in features(room())


# -- maxusers (§7.2.10) ---------------------------------------------------------------------

def test_fullRoomRefuses():
    """Entering a full room gets service-unavailable."""
    m = room(maxusers="2")
    m.join(BOB, "bob")

    assert refused(m.join(CAROL, "carol")) == "service-unavailable"


def test_fullRoomAdmitsAdminsAndOwners():
    """Admins and owners still enter a full room."""
    m = room(maxusers="1")
    grant(m, "dave@example.org", "admin")
    grant(m, "erin@example.org", "owner")

    assert entered(m.join(DAVE, "dave")) is not None
    assert entered(m.join(ERIN, "erin")) is not None


def test_maxUsersAboveLimitRefused():
    """An owner asking for a room larger than the service allows gets not-acceptable."""
    m = room()

    [reply] = m.configure(ALICE, {"muc#roomconfig_maxusers": "5000"})

    assert errorCondition(reply) == "not-acceptable"


# -- whois (§7.2.3, §7.2.4) ----------------------------------------------------------------

def test_nonAnonymousShowsJIDsToEveryone():
    """In a non-anonymous room a newcomer gets status 100 and sees everyone's real JID."""
    m = room(whois="anyone")
    m.join(CAROL, "carol")

    got = m.join(BOB, "bob")

    assert "100" in statuses(entered(got))
    others = {s["from"]: item(s).getAttribute("jid") for s in got
              if s.name == "presence" and "110" not in statuses(s)}
    assert others == {ROOM + "/alice": ALICE, ROOM + "/carol": CAROL}
    assert "muc_nonanonymous" in features(m)


def test_semiAnonymousShowsJIDsToModeratorsOnly():
    """In a semi-anonymous room participants do not see real JIDs; moderators do."""
    m = room()
    m.join(CAROL, "carol")
    m.clear()

    got = m.join(BOB, "bob")

    assert "100" not in statuses(entered(got))
    assert [item(s).getAttribute("jid") for s in got
            if s.name == "presence" and "110" not in statuses(s)] == [None, None]
    [seenByAlice] = m.take(ALICE)
    assert item(seenByAlice)["jid"] == BOB
    assert "muc_semianonymous" in features(m)


# -- presence broadcast (§10.2) --------------------------------------------------------------

def test_visitorPresenceNotBroadcastUnlessListed():
    """When visitors are not among the broadcast roles, nobody gets a visitor's presence."""
    m = room(moderatedroom="1", presencebroadcast=["moderator", "participant"])
    grant(m, "carol@example.org", "member")
    m.join(CAROL, "carol")
    m.clear()

    got = m.join(BOB, "bob")

    assert item(entered(got))["role"] == "visitor"
    assert m.take(ALICE) == [] and m.take(CAROL) == []
    # The visitor still learns who is there.
    assert set(presenceFroms(got)) == {ROOM + "/alice", ROOM + "/carol", ROOM + "/bob"}
    assert ROOM + "/bob" not in presenceFroms(m.join(DAVE, "dave"))


# -- private messages (§7.5) ------------------------------------------------------------------

def pm(m, sender, nick):
    m.send("<message type='chat' from='%s' to='%s/%s'><body>psst</body></message>"
           % (sender, ROOM, nick))


@pytest.mark.parametrize("policy, allowed", [
    ("anyone", {"alice", "bob"}),
    ("moderators", {"alice"}),
    ("none", set()),
])
def test_allowPM(policy, allowed):
    """Private messages go through only from the roles the room allows; others get forbidden."""
    m = room(allowpm=policy)
    m.join(BOB, "bob")
    m.join(CAROL, "carol")
    m.clear()

    for sender, nick in ((ALICE, "alice"), (BOB, "bob")):
        pm(m, sender, "carol")
        delivered = m.take(CAROL)
        if nick in allowed:
            [message] = delivered
            assert message["from"] == ROOM + "/" + nick
        else:
            assert delivered == []
            assert refused(m.take(sender)) == "forbidden"


# -- subject (§8.1) -----------------------------------------------------------------------------

def setSubject(m, sender, subject):
    m.send("<message type='groupchat' from='%s' to='%s'><subject>%s</subject></message>"
           % (sender, ROOM, subject))


def test_participantMayNotChangeSubjectByDefault():
    """A participant changing the subject gets forbidden unless the room allows it."""
    m = room()
    m.join(BOB, "bob")
    m.clear()

    setSubject(m, BOB, "mine")

    assert refused(m.take(BOB)) == "forbidden"
    assert m.service.rooms["room"].subject == ""


def test_changeSubjectAllowed():
    """With changesubject on, a participant's new subject goes to everyone."""
    m = room(changesubject="1")
    m.join(BOB, "bob")
    m.clear()

    setSubject(m, BOB, "ours")

    [message] = m.take(ALICE)
    assert message["from"] == ROOM + "/bob" and str(message.subject) == "ours"


# -- reserved nicks (§7.10, §7.12) ----------------------------------------------------------------

def register(m, sender, nick):
    m.send("<iq type='set' id='r1' from='%s' to='%s'><query xmlns='jabber:iq:register'>"
           "<x xmlns='jabber:x:data' type='submit'>"
           "<field var='FORM_TYPE'><value>%s#register</value></field>"
           "<field var='muc#register_roomnick'><value>%s</value></field>"
           "</x></query></iq>" % (sender, ROOM, NS_MUC, nick))
    [reply] = m.take(sender)
    assert reply["type"] == "result", reply.toXml()


def test_reservedNickAssigned():
    """A registered member entering under another nick gets the registered one, with status 210."""
    m = MUC()
    m.create(ALICE, "alice", config={"x-muc#roomconfig_reservednick": "1"})
    register(m, BOB, "bobby")

    own = entered(m.join(BOB, "whatever"))

    assert own["from"] == ROOM + "/bobby"
    assert "210" in statuses(own)
    assert set(m.service.rooms["room"].occupants) == {"alice", "bobby"}


# -- nick changes (§7.6) ------------------------------------------------------------------------------

def test_canChangeNickOff():
    """With nick changes off, an occupant asking for a new nick gets not-acceptable."""
    m = MUC()
    m.create(ALICE, "alice", config={"x-muc#roomconfig_canchangenick": "0"})
    m.join(BOB, "bob")
    m.clear()

    assert refused(m.join(BOB, "robert")) == "not-acceptable"
    assert "bob" in m.service.rooms["room"].occupants


# -- the member list (§9.5) -------------------------------------------------------------------------

def test_getMemberListByParticipants():
    """When participants may retrieve the member list, a participant gets it."""
    m = room(getmemberlist=["moderator", "participant"])
    grant(m, "carol@example.org", "member")
    m.join(BOB, "bob")
    m.clear()

    m.send("<iq type='get' id='l1' from='%s' to='%s'><query xmlns='%s'>"
           "<item affiliation='member'/></query></iq>" % (BOB, ROOM, NS_ADMIN))

    [reply] = m.take(BOB)
    assert reply["type"] == "result"
    assert [i["jid"] for i in reply.query.elements(NS_ADMIN, "item")] == ["carol@example.org"]


# -- disco#info (§6.4) ---------------------------------------------------------------------------

def test_persistentAndPublicDisco():
    """disco#info says muc_persistent or muc_temporary, and muc_public or muc_hidden."""
    assert {"muc_persistent", "muc_public"} <= features(room(persistentroom="1"))
    assert {"muc_temporary", "muc_hidden"} <= features(room(publicroom="0"))


def test_occupantIdDisco():
    """disco#info announces occupant ids (XEP-0421)."""
    assert "urn:xmpp:occupant-id:0" in features(room())


def test_roomInfoFields():
    """disco#info carries the room's name, description and language as muc#roominfo fields."""
    m = room(roomname="Balcony", roomdesc="Star-crossed", lang="en")

    info = roomInfo(m, BOB)

    assert info["FORM_TYPE"] == [NS_MUC + "#roominfo"]
    assert info["muc#roominfo_description"] == ["Star-crossed"]
    assert info["muc#roominfo_lang"] == ["en"]
    assert info["muc#roominfo_occupants"] == ["1"]
    assert "Balcony" in sum(info.values(), [])
