"""
End-to-end: room rules of XEP-0045 1.35 that a slixmpp client notices,
through a real node: a leave with a status text (§7.14), removal after an
error reply (status 333, for one device and for one of two), a password
room refusing a wrong password (§7.2.6), nicks refused by the PRECIS
Nickname profile (RFC 8266), a message with a subject and a body (§8.1),
joining again while present, presence probes, and mediated invitations
that carry a body and the XEP-0249 element (§7.8.2).

The helpers (clients with an inbox of every stanza, joining, saying) are
those of L{tests.test_e2e_muc}.
"""

from __future__ import annotations

from slixmpp import JID
from slixmpp.exceptions import PresenceError

from tests.e2e import DOMAIN
from tests.test_e2e_muc import (
    NS_CONFERENCE, NS_MUC_USER, available, cast, createRoom, ensureDeferred, join, muc,
    mucClient, refused, roomJID, say, setSubject)

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def statusText(stanza) -> str | None:
    return stanza.xml.findtext("{jabber:client}status")


def errorElement(refusal: PresenceError):
    return refusal.presence.xml.find("{jabber:client}error")


def bounce(client, room: str, condition: str, text: str) -> None:
    """C{client} answers the room with a message error, as a client that cannot take its messages does."""
    message = client.xmpp.make_message(mto=room, mtype="error")
    message["error"]["type"] = "cancel"
    message["error"]["condition"] = condition
    message["error"]["text"] = text
    message.send()


@ensureDeferred
async def test_leaveWithStatus(server):
    """Juliet leaving with a status text: Romeo sees her go with that text, and so does she (110)."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("balcony")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    muc(juliet).leave_muc(room, "juliet", msg="Good night, good night!")

    seen = await romeo.inbox.presence(room + "/juliet", "unavailable")
    assert statusText(seen) == "Good night, good night!"
    assert seen["muc"]["role"] == "none"
    own = await juliet.inbox.presence(room + "/juliet", "unavailable", code=110)
    assert statusText(own) == "Good night, good night!"


@ensureDeferred
async def test_errorBounceRemoves333(server):
    """Juliet's client bouncing a room message is removed: Romeo and she see 333 with the error in the status."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("crypt")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    bounce(juliet, room, "service-unavailable", "cannot take this")

    seen = await romeo.inbox.presence(room + "/juliet", "unavailable", code=333)
    assert "service-unavailable" in statusText(seen)
    assert "cannot take this" in statusText(seen)
    own = await juliet.inbox.presence(room + "/juliet", "unavailable", code=333)
    assert 110 in own["muc"]["status_codes"]
    await say(romeo, room, "romeo", "Is she gone?")
    assert not [s for s in juliet.inbox.unclaimed
                if s.name == "message" and s["body"] == "Is she gone?"]


@ensureDeferred
async def test_errorBounceOneOfTwoDevices(server):
    """Of Juliet's two devices under one nick only the bouncing one goes; Romeo sees nobody leave and the other keeps talking."""
    romeo, balcony = await cast(server, "romeo", "juliet")
    chamber = await mucClient(server, "juliet", "chamber")
    room = roomJID("crypt")
    await createRoom(romeo, room, "romeo")
    await join(balcony, room, "juliet")
    await romeo.inbox.presence(room + "/juliet")
    await join(chamber, room, "juliet")

    bounce(chamber, room, "recipient-unavailable", "asleep")

    own = await chamber.inbox.presence(room + "/juliet", "unavailable", code=333)
    assert 110 in own["muc"]["status_codes"]
    await say(balcony, room, "juliet", "I am still here")
    said = await romeo.inbox.message(room + "/juliet", "groupchat")
    assert said["body"] == "I am still here"
    assert not [s for s in romeo.inbox.unclaimed
                if s.name == "presence" and s["from"] == room + "/juliet"
                and s["type"] == "unavailable"]


@ensureDeferred
async def test_wrongPasswordNotAuthorized(server):
    """A wrong or missing password gets not-authorized of type auth, by the room."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("vault")
    await createRoom(romeo, room, "romeo", passwordprotectedroom="1", roomsecret="cauldron")

    for password in ("wrong", None):
        refusal = await refused(join(juliet, room, "juliet", password=password))
        assert refusal.condition == "not-authorized"
        assert refusal.etype == "auth"
        assert errorElement(refusal).get("by") == room

    presence, _, _, _ = await join(juliet, room, "juliet", password="cauldron")
    assert 110 in presence["muc"]["status_codes"]


@ensureDeferred
async def test_precisNickRefused(server):
    """An emoji-only nick, or one with a control character, is refused with jid-malformed and a readable text."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("hall")
    await createRoom(romeo, room, "romeo")

    # slixmpp's own resourceprep (stringprep) would not even send these.
    for nick in ("\U0001F600", "rom\x7feo", "\U0001F916\ufe0f"):
        juliet.xmpp.send_raw("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/>"
                             "</presence>" % (room, nick))
        refusal = await juliet.inbox.next(lambda s: s.name == "presence"
                                          and s.xml.get("type") == "error")
        error = refusal.xml.find("{jabber:client}error")
        assert error.find("{%s}jid-malformed" % NS_STANZAS) is not None, nick
        assert error.get("type") == "modify"
        assert error.findtext("{%s}text" % NS_STANZAS), nick

    presence, _, _, _ = await join(juliet, room, "  Juliet ")
    assert presence["from"] == JID(room + "/Juliet")
    assert 210 in presence["muc"]["status_codes"]
    refusal = await refused(join(await mucClient(server, "romeo", "chamber"), room, "JULIET"))
    assert refusal.condition == "conflict"


@ensureDeferred
async def test_subjectWithBodyIsMessage(server):
    """A message with a subject and a body is passed on and kept in the history; the subject does not change."""
    romeo, juliet, nurse = await cast(server, "romeo", "juliet", "nurse")
    room = roomJID("orchard")
    await createRoom(romeo, room, "romeo")
    await setSubject(romeo, room, "romeo", "Capulets")
    await join(juliet, room, "juliet")

    message = juliet.xmpp.make_message(mto=room, mbody="Wherefore art thou?",
                                       msubject="Montagues", mtype="groupchat")
    message.send()

    seen = await romeo.inbox.message(room + "/juliet", "groupchat")
    assert seen["body"] == "Wherefore art thou?"
    _, subject, _, history = await join(nurse, room, "nurse")
    assert subject["subject"] == "Capulets"
    assert [m["body"] for m in history] == ["Wherefore art thou?"]


@ensureDeferred
async def test_rejoinResendsState(server):
    """Joining again while present brings the occupants, the history asked for and the subject again."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await setSubject(romeo, room, "romeo", "The feast")
    for body in ("one", "two", "three"):
        await say(romeo, room, "romeo", body)
    await join(juliet, room, "juliet")
    await juliet.inbox.presence(room + "/romeo")

    presence, subject, _, history = await join(juliet, room, "juliet", maxstanzas=2)

    assert 110 in presence["muc"]["status_codes"]
    assert subject["subject"] == "The feast"
    assert [m["body"] for m in history] == ["two", "three"]
    # Romeo's presence came again (slixmpp lists only occupants new to it).
    await juliet.inbox.presence(room + "/romeo")


@ensureDeferred
async def test_probeOccupant(server):
    """An occupant probing another's occupant JID gets that occupant's current presence."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("garden")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")
    await juliet.inbox.presence(room + "/romeo")  # the one entering brought

    juliet.xmpp.send_presence(pto=room + "/romeo", ptype="probe")

    answer = await juliet.inbox.next(lambda s: s.name == "presence"
                                     and s["from"] == room + "/romeo"
                                     and s["type"] == "available")
    assert answer["muc"]["affiliation"] == "owner"


@ensureDeferred
async def test_invitationBodyAndConference(server):
    """A mediated invitation reaches Juliet with a readable body and the XEP-0249 element (jid, reason, password)."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("ball")
    await createRoom(romeo, room, "romeo", passwordprotectedroom="1", roomsecret="rosaline")
    await available(juliet)

    muc(romeo).invite(room, "juliet@" + DOMAIN, reason="Come to the feast")

    invitation = await juliet.inbox.message(room, payload="{%s}x/{%s}invite" % (NS_MUC_USER,
                                                                                NS_MUC_USER))
    assert invitation["body"] == "romeo@%s invites you to the room %s: Come to the feast" % (
        DOMAIN, room)
    conference = invitation.xml.find("{%s}x" % NS_CONFERENCE)
    assert conference.get("jid") == room
    assert conference.get("reason") == "Come to the feast"
    assert conference.get("password") == "rosaline"
