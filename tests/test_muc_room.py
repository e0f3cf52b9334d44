"""
Tests for L{muc.room}: entering, leaving, nick changes, groupchat and
private messages, the subject, IQs between occupants and rate limits, as
XEP-0045 (§7, §8.1), XEP-0410 and XEP-0421 say a client sees them.  No
network: a MUC service on a real router with recording user domains
(L{tests.muchelpers}).
"""

from tests.muchelpers import (
    JULIET, MUC, NS_MUC, NS_USER, ROMEO, ROOM, errorCondition, item, presences, roomWithRomeo,
    statuses, texts)

JULIET2 = "juliet@example.org/phone"
NURSE = "nurse@example.org/kitchen"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"


def occupantId(stanza):
    ids = [e["id"] for e in stanza.elements(NS_OCCUPANT_ID, "occupant-id")]
    assert len(ids) <= 1
    return ids[0] if ids else None


def room(**config):
    """A configured room owned by Juliet (nick 'jul'), with the muc#roomconfig fields given."""
    m = MUC()
    m.create(JULIET, "jul", config=config)
    return m


# -- entering (§7.2) ---------------------------------------------------------

def test_enteringOthersFirstThenSelf():
    """A newcomer gets every other occupant's presence first, then its own with status 110."""
    m = room()
    m.join(NURSE, "nurse")

    got = presences(m.join(ROMEO, "rom"))

    assert [p["from"] for p in got] == [ROOM + "/jul", ROOM + "/nurse", ROOM + "/rom"]
    assert ["110" in statuses(p) for p in got] == [False, False, True]


def test_enteringOthersGetPresenceOnce():
    """Everyone already in the room gets the newcomer's presence exactly once, without 110."""
    m = room()
    m.join(NURSE, "nurse")
    m.clear()

    m.join(ROMEO, "rom")

    for jid in (JULIET, NURSE):
        got = m.take(jid)
        assert [p["from"] for p in got] == [ROOM + "/rom"]
        assert got[0].getAttribute("type") is None
        assert "110" not in statuses(got[0])


def test_creatingRoomIsLocked():
    """Whoever creates a room gets status 201, and others get item-not-found until it is configured."""
    m = MUC()

    [own, subject] = m.join(JULIET, "jul")
    assert statuses(own) == {"110", "201"}
    assert item(own)["affiliation"] == "owner" and item(own)["role"] == "moderator"

    [refusal] = m.join(ROMEO, "rom")
    assert errorCondition(refusal) == "item-not-found"
    assert refusal["from"] == ROOM + "/rom"


def test_instantRoomUnlocks():
    """An owner submitting an empty configuration form makes an instant room others may enter."""
    m = MUC()
    m.join(JULIET, "jul")

    [reply] = m.configure(JULIET, {})
    assert reply["type"] == "result"

    got = m.join(ROMEO, "rom")
    assert errorCondition(got[0]) is None
    assert "110" in statuses(presences(got)[-1])


def test_oldProtocolCreatesUnlockedRoom():
    """Entering a new room without <x xmlns='muc'/> (old groupchat protocol) creates an unlocked room."""
    m = MUC()
    m.send("<presence from='%s' to='%s/jul'/>" % (JULIET, ROOM))
    own = presences(m.take(JULIET))[-1]
    assert "110" in statuses(own)

    got = m.join(ROMEO, "rom")
    assert errorCondition(got[0]) is None
    assert [p["from"] for p in presences(got)] == [ROOM + "/jul", ROOM + "/rom"]


def test_enteringNonAnonymousRoomStatus100():
    """Entering a non-anonymous room, the newcomer's own presence carries status 100."""
    m = room(**{"muc#roomconfig_whois": "anyone"})

    own = presences(m.join(ROMEO, "rom"))[-1]

    assert statuses(own) == {"110", "100"}


def test_enteringLoggedRoomStatus170():
    """Entering a room that is logged, the newcomer's own presence carries status 170."""
    m = room(**{"muc#roomconfig_enablelogging": "1"})

    own = presences(m.join(ROMEO, "rom"))[-1]

    assert statuses(own) == {"110", "170"}


def test_semiAnonymousJIDsToModeratorsOnly():
    """In a semi-anonymous room only moderators see real JIDs in occupants' presence."""
    m = room()
    m.join(NURSE, "nurse")
    m.clear()

    got = m.join(ROMEO, "rom")

    others = {p["from"]: item(p) for p in presences(got)[:-1]}
    assert others[ROOM + "/jul"].getAttribute("jid") is None
    assert others[ROOM + "/nurse"].getAttribute("jid") is None
    assert item(presences(got)[-1])["jid"] == ROMEO
    [toModerator] = m.take(JULIET)
    assert item(toModerator)["jid"] == ROMEO
    [toParticipant] = m.take(NURSE)
    assert toParticipant["from"] == ROOM + "/rom"
    assert item(toParticipant).getAttribute("jid") is None


def test_nonAnonymousJIDsToEveryone():
    """In a non-anonymous room every occupant sees every occupant's real JID."""
    m = room(**{"muc#roomconfig_whois": "anyone"})
    m.join(NURSE, "nurse")
    m.clear()

    got = m.join(ROMEO, "rom")

    jids = {p["from"]: item(p).getAttribute("jid") for p in presences(got)}
    assert jids == {ROOM + "/jul": JULIET, ROOM + "/nurse": NURSE, ROOM + "/rom": ROMEO}
    [toParticipant] = m.take(NURSE)
    assert item(toParticipant)["jid"] == ROMEO


def test_enteringSubjectLastEvenEmpty():
    """The last stanza a newcomer gets is the subject message, an empty <subject/> when none is set."""
    m = room()
    m.say(JULIET, "first")

    got = m.join(ROMEO, "rom")

    last = got[-1]
    assert last.name == "message" and last["type"] == "groupchat"
    assert last["from"] == ROOM
    assert texts(last, "subject") == [""]
    assert texts(last, "body") == []
    assert [s.name for s in got] == ["presence", "presence", "message", "message"]


def test_enteringNickInUse():
    """Entering with a nick another account uses gets conflict, and the others see nothing."""
    m = roomWithRomeo()

    [refusal] = m.join(NURSE, "rom")

    assert errorCondition(refusal) == "conflict"
    assert m.take(JULIET) == [] and m.take(ROMEO) == []


def test_enteringWithoutNick():
    """Presence to the bare room JID, without a nick, gets jid-malformed."""
    m = room()

    m.send("<presence from='%s' to='%s'><x xmlns='%s'/></presence>" % (ROMEO, ROOM, NS_MUC))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "jid-malformed"


def test_secondDeviceSharesOccupant():
    """A second device of the same account entering with the same nick shares the occupant: others see no second join, and both devices get messages."""
    m = room()
    m.clear()

    got = m.join(JULIET2, "jul")

    own = presences(got)[-1]
    assert own["from"] == ROOM + "/jul" and "110" in statuses(own)
    # The first device learns the occupant's presence again, nobody else learns anything.
    assert [p["from"] for p in presences(m.take(JULIET))] == [ROOM + "/jul"]
    m.join(ROMEO, "rom")
    m.clear()
    m.say(ROMEO, "hello")
    for device in (JULIET, JULIET2):
        [message] = m.take(device)
        assert message["from"] == ROOM + "/rom"
    assert len(m.service.rooms["room"].occupants) == 2


def test_presenceUpdateBroadcast():
    """An occupant's changed show and status go to everyone in the room (§7.7)."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/rom'><show>away</show><status>out</status></presence>"
           % (ROMEO, ROOM))

    [seen] = m.take(JULIET)
    assert seen["from"] == ROOM + "/rom" and seen.getAttribute("type") is None
    assert texts(seen, "show") == ["away"]
    assert texts(seen, "status") == ["out"]
    [own] = m.take(ROMEO)
    assert "110" in statuses(own)


# -- leaving (§7.14) -----------------------------------------------------------

def test_leaving():
    """An occupant who leaves gets unavailable presence with 110, and everyone else gets unavailable presence."""
    m = roomWithRomeo()

    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))

    [own] = m.take(ROMEO)
    assert own["type"] == "unavailable" and "110" in statuses(own)
    [seen] = m.take(JULIET)
    assert seen["type"] == "unavailable" and seen["from"] == ROOM + "/rom"
    assert "110" not in statuses(seen)
    assert item(seen)["role"] == "none"


def test_oneDeviceLeaving():
    """When one of two devices sharing an occupant leaves, only that device gets unavailable presence and the others see nothing."""
    m = roomWithRomeo()
    m.join(JULIET2, "jul")
    m.clear()

    m.send("<presence type='unavailable' from='%s' to='%s/jul'/>" % (JULIET2, ROOM))

    [own] = m.take(JULIET2)
    assert own["type"] == "unavailable" and "110" in statuses(own)
    assert m.take(JULIET) == [] and m.take(ROMEO) == []
    m.say(ROMEO, "still there?")
    assert len(m.take(JULIET)) == 1 and m.take(JULIET2) == []


def test_lastLeavingDestroysTemporaryRoom():
    """When the last occupant leaves a temporary room it is gone: the next to enter creates a new room (201)."""
    m = room()

    m.send("<presence type='unavailable' from='%s' to='%s/jul'/>" % (JULIET, ROOM))
    assert "room" not in m.service.rooms

    own = presences(m.join(ROMEO, "rom"))[-1]
    assert statuses(own) == {"110", "201"}
    assert item(own)["affiliation"] == "owner"


def test_leavingStatusPassedOn():
    """The status text of a leaving occupant reaches the others with its unavailable presence."""
    m = roomWithRomeo()

    m.send("<presence type='unavailable' from='%s' to='%s/rom'><status>gone fishing</status>"
           "</presence>" % (ROMEO, ROOM))

    [seen] = m.take(JULIET)
    assert texts(seen, "status") == ["gone fishing"]
    [own] = m.take(ROMEO)
    assert texts(own, "status") == ["gone fishing"]


# -- nick changes (§7.6) -------------------------------------------------------

def test_nickChange():
    """A nick change is unavailable presence with 303 and the new nick, then available presence from the new nick."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/romeo'/>" % (ROMEO, ROOM))

    for jid, own in ((JULIET, False), (ROMEO, True)):
        [gone, back] = m.take(jid)
        assert gone["from"] == ROOM + "/rom" and gone["type"] == "unavailable"
        assert "303" in statuses(gone) and item(gone)["nick"] == "romeo"
        assert back["from"] == ROOM + "/romeo" and back.getAttribute("type") is None
        assert ("110" in statuses(gone)) is own and ("110" in statuses(back)) is own


def test_nickChangeConflict():
    """Changing to a nick someone else uses gets conflict, and nobody sees a change."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/jul'/>" % (ROMEO, ROOM))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "conflict"
    assert m.take(JULIET) == []


def test_nickChangeNotAllowed():
    """In a room where nicks cannot be changed, a nick change gets not-acceptable."""
    m = roomWithRomeo(**{"x-muc#roomconfig_canchangenick": "0"})

    m.send("<presence from='%s' to='%s/romeo'/>" % (ROMEO, ROOM))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "not-acceptable"
    assert m.take(JULIET) == []


# -- groupchat messages (§7.4) -------------------------------------------------

def test_groupchatToEveryone():
    """A groupchat message goes to every occupant, the sender included, from the sender's occupant JID."""
    m = roomWithRomeo()

    m.say(ROMEO, "hello")

    for jid in (JULIET, ROMEO):
        [message] = m.take(jid)
        assert message["from"] == ROOM + "/rom" and message["type"] == "groupchat"
        assert message["to"] == jid
        assert texts(message, "body") == ["hello"]


def test_groupchatFromNonOccupant():
    """A groupchat message from someone not in the room gets not-acceptable and reaches nobody."""
    m = room()
    m.clear()

    m.say(ROMEO, "let me in")

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "not-acceptable"
    assert m.take(JULIET) == []


def test_groupchatOccupantId():
    """A client's own occupant-id is replaced by the room's, which stays across nick changes and differs between accounts."""
    m = roomWithRomeo()
    forged = "<occupant-id xmlns='%s' id='forged'/>" % NS_OCCUPANT_ID

    m.send("<message type='groupchat' from='%s' to='%s'><body>one</body>%s</message>"
           % (ROMEO, ROOM, forged))
    [first] = m.take(JULIET)
    m.send("<presence from='%s' to='%s/romeo'/>" % (ROMEO, ROOM))
    m.clear()
    m.send("<message type='groupchat' from='%s' to='%s'><body>two</body>%s</message>"
           % (ROMEO, ROOM, forged))
    [second] = m.take(JULIET)
    m.clear()
    m.say(JULIET, "three")
    [third] = m.take(ROMEO)

    assert occupantId(first) not in (None, "forged")
    assert occupantId(second) == occupantId(first)
    assert occupantId(third) not in (None, "forged", occupantId(first))


def test_groupchatIdKept():
    """The id a sender gives its groupchat message is the id every occupant sees."""
    m = roomWithRomeo()

    m.send("<message type='groupchat' id='m1' from='%s' to='%s'><body>hi</body></message>"
           % (ROMEO, ROOM))

    assert [msg["id"] for msg in m.take(JULIET) + m.take(ROMEO)] == ["m1", "m1"]


# -- the subject (§8.1) --------------------------------------------------------

def subjectMessage(jid, text):
    return "<message type='groupchat' from='%s' to='%s'><subject>%s</subject></message>" % (
        jid, ROOM, text)


def test_moderatorChangesSubject():
    """A moderator's new subject reaches every occupant from the moderator's occupant JID."""
    m = roomWithRomeo()

    m.send(subjectMessage(JULIET, "Verona"))

    for jid in (JULIET, ROMEO):
        [message] = m.take(jid)
        assert message["from"] == ROOM + "/jul"
        assert texts(message, "subject") == ["Verona"]


def test_participantMayNotChangeSubject():
    """A participant changing the subject gets forbidden unless the room allows it."""
    m = roomWithRomeo()

    m.send(subjectMessage(ROMEO, "Mantua"))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "forbidden"
    assert m.take(JULIET) == []
    assert m.service.rooms["room"].subject == ""


def test_participantChangesSubjectWhenAllowed():
    """In a room with changesubject on, a participant's new subject reaches everyone."""
    m = roomWithRomeo(**{"muc#roomconfig_changesubject": "1"})

    m.send(subjectMessage(ROMEO, "Mantua"))

    [message] = m.take(JULIET)
    assert message["from"] == ROOM + "/rom"
    assert texts(message, "subject") == ["Mantua"]


def test_newcomerGetsCurrentSubject():
    """Someone entering gets the current subject, from whoever set it, as the last stanza."""
    m = room()
    m.send(subjectMessage(JULIET, "Verona"))

    last = m.join(ROMEO, "rom")[-1]

    assert last["from"] == ROOM + "/jul"
    assert texts(last, "subject") == ["Verona"]


# -- private messages (§7.5) ---------------------------------------------------

def privateMessage(sender, nick, messageType="chat"):
    return ("<message type='%s' id='pm1' from='%s' to='%s/%s'><body>psst</body></message>"
            % (messageType, sender, ROOM, nick))


def test_privateMessageToEveryDevice():
    """A private message reaches every device of the target nick, from the sender's occupant JID, marked with muc#user."""
    m = roomWithRomeo()
    m.join(JULIET2, "jul")
    m.clear()

    m.send(privateMessage(ROMEO, "jul"))

    for device in (JULIET, JULIET2):
        [message] = m.take(device)
        assert message["from"] == ROOM + "/rom" and message["to"] == device
        assert message["type"] == "chat"
        assert texts(message, "body") == ["psst"]
        assert list(message.elements(NS_USER, "x"))
    assert m.take(ROMEO) == []


def test_privateMessageForgedOccupantId():
    """An occupant-id a client puts in a private message never reaches its target."""
    m = roomWithRomeo()

    m.send("<message type='chat' from='%s' to='%s/jul'><body>psst</body>"
           "<occupant-id xmlns='%s' id='forged'/></message>" % (ROMEO, ROOM, NS_OCCUPANT_ID))

    [message] = m.take(JULIET)
    assert occupantId(message) != "forged"
    assert texts(message, "body") == ["psst"]


def test_privateMessageUnknownNick():
    """A private message to a nick nobody has gets item-not-found."""
    m = roomWithRomeo()

    m.send(privateMessage(ROMEO, "tybalt"))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "item-not-found"


def test_privateGroupchatBadRequest():
    """A groupchat-type message to an occupant JID gets bad-request."""
    m = roomWithRomeo()

    m.send(privateMessage(ROMEO, "jul", "groupchat"))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "bad-request"
    assert m.take(JULIET) == []


def test_privateMessagesOff():
    """In a room that allows private messages from nobody, one gets forbidden."""
    m = roomWithRomeo(**{"muc#roomconfig_allowpm": "none"})

    m.send(privateMessage(ROMEO, "jul"))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "forbidden"
    assert m.take(JULIET) == []


# -- IQs to occupants (§7.5, XEP-0410) -----------------------------------------

def test_selfPing():
    """An occupant pinging its own occupant JID gets a result from the room (XEP-0410)."""
    m = roomWithRomeo()

    m.send("<iq type='get' id='p1' from='%s' to='%s/rom'><ping xmlns='urn:xmpp:ping'/></iq>"
           % (ROMEO, ROOM))

    [pong] = m.take(ROMEO)
    assert pong["type"] == "result" and pong["id"] == "p1"
    assert pong["from"] == ROOM + "/rom"


def test_selfPingNotJoined():
    """A self-ping from someone who is not in the room gets not-acceptable (XEP-0410)."""
    m = roomWithRomeo()

    m.send("<iq type='get' id='p1' from='%s' to='%s/rom'><ping xmlns='urn:xmpp:ping'/></iq>"
           % (NURSE, ROOM))

    [refusal] = m.take(NURSE)
    assert errorCondition(refusal) == "not-acceptable"


def test_iqBetweenOccupants():
    """A query to an occupant reaches its device from the asker's occupant JID, and the answer comes back to the asker."""
    m = roomWithRomeo()

    m.send("<iq type='get' id='v1' from='%s' to='%s/rom'><vCard xmlns='vcard-temp'/></iq>"
           % (JULIET, ROOM))
    [asked] = m.take(ROMEO)
    assert asked["from"] == ROOM + "/jul" and asked["type"] == "get"
    assert list(asked.elements("vcard-temp", "vCard"))

    m.send("<iq type='result' id='%s' from='%s' to='%s/jul'><vCard xmlns='vcard-temp'>"
           "<FN>Romeo</FN></vCard></iq>" % (asked["id"], ROMEO, ROOM))
    [answer] = m.take(JULIET)
    assert answer["type"] == "result" and answer["id"] == "v1"
    assert answer["from"] == ROOM + "/rom"
    assert list(answer.elements("vcard-temp", "vCard"))


def test_iqSameIdFromTwoAskers():
    """Two occupants asking the same occupant with the same IQ id each get their own answer."""
    m = roomWithRomeo()
    m.join(NURSE, "nurse")
    m.clear()
    query = "<iq type='get' id='q1' from='%s' to='%s/rom'><query xmlns='jabber:iq:version'/></iq>"

    m.send(query % (JULIET, ROOM))
    m.send(query % (NURSE, ROOM))
    fromJuliet, fromNurse = m.take(ROMEO)
    for asked, name in ((fromNurse, "phone"), (fromJuliet, "desktop")):
        m.send("<iq type='result' id='%s' from='%s' to='%s'><query xmlns='jabber:iq:version'>"
               "<name>%s</name></query></iq>" % (asked["id"], ROMEO, asked["from"], name))

    for jid, name in ((JULIET, "desktop"), (NURSE, "phone")):
        [answer] = m.take(jid)
        assert answer["id"] == "q1" and answer["from"] == ROOM + "/rom"
        assert [str(n) for q in answer.elements("jabber:iq:version", "query")
                for n in q.elements("jabber:iq:version", "name")] == [name]


# -- errors from devices -------------------------------------------------------

def test_goneDeviceRemoved():
    """An occupant whose device answers with a 'gone' error leaves the room, and the others see status 333."""
    m = roomWithRomeo()

    m.send("<message type='error' from='%s' to='%s/jul'><error type='cancel'>"
           "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
           % (ROMEO, ROOM))

    [seen] = m.take(JULIET)
    assert seen["from"] == ROOM + "/rom" and seen["type"] == "unavailable"
    assert "333" in statuses(seen)
    assert "rom" not in m.service.rooms["room"].occupants


# -- rate limits (muc.features.shaper) -----------------------------------------

def test_shaperOverBurst():
    """A sender over the burst gets resource-constraint of type wait, and may send again once the bucket refills."""
    m = MUC(rate=1.0, burst=2)
    m.create(JULIET, "jul")
    m.join(ROMEO, "rom")
    m.clear()

    for text in ("one", "two", "three"):
        m.say(ROMEO, text)
    got = m.take(ROMEO)
    assert [t for s in got for t in texts(s, "body")][:2] == ["one", "two"]
    refusal = got[-1]
    assert errorCondition(refusal) == "resource-constraint"
    [error] = refusal.elements(None, "error")
    assert error["type"] == "wait"
    assert len(m.take(JULIET)) == 2

    m.clock.advance(1)
    m.say(ROMEO, "four")
    [message] = m.take(JULIET)
    assert texts(message, "body") == ["four"]
