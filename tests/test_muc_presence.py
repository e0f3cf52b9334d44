"""
Tests for what a client sees of occupants' presence and of a few room
rules in L{muc.room} and L{muc.probes} (XEP-0045 1.35): leaving with a
status text (§7.14), removal after an error reply (status 333, §11.1),
entering a password-protected room (§7.2.6), a subject with a body
(§8.1), joining again while present, and presence probes.  No network
(L{tests.muchelpers}).
"""

from tests.muchelpers import (
    JULIET, MUC, NS_MUC, ROMEO, ROOM, errorCondition, errorOf, item, presences, roomWithRomeo,
    statuses, texts)

ROMEO2 = "romeo@example.org/phone"
NURSE = "nurse@example.org/kitchen"
NS_DELAY = "urn:xmpp:delay"


def bounce(m, sender, errorType="cancel", condition="service-unavailable", text=None,
           kind="message", to=ROOM + "/jul"):
    body = "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>%s</text>" % text if text else ""
    m.send("<%s type='error' from='%s' to='%s'><error type='%s'>"
           "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>%s</error></%s>"
           % (kind, sender, to, errorType, condition, body, kind))


# -- leaving with a status text (§7.14) ------------------------------------------

def test_leavingStatusToEveryoneAndSelf():
    """A leave with a status text: every other occupant and the leaver (110, role none) get the text."""
    m = roomWithRomeo()
    m.join(NURSE, "nurse")
    m.clear()

    m.send("<presence type='unavailable' from='%s' to='%s/rom'><status>off to Mantua</status>"
           "</presence>" % (ROMEO, ROOM))

    for jid in (JULIET, NURSE):
        [seen] = m.take(jid)
        assert seen["type"] == "unavailable" and texts(seen, "status") == ["off to Mantua"]
        assert item(seen)["role"] == "none" and "110" not in statuses(seen)
    [own] = m.take(ROMEO)
    assert texts(own, "status") == ["off to Mantua"] and "110" in statuses(own)
    assert item(own)["role"] == "none"


# -- removal after an error reply (status 333) -------------------------------------

def test_errorBounceRemovesWithStatusText():
    """A device bouncing a room message is removed: 333 to all, 110+333 to it, the error in the status text."""
    m = roomWithRomeo()

    bounce(m, ROMEO, condition="recipient-unavailable", text="gone away")

    [seen] = m.take(JULIET)
    assert seen["type"] == "unavailable" and seen["from"] == ROOM + "/rom"
    assert statuses(seen) == {"333"}
    [status] = texts(seen, "status")
    assert "recipient-unavailable" in status and "gone away" in status
    [own] = m.take(ROMEO)
    assert statuses(own) == {"110", "333"} and texts(own, "status") == [status]
    assert "rom" not in m.service.rooms["room"].occupants


def test_errorBounceAnyCondition():
    """Any error reply removes the device, a presence error as well as a message error."""
    for kind, condition in (("message", "feature-not-implemented"),
                            ("presence", "remote-server-not-found")):
        m = roomWithRomeo()
        bounce(m, ROMEO, condition=condition, kind=kind, to=ROOM + "/rom")
        [seen] = m.take(JULIET)
        assert "333" in statuses(seen), kind
        assert "rom" not in m.service.rooms["room"].occupants


def test_waitErrorKeepsOccupant():
    """An error of type wait (busy, try later) removes nobody."""
    m = roomWithRomeo()

    bounce(m, ROMEO, errorType="wait", condition="resource-constraint")

    assert m.take(JULIET) == [] and m.take(ROMEO) == []
    assert "rom" in m.service.rooms["room"].occupants


def test_errorBounceOneOfSeveralDevices():
    """With two devices under one nick, only the bouncing one goes: it gets 110+333, the room sees nobody leave, the other stays."""
    m = roomWithRomeo()
    m.join(ROMEO2, "rom")
    m.clear()

    bounce(m, ROMEO2)

    [own] = m.take(ROMEO2)
    assert own["type"] == "unavailable" and statuses(own) == {"110", "333"}
    assert texts(own, "status")
    assert m.take(JULIET) == [] and m.take(ROMEO) == []
    m.say(JULIET, "still there?")
    assert len(m.take(ROMEO)) == 1 and m.take(ROMEO2) == []
    assert ROMEO2 not in m.service.rooms["room"].byJID


def test_errorBounceFirstDeviceShownJIDUpdated():
    """When the device whose JID moderators were shown bounces, they get the occupant's presence with the JID left."""
    m = roomWithRomeo()
    m.join(ROMEO2, "rom")
    m.clear()

    bounce(m, ROMEO)

    [seen] = m.take(JULIET)  # Juliet is a moderator: she sees real JIDs.
    assert seen.getAttribute("type") is None and item(seen)["jid"] == ROMEO2
    assert "333" not in statuses(seen)
    [own] = presences(m.take(ROMEO))
    assert statuses(own) == {"110", "333"}


def test_errorFromNonOccupantIgnored():
    """An error from someone not in the room changes nothing and gets no answer."""
    m = roomWithRomeo()

    bounce(m, NURSE)

    assert m.take(NURSE) == [] and m.take(JULIET) == []


# -- errors name the room (by) and a password room (§7.2.6) --------------------------

def test_passwordRoomNotAuthorized():
    """A wrong or missing password gets not-authorized of type auth, by the room."""
    m = MUC()
    m.create(JULIET, "jul", config={"muc#roomconfig_passwordprotectedroom": "1",
                                    "muc#roomconfig_roomsecret": "cauldron"})

    for extra in ("", "<password>wrong</password>"):
        [refusal] = m.join(ROMEO, "rom", extra=extra)
        assert errorCondition(refusal) == "not-authorized"
        assert errorOf(refusal)["type"] == "auth"
        assert errorOf(refusal)["by"] == ROOM
        assert refusal["from"] == ROOM + "/rom"
    assert "110" in statuses(presences(m.join(ROMEO, "rom",
                                              extra="<password>cauldron</password>"))[-1])


# -- a subject with a body is a message (§8.1) -----------------------------------------

def test_subjectWithBodyIsMessage():
    """A groupchat message with a subject and a body is broadcast and kept in the history; the subject stays."""
    m = roomWithRomeo()
    m.send("<message type='groupchat' from='%s' to='%s'><subject>Old</subject></message>"
           % (JULIET, ROOM))
    m.clear()

    m.send("<message type='groupchat' from='%s' to='%s'><subject>New</subject>"
           "<body>hello</body></message>" % (ROMEO, ROOM))

    for jid in (JULIET, ROMEO):
        [message] = m.take(jid)
        assert message["from"] == ROOM + "/rom" and texts(message, "body") == ["hello"]
    room = m.service.rooms["room"]
    assert room.subject == "Old"
    got = m.join(NURSE, "nurse")
    history = [s for s in got if s.name == "message" and list(s.elements(NS_DELAY, "delay"))]
    assert [texts(s, "body") for s in history] == [["hello"]]
    assert texts(got[-1], "subject") == ["Old"]


def test_subjectWithThreadIsMessage():
    """A participant's subject with a thread is not a (refused) subject change but a message."""
    m = roomWithRomeo()

    m.send("<message type='groupchat' from='%s' to='%s'><subject>New</subject>"
           "<thread>t1</thread></message>" % (ROMEO, ROOM))

    [message] = m.take(JULIET)
    assert message["type"] == "groupchat" and texts(message, "thread") == ["t1"]
    assert m.service.rooms["room"].subject == ""


# -- joining again while present --------------------------------------------------------

def test_rejoinResendsState():
    """A device in the room joining again gets occupants, its own presence (110), the history it asks for and the subject."""
    m = roomWithRomeo()
    m.send("<message type='groupchat' from='%s' to='%s'><subject>Plans</subject></message>"
           % (JULIET, ROOM))
    for body in ("one", "two", "three"):
        m.say(JULIET, body)
    m.clear()

    got = m.join(ROMEO, "rom", extra="<history maxstanzas='2'/>")

    kinds = [(s.name, s["from"]) for s in got]
    assert kinds[:2] == [("presence", ROOM + "/jul"), ("presence", ROOM + "/rom")]
    assert "110" in statuses(got[1]) and "110" not in statuses(got[0])
    assert [texts(s, "body") for s in got[2:4]] == [["two"], ["three"]]
    assert texts(got[4], "subject") == ["Plans"] and len(got) == 5
    # Nothing changed for the others: they hear nothing.
    assert m.take(JULIET) == []


def test_rejoinWithChangedPresence():
    """A re-join with a new show is passed on to the others once."""
    m = roomWithRomeo()

    m.join(ROMEO, "rom", extra="")
    m.send("<presence from='%s' to='%s/rom'><x xmlns='%s'/><show>away</show></presence>"
           % (ROMEO, ROOM, NS_MUC))

    [seen] = m.take(JULIET)
    assert texts(seen, "show") == ["away"]


def test_presenceUpdateWithoutMUCx():
    """A plain presence update (no MUC <x/>) still only updates the presence."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/rom'><show>dnd</show></presence>" % (ROMEO, ROOM))

    assert len(m.take(ROMEO)) == 1 and len(m.take(JULIET)) == 1


# -- presence probes --------------------------------------------------------------------

def probe(m, sender, to):
    m.send("<presence type='probe' from='%s' to='%s'/>" % (sender, to))
    return m.take(sender)


def test_probeOccupant():
    """An occupant probing another gets that occupant's current presence with the item it may see."""
    m = roomWithRomeo()
    m.send("<presence from='%s' to='%s/jul'><show>chat</show></presence>" % (JULIET, ROOM))
    m.clear()

    [answer] = probe(m, ROMEO, ROOM + "/jul")

    assert answer["from"] == ROOM + "/jul" and answer.getAttribute("type") is None
    assert texts(answer, "show") == ["chat"]
    assert item(answer)["affiliation"] == "owner" and item(answer)["role"] == "moderator"
    assert item(answer).getAttribute("jid") is None  # Romeo is no moderator
    [answer] = probe(m, JULIET, ROOM + "/rom")
    assert item(answer)["jid"] == ROMEO  # Juliet is


def test_probeSelf():
    """Probing one's own occupant JID gives one's own presence with 110."""
    m = roomWithRomeo()

    [answer] = probe(m, ROMEO, ROOM + "/rom")

    assert "110" in statuses(answer) and item(answer)["jid"] == ROMEO


def test_probeAbsentNick():
    """Probing a nick nobody uses gets unavailable presence with role none."""
    m = roomWithRomeo()

    [answer] = probe(m, ROMEO, ROOM + "/nurse")

    assert answer["type"] == "unavailable" and answer["from"] == ROOM + "/nurse"
    assert item(answer)["role"] == "none"


def test_probeFromOutsider():
    """Someone not in the room who probes gets not-acceptable, by the room."""
    m = roomWithRomeo()

    for to in (ROOM + "/jul", ROOM + "/nurse", ROOM):
        [refusal] = probe(m, NURSE, to)
        assert errorCondition(refusal) == "not-acceptable"
        assert errorOf(refusal)["by"] == ROOM


def test_probeRoom():
    """An occupant probing the room's bare JID gets every occupant's presence, its own last with 110."""
    m = roomWithRomeo()

    got = probe(m, ROMEO, ROOM)

    assert [p["from"] for p in got] == [ROOM + "/jul", ROOM + "/rom"]
    assert "110" in statuses(got[-1]) and "110" not in statuses(got[0])
