"""
Tests for L{muc.invites}: mediated invitations through the room and
declines back to the inviter (XEP-0045 §7.8.2, §7.8.3), with the
XEP-0249 element for clients that only know direct invitations.
"""

from tests.muchelpers import MUC, NS_ADMIN, NS_USER, ROOM, errorCondition

JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/orchard"
NURSE = "nurse@example.org/kitchen"
NS_CONFERENCE = "jabber:x:conference"


def inviteMessage(sender, invitee, reason=None):
    reason = "<reason>%s</reason>" % reason if reason else ""
    return ("<message from='%s' to='%s'><x xmlns='%s'><invite to='%s'>%s</invite></x></message>"
            % (sender, ROOM, NS_USER, invitee, reason))


def invitation(stanza):
    """The muc#user <invite/> of an invitation the room sent, or None."""
    for x in stanza.elements(NS_USER, "x"):
        for found in x.elements(NS_USER, "invite"):
            return found
    return None


def makeMember(m, bare):
    m.send("<iq type='set' id='aff' from='%s' to='%s'><query xmlns='%s'>"
           "<item affiliation='member' jid='%s'/></query></iq>" % (JULIET, ROOM, NS_ADMIN, bare))
    # Juliet, a moderator, is also told of the change (a message, muc.notices).
    [reply] = [s for s in m.take(JULIET) if s.name == "iq"]
    assert reply["type"] == "result"


def membersOnlyRoom(allowinvites):
    """Juliet's members-only room with Romeo in it as a member (participant)."""
    m = MUC()
    m.create(JULIET, "jul", config={"muc#roomconfig_membersonly": "1",
                                    "muc#roomconfig_allowinvites": allowinvites})
    makeMember(m, "romeo@example.org")
    m.join(ROMEO, "rom")
    m.clear()
    return m


def test_mediatedInvitation():
    """The invitee gets a message from the room naming the inviter, the reason and the password, with the XEP-0249 element too."""
    m = MUC()
    m.create(JULIET, "jul", config={"muc#roomconfig_passwordprotectedroom": "1",
                                    "muc#roomconfig_roomsecret": "cauldron"})

    m.send(inviteMessage(JULIET, "romeo@example.org", "Hey Romeo"))

    [message] = m.take("romeo@example.org")
    assert message["from"] == ROOM
    invite = invitation(message)
    assert invite["from"] == JULIET
    assert [str(r) for r in invite.elements(NS_USER, "reason")] == ["Hey Romeo"]
    [x] = message.elements(NS_USER, "x")
    assert [str(p) for p in x.elements(NS_USER, "password")] == ["cauldron"]
    [conference] = message.elements(NS_CONFERENCE, "x")
    assert conference["jid"] == ROOM
    assert m.take(JULIET) == []


def test_decline():
    """An invitee's decline reaches the inviter from the room, with who declined and why."""
    m = MUC()
    m.create(JULIET, "jul")

    m.send("<message from='%s' to='%s'><x xmlns='%s'><decline to='%s'><reason>Busy</reason>"
           "</decline></x></message>" % (ROMEO, ROOM, NS_USER, "juliet@example.org"))

    [message] = m.take("juliet@example.org")
    assert message["from"] == ROOM
    [x] = message.elements(NS_USER, "x")
    [decline] = x.elements(NS_USER, "decline")
    assert decline["from"] == "romeo@example.org"
    assert [str(r) for r in decline.elements(NS_USER, "reason")] == ["Busy"]


def test_inviteFromNonOccupant():
    """Someone who is not in the room and tries to invite gets not-acceptable, and nobody is invited."""
    m = MUC()
    m.create(JULIET, "jul")

    m.send(inviteMessage(NURSE, "romeo@example.org"))

    [refusal] = m.take(NURSE)
    assert errorCondition(refusal) == "not-acceptable"
    assert m.take("romeo@example.org") == []


def test_membersOnlyInviteByParticipantMakesMember():
    """In a members-only room that allows invites, a participant's invitee becomes a member and may enter."""
    m = membersOnlyRoom("1")

    m.send(inviteMessage(ROMEO, "nurse@example.org"))

    [message] = m.take("nurse@example.org")
    assert invitation(message)["from"] == ROMEO
    assert m.service.rooms["room"].affiliationOf("nurse@example.org") == "member"
    got = m.join(NURSE, "nurse")
    assert errorCondition(got[0]) is None


def test_membersOnlyInviteByOwnerMakesMember():
    """In a members-only room that does not allow invites, an owner's invitee still becomes a member."""
    m = membersOnlyRoom("0")

    m.send(inviteMessage(JULIET, "nurse@example.org"))

    [message] = m.take("nurse@example.org")
    assert invitation(message)["from"] == JULIET
    assert m.service.rooms["room"].affiliationOf("nurse@example.org") == "member"


def test_membersOnlyInviteByParticipantForbidden():
    """In a members-only room that does not allow invites, a participant's invitation gets forbidden."""
    m = membersOnlyRoom("0")

    m.send(inviteMessage(ROMEO, "nurse@example.org"))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "forbidden"
    assert m.take("nurse@example.org") == []
    assert m.service.rooms["room"].affiliationOf("nurse@example.org") == "none"


def test_invitationCarriesBodyAndConferenceElement():
    """A mediated invitation has a readable body naming inviter, room and reason, and the XEP-0249 element with jid, reason and password."""
    m = MUC()
    m.create(JULIET, "jul", config={"muc#roomconfig_passwordprotectedroom": "1",
                                    "muc#roomconfig_roomsecret": "cauldron"})

    m.send(inviteMessage(JULIET, "romeo@example.org/orchard", "Hey Romeo"))

    [message] = m.take("romeo@example.org/orchard")
    [body] = [str(b) for b in message.elements(message.uri, "body")]
    assert body == "juliet@example.org invites you to the room %s: Hey Romeo" % ROOM
    [conference] = message.elements(NS_CONFERENCE, "x")
    assert (conference["jid"], conference["reason"], conference["password"]) == (
        ROOM, "Hey Romeo", "cauldron")


def test_invitationWithoutReasonOrPassword():
    """Without a reason or a password the body says so plainly and the XEP-0249 element carries only the room."""
    m = MUC()
    m.create(JULIET, "jul")

    m.send(inviteMessage(JULIET, "romeo@example.org"))

    [message] = m.take("romeo@example.org")
    assert [str(b) for b in message.elements(message.uri, "body")] == [
        "juliet@example.org invites you to the room %s" % ROOM]
    [conference] = message.elements(NS_CONFERENCE, "x")
    assert conference.attributes == {"jid": ROOM}
