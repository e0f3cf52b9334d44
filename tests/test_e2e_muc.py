"""
End-to-end: multi-user chat (XEP-0045) through a real node, with slixmpp's
MUC client (C{xep_0045}): creating and configuring rooms (§10.1), entering
them (§7.2: passwords, members-only, history, several devices), talking,
changing nick, presence and subject (§7.4-§7.7, §8.1), private messages and
queries between occupants (§7.5), invitations (§7.8, and XEP-0249 direct
ones), moderation (§8.2 kick, §9.1 ban), destroying a room (§10.9),
persistent rooms across an unload and a restart (§4.2), and service
discovery of the service and its rooms (§6).

Every client here keeps an L{Inbox} of all the presence and messages it
receives: slixmpp's own C{"presence"} event goes quiet for an occupant JID
once its MUC plugin has seen it (it marks the JID C{ignore_updates}), so the
tests watch the stanzas themselves.
"""

from __future__ import annotations

import asyncio
import collections

import pytest_twisted
from slixmpp import JID
from slixmpp.exceptions import PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT

ensureDeferred = pytest_twisted.ensureDeferred

SERVICE = "conference." + DOMAIN
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_CONFERENCE = "jabber:x:conference"

#: Where each of our clients logs in from.
RESOURCES = {"romeo": "orchard", "juliet": "balcony", "nurse": "kitchen"}


def asDeferred(coroutine) -> defer.Deferred:
    """Run an asyncio coroutine as a task; a Deferred of its result."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


def roomJID(name: str) -> str:
    return "%s@%s" % (name, SERVICE)


class Inbox:
    """
    Every presence and message a client receives, kept (the newest L{LIMIT})
    until a test claims it: L{next} takes the first one, received or to
    come, that a predicate accepts.
    """

    LIMIT = 500

    def __init__(self, client):
        self.unclaimed: collections.deque = collections.deque(maxlen=self.LIMIT)
        self.waiting: list = []
        for kind in ("presence", "message"):
            client.xmpp.register_handler(Callback(
                "inbox " + kind, MatchXPath("{jabber:client}%s" % kind), self.onStanza))

    def onStanza(self, stanza) -> None:
        for entry in self.waiting:
            predicate, future = entry
            if not future.done() and predicate(stanza):
                self.waiting.remove(entry)
                future.set_result(stanza)
                return
        self.unclaimed.append(stanza)

    def next(self, predicate) -> defer.Deferred:
        """The first stanza C{predicate} accepts; fails after L{TIMEOUT}."""
        for stanza in self.unclaimed:
            if predicate(stanza):
                self.unclaimed.remove(stanza)
                return defer.succeed(stanza)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((predicate, future))
        return asDeferred(asyncio.wait_for(future, TIMEOUT))

    def presence(self, sender: str, type: str = "available", code: int | None = None):
        """The next presence of C{type} from C{sender}, with status C{code} if given."""
        return self.next(lambda s: s.name == "presence" and s["from"] == sender
                         and s["type"] == type
                         and (code is None or code in s["muc"]["status_codes"]))

    def message(self, sender: str, type: str | None = None, payload: str | None = None):
        """The next message from C{sender} (of C{type}, with a child matching C{payload})."""
        return self.next(lambda s: s.name == "message" and s["from"] == sender
                         and (type is None or s["type"] == type)
                         and (payload is None or s.xml.find(payload) is not None))


#: The slixmpp plugins of a MUC client: disco, forms, MUC, invitations, delays.
PLUGINS = ("xep_0030", "xep_0004", "xep_0045", "xep_0249", "xep_0203")


async def mucClient(server, user: str, resource: str | None = None, plugins=PLUGINS):
    """A logged-in client with an inbox and C{plugins} (the MUC, forms, disco and invitation ones)."""
    client = server.client(user, resource or RESOURCES[user])
    for plugin in plugins:
        client.xmpp.register_plugin(plugin)
    client.inbox = Inbox(client)
    await client.login()
    return client


async def cast(server, *names, plugins=PLUGINS):
    """The named accounts, created and logged in as MUC clients (with C{plugins}), in order."""
    clients = []
    for name in names:
        await server.addUser(name)
        clients.append(await mucClient(server, name, plugins=plugins))
    return clients


async def available(client) -> None:
    """Send initial presence; returns once the server has reflected it (RFC 6121 §4.2.2)."""
    client.xmpp.send_presence()
    await client.inbox.presence(client.jid.full)


def muc(client):
    return client.xmpp.plugin["xep_0045"]


def join(client, room: str, nick: str, **options) -> defer.Deferred:
    """
    Enter C{room} as C{nick}; fires with slixmpp's (own presence, subject,
    occupants' presence, history) once the subject has come, or fails with
    the L{PresenceError} the room sent.
    """
    return asDeferred(muc(client).join_muc_wait(JID(room), nick, timeout=TIMEOUT, **options))


def submit(client, room: str, **fields) -> defer.Deferred:
    """
    Submit a room configuration: no fields accepts the defaults (an instant
    room, §10.1.2), fields by their C{muc#roomconfig_} suffix configure it
    (a reserved room, §10.1.3).
    """
    form = client.xmpp.plugin["xep_0004"].make_form("submit")
    if fields:
        form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ROOMCONFIG)
        for var, value in fields.items():
            form.add_field(var="muc#roomconfig_" + var, value=value)
    return asDeferred(muc(client).set_room_config(room, form, timeout=TIMEOUT))


async def createRoom(client, room: str, nick: str, **fields):
    """Create C{room} as C{nick} and configure it (see L{submit}); its creator's presence."""
    presence, _, _, _ = await join(client, room, nick)
    await submit(client, room, **fields)
    return presence


async def setSubject(client, room: str, nick: str, subject: str) -> None:
    """Change C{room}'s subject as C{nick}; returns once the room has sent it back (§8.1)."""
    muc(client).set_subject(room, subject)
    await client.inbox.next(lambda s: s.name == "message" and s["from"] == room + "/" + nick
                            and s["type"] == "groupchat" and s["subject"] == subject)


async def say(client, room: str, nick: str, body: str) -> None:
    """A groupchat message to C{room}; returns once the room has sent it back (§7.4)."""
    client.xmpp.send_message(mto=room, mbody=body, mtype="groupchat")
    await client.inbox.next(lambda s: s.name == "message" and s["from"] == room + "/" + nick
                            and s["body"] == body)


def reasonOf(presence) -> str | None:
    reason = presence.xml.find("{%s}x/{%s}item/{%s}reason" % ((NS_MUC_USER,) * 3))
    return None if reason is None else reason.text


async def nothingSaid(client, room: str) -> None:
    """
    Assert that C{client}, an occupant, got no groupchat message from the
    room yet: it sends one itself, which travels behind anything sent to it
    before, so the next groupchat message must be its own.
    """
    nick = client.xmpp.plugin["xep_0045"].our_nicks[None][JID(room)]
    client.xmpp.send_message(mto=room, mbody="marker", mtype="groupchat")
    got = await client.inbox.next(lambda s: s.name == "message" and s["type"] == "groupchat"
                                  and s["body"] and s["from"].bare == room)
    assert (got["from"].full, got["body"]) == (room + "/" + nick, "marker")


async def refused(joining: defer.Deferred) -> PresenceError:
    """The error presence a join was refused with."""
    try:
        await joining
    except PresenceError as e:
        return e
    raise AssertionError("the room let the client in")


async def refusal(joining: defer.Deferred) -> str:
    """The error condition of a join the room refused."""
    return (await refused(joining)).condition


@ensureDeferred
async def test_createInstantRoomAndChat(server):
    """Romeo creates an instant room, Juliet enters, each sees the other, and she talks to him."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("verona")

    created = await createRoom(romeo, room, "romeo")
    joined, _, occupants, _ = await join(juliet, room, "juliet")

    assert {110, 201} <= created["muc"]["status_codes"]
    assert (created["muc"]["affiliation"], created["muc"]["role"]) == ("owner", "moderator")
    assert 110 in joined["muc"]["status_codes"]
    assert room + "/romeo" in {p["from"].full for p in occupants}
    seen = await romeo.inbox.presence(room + "/juliet")
    assert seen["muc"]["role"] == "participant"
    juliet.xmpp.send_message(mto=room, mbody="Good pilgrim", mtype="groupchat")
    message = await romeo.inbox.message(room + "/juliet", "groupchat")
    assert message["body"] == "Good pilgrim"


@ensureDeferred
async def test_reservedRoomWithPassword(server):
    """Romeo fills his new room's form with a name and a password; Juliet needs the password."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("capulet")
    await join(romeo, room, "romeo")

    form = await asDeferred(muc(romeo).get_room_config(room, timeout=TIMEOUT))
    fields = form.get_fields()
    assert {"muc#roomconfig_roomname", "muc#roomconfig_persistentroom",
            "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret"} <= set(fields)
    fields["muc#roomconfig_roomname"]["value"] = "The Capulets' feast"
    fields["muc#roomconfig_persistentroom"]["value"] = True
    fields["muc#roomconfig_passwordprotectedroom"]["value"] = True
    fields["muc#roomconfig_roomsecret"]["value"] = "cousin"
    await asDeferred(muc(romeo).set_room_config(room, form, timeout=TIMEOUT))

    assert await refusal(join(juliet, room, "juliet")) == "not-authorized"
    joined, _, _, _ = await join(juliet, room, "juliet", password="cousin")
    assert 110 in joined["muc"]["status_codes"]


@ensureDeferred
async def test_membersOnly(server):
    """Juliet is kept out of a members-only room (registration-required) until made a member."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("tomb")
    await createRoom(romeo, room, "romeo", membersonly="1")

    assert await refusal(join(juliet, room, "juliet")) == "registration-required"
    await asDeferred(muc(romeo).set_affiliation(room, "member", jid="juliet@" + DOMAIN,
                                                timeout=TIMEOUT))
    joined, _, _, _ = await join(juliet, room, "juliet")
    assert joined["muc"]["affiliation"] == "member"


@ensureDeferred
async def test_kick(server):
    """Juliet, kicked by Romeo, leaves the room with status 307 and Romeo's reason."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("square")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    await asDeferred(muc(romeo).set_role(room, "juliet", "none", reason="Hence, banished!",
                                         timeout=TIMEOUT))

    gone = await juliet.inbox.presence(room + "/juliet", "unavailable", code=307)
    assert 110 in gone["muc"]["status_codes"]
    assert reasonOf(gone) == "Hence, banished!"


@ensureDeferred
async def test_kickSeenByOthers(server):
    """Romeo sees Juliet, whom he kicked, leave with status 307 and his reason, not 110."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("square")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    await asDeferred(muc(romeo).set_role(room, "juliet", "none", reason="Hence, banished!",
                                         timeout=TIMEOUT))

    gone = await romeo.inbox.presence(room + "/juliet", "unavailable", code=307)
    assert 110 not in gone["muc"]["status_codes"]
    assert reasonOf(gone) == "Hence, banished!"


@ensureDeferred
async def test_ban(server):
    """The nurse, banned, leaves with status 301 and is refused (forbidden) when she comes back."""
    romeo, nurse = await cast(server, "romeo", "nurse")
    room = roomJID("square")
    await createRoom(romeo, room, "romeo")
    await join(nurse, room, "nurse")

    await asDeferred(muc(romeo).set_affiliation(room, "outcast", jid="nurse@" + DOMAIN,
                                                reason="Too many words", timeout=TIMEOUT))

    gone = await nurse.inbox.presence(room + "/nurse", "unavailable", code=301)
    assert gone["muc"]["affiliation"] == "outcast"
    assert reasonOf(gone) == "Too many words"
    assert await refusal(join(nurse, room, "nurse")) == "forbidden"


@ensureDeferred
async def test_historyOnJoin(server):
    """Juliet, entering, gets the messages said before, in order, each delayed by the room."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("orchard")
    await createRoom(romeo, room, "romeo")
    lines = ["With love's light wings", "did I o'erperch these walls", "For stony limits"]
    for line in lines:
        await say(romeo, room, "romeo", line)

    _, _, _, history = await join(juliet, room, "juliet")

    assert [m["body"] for m in history] == lines
    assert {m["from"].full for m in history} == {room + "/romeo"}
    assert {m["delay"]["from"] for m in history} == {JID(room)}


@ensureDeferred
async def test_historyMaxStanzas(server):
    """Juliet, asking for one stanza of history, gets only the last message."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("orchard")
    await createRoom(romeo, room, "romeo")
    for line in ("one", "two", "three"):
        await say(romeo, room, "romeo", line)

    _, _, _, history = await join(juliet, room, "juliet", maxstanzas=1)

    assert [m["body"] for m in history] == ["three"]


@ensureDeferred
async def test_persistentRoomSurvivesRestart(server):
    """A persistent room keeps its name, subject and history across a restart of the server."""
    romeo, = await cast(server, "romeo")
    room = roomJID("chapel")
    await createRoom(romeo, room, "romeo", persistentroom="1", roomname="Friar Laurence's cell")
    await setSubject(romeo, room, "romeo", "A wedding")
    await say(romeo, room, "romeo", "These violent delights have violent ends")
    await romeo.disconnect()

    await server.stop()
    await server.start()
    romeo = await mucClient(server, "romeo")
    info = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT))
    joined, subject, _, history = await join(romeo, room, "romeo")

    assert joined["muc"]["affiliation"] == "owner"
    identities = info["disco_info"]["identities"]
    assert ("conference", "text", None, "Friar Laurence's cell") in identities
    assert "muc_persistent" in info["disco_info"]["features"]
    assert subject["subject"] == "A wedding"
    assert subject["from"] == room + "/romeo"
    assert [m["body"] for m in history] == ["These violent delights have violent ends"]


@ensureDeferred
async def test_persistentRoomListedAfterRestart(server):
    """After a restart, a persistent public room nobody has entered yet is still listed."""
    romeo, = await cast(server, "romeo")
    room = roomJID("chapel")
    await createRoom(romeo, room, "romeo", persistentroom="1", roomname="Friar Laurence's cell")
    await romeo.disconnect()

    await server.stop()
    await server.start()
    romeo = await mucClient(server, "romeo")
    items = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_items(jid=SERVICE,
                                                                      timeout=TIMEOUT))

    assert items["disco_items"]["items"] == {(room, None, "Friar Laurence's cell")}


@ensureDeferred
async def test_idleRoomComesBack(makeServer):
    """An empty persistent room unloaded from memory comes back with its subject and history."""
    server = await makeServer({"muc": {"idle_unload": 0}})
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("chapel")
    await createRoom(romeo, room, "romeo", persistentroom="1")
    await setSubject(romeo, room, "romeo", "A wedding")
    await say(romeo, room, "romeo", "Come, come with me")
    muc(romeo).leave_muc(JID(room), "romeo")
    await romeo.inbox.presence(room + "/romeo", "unavailable", code=110)

    _, subject, _, history = await join(juliet, room, "juliet")

    assert subject["subject"] == "A wedding"
    assert [m["body"] for m in history] == ["Come, come with me"]


@ensureDeferred
async def test_destroyRoom(server):
    """When Romeo destroys his room, Juliet is sent out with his reason and where to go instead."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    await asDeferred(muc(romeo).destroy(room, reason="Banished to Mantua",
                                        altroom=roomJID("mantua"), timeout=TIMEOUT))

    gone = await juliet.inbox.presence(room + "/juliet", "unavailable")
    destroy = gone.xml.find("{%s}x/{%s}destroy" % (NS_MUC_USER, NS_MUC_USER))
    assert destroy.get("jid") == roomJID("mantua")
    assert destroy.findtext("{%s}reason" % NS_MUC_USER) == "Banished to Mantua"


@ensureDeferred
async def test_mediatedInvitation(server):
    """Romeo's invitation through the room reaches Juliet from the room, with his reason."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("ball")
    await createRoom(romeo, room, "romeo")
    await available(juliet)  # the invitation goes to her bare JID (RFC 6121 §8.5.2.1)

    muc(romeo).invite(room, "juliet@" + DOMAIN, reason="Come to the feast")

    invitation = await juliet.inbox.message(room, payload="{%s}x/{%s}invite" % (NS_MUC_USER,
                                                                                NS_MUC_USER))
    assert invitation["muc"]["invite"]["from"].bare == "romeo@" + DOMAIN
    assert invitation["muc"]["invite"]["reason"] == "Come to the feast"


@ensureDeferred
async def test_directInvitation(server):
    """Romeo's direct invitation (XEP-0249) reaches Juliet from Romeo, naming the room."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("ball")
    await createRoom(romeo, room, "romeo")

    romeo.xmpp.plugin["xep_0249"].send_invitation(juliet.jid, JID(room),
                                                  reason="Come to the feast")

    invitation = await juliet.inbox.message(romeo.jid.full, payload="{%s}x" % NS_CONFERENCE)
    assert invitation["groupchat_invite"]["jid"] == JID(room)
    assert invitation["groupchat_invite"]["reason"] == "Come to the feast"


@ensureDeferred
async def test_privateMessage(server):
    """Juliet's private message to Romeo's nick reaches him from room/juliet."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("balcony")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    juliet.xmpp.send_message(mto=room + "/romeo", mbody="Wherefore art thou?", mtype="chat")

    message = await romeo.inbox.message(room + "/juliet", "chat")
    assert message["body"] == "Wherefore art thou?"
    assert message.xml.find("{%s}x" % NS_MUC_USER) is not None


@ensureDeferred
async def test_privateMessageNotCarbonCopied(server):
    """A private message from an occupant is not copied to Romeo's other device (XEP-0280 §6)."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    study = await mucClient(server, "romeo", "study")
    study.xmpp.register_plugin("xep_0280")
    await available(study)
    await asDeferred(study.xmpp.plugin["xep_0280"].enable(timeout=TIMEOUT))
    room = roomJID("balcony")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    juliet.xmpp.send_message(mto=room + "/romeo", mbody="Wherefore art thou?", mtype="chat")
    await romeo.inbox.message(room + "/juliet", "chat")

    # A marker to itself reaches the study after any copy sent before it.
    study.xmpp.send_message(mto=study.jid.full, mbody="marker", mtype="chat")
    got = await study.inbox.next(lambda s: s.name == "message")
    assert (got["from"], got["body"]) == (study.jid, "marker")


@ensureDeferred
async def test_presenceUpdate(server):
    """Juliet's new show and status in the room reach Romeo from her occupant JID (§7.7)."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    juliet.xmpp.send_presence(pto=room + "/juliet", pshow="away", pstatus="at the window")

    changed = await romeo.inbox.presence(room + "/juliet", "away")
    assert changed["status"] == "at the window"
    assert changed["muc"]["role"] == "participant"


@ensureDeferred
async def test_queryThroughRoom(server):
    """Juliet's version query to Romeo's nick is answered by his client through the room."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    romeo.xmpp.register_plugin("xep_0092")
    juliet.xmpp.register_plugin("xep_0092")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    iq = await asDeferred(juliet.xmpp.plugin["xep_0092"].get_version(room + "/romeo",
                                                                      timeout=TIMEOUT))

    assert iq["from"] == room + "/romeo"
    assert iq["software_version"]["name"] == "Slixmpp"


@ensureDeferred
async def test_serviceDiscoInfo(server):
    """The MUC service says in disco#info that it is a text conference service (XEP-0045)."""
    romeo, = await cast(server, "romeo")

    info = await asDeferred(romeo.xmpp.plugin["xep_0030"].get_info(jid=SERVICE, timeout=TIMEOUT))

    assert [(c, t) for c, t, _, _ in info["disco_info"]["identities"]] == [("conference", "text")]
    assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]


@ensureDeferred
async def test_discoFindsServiceAndRooms(server):
    """The server's disco items list its MUC service, and the service's list the public room."""
    romeo, = await cast(server, "romeo")
    room = roomJID("verona")
    await createRoom(romeo, room, "romeo", roomname="Fair Verona")
    disco = romeo.xmpp.plugin["xep_0030"]

    domainItems = await asDeferred(disco.get_items(jid=DOMAIN, timeout=TIMEOUT))
    serviceItems = await asDeferred(disco.get_items(jid=SERVICE, timeout=TIMEOUT))

    assert SERVICE in {jid for jid, _, _ in domainItems["disco_items"]["items"]}
    assert (room, None, "Fair Verona") in serviceItems["disco_items"]["items"]


@ensureDeferred
async def test_nickChange(server):
    """Juliet changing nick: Romeo sees the old one leave (303, naming the new), the new come."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    nick = await asDeferred(muc(juliet).set_self_nick(JID(room), "pilgrim", timeout=TIMEOUT))

    assert nick == "pilgrim"
    old = await romeo.inbox.presence(room + "/juliet", "unavailable", code=303)
    assert old["muc"]["item_nick"] == "pilgrim"
    await romeo.inbox.presence(room + "/pilgrim")


@ensureDeferred
async def test_subjectChange(server):
    """A subject set by the moderator reaches every occupant from his occupant JID."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    muc(romeo).set_subject(room, "Two households")

    subject = await juliet.inbox.message(room + "/romeo", "groupchat", "{jabber:client}subject")
    assert subject["subject"] == "Two households"


@ensureDeferred
async def test_outsiderCannotSay(server):
    """A groupchat message from someone not in the room comes back as not-acceptable."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")

    juliet.xmpp.send_message(mto=room, mbody="Let me in", mtype="groupchat")

    bounce = await juliet.inbox.message(room, "error")
    assert bounce["error"]["condition"] == "not-acceptable"
    await nothingSaid(romeo, room)


@ensureDeferred
async def test_droppedConnectionLeavesRoom(server):
    """When Juliet's connection is simply cut, Romeo sees her leave the room."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(juliet, room, "juliet")

    juliet.xmpp.transport.abort()

    await romeo.inbox.presence(room + "/juliet", "unavailable")


@ensureDeferred
async def test_temporaryRoomGoesWithLastOccupant(server):
    """A temporary room goes with its last occupant: the next to enter creates it anew."""
    romeo, juliet = await cast(server, "romeo", "juliet")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")

    muc(romeo).leave_muc(JID(room), "romeo")
    await romeo.inbox.presence(room + "/romeo", "unavailable", code=110)
    created, _, _, _ = await join(juliet, room, "juliet")

    assert 201 in created["muc"]["status_codes"]
    assert created["muc"]["affiliation"] == "owner"


@ensureDeferred
async def test_severalDevicesOneOccupant(server):
    """Juliet on two devices under one nick is one occupant, and both devices get the messages."""
    romeo, balcony = await cast(server, "romeo", "juliet")
    chamber = await mucClient(server, "juliet", "chamber")
    room = roomJID("masque")
    await createRoom(romeo, room, "romeo")
    await join(balcony, room, "juliet")
    await romeo.inbox.presence(room + "/juliet")

    await join(chamber, room, "juliet")
    await say(romeo, room, "romeo", "Is she a Capulet?")

    for device in (balcony, chamber):
        message = await device.inbox.message(room + "/romeo", "groupchat")
        assert message["body"] == "Is she a Capulet?"
    # Anything the second device's entrance sent Romeo came before his own
    # message came back: he was told of Juliet only once.
    assert not [s for s in romeo.inbox.unclaimed
                if s.name == "presence" and s["from"] == room + "/juliet"]
