"""
Tests for L{muc.owner} and L{muc.options}: the room configuration form,
instant and reserved rooms, and destroying a room, as XEP-0045 §10 says an
owner and the occupants see them.  No network: a MUC service on a real
router with recording user domains (L{tests.muchelpers}).
"""

from wokkel import data_form

from tests.muchelpers import (
    MUC, NS_MUC, NS_OWNER, NS_USER, ROOM, errorCondition, item, statuses)

ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
CAROL = "carol@example.org/laptop"
DAVE = "dave@example.org/tablet"

FIELDS = (
    "muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_lang",
    "muc#roomconfig_persistentroom", "muc#roomconfig_publicroom", "muc#roomconfig_maxusers",
    "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret",
    "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom", "muc#roomconfig_whois",
    "muc#roomconfig_presencebroadcast", "muc#roomconfig_changesubject",
    "muc#roomconfig_allowinvites", "muc#roomconfig_allowpm", "muc#roomconfig_getmemberlist",
    "muc#roomconfig_enablelogging", "muc#roomconfig_roomadmins", "muc#roomconfig_roomowners",
    "x-muc#roomconfig_reservednick", "x-muc#roomconfig_canchangenick",
    "x-muc#roomconfig_registration",
)


def room(**config):
    """A configured room owned by Alice (nick 'alice') with Bob in it."""
    m = MUC()
    m.create(ALICE, "alice", config=config)
    m.join(BOB, "bob")
    m.clear()
    return m


def only(stanzas, name):
    found = [s for s in stanzas if s.name == name]
    assert len(found) == 1, [s.toXml() for s in stanzas]
    return found[0]


def getForm(m, sender=ALICE):
    """The owner's configuration form (a wokkel Form), or the error reply."""
    m.send("<iq type='get' id='f1' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (sender, ROOM, NS_OWNER))
    reply = only(m.take(sender), "iq")
    if reply["type"] != "result":
        return reply
    [query] = reply.elements(NS_OWNER, "query")
    [x] = query.elements("jabber:x:data", "x")
    return data_form.Form.fromElement(x)


def submit(m, config, sender=ALICE):
    """Submit C{config}; the IQ reply (other stanzas stay for C{m.take})."""
    got = m.configure(sender, config)
    reply = only(got, "iq")
    for other in got:
        if other is not reply:
            m.users.received.setdefault(sender, []).append(other)
    return reply


def destroy(m, sender=ALICE, alternate=None, reason=None):
    m.send("<iq type='set' id='d1' from='%s' to='%s'><query xmlns='%s'><destroy%s>%s</destroy>"
           "</query></iq>" % (sender, ROOM, NS_OWNER,
                              " jid='%s'" % alternate if alternate else "",
                              "<reason>%s</reason>" % reason if reason else ""))


def current(m):
    return m.service.rooms["room"]


def messageStatuses(stanzas):
    return [statuses(s) for s in stanzas if s.name == "message"]


# -- the form (§10.2) ------------------------------------------------------------

def test_formHasEveryFieldWithCurrentValues():
    """An owner asking for the configuration gets a muc#roomconfig form with every field and its current value."""
    m = room(**{"muc#roomconfig_roomname": "Balcony", "muc#roomconfig_maxusers": "30",
                "muc#roomconfig_moderatedroom": "1", "muc#roomconfig_whois": "anyone"})

    form = getForm(m)

    assert form.formType == "form"
    assert form.formNamespace == NS_MUC + "#roomconfig"
    assert set(FIELDS) <= set(form.fields)
    assert form.fields["muc#roomconfig_roomname"].value == "Balcony"
    assert form.fields["muc#roomconfig_maxusers"].value == "30"
    assert form.fields["muc#roomconfig_moderatedroom"].value in ("1", "true", True)
    assert form.fields["muc#roomconfig_membersonly"].value in ("0", "false", False)
    assert form.fields["muc#roomconfig_whois"].value == "anyone"
    assert [str(v) for v in form.fields["muc#roomconfig_roomowners"].values] == [
        "alice@example.org"]


def test_nonOwnerIsForbidden():
    """Someone who is not an owner gets forbidden asking for or submitting the configuration."""
    m = room()

    assert errorCondition(getForm(m, BOB)) == "forbidden"
    assert errorCondition(submit(m, {"muc#roomconfig_roomname": "Mine"}, BOB)) == "forbidden"
    assert current(m).config["name"] == ""


def test_badValueChangesNothing():
    """A form with one value the room cannot use gets not-acceptable, and no other value changes."""
    m = room()

    reply = submit(m, {"muc#roomconfig_roomname": "Renamed",
                       "muc#roomconfig_maxusers": "lots"})

    assert errorCondition(reply) == "not-acceptable"
    assert current(m).config["name"] == ""
    assert current(m).config["maxusers"] == 200
    assert m.take(BOB) == []


def test_changeTellsOccupants104():
    """After the owner changes the configuration, everyone in the room gets a message with status 104."""
    m = room()

    reply = submit(m, {"muc#roomconfig_roomname": "Renamed"})

    assert reply["type"] == "result"
    [notice] = m.take(BOB)
    assert notice.name == "message" and notice["type"] == "groupchat"
    assert notice["from"] == ROOM
    assert statuses(notice) == {"104"}
    assert messageStatuses(m.take(ALICE)) == [{"104"}]


def test_whoisChangeTells172And173():
    """Making the room non-anonymous adds status 172 to the notice; making it semi-anonymous again, 173."""
    m = room()

    submit(m, {"muc#roomconfig_whois": "anyone"})
    assert messageStatuses(m.take(BOB)) == [{"104", "172"}]

    submit(m, {"muc#roomconfig_whois": "moderators"})
    assert messageStatuses(m.take(BOB)) == [{"104", "173"}]


def test_loggingChangeTells170And171():
    """Turning logging on adds status 170 to the notice; turning it off, 171."""
    m = room()

    submit(m, {"muc#roomconfig_enablelogging": "1"})
    assert messageStatuses(m.take(BOB)) == [{"104", "170"}]

    submit(m, {"muc#roomconfig_enablelogging": "0"})
    assert messageStatuses(m.take(BOB)) == [{"104", "171"}]


# -- creating (§10.1) ----------------------------------------------------------

def test_reservedRoomFlow():
    """A new room stays locked while its owner fetches and submits the form, then others may enter."""
    m = MUC()
    [own, _] = m.join(ALICE, "alice")
    assert "201" in statuses(own)

    form = getForm(m)
    assert form.formType == "form" and form.instructions
    assert errorCondition(only(m.join(BOB, "bob"), "presence")) == "item-not-found"

    reply = submit(m, {"muc#roomconfig_roomname": "Reserved",
                       "muc#roomconfig_moderatedroom": "1"})
    assert reply["type"] == "result"
    assert messageStatuses(m.take(ALICE)) == []  # Unlocking is no change to announce.
    assert not current(m).locked and current(m).config["name"] == "Reserved"

    entered = [s for s in m.join(BOB, "bob") if s.name == "presence"]
    assert item(entered[-1])["role"] == "visitor"


def test_cancelDestroysNewRoom():
    """Cancelling the first form destroys the new room: the owner is sent away and the name is free."""
    m = MUC()
    m.join(ALICE, "alice")

    m.send("<iq type='set' id='c1' from='%s' to='%s'><query xmlns='%s'>"
           "<x xmlns='jabber:x:data' type='cancel'/></query></iq>" % (ALICE, ROOM, NS_OWNER))

    got = m.take(ALICE)
    assert only(got, "iq")["type"] == "result"
    assert only(got, "presence")["type"] == "unavailable"
    assert "room" not in m.service.rooms
    [own, _] = m.join(BOB, "bob")
    assert "201" in statuses(own) and item(own)["affiliation"] == "owner"


def test_cancelKeepsConfiguredRoom():
    """Cancelling the form of a room that is already configured changes nothing."""
    m = room()

    m.send("<iq type='set' id='c1' from='%s' to='%s'><query xmlns='%s'>"
           "<x xmlns='jabber:x:data' type='cancel'/></query></iq>" % (ALICE, ROOM, NS_OWNER))

    assert only(m.take(ALICE), "iq")["type"] == "result"
    assert "bob" in current(m).occupants and m.take(BOB) == []


# -- destroying (§10.9) ------------------------------------------------------------

def test_destroyTellsOccupantsAlternateAndReason():
    """Destroying a room sends every occupant unavailable presence with the alternate venue and the reason."""
    m = room()

    destroy(m, alternate="other@" + "conference.example.org", reason="moving on")

    assert only(m.take(ALICE), "iq")["type"] == "result"
    [gone] = m.take(BOB)
    assert gone.name == "presence" and gone["type"] == "unavailable"
    assert gone["from"] == ROOM + "/bob"
    assert item(gone)["affiliation"] == "none" and item(gone)["role"] == "none"
    [x] = gone.elements(NS_USER, "x")
    [tag] = x.elements(NS_USER, "destroy")
    assert tag["jid"] == "other@conference.example.org"
    assert [str(r) for r in tag.elements(NS_USER, "reason")] == ["moving on"]


def test_destroyedRoomIsGone():
    """After a room is destroyed, the next presence to it creates a new room (status 201)."""
    m = room(**{"muc#roomconfig_persistentroom": "1", "muc#roomconfig_roomname": "Old"})
    destroy(m)
    m.clear()

    [own, _] = m.join(BOB, "bob")

    assert "201" in statuses(own) and item(own)["affiliation"] == "owner"
    assert current(m).config["name"] == ""
    assert m.storage.rooms._rooms == {}


def test_nonOwnerMayNotDestroy():
    """Someone who is not an owner gets forbidden trying to destroy the room."""
    m = room()

    destroy(m, BOB)

    assert errorCondition(only(m.take(BOB), "iq")) == "forbidden"
    assert "room" in m.service.rooms


# -- the owner and admin lists in the form (§10.2) -----------------------------------

def test_roomOwnersAndAdminsFieldsChangeAffiliations():
    """Submitting the owner and admin lists grants and revokes those affiliations, and occupants see it."""
    m = room()
    submit(m, {"muc#roomconfig_roomadmins": ["carol@example.org"]})

    submit(m, {"muc#roomconfig_roomowners": ["alice@example.org", "bob@example.org"],
               "muc#roomconfig_roomadmins": ["dave@example.org"]})

    assert current(m).affiliations == {"alice@example.org": "owner", "bob@example.org": "owner",
                                       "dave@example.org": "admin"}
    seen = [s for s in m.take(BOB) if s.name == "presence"]
    assert item(seen[-1])["affiliation"] == "owner" and item(seen[-1])["role"] == "moderator"


def test_emptyRoomOwnersRefused():
    """A form that leaves the room without owners gets not-acceptable, and nothing changes."""
    m = room()

    reply = submit(m, {"muc#roomconfig_roomowners": [], "muc#roomconfig_roomname": "Orphan"})

    assert errorCondition(reply) == "not-acceptable"
    assert current(m).affiliations == {"alice@example.org": "owner"}
    assert current(m).config["name"] == ""


def test_unreadableFormIsBadRequest():
    """A submitted form that cannot be read gets bad-request, not an internal error."""
    m = room()

    m.send("<iq type='set' id='b1' from='%s' to='%s'><query xmlns='%s'>"
           "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_roomname'>"
           "<option/></field></x></query></iq>" % (ALICE, ROOM, NS_OWNER))

    assert errorCondition(only(m.take(ALICE), "iq")) == "bad-request"


def test_roomAdminsFieldMayNotDemoteLastOwner():
    """A form that would turn the only owner into an admin gets not-acceptable, and the owner stays owner."""
    m = room()

    reply = submit(m, {"muc#roomconfig_roomadmins": ["alice@example.org"]})

    assert errorCondition(reply) == "not-acceptable"
    assert current(m).affiliations == {"alice@example.org": "owner"}
    assert m.take(BOB) == []


def test_ownerListedAsAdminAndOwnerStaysOwner():
    """An owner named in both lists stays owner, and occupants see no change of affiliation."""
    m = room()

    reply = submit(m, {"muc#roomconfig_roomadmins": ["alice@example.org"],
                       "muc#roomconfig_roomowners": ["alice@example.org"]})

    assert reply["type"] == "result"
    assert current(m).affiliations == {"alice@example.org": "owner"}
    assert [s for s in m.take(BOB) if s.name == "presence"] == []
