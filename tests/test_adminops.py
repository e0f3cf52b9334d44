"""
Tests for L{xmppd.admin.operations} (the admin operations every way in
calls) and L{xmppd.admin.adhoc} (XEP-0050 ad-hoc commands with the XEP-0133
nodes): a whole node in memory (L{tests.streamhelpers.Node}), clients over
fake transports, time from a L{Clock}.
"""

from __future__ import annotations

import json

import pytest
from twisted.application import service
from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.admin import adhoc
from xmppd.admin.operations import AdminOperations, OperationError
from xmppd.admin.service import AdminService
from xmppd.core.scram import makeCredentials
from tests.streamhelpers import DOMAIN, PASSWORDS, Node

ADMIN = "juliet"
NS = adhoc.NS_COMMANDS
NS_DATA = "jabber:x:data"


class C2S(service.Service):
    """Stands in for the c2s service: the node's one factory, found by name."""

    name = "c2s"

    def __init__(self, factory):
        self.factories = [factory]


def succeed(d):
    """The result of C{d} (a Deferred or coroutine that does not wait), or its exception."""
    d = defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d
    results = []
    d.addBoth(results.append)
    [result] = results
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


@pytest.fixture
def node(tmp_path):
    node = Node(tmp_path, features=("disco",), server={"admins": [f"{ADMIN}@{DOMAIN}"]})
    C2S(node.factory).setServiceParent(node.server)
    node.admin = AdminService(node.server, reactor=node.clock)
    node.admin.serveDomain(node.local)
    node.admin.hooked = True
    node.server.hooks.add("session/bound", node.admin.operations.onSessionBound)
    node.ops = node.admin.operations
    return node


def command(client, node, action=None, sessionid=None, form=None, id="c1"):
    """Send a command request to the domain; the one answer."""
    attributes = f" node='{node}'"
    if action:
        attributes += f" action='{action}'"
    if sessionid:
        attributes += f" sessionid='{sessionid}'"
    reply = client.exchange(f"<iq type='set' id='{id}' to='{DOMAIN}'>"
                            f"<command xmlns='{NS}'{attributes}>{form or ''}</command></iq>")
    [iq] = [e for e in reply.elements if e.name == "iq"]
    return iq


def submit(**fields) -> str:
    xml = [f"<x xmlns='{NS_DATA}' type='submit'>"
           f"<field var='FORM_TYPE' type='hidden'><value>{adhoc.NS_ADMIN}</value></field>"]
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        xml.append(f"<field var='{var.replace('_', '-') if var != 'max_items' else var}'>"
                   + "".join(f"<value>{v}</value>" for v in values) + "</field>")
    return "".join(xml) + "</x>"


def run(client, name, **fields):
    """Execute C{name} (XEP-0133's, or a whole node), then submit C{fields}: the <command/> done."""
    node = name if ":" in name else adhoc.admin(name)
    first = command(client, node)
    assert first["type"] == "result", first.toXml()
    answer = first.command
    if answer["status"] == "executing":
        done = command(client, node, sessionid=answer["sessionid"],
                       form=submit(**fields), id="c2")
        assert done["type"] == "result", done.toXml()
        answer = done.command
    assert answer["status"] == "completed"
    return answer


def note(answer) -> tuple[str, str]:
    [n] = answer.elements(NS, "note")
    return n["type"], str(n)


def resultFields(answer) -> dict:
    [x] = answer.elements(NS_DATA, "x")
    return {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")]
            for f in x.elements(NS_DATA, "field")}


def adminClient(node, resource="console"):
    return node.connect().login(ADMIN, resource)


# -- operations -----------------------------------------------------------------


def test_addChangeDeleteUser(node):
    """Add, change the password of, and delete an account, in storage; errors are one line."""
    ops = node.ops
    jid = ops.account("Benvolio@Example.org")
    assert jid.full() == f"benvolio@{DOMAIN}"
    succeed(ops.addUser(jid, "s3cr3t-pass"))
    assert succeed(node.server.storage.users.userExists("benvolio", DOMAIN))
    with pytest.raises(OperationError, match="exists already"):
        succeed(ops.addUser(jid, "s3cr3t-pass"))
    succeed(ops.changePassword(jid, "an0ther-pass"))
    succeed(ops.deleteUser(jid))
    assert not succeed(node.server.storage.users.userExists("benvolio", DOMAIN))
    with pytest.raises(OperationError, match="there is no account benvolio@example.org"):
        succeed(ops.deleteUser(jid))
    with pytest.raises(OperationError, match="not served here"):
        ops.account("romeo@example.com")
    with pytest.raises(OperationError, match="not a valid JID"):
        ops.account("@@")


def test_disabledAccountCannotLogIn(node):
    """A disabled account's sessions end and its login is refused; re-enabled, it logs in."""
    client = node.connect().login("romeo", "phone")
    ended = succeed(node.ops.disableUser(JID(f"romeo@{DOMAIN}"), by="juliet@example.org"))
    assert ended == 1
    assert client.received().streamError == "not-authorized"
    other = node.connect()
    other.start()
    from tests.streamhelpers import plain
    reply = other.exchange(plain("romeo", PASSWORDS["romeo"]))
    assert reply.names == ["failure"]
    assert [c.name for c in reply.elements[0].elements()][0] == "account-disabled"
    succeed(node.ops.enableUser(JID(f"romeo@{DOMAIN}")))
    node.clock.advance(10)
    node.connect().login("romeo")


def test_sessionsKickStats(node):
    """Sessions are listed; a kick ends them with a stream error; stats count them."""
    romeo = node.connect().login("romeo", "phone")
    node.connect().login("juliet", "balcony")
    rows = node.ops.sessions()
    assert [row["jid"] for row in rows] == [f"juliet@{DOMAIN}/balcony",
                                            f"romeo@{DOMAIN}/phone"]
    assert node.ops.onlineUsers(DOMAIN) == [f"juliet@{DOMAIN}", f"romeo@{DOMAIN}"]
    stats = succeed(node.ops.stats())
    assert stats["users"]["domains"][DOMAIN] == {"registered": 2, "online": 2, "sessions": 2}
    assert node.ops.endSessions(node.ops.fullOrBare(f"romeo@{DOMAIN}/phone")) == 1
    assert romeo.received().streamError == "policy-violation"
    romeo.disconnect()
    assert node.ops.endSessions(node.ops.fullOrBare(f"romeo@{DOMAIN}")) == 0


def test_announce(node):
    """An announcement is a headline from the domain to every session of the domain."""
    romeo = node.connect().login("romeo", "phone")
    assert node.ops.announce(DOMAIN, "Maintenance at noon", "Notice") == 1
    [message] = romeo.received().elements
    assert (message["from"], message["type"]) == (DOMAIN, "headline")
    assert str(message.body) == "Maintenance at noon"
    assert str(message.subject) == "Notice"
    with pytest.raises(OperationError, match="expected the text"):
        node.ops.announce(DOMAIN, "  ")


def test_motdStoredAndSentAtLogin(node, tmp_path):
    """The message of the day is kept in a file, and sent once to each new session."""
    node.ops.setMOTD(DOMAIN, "Welcome back")
    again = AdminOperations(node.server)
    assert again.motd(DOMAIN) == "Welcome back"
    assert json.loads((tmp_path / "data" / "motd.json").read_text()) == {DOMAIN: "Welcome back"}
    client = node.connect()
    client.authenticate("romeo")
    reply = client.exchange("<iq type='set' id='b'><bind xmlns="
                            "'urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert reply.names == ["iq"]
    node.clock.advance(0)
    [message] = client.received().elements
    assert (message["from"], str(message.body)) == (DOMAIN, "Welcome back")
    assert node.ops.deleteMOTD(DOMAIN) is True
    assert node.ops.deleteMOTD(DOMAIN) is False
    other = node.connect()
    other.authenticate("juliet")
    reply = other.exchange("<iq type='set' id='b'><bind xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    node.clock.advance(0)
    assert [e.name for e in reply.elements] == ["iq"]
    assert other.received().elements == []


def test_reloadWithoutReloader(node):
    """Reload is refused until the node has a reload; then it is called."""
    ops = AdminOperations(node.server)
    with pytest.raises(OperationError, match="cannot reload"):
        succeed(ops.reload())
    ops.reloader = lambda: "nothing changed"
    assert succeed(ops.reload()) == "nothing changed"


def test_adminServiceReloadsLive(node):
    """
    The admin service gives the operations the node's live reload
    (L{xmppd.admin.reload}, whose applying is tested in tests/test_reload.py):
    a broken file is the operation's one-line refusal.
    """
    path = node.server.config.path
    with open(path, "a") as f:
        f.write("\n[[broken\n")
    with pytest.raises(OperationError, match="xmppd.toml: "):
        succeed(node.ops.reload())


def test_hostAdmins(tmp_path):
    """hosts."example.org".admins administer that domain; server.admins every domain."""
    node = Node(tmp_path, server={"admins": ["boss@example.org"]})
    path = tmp_path / "xmppd.toml"
    path.write_text(path.read_text() + '[hosts."example.org"]\nadmins = ["Romeo@example.org"]\n')
    from xmppd.config import loadConfig
    node.server.config = loadConfig(str(path))
    ops = AdminOperations(node.server)
    assert ops.isAdmin(JID("romeo@example.org/x"), DOMAIN)
    assert ops.isAdmin(JID("boss@example.org"), DOMAIN)
    assert not ops.isAdmin(JID("juliet@example.org"), DOMAIN)
    assert not ops.isAdmin(JID("romeo@example.org"), "example.net")


# -- ad-hoc commands ---------------------------------------------------------------


def test_commandsListedOnlyForAdmins(node):
    """disco#items of the commands node lists the XEP-0133 commands to admins only."""
    query = (f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns="
             f"'http://jabber.org/protocol/disco#items' node='{NS}'/></iq>")
    [iq] = adminClient(node).exchange(query).elements
    nodes = [item["node"] for item in iq.query.elements()]
    assert adhoc.admin("add-user") in nodes and adhoc.admin("announce") in nodes
    assert "urn:xmppd:admin#reload" in nodes
    [iq] = node.connect().login("romeo").exchange(query).elements
    # To anyone else the node has nothing in it (XEP-0030 §4.1).
    assert (iq["type"], iq.error.firstChildElement().name) == ("error", "item-not-found")


def test_nonAdminForbidden(node):
    """Executing a command as a non-admin is forbidden."""
    romeo = node.connect().login("romeo")
    iq = command(romeo, adhoc.admin("add-user"))
    assert iq["type"] == "error"
    assert iq.error.firstChildElement().name == "forbidden"


def test_addUserCommand(node):
    """add-user asks a form, then adds the account."""
    client = adminClient(node)
    first = command(client, adhoc.admin("add-user"))
    answer = first.command
    assert answer["status"] == "executing"
    [x] = answer.elements(NS_DATA, "x")
    assert [f["var"] for f in x.elements(NS_DATA, "field")] == [
        "FORM_TYPE", "accountjid", "password", "password-verify"]
    done = command(client, adhoc.admin("add-user"), sessionid=answer["sessionid"],
                   form=submit(accountjid=f"mercutio@{DOMAIN}", password="qu33nMab",
                               password_verify="qu33nMab"), id="c2")
    assert done.command["status"] == "completed"
    assert note(done.command) == ("info", f"added mercutio@{DOMAIN}")
    assert succeed(node.server.storage.users.userExists("mercutio", DOMAIN))
    answer = run(client, "add-user", accountjid=f"mercutio@{DOMAIN}", password="x1234567")
    assert note(answer) == ("error", f"mercutio@{DOMAIN} exists already")


def test_userCommands(node):
    """change-user-password, disable-user, reenable-user, end-user-session, delete-user."""
    client = adminClient(node)
    romeo = node.connect().login("romeo", "phone")
    run(client, "change-user-password", accountjid=f"romeo@{DOMAIN}", password="n3w-pass")
    credentials = succeed(node.server.storage.users.getCredentials("romeo", DOMAIN))
    assert credentials.keys() == makeCredentials("n3w-pass").keys()
    answer = run(client, "end-user-session", accountjids=[f"romeo@{DOMAIN}"])
    assert note(answer) == ("info", "ended 1 session")
    assert romeo.received().streamError == "policy-violation"
    run(client, "disable-user", accountjids=[f"romeo@{DOMAIN}"])
    assert succeed(node.ops.isDisabled(JID(f"romeo@{DOMAIN}")))
    run(client, "reenable-user", accountjids=[f"romeo@{DOMAIN}"])
    assert not succeed(node.ops.isDisabled(JID(f"romeo@{DOMAIN}")))
    run(client, "delete-user", accountjids=[f"romeo@{DOMAIN}"])
    assert not succeed(node.server.storage.users.userExists("romeo", DOMAIN))


def test_countsAndLists(node):
    """The -num commands complete at once with a result form; the lists take max_items."""
    client = adminClient(node)
    node.connect().login("romeo", "phone")
    assert resultFields(run(client, "get-registered-users-num"))["registeredusersnum"] == ["2"]
    assert resultFields(run(client, "get-online-users-num"))["onlineusersnum"] == ["2"]
    assert resultFields(run(client, "get-active-users-num"))["activeusersnum"] == ["2"]
    listed = resultFields(run(client, "get-online-users-list", max_items="1"))
    assert listed["onlineuserjids"] == [f"juliet@{DOMAIN}"]
    listed = resultFields(run(client, "get-active-users", max_items="none"))
    assert listed["activeuserjids"] == [f"juliet@{DOMAIN}/console", f"romeo@{DOMAIN}/phone"]
    stats = resultFields(run(client, "user-stats", accountjid=f"romeo@{DOMAIN}"))
    assert stats["onlineresources"] == ["phone"]


def test_announceAndMOTDCommands(node):
    """announce reaches online users; set-, edit- and delete-motd keep the message."""
    client = adminClient(node)
    romeo = node.connect().login("romeo", "phone")
    answer = run(client, "announce", announcement=["Line one", "Line two"])
    assert note(answer) == ("info", "sent to 2 sessions")
    [message] = romeo.received().elements
    assert str(message.body) == "Line one\nLine two"
    run(client, "set-motd", motd="Hello")
    assert node.ops.motd(DOMAIN) == "Hello"
    first = command(client, adhoc.admin("edit-motd")).command
    [x] = first.elements(NS_DATA, "x")
    [field] = [f for f in x.elements(NS_DATA, "field") if f["var"] == "motd"]
    assert [str(v) for v in field.elements(NS_DATA, "value")] == ["Hello"]
    run(client, "delete-motd")
    assert node.ops.motd(DOMAIN) is None


def test_cancelAndBadSession(node):
    """cancel ends a session; its id is then unknown (bad-sessionid); sessions are bounded."""
    client = adminClient(node)
    sessionid = command(client, adhoc.admin("add-user")).command["sessionid"]
    canceled = command(client, adhoc.admin("add-user"), action="cancel", sessionid=sessionid)
    assert canceled.command["status"] == "canceled"
    again = command(client, adhoc.admin("add-user"), sessionid=sessionid, form=submit())
    assert again["type"] == "error"
    assert [c.name for c in again.error.elements()][:2] == ["bad-request", "bad-sessionid"]
    handler = next(h for h in node.local.handlers if isinstance(h, adhoc.AdHocHandler))
    for n in range(adhoc.MAX_SESSIONS + 3):
        command(client, adhoc.admin("announce"), id=f"a{n}")
    assert len(handler.sessions) == adhoc.MAX_SESSIONS
    node.clock.advance(adhoc.SESSION_TIMEOUT)
    assert handler.sessions == {}


def test_unknownNodeAndReload(node):
    """An unknown node is item-not-found; reload answers with a note either way."""
    client = adminClient(node)
    iq = command(client, "urn:nothing")
    assert iq.error.firstChildElement().name == "item-not-found"
    node.ops.reloader = None
    first = command(client, "urn:xmppd:admin#reload").command
    assert note(first) == ("error", "this node cannot reload its configuration; restart it")
    node.ops.reloader = lambda: None
    assert note(command(client, "urn:xmppd:admin#reload", id="r2").command) == (
        "info", "reloaded")


# -- rooms ----------------------------------------------------------------------

SERVICE = f"conference.{DOMAIN}"
HALL = f"hall@{SERVICE}"
NS_MUC = "http://jabber.org/protocol/muc"


def addMUC(node):
    """The in-process MUC service beside the node's domain, as the "muc" feature adds it."""
    from muc.service import makeService
    muc = makeService(node.server, DOMAIN)
    muc.setServiceParent(node.server)
    muc.startService()
    return muc


def persistentHall(node, *guests):
    """Romeo's persistent room HALL, with each of C{guests} (name, resource) in it too."""
    romeo = node.connect().login("romeo", "orchard")
    romeo.exchange(f"<presence to='{HALL}/Romeo'><x xmlns='{NS_MUC}'/></presence>")
    reply = romeo.exchange(
        f"<iq type='set' id='cfg' to='{HALL}'><query xmlns='{NS_MUC}#owner'>"
        f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'>"
        f"<value>{NS_MUC}#roomconfig</value></field>"
        f"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x>"
        f"</query></iq>")
    assert any(e.name == "iq" and e["type"] == "result" for e in reply.elements), reply
    clients = [romeo]
    for name, resource in guests:
        client = node.connect().login(name, resource)
        client.exchange(f"<presence to='{HALL}/{name}'><x xmlns='{NS_MUC}'/></presence>")
        clients.append(client)
    for client in clients:
        client.received()
    return clients


def destroyPresence(client, nick) -> domish.Element:
    """The unavailable presence from the room's C{nick} that C{client} got, with <destroy/>."""
    [presence] = [e for e in client.received().elements
                  if e.name == "presence" and e.getAttribute("from") == f"{HALL}/{nick}"]
    assert presence["type"] == "unavailable"
    [x] = presence.elements(f"{NS_MUC}#user", "x")
    [destroy] = x.elements(f"{NS_MUC}#user", "destroy")
    return destroy


def test_destroyRoom(node):
    """Destroying a room sends every occupant the destroy presence and reason; storage forgets."""
    muc = addMUC(node)
    romeo, juliet = persistentHall(node, ("juliet", "balcony"))
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is not None
    assert [r["jid"] for r in node.ops.rooms()] == [HALL]
    told = succeed(node.ops.destroyRoom(node.ops.room("Hall@Conference.Example.org"),
                                        "the play is over"))
    assert told == 2
    for client, nick in ((romeo, "Romeo"), (juliet, "juliet")):
        destroy = destroyPresence(client, nick)
        assert [str(r) for r in destroy.elements(f"{NS_MUC}#user", "reason")] == [
            "the play is over"]
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is None
    assert node.ops.rooms() == [] and "hall" not in muc.rooms
    with pytest.raises(OperationError, match=f"there is no room {HALL}"):
        succeed(node.ops.destroyRoom(node.ops.room(HALL)))


def test_destroyStoredRoom(node):
    """A persistent room unloaded from memory is destroyed in storage; nobody is told."""
    muc = addMUC(node)
    [romeo] = persistentHall(node)
    romeo.exchange(f"<presence type='unavailable' to='{HALL}/Romeo'/>")
    node.clock.advance(muc.settings.idle_unload + 1)
    assert "hall" not in muc.rooms
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is not None
    assert succeed(node.ops.destroyRoom(node.ops.room(HALL))) == 0
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is None


def test_destroyRoomRefused(node):
    """No such room, no such service, a component's room, a room elsewhere: one clear line each."""
    muc = addMUC(node)
    ops = node.ops
    with pytest.raises(OperationError, match=f"there is no room nowhere@{SERVICE}"):
        succeed(ops.destroyRoom(ops.room(f"nowhere@{SERVICE}")))
    for text in ("", SERVICE, f"hall@{SERVICE}/nick", "@@"):
        with pytest.raises(OperationError):
            ops.room(text)
    with pytest.raises(OperationError, match="there is no MUC service muc.example.com"):
        succeed(ops.destroyRoom(ops.room("hall@muc.example.com")))

    class Components(service.Service):
        name = "components"

        def connections(self):
            return [("rooms.example.org", "127.0.0.1:4000", 0.0)]

    Components().setServiceParent(node.server)
    with pytest.raises(OperationError, match="rooms.example.org is an external component"):
        succeed(ops.destroyRoom(ops.room("hall@rooms.example.org")))

    class Elsewhere:
        """A cluster's room ownership where node b holds every room."""

        node = "a"

        def owns(self, room):
            return False

        def claim(self, room, relayed=False):
            return defer.succeed("b")

        def release(self, room):
            return defer.succeed(False)

    muc.ownership = Elsewhere()
    with pytest.raises(OperationError, match=f"room {HALL} is held by cluster node b"):
        succeed(ops.destroyRoom(ops.room(HALL)))
    with pytest.raises(OperationError, match="longer than"):
        succeed(ops.destroyRoom(ops.room(HALL), "x" * 20000))


def test_destroyStoredRoomInCluster(node):
    """In a cluster a stored room no node holds is claimed, destroyed, and its lease let go."""
    muc = addMUC(node)
    [romeo] = persistentHall(node)
    romeo.exchange(f"<presence type='unavailable' to='{HALL}/Romeo'/>")
    node.clock.advance(muc.settings.idle_unload + 1)

    class Free:
        """A cluster's room ownership where this node, a, may take any room."""

        node = "a"

        def __init__(self):
            self.calls = []

        def owns(self, room):
            return False

        def claim(self, room, relayed=False):
            self.calls.append(("claim", room, relayed))
            return defer.succeed("a")

        def release(self, room):
            self.calls.append(("release", room))
            return defer.succeed(True)

    muc.ownership = Free()
    assert succeed(node.ops.destroyRoom(node.ops.room(HALL))) == 0
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is None
    assert muc.ownership.calls == [("claim", HALL, True), ("release", HALL)]
    with pytest.raises(OperationError, match=f"there is no room {HALL}"):
        succeed(node.ops.destroyRoom(node.ops.room(HALL)))
    assert muc.ownership.calls[-1] == ("release", HALL)


def test_destroyRoomCommandAndSocket(node):
    """The ad-hoc command and the admin socket's destroy-room reach the same operation."""
    addMUC(node)
    romeo, = persistentHall(node)
    answer = run(adminClient(node), "urn:xmppd:admin#destroy-room", roomjid=HALL, reason="closing")
    assert note(answer) == ("info", f"destroyed {HALL} (1 occupant told)")
    assert str(next(destroyPresence(romeo, "Romeo").elements(
        f"{NS_MUC}#user", "reason"))) == "closing"
    answer = run(adminClient(node, "other"), "urn:xmppd:admin#destroy-room", roomjid=HALL)
    assert note(answer) == ("error", f"there is no room {HALL}")
    persistentHall(node)
    reply = succeed(node.admin.handle(json.dumps(
        {"command": "destroy-room", "room": HALL}).encode()))
    assert reply == {"ok": True, "room": HALL, "destroyed": True, "occupants": 1}
    reply = succeed(node.admin.handle(b'{"command": "destroy-room", "room": "x@nowhere.test"}'))
    assert reply == {"ok": False, "error": "there is no MUC service nowhere.test on this node"}
