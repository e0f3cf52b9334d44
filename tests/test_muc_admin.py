"""
Tests for L{muc.admin} and L{muc.roles}: kicking, voice, moderator status,
bans, the member, admin and owner lists, and who may do which, as XEP-0045
§8 (moderators) and §9 (admins) say a client sees them.  No network: a MUC
service on a real router with recording user domains (L{tests.muchelpers}).
"""


from tests.muchelpers import (
    ALICE, BOB, CAROL, DAVE, MUC, NS_ADMIN, NS_USER, ROOM, ROOT, adminGet, adminSet,
    affiliations, errorCondition, item, presencesFrom, statuses, takeIQ)
from tests.muchelpers import occupiedRoom as room


def listed(reply):
    """(jid, affiliation, role, nick) of each item of a muc#admin result."""
    assert reply["type"] == "result", reply.toXml()
    return [(i.getAttribute("jid"), i.getAttribute("affiliation"), i.getAttribute("role"),
             i.getAttribute("nick"))
            for query in reply.elements(NS_ADMIN, "query") for i in query.elements(NS_ADMIN, "item")]


def child(elem, name):
    for found in elem.elements(NS_USER, name):
        return found
    return None


# -- kicking (§8.2) -----------------------------------------------------------

def test_kickTellsKickedWithReasonAndActor():
    """A kicked occupant gets unavailable presence with 307 and 110, the reason and who kicked it."""
    m = room()

    reply = adminSet(m, ALICE, {"nick": "bob", "role": "none", "reason": "spam"})

    assert reply["type"] == "result"
    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable"
    assert statuses(gone) == {"307", "110"}
    kicked = item(gone)
    assert kicked["role"] == "none"
    assert str(child(kicked, "reason")) == "spam"
    assert child(kicked, "actor")["nick"] == "alice"


def test_kickTellsOthers():
    """Everyone else in the room sees the kicked occupant leave with status 307 (and no 110)."""
    m = room()

    adminSet(m, ALICE, {"nick": "bob", "role": "none"})

    [seen] = m.take(CAROL)
    assert seen["from"] == ROOM + "/bob" and seen["type"] == "unavailable"
    assert statuses(seen) == {"307"}
    assert "bob" not in m.service.rooms["room"].occupants


def test_participantMayNotKick():
    """A participant who tries to kick someone gets forbidden, and the target stays."""
    m = room()

    reply = adminSet(m, BOB, {"nick": "carol", "role": "none"})

    assert errorCondition(reply) == "forbidden"
    assert "carol" in m.service.rooms["room"].occupants
    assert m.take(CAROL) == []


def test_moderatorMayNotKickAdminOrOwner():
    """A moderator without an affiliation who tries to kick an admin or an owner gets not-allowed."""
    m = room()
    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "admin"})
    m.join(DAVE, "dave")
    adminSet(m, ALICE, {"nick": "bob", "role": "moderator"})
    m.clear()

    for target in ("dave", "alice"):
        reply = adminSet(m, BOB, {"nick": target, "role": "none"})
        assert errorCondition(reply) == "not-allowed"
    assert {"dave", "alice"} <= set(m.service.rooms["room"].occupants)


def test_unknownNickIsItemNotFound():
    """Changing the role of a nick nobody has gets item-not-found."""
    m = room()

    reply = adminSet(m, ALICE, {"nick": "nobody", "role": "none"})

    assert errorCondition(reply) == "item-not-found"


# -- voice and moderator status (§8.3, §8.4, §9.6, §9.7) ---------------------

def test_grantVoiceLetsVisitorSpeak():
    """In a moderated room a visitor given voice becomes a participant and may speak."""
    m = room(moderatedroom="1")
    m.join(DAVE, "dave")
    m.clear()

    reply = adminSet(m, ALICE, {"nick": "dave", "role": "participant"})

    assert reply["type"] == "result"
    [own] = presencesFrom(m.take(DAVE), "dave")
    assert item(own)["role"] == "participant" and "110" in statuses(own)
    [seen] = presencesFrom(m.take(CAROL), "dave")
    assert item(seen)["role"] == "participant"
    m.say(DAVE, "finally")
    [message] = m.take(CAROL)
    assert message.name == "message" and str(message.body) == "finally"


def test_revokeVoiceSilences():
    """A participant whose voice is revoked becomes a visitor and gets forbidden when speaking."""
    m = room(moderatedroom="1")
    m.join(DAVE, "dave")
    adminSet(m, ALICE, {"nick": "dave", "role": "participant"})
    m.clear()

    adminSet(m, ALICE, {"nick": "dave", "role": "visitor"})
    [own] = presencesFrom(m.take(DAVE), "dave")
    assert item(own)["role"] == "visitor"
    m.clear()

    m.say(DAVE, "hello?")
    [error] = m.take(DAVE)
    assert errorCondition(error) == "forbidden"
    assert m.take(CAROL) == []


def test_grantModeratorNeedsAdmin():
    """An owner may make someone a moderator; a moderator without an affiliation may not (not-allowed)."""
    m = room()

    reply = adminSet(m, ALICE, {"nick": "bob", "role": "moderator"})
    assert reply["type"] == "result"
    [seen] = presencesFrom(m.take(CAROL), "bob")
    assert item(seen)["role"] == "moderator"

    reply = adminSet(m, BOB, {"nick": "carol", "role": "moderator"})
    assert errorCondition(reply) == "not-allowed"
    assert m.service.rooms["room"].occupants["carol"].role == "participant"


# -- bans (§9.1) ----------------------------------------------------------------

def test_banRemovesWith301AndKeepsOut():
    """A banned occupant leaves with status 301 (everyone sees it) and gets forbidden entering again."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "outcast",
                                "reason": "enough"})

    assert reply["type"] == "result"
    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable" and statuses(gone) == {"301", "110"}
    assert item(gone)["affiliation"] == "outcast" and item(gone)["role"] == "none"
    [seen] = m.take(CAROL)
    assert seen["type"] == "unavailable" and statuses(seen) == {"301"}

    [refused] = m.join(BOB, "bob")
    assert errorCondition(refused) == "forbidden"


# -- the member, admin and owner lists (§9.2-9.5, §9.8, §10.3-10.8) ----------

def test_memberListSetAndGet():
    """An owner makes an account a member, and the member list then names it."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"})
    assert reply["type"] == "result"

    got = listed(adminGet(m, ALICE, affiliation="member"))
    assert got == [("dave@example.org", "member", None, None)]


def test_participantMayNotReadMemberList():
    """A participant asking for the member list of an open room gets forbidden."""
    m = room()

    assert errorCondition(adminGet(m, BOB, affiliation="member")) == "forbidden"


def test_ownerGrantsAdminAndOwner():
    """An owner may grant admin and owner status, and the admin and owner lists show it."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "admin"},
                     {"jid": "carol@example.org", "affiliation": "owner"})
    assert reply["type"] == "result"

    assert listed(adminGet(m, ALICE, affiliation="admin")) == [
        ("dave@example.org", "admin", None, None)]
    assert listed(adminGet(m, ALICE, affiliation="owner")) == [
        ("alice@example.org", "owner", None, None), ("carol@example.org", "owner", None, None)]
    [seen] = presencesFrom(m.take(BOB), "carol")
    assert item(seen)["affiliation"] == "owner" and item(seen)["role"] == "moderator"


def test_adminMayNotGrantAdminOrOwner():
    """An admin who tries to grant admin or owner status is refused, and nothing changes."""
    m = room()
    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "admin"})
    m.join(DAVE, "dave")
    before = affiliations(m)

    for affiliation in ("admin", "owner"):
        reply = adminSet(m, DAVE, {"jid": "erin@example.org", "affiliation": affiliation})
        assert errorCondition(reply) == "not-allowed"
    reply = adminSet(m, DAVE, {"jid": "alice@example.org", "affiliation": "none"})
    assert errorCondition(reply) == "not-allowed"
    assert affiliations(m) == before


def test_adminManagesMembers():
    """An admin may grant membership."""
    m = room()
    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "admin"})

    reply = adminSet(m, DAVE, {"jid": "erin@example.org", "affiliation": "member"})

    assert reply["type"] == "result"
    assert affiliations(m)["erin@example.org"] == "member"


def test_removingLastOwnerIsConflict():
    """The only owner who tries to give up ownership gets conflict and stays owner."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": "alice@example.org", "affiliation": "admin"})

    assert errorCondition(reply) == "conflict"
    assert affiliations(m)["alice@example.org"] == "owner"


def test_roleListsForModeratorsOnly():
    """Moderators may read the participant list; a participant asking gets forbidden."""
    m = room()

    assert errorCondition(adminGet(m, BOB, role="participant")) == "forbidden"
    assert errorCondition(adminGet(m, BOB, role="moderator")) == "forbidden"
    got = listed(adminGet(m, ALICE, role="participant"))
    assert sorted(got) == [(BOB, "none", "participant", "bob"),
                           (CAROL, "none", "participant", "carol")]


def test_changesAreAllOrNothing():
    """A request with one item that cannot be done answers the error and changes nothing at all."""
    m = room()
    before = affiliations(m)

    reply = adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"},
                     {"nick": "bob", "role": "none"},
                     {"nick": "nobody", "role": "none"})

    assert errorCondition(reply) == "item-not-found"
    assert affiliations(m) == before
    assert "bob" in m.service.rooms["room"].occupants
    assert m.take(BOB) == [] and m.take(CAROL) == []


def test_revokedMembershipInMembersOnlyRoomRemoves():
    """In a members-only room, an occupant whose membership is revoked leaves with status 321."""
    m = MUC()
    m.create(ALICE, "alice", config={"muc#roomconfig_membersonly": "1"})
    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "member"},
             {"jid": "carol@example.org", "affiliation": "member"})
    m.join(BOB, "bob")
    m.join(CAROL, "carol")
    m.clear()

    reply = adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "none"})

    assert reply["type"] == "result"
    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable" and statuses(gone) == {"321", "110"}
    assert item(gone)["affiliation"] == "none" and item(gone)["role"] == "none"
    [seen] = presencesFrom(m.take(CAROL), "bob")
    assert seen["type"] == "unavailable" and statuses(seen) == {"321"}


def test_serviceAdminActsAsOwner():
    """A service admin ([muc] admins) may ban, kick and configure in any room without being in it."""
    m = room()

    reply = adminSet(m, ROOT, {"jid": "carol@example.org", "affiliation": "outcast"})
    assert reply["type"] == "result"
    assert affiliations(m)["carol@example.org"] == "outcast"

    reply = adminSet(m, ROOT, {"nick": "bob", "role": "none"})
    assert reply["type"] == "result"
    assert "bob" not in m.service.rooms["room"].occupants

    assert listed(adminGet(m, ROOT, affiliation="owner")) == [
        ("alice@example.org", "owner", None, None)]

    m.send("<iq type='get' id='f1' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (ROOT, ROOM, NS_ADMIN.replace("#admin", "#owner")))
    assert takeIQ(m, ROOT)["type"] == "result"


def test_serviceAdminEntersAsOwner():
    """A service admin enters any room as a moderator, even a members-only one."""
    m = MUC(admins=("root@example.org",))
    m.create(ALICE, "alice", config={"muc#roomconfig_membersonly": "1"})

    got = m.join(ROOT, "root")

    [own] = [s for s in got if s.name == "presence" and "110" in statuses(s)]
    assert item(own)["role"] == "moderator"
