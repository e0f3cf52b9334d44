"""
Tests for L{muc.voice}: voice requests (XEP-0045 §7.13) and their approval
(§8.6) as a visitor and the moderators notice them.  No network: a MUC
service on a real router with recording user domains
(L{tests.muchelpers}).
"""

from tests.muchelpers import MUC, NS_ADMIN, ROOM, errorCondition, item, statuses

ALICE = "alice@example.org/desk"      # the owner, a moderator
ALICE2 = "alice@example.org/phone"
BOB = "bob@example.org/phone"         # a visitor
CAROL = "carol@example.org/laptop"    # a visitor
DAVE = "dave@example.org/tablet"      # an admin, a moderator

NS_DATA = "jabber:x:data"
NS_REQUEST = "http://jabber.org/protocol/muc#request"


def room():
    """Alice's moderated room: Alice (two devices) and admin Dave moderate, Bob and Carol are visitors."""
    m = MUC()
    m.create(ALICE, "alice", config={"muc#roomconfig_moderatedroom": "1"})
    m.join(ALICE2, "alice")
    m.send("<iq type='set' id='g' from='%s' to='%s'><query xmlns='%s'>"
           "<item jid='dave@example.org' affiliation='admin'/></query></iq>"
           % (ALICE, ROOM, NS_ADMIN))
    m.join(DAVE, "dave")
    m.join(BOB, "bob")
    m.join(CAROL, "carol")
    m.clear()
    return m


def field(var, value, fieldType=None):
    return "<field var='%s'%s><value>%s</value></field>" % (
        var, " type='%s'" % fieldType if fieldType else "", value)


def requestVoice(m, sender, role="participant"):
    """The §7.13 request, as slixmpp's C{request_voice} sends it."""
    m.send("<message from='%s' to='%s'><x xmlns='%s' type='submit'>%s%s</x></message>" % (
        sender, ROOM, NS_DATA, field("FORM_TYPE", NS_REQUEST, "hidden"),
        field("muc#role", role, "list-single")))


def answer(m, sender, jid, nick, allow, formType="submit"):
    """A moderator's §8.6 answer."""
    m.send("<message from='%s' to='%s'><x xmlns='%s' type='%s'>%s%s%s%s%s</x></message>" % (
        sender, ROOM, NS_DATA, formType, field("FORM_TYPE", NS_REQUEST),
        field("muc#role", "participant"), field("muc#jid", jid), field("muc#roomnick", nick),
        field("muc#request_allow", allow)))


def approvalForms(stanzas):
    """The fields (var -> values) of each voice approval form among C{stanzas}."""
    forms = []
    for s in stanzas:
        if s.name != "message" or s["from"] != ROOM:
            continue
        for x in s.elements(NS_DATA, "x"):
            fields = {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")]
                      for f in x.elements(NS_DATA, "field")}
            if fields.get("FORM_TYPE") == [NS_REQUEST]:
                assert x["type"] == "form"
                forms.append(fields)
    return forms


def roleOf(m, nick):
    return m.service.rooms["room"].occupants[nick].role


def test_requestReachesEveryModeratorDevice():
    """A visitor's request reaches every device of every moderator as a form naming the visitor; the visitors get nothing."""
    m = room()

    requestVoice(m, BOB)

    for moderator in (ALICE, ALICE2, DAVE):
        [form] = approvalForms(m.take(moderator))
        assert form["muc#role"] == ["participant"]
        assert form["muc#jid"] == [BOB]
        assert form["muc#roomnick"] == ["bob"]
        assert form["muc#request_allow"] in (["false"], ["0"])
    assert m.take(BOB) == [] and m.take(CAROL) == []


def test_approvalGrantsVoice():
    """A moderator who approves makes the visitor a participant: everyone sees the new role, and the visitor may speak."""
    m = room()
    requestVoice(m, BOB)
    m.clear()

    answer(m, ALICE, BOB, "bob", "true")

    assert roleOf(m, "bob") == "participant"
    [own] = m.take(BOB)
    assert own.name == "presence" and "110" in statuses(own)
    assert item(own)["role"] == "participant"
    [seen] = [s for s in m.take(CAROL) if s.name == "presence"]
    assert seen["from"] == ROOM + "/bob" and item(seen)["role"] == "participant"
    m.say(BOB, "thanks")
    assert any(s.name == "message" and s["from"] == ROOM + "/bob" for s in m.take(CAROL))


def test_approvalByNickAlone():
    """An answer that names the visitor only by nick grants voice too."""
    m = room()
    requestVoice(m, BOB)

    answer(m, DAVE, "", "bob", "1")

    assert roleOf(m, "bob") == "participant"


def test_declinedOrCancelledChangesNothing():
    """Answering false, or cancelling the form, leaves the visitor a visitor and sends nothing."""
    m = room()
    requestVoice(m, BOB)
    m.clear()

    answer(m, ALICE, BOB, "bob", "false")
    answer(m, ALICE, BOB, "bob", "true", formType="cancel")

    assert roleOf(m, "bob") == "visitor"
    assert m.take(BOB) == [] and m.take(ALICE) == []


def test_visitorMayNotApprove():
    """A visitor who submits an approval for itself is refused with forbidden and stays a visitor."""
    m = room()

    answer(m, BOB, BOB, "bob", "true")

    [refused] = m.take(BOB)
    assert errorCondition(refused) == "forbidden"
    assert roleOf(m, "bob") == "visitor"


def test_approvalForSomeoneGone():
    """Approving a request of someone who has left answers item-not-found."""
    m = room()
    requestVoice(m, BOB)
    m.send("<presence type='unavailable' from='%s' to='%s/bob'/>" % (BOB, ROOM))
    m.clear()

    answer(m, ALICE, BOB, "bob", "true")

    [refused] = m.take(ALICE)
    assert errorCondition(refused) == "item-not-found"


def test_requestFromOutsider():
    """Someone not in the room who asks for voice gets not-acceptable."""
    m = room()

    requestVoice(m, "erin@example.org/home")

    [refused] = m.take("erin@example.org/home")
    assert errorCondition(refused) == "not-acceptable"
    assert approvalForms(m.take(ALICE)) == []


def test_requestForAnotherRole():
    """A request for a role other than participant is a bad request."""
    m = room()

    requestVoice(m, BOB, role="moderator")

    [refused] = m.take(BOB)
    assert errorCondition(refused) == "bad-request"
    assert approvalForms(m.take(ALICE)) == []


def test_requestWithVoiceAlreadyIsDropped():
    """A participant who asks for voice it has bothers no moderator."""
    m = room()
    answer(m, ALICE, BOB, "bob", "true")
    m.clear()

    requestVoice(m, BOB)

    assert approvalForms(m.take(ALICE)) == []
    assert m.take(BOB) == []


def test_repeatedRequestsReachModeratorsOncePerInterval():
    """A visitor asking again and again reaches the moderators once, and again after the interval."""
    from muc.voice import REQUEST_INTERVAL
    m = room()

    for _ in range(5):
        requestVoice(m, BOB)
    requestVoice(m, CAROL)

    assert [f["muc#roomnick"] for f in approvalForms(m.take(ALICE))] == [["bob"], ["carol"]]
    m.clock.advance(REQUEST_INTERVAL)
    requestVoice(m, BOB)
    assert len(approvalForms(m.take(ALICE))) == 1


def test_roomAnnouncesVoiceRequests():
    """The room's disco#info lists the muc#request feature."""
    m = room()

    m.send("<iq type='get' id='d' from='%s' to='%s'>"
           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (BOB, ROOM))

    [reply] = m.take(BOB)
    assert NS_REQUEST in {f["var"] for q in reply.elements() for f in q.elements()
                          if f.name == "feature"}
