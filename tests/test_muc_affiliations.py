"""
Tests for affiliation changes as occupants notice them (XEP-0045 §9.3-9.8,
§10.3-10.7, §7.10, §9.5): the message for an account that is not in the
room (L{muc.notices}), the presence for one that is, the item shapes
clients send (L{muc.admin}), members-only removals (321, 322), cancelling a
registration, and who may read the member list
(L{muc.features.getmemberlist}).  No network: a MUC service on a real
router with recording user domains (L{tests.muchelpers}).
"""

from tests.muchelpers import (
    ALICE, BOB, CAROL, DAVE, MUC, NS_ADMIN, NS_USER, ROOM, ROOT, adminGet, adminSet,
    affiliations, errorCondition, item, onlyIQ, presencesFrom, statuses)
from tests.muchelpers import occupiedRoom as room

BOB2 = "bob@example.org/laptop"


def notices(stanzas):
    """(jid, affiliation, role) of each message from the room itself carrying a muc#user item."""
    found = []
    for s in stanzas:
        if s.name == "message" and s["from"] == ROOM and item(s) is not None:
            i = item(s)
            found.append((i.getAttribute("jid"), i.getAttribute("affiliation"),
                          i.getAttribute("role")))
    return found


# -- an account that is not in the room: a message (1.35 "Notifications of Changes") ----------

def test_absentAccountsNewAffiliationIsAMessageToOccupants():
    """In a non-anonymous room every occupant gets a message from the room naming the absent account and its new affiliation."""
    m = room(whois="anyone")

    reply = adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"})

    assert reply["type"] == "result"
    for jid in (ALICE, BOB, CAROL):
        got = m.take(jid)
        assert notices(got) == [("dave@example.org", "member", "none")], jid
        [message] = [s for s in got if s.name == "message"]
        assert message.getAttribute("type") is None


def test_absentAccountNoticeOnlyToThoseWhoSeeJIDs():
    """In a semi-anonymous room only the moderators, who see real JIDs, get the message."""
    m = room()

    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"})

    assert m.take(BOB) == [] and m.take(CAROL) == []
    assert notices(m.take(ALICE)) == [("dave@example.org", "member", "none")]


def test_everyAffiliationChangeOfAnAbsentAccountIsAnnounced():
    """Granting member, admin, owner, banning and removing are each announced with the new affiliation."""
    m = room(whois="anyone")

    for affiliation in ("member", "admin", "owner", "outcast", "none"):
        adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": affiliation})
        assert notices(m.take(BOB)) == [("dave@example.org", affiliation, "none")]


def test_unchangedAffiliationIsNotAnnounced():
    """Making a member a member again tells nobody anything."""
    m = room(whois="anyone")
    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"})
    m.clear()

    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"})

    assert m.take(BOB) == []


def test_noticeCarriesReasonAndActor():
    """The announcement repeats the admin's reason and names the acting occupant."""
    m = room(whois="anyone")

    m.send("<iq type='set' id='a1' from='%s' to='%s'><query xmlns='%s'>"
           "<item jid='dave@example.org' affiliation='outcast'><reason>spam</reason></item>"
           "</query></iq>" % (ALICE, ROOM, NS_ADMIN))

    [message] = [s for s in m.take(BOB) if s.name == "message"]
    banned = item(message)
    assert [str(r) for r in banned.elements(NS_USER, "reason")] == ["spam"]
    assert [a["nick"] for a in banned.elements(NS_USER, "actor")] == ["alice"]


# -- someone present: presence to everyone, on every device -----------------------------------

def test_presentAccountGetsPresenceOnEveryDevice():
    """Bob, in the room from two devices and made admin, sees his new affiliation and role on both; the others see it too; no message."""
    m = room()
    m.join(BOB2, "bob")
    m.clear()

    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "admin"})

    for device in (BOB, BOB2):
        [own] = m.take(device)
        assert own.name == "presence" and "110" in statuses(own)
        assert (item(own)["affiliation"], item(own)["role"]) == ("admin", "moderator")
    [seen] = presencesFrom(m.take(CAROL), "bob")
    assert (item(seen)["affiliation"], item(seen)["role"]) == ("admin", "moderator")
    assert notices(m.take(ALICE)) == []


# -- the shapes clients send ------------------------------------------------------------------

def test_jidWithResourceMeansTheAccount():
    """An item whose jid has a resource changes the affiliation of the bare JID."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": "dave@example.org/tablet", "affiliation": "member"})

    assert reply["type"] == "result"
    assert affiliations(m)["dave@example.org"] == "member"
    assert "dave@example.org/tablet" not in affiliations(m)


def test_nickOfAnOccupantMeansItsAccount():
    """An item with a nick and no jid changes the affiliation of that occupant's real bare JID."""
    m = room()

    reply = adminSet(m, ALICE, {"nick": "bob", "affiliation": "member"})

    assert reply["type"] == "result"
    assert affiliations(m)["bob@example.org"] == "member"
    [own] = m.take(BOB)
    assert item(own)["affiliation"] == "member"


def test_nickOfAnAbsentRegisteredAccount():
    """A nick registered in the room (§7.10) names its account even when it is not in the room."""
    m = room(whois="anyone")
    m.service.rooms["room"].registered["dave@example.org"] = "davey"

    reply = adminSet(m, ALICE, {"nick": "davey", "affiliation": "outcast"})

    assert reply["type"] == "result"
    assert affiliations(m)["dave@example.org"] == "outcast"
    assert notices(m.take(BOB)) == [("dave@example.org", "outcast", "none")]


def test_unknownNickIsItemNotFound():
    """A nick that names nobody, present or registered, answers item-not-found."""
    m = room()

    assert errorCondition(adminSet(m, ALICE, {"nick": "nobody", "affiliation": "member"})) \
        == "item-not-found"


def test_roleItemByJID():
    """A role change that names the occupant by its real JID instead of its nick is done."""
    m = room()

    reply = adminSet(m, ALICE, {"jid": BOB, "role": "none"})

    assert reply["type"] == "result"
    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable" and "307" in statuses(gone)


def test_severalItemsAreAllApplied():
    """One request with several items changes every one, and each is announced."""
    m = room(whois="anyone")

    reply = adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "member"},
                     {"jid": "erin@example.org/home", "affiliation": "admin"},
                     {"nick": "carol", "affiliation": "outcast"})

    assert reply["type"] == "result"
    assert affiliations(m) == {"alice@example.org": "owner", "dave@example.org": "member",
                               "erin@example.org": "admin", "carol@example.org": "outcast"}
    got = m.take(BOB)
    assert notices(got) == [("dave@example.org", "member", "none"),
                            ("erin@example.org", "admin", "none")]
    [gone] = presencesFrom(got, "carol")
    assert gone["type"] == "unavailable" and "301" in statuses(gone)


def test_severalItemsOneRefusedChangesNothing():
    """If one item of a request is not allowed, the request fails with its error and no item is applied or announced."""
    m = room(whois="anyone")
    adminSet(m, ALICE, {"jid": "dave@example.org", "affiliation": "admin"})
    m.join(DAVE, "dave")
    m.clear()
    before = affiliations(m)

    reply = adminSet(m, DAVE, {"jid": "erin@example.org", "affiliation": "member"},
                     {"nick": "bob", "affiliation": "member"},
                     {"jid": "alice@example.org", "affiliation": "none"})

    assert errorCondition(reply) == "not-allowed"
    assert affiliations(m) == before
    assert m.take(BOB) == [] and m.take(CAROL) == [] and m.take(ALICE) == []


# -- members-only rooms (§9.4, §10.2, §7.10) ---------------------------------------------------

def membersOnly():
    """Alice's members-only room with Bob (two devices) and Carol in it as members."""
    m = MUC(admins=("root@example.org",))
    m.create(ALICE, "alice", config={"muc#roomconfig_membersonly": "1"})
    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "member"},
             {"jid": "carol@example.org", "affiliation": "member"})
    m.join(BOB, "bob")
    m.join(BOB2, "bob")
    m.join(CAROL, "carol")
    m.clear()
    return m


def test_lostMembershipRemovesEveryDevice():
    """A member who loses membership leaves from every device with 321 and 110, and everyone sees 321 with affiliation and role none."""
    m = membersOnly()

    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "none"})

    for device in (BOB, BOB2):
        [gone] = m.take(device)
        assert gone["type"] == "unavailable" and statuses(gone) == {"321", "110"}
        assert (item(gone)["affiliation"], item(gone)["role"]) == ("none", "none")
    for other in (ALICE, CAROL):
        [seen] = presencesFrom(m.take(other), "bob")
        assert seen["type"] == "unavailable" and statuses(seen) == {"321"}
        assert (item(seen)["affiliation"], item(seen)["role"]) == ("none", "none")
    assert "bob" not in m.service.rooms["room"].occupants


def test_becomingMembersOnlyRemovesNonMembersButNotServiceAdmins():
    """Turning a room members-only removes non-members with 322 (affiliation and role none); members and service admins stay."""
    m = room()
    adminSet(m, ALICE, {"jid": "carol@example.org", "affiliation": "member"})
    m.join(ROOT, "root")
    m.clear()

    m.configure(ALICE, {"muc#roomconfig_membersonly": "1"})

    [gone] = presencesFrom(m.take(BOB), "bob")
    assert gone["type"] == "unavailable" and statuses(gone) == {"322", "110"}
    assert (item(gone)["affiliation"], item(gone)["role"]) == ("none", "none")
    [seen] = presencesFrom(m.take(CAROL), "bob")
    assert statuses(seen) == {"322"}
    assert set(m.service.rooms["room"].occupants) == {"alice", "carol", "root"}


def unregister(m, sender):
    m.send("<iq type='set' id='u1' from='%s' to='%s'><query xmlns='jabber:iq:register'>"
           "<remove/></query></iq>" % (sender, ROOM))
    return m.take(sender)


def test_unregisteringMemberLeavesMembersOnlyRoom():
    """A registered member who cancels the registration is no longer a member and leaves a members-only room with 321."""
    m = membersOnly()
    m.service.rooms["room"].registered["carol@example.org"] = "carol"

    got = unregister(m, CAROL)

    assert onlyIQ(got)["type"] == "result"
    [gone] = [s for s in got if s.name == "presence"]
    assert gone["type"] == "unavailable" and statuses(gone) == {"321", "110"}
    assert "carol@example.org" not in affiliations(m)
    assert "carol@example.org" not in m.service.rooms["room"].registered


def test_memberMadeByAnAdminMayUnregister():
    """A member made by an admin, with no registered nick, may cancel the membership too."""
    m = membersOnly()

    got = unregister(m, CAROL)

    assert onlyIQ(got)["type"] == "result"
    assert "carol@example.org" not in affiliations(m)
    assert "carol" not in m.service.rooms["room"].occupants


# -- who may read the member list (muc#roomconfig_getmemberlist) -------------------------------

def test_membersMayReadMemberListWhenAllowed():
    """In a non-anonymous room that lets members read it, a member gets the member list, in the room or not."""
    m = room(whois="anyone", getmemberlist=["moderator", "member"])
    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "member"},
             {"jid": "dave@example.org", "affiliation": "member"})

    for asker in (BOB, DAVE):
        reply = adminGet(m, asker, affiliation="member")
        assert reply["type"] == "result", asker
        assert sorted(i["jid"] for q in reply.elements(NS_ADMIN, "query")
                      for i in q.elements(NS_ADMIN, "item")) == [
            "bob@example.org", "dave@example.org"]


def test_memberListForbiddenUnlessAllowed():
    """By default (moderators only) a member who is a participant gets forbidden, and never the admin or owner list."""
    m = room(whois="anyone")
    adminSet(m, ALICE, {"jid": "bob@example.org", "affiliation": "member"})

    assert errorCondition(adminGet(m, BOB, affiliation="member")) == "forbidden"
    m.configure(ALICE, {"muc#roomconfig_getmemberlist": ["member"]})
    assert errorCondition(adminGet(m, BOB, affiliation="admin")) == "forbidden"
    assert errorCondition(adminGet(m, BOB, affiliation="owner")) == "forbidden"
    assert errorCondition(adminGet(m, CAROL, affiliation="member")) == "forbidden"
