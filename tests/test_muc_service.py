"""
Tests for L{muc.service} and L{muc.state}: service discovery and the room
directory, who may create rooms, keeping persistent rooms in storage
(saving, unloading idle rooms, restoring them, restarts) and what the
service answers itself (XEP-0045 §4.2, §6, §10.1; XEP-0199).  No network:
a MUC service on a real router with recording user domains and a
L{Clock} (L{tests.muchelpers}).
"""

from twisted.internet import defer

from muc import state
from tests.muchelpers import (
    MUC, NS_MUC, NS_OWNER, ROOM, SERVICE, errorCondition, item, statuses)
from xmppd.storage.memory import MemoryStorage

ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
ROOT = "root@example.org/console"
MERCUTIO = "mercutio@remote.example/street"

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
PERSISTENT = {"muc#roomconfig_persistentroom": "1"}


def iq(m, sender, to, payload, iqType="get"):
    """Send an IQ; the one stanza C{sender} gets back."""
    m.take(sender)
    m.send("<iq type='%s' id='q1' from='%s' to='%s'>%s</iq>" % (iqType, sender, to, payload))
    [reply] = m.take(sender)
    return reply


def discoItems(m, sender=BOB):
    reply = iq(m, sender, SERVICE, "<query xmlns='%s'/>" % NS_DISCO_ITEMS)
    assert reply["type"] == "result", reply.toXml()
    return [(i["jid"], i.getAttribute("name")) for i in reply.query.elements(NS_DISCO_ITEMS, "item")]


def roomName(m, sender=BOB, room=ROOM):
    """The room's name in its disco#info identity, or the error condition."""
    reply = iq(m, sender, room, "<query xmlns='%s'/>" % NS_DISCO_INFO)
    if reply["type"] != "result":
        return errorCondition(reply)
    [identity] = reply.query.elements(NS_DISCO_INFO, "identity")
    return identity["name"]


def leave(m, jid, room=ROOM, nick="x"):
    m.send("<presence type='unavailable' from='%s' to='%s/%s'/>" % (jid, room, nick))
    m.take(jid)


def stored(m):
    return {name for (_, name) in m.storage.rooms._rooms}


class HeldRooms:
    """A room store whose reads wait until the test lets them through."""

    def __init__(self, rooms):
        self.rooms = rooms
        self.held: list[tuple[defer.Deferred, defer.Deferred]] = []
        self.holding = False

    def get(self, service, name):
        d = self.rooms.get(service, name)
        if not self.holding:
            return d
        waiter = defer.Deferred()
        self.held.append((d, waiter))
        return waiter

    def release(self):
        held, self.held = self.held, []
        for d, waiter in held:
            d.chainDeferred(waiter)

    def __getattr__(self, name):
        return getattr(self.rooms, name)


class HeldStorage:
    def __init__(self):
        self.inner = MemoryStorage()
        self.rooms = HeldRooms(self.inner.rooms)


# -- disco (§6.1-6.3) -------------------------------------------------------------

def test_serviceDiscoInfo():
    """The service's disco#info has the identity conference/text and the MUC feature."""
    m = MUC()

    reply = iq(m, BOB, SERVICE, "<query xmlns='%s'/>" % NS_DISCO_INFO)

    assert reply["type"] == "result" and reply["from"] == SERVICE
    [identity] = reply.query.elements(NS_DISCO_INFO, "identity")
    assert (identity["category"], identity["type"]) == ("conference", "text")
    assert NS_MUC in {f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")}


def test_discoItemsListsPublicRoomsOnly():
    """The service's disco#items lists public rooms, not hidden ones nor rooms still locked."""
    m = MUC()
    m.create(ALICE, "alice", config={"muc#roomconfig_roomname": "Open"})
    m.create(ALICE, "alice", room="hidden@" + SERVICE,
             config={"muc#roomconfig_publicroom": "0"})
    m.join(ALICE, "alice", room="locked@" + SERVICE)  # Never configured.

    assert discoItems(m) == [(ROOM, "Open")]


def test_discoItemsListsStoredRooms():
    """Public persistent rooms that are only in storage (unloaded) are listed too; hidden ones are not."""
    m = MUC()
    m.create(ALICE, "alice", config={**PERSISTENT, "muc#roomconfig_roomname": "Kept"})
    m.create(ALICE, "alice", room="hidden@" + SERVICE,
             config={**PERSISTENT, "muc#roomconfig_publicroom": "0"})
    leave(m, ALICE)
    leave(m, ALICE, room="hidden@" + SERVICE)
    m.clock.advance(m.settings.idle_unload)
    assert m.service.rooms == {}

    assert discoItems(m) == [(ROOM, "Kept")]


# -- creating rooms (§10.1) -----------------------------------------------------------

def created(got):
    own = [s for s in got if s.name == "presence" and "110" in statuses(s)]
    return bool(own) and "201" in statuses(own[0])


def test_localUserCreatesRoom():
    """A user of a served domain creates a room by entering it, and owns it."""
    m = MUC()

    got = m.join(BOB, "bob")

    assert created(got)
    assert m.service.rooms["room"].affiliations == {"bob@example.org": "owner"}


def test_remoteUserMayNotCreateWithLocalPolicy():
    """With room_creation "local", a remote user entering a room that does not exist gets not-allowed."""
    m = MUC(room_creation="local")

    [refused] = m.join(MERCUTIO, "merc")

    assert errorCondition(refused) == "not-allowed"
    assert "room" not in m.service.rooms


def test_remoteUserMayCreateWithAnyonePolicy():
    """With room_creation "anyone", a remote user creates rooms too."""
    m = MUC(room_creation="anyone")

    assert created(m.join(MERCUTIO, "merc"))


def test_onlyAdminsCreateWithAdminsPolicy():
    """With room_creation "admins", only service admins create rooms; a local user gets not-allowed."""
    m = MUC(room_creation="admins", admins=("root@example.org",))

    [refused] = m.join(BOB, "bob")
    assert errorCondition(refused) == "not-allowed"
    assert created(m.join(ROOT, "root"))


# -- keeping rooms (§4.2) -------------------------------------------------------------------

def test_persistentRoomSurvivesRestart():
    """A persistent room comes back after a restart with its configuration, affiliations, subject and history."""
    m = MUC()
    m.create(ALICE, "alice", config={**PERSISTENT, "muc#roomconfig_roomname": "Kept"})
    m.send("<iq type='set' id='m1' from='%s' to='%s'><query xmlns='%s#admin'>"
           "<item jid='bob@example.org' affiliation='member'/></query></iq>"
           % (ALICE, ROOM, NS_MUC))
    m.send("<message type='groupchat' from='%s' to='%s'><subject>Plans</subject></message>"
           % (ALICE, ROOM))
    m.say(ALICE, "remember me")
    m.clear()

    m.restart()
    got = m.join(BOB, "bob")

    own = [s for s in got if s.name == "presence" and "110" in statuses(s)]
    assert "201" not in statuses(own[0]) and item(own[0])["affiliation"] == "member"
    messages = [s for s in got if s.name == "message"]
    assert [str(s.body) for s in messages if s.body] == ["remember me"]
    assert str(messages[-1].subject) == "Plans"
    room = m.service.rooms["room"]
    assert room.config["name"] == "Kept" and room.config["persistent"] is True
    assert room.affiliations == {"alice@example.org": "owner", "bob@example.org": "member"}


def test_idleRoomUnloadedAndRestored():
    """An empty persistent room leaves memory after idle_unload seconds and answers its next stanza as before."""
    m = MUC(idle_unload=60.0)
    m.create(ALICE, "alice", config={**PERSISTENT, "muc#roomconfig_roomname": "Kept"})
    leave(m, ALICE)

    m.clock.advance(59)
    assert "room" in m.service.rooms
    m.clock.advance(1)
    assert "room" not in m.service.rooms and stored(m) == {"room"}

    assert roomName(m) == "Kept"
    assert "room" in m.service.rooms


def test_reenteringCancelsUnload():
    """Someone entering an empty persistent room before idle_unload keeps it loaded."""
    m = MUC(idle_unload=60.0)
    m.create(ALICE, "alice", config=PERSISTENT)
    leave(m, ALICE)
    m.clock.advance(30)
    room = m.service.rooms["room"]

    m.join(BOB, "bob")
    m.clock.advance(60)

    assert m.service.rooms["room"] is room


def test_stanzasWaitingForLoadHandledInOrder():
    """Stanzas for a room that is being read from storage are all handled, in the order they came."""
    storage = HeldStorage()
    m = MUC(storage=storage, idle_unload=60.0)
    m.create(ALICE, "alice", config=PERSISTENT)
    leave(m, ALICE)
    m.clock.advance(60)
    storage.rooms.holding = True

    m.send("<presence from='%s' to='%s/bob'><x xmlns='%s'/></presence>" % (BOB, ROOM, NS_MUC))
    m.say(BOB, "one")
    m.say(BOB, "two")
    assert m.take(BOB) == []
    storage.rooms.release()

    got = m.take(BOB)
    assert [s.name for s in got] == ["presence", "message", "message", "message"]
    assert "201" not in statuses(got[0])
    assert [str(s.body) for s in got[2:]] == ["one", "two"]


def test_temporaryRoomLeavesNothingStored():
    """A temporary room is gone when its last occupant leaves, and nothing of it is stored."""
    m = MUC()
    m.create(ALICE, "alice")
    m.say(ALICE, "fleeting")

    leave(m, ALICE)

    assert "room" not in m.service.rooms and stored(m) == set()
    assert created(m.join(BOB, "bob"))


def test_persistentOffDeletesStoredRoom():
    """Turning persistence off removes the room from storage."""
    m = MUC()
    m.create(ALICE, "alice", config=PERSISTENT)
    assert stored(m) == {"room"}

    m.configure(ALICE, {"muc#roomconfig_persistentroom": "0"})

    assert stored(m) == set()


def test_stopTellsOccupants332():
    """When the service stops, every occupant gets unavailable presence with status 332."""
    m = MUC()
    m.create(ALICE, "alice")
    m.join(BOB, "bob")
    m.clear()

    m.service.stopService()

    [gone] = m.take(BOB)
    assert gone["type"] == "unavailable" and gone["from"] == ROOM + "/bob"
    assert "332" in statuses(gone)


# -- what the service answers itself -------------------------------------------------------

def test_pingServiceAndRoom():
    """A ping to the service and a ping to a room are answered with a result."""
    m = MUC()
    m.create(ALICE, "alice")
    ping = "<ping xmlns='urn:xmpp:ping'/>"

    assert iq(m, BOB, SERVICE, ping)["type"] == "result"
    reply = iq(m, BOB, ROOM, ping)
    assert reply["type"] == "result" and reply["from"] == ROOM


def test_unknownIQToRoomIsServiceUnavailable():
    """An IQ to a room in a namespace the room does not know gets service-unavailable."""
    m = MUC()
    m.create(ALICE, "alice")

    reply = iq(m, BOB, ROOM, "<query xmlns='urn:example:unknown'/>")

    assert errorCondition(reply) == "service-unavailable"


def test_messageToMissingRoomIsItemNotFound():
    """A message to a room that does not exist gets item-not-found, and creates nothing."""
    m = MUC()

    m.say(BOB, "anyone?")

    [reply] = m.take(BOB)
    assert errorCondition(reply) == "item-not-found"
    assert m.service.rooms == {}


def test_stateRoundTrip():
    """A room dumped and restored has the same configuration, affiliations, nicks, subject and history."""
    m = MUC()
    m.create(ALICE, "alice", config={**PERSISTENT, "muc#roomconfig_roomname": "Kept",
                                     "muc#roomconfig_presencebroadcast": ["moderator"]})
    m.send("<message type='groupchat' from='%s' to='%s'><subject>Plans</subject></message>"
           % (ALICE, ROOM))
    m.say(ALICE, "remember me")
    original = m.service.rooms["room"]
    original.registered["bob@example.org"] = "bobby"

    copy = m.service.newRoom("copy")
    state.restore(copy, state.dump(original))

    assert {k: v for k, v in copy.config.items() if k} == \
        {k: v for k, v in original.config.items() if k}
    assert copy.config["presencebroadcast"] == ("moderator",)
    assert copy.affiliations == original.affiliations
    assert copy.registered == {"bob@example.org": "bobby"}
    assert (copy.subject, copy.subjectFrom) == ("Plans", ROOM + "/alice")
    assert [(e.element.toXml(), e.when, e.chars) for e in copy.history.entries] == \
        [(e.element.toXml(), e.when, e.chars) for e in original.history.entries]
    assert state.dump(copy) == state.dump(original)


def test_ownerIQToMissingRoomIsItemNotFound():
    """Configuring a room that does not exist gets item-not-found."""
    m = MUC()

    reply = iq(m, ALICE, ROOM, "<query xmlns='%s'/>" % NS_OWNER)

    assert errorCondition(reply) == "item-not-found"


def test_queriesDoNotKeepEmptyRoomLoaded():
    """A disco query to an empty persistent room does not keep it in memory past idle_unload."""
    m = MUC(idle_unload=60.0)
    m.create(ALICE, "alice", config=PERSISTENT)
    leave(m, ALICE)
    m.clock.advance(30)

    roomName(m)
    m.clock.advance(60)

    assert "room" not in m.service.rooms


def test_roomRestoredByQueryIsUnloadedAgain():
    """A persistent room read back from storage for a query, with nobody entering, is unloaded again after idle_unload."""
    m = MUC(idle_unload=60.0)
    m.create(ALICE, "alice", config=PERSISTENT)
    leave(m, ALICE)
    m.clock.advance(60)

    roomName(m)
    assert "room" in m.service.rooms
    m.clock.advance(60)

    assert "room" not in m.service.rooms


def test_unreadableStoredRoomAnswersError():
    """A stanza for a stored room that cannot be read gets internal-server-error, and the service goes on."""
    m = MUC()
    m.storage.rooms.put(SERVICE, "room", "{not json")

    [refused] = m.join(BOB, "bob")

    assert errorCondition(refused) == "internal-server-error"
    assert "room" not in m.service.rooms
    assert created(m.join(BOB, "bob", room="other@" + SERVICE))
