"""
Federation with ejabberd from Debian's packages (L{tests.ejabberd}), on
loopback, serving C{ejabberd.test} and its MUC service
C{conference.ejabberd.test}: users of each server subscribe to each other
(a request started on either side), see each other's presence and talk
both ways, and each server's room is entered and used by a user of the
other.  Neither server trusts the other's self-signed certificate: every
stream is encrypted with STARTTLS (required on both sides) and
authenticated with dialback (XEP-0220), each key checked over a connection
back to the sender's server.  ejabberd reads only C{db:}-prefixed dialback
elements, so these tests also show that ours carry the prefix
(L{test_dialbackPrefixedOnTheWire} looks at what our streams write).

Each server must find the other.  xmppd reaches ejabberd and its MUC
service through static host overrides (C{[s2s] hosts}).  ejabberd has no
such thing: it looks a domain up in DNS (C{_xmpp-server} SRV records, then
A records on port 5269), which its Erlang VM sends to the test's own DNS
server (L{tests.foreignserver.Zone}); the SRV records point at the node's
ephemeral s2s port on C{localhost} (see L{tests.ejabberd.Ejabberd.publish}).
xmppd's MUC service is a domain of its own, C{conference.<domain>}, with
its own SRV record and its own dialback.

One ejabberd serves the whole module (starting an Erlang node takes a few
seconds); each test has a node of its own serving a domain of its own, so
that nothing ejabberd remembers of a previous test (rosters, s2s streams
to a node that is gone) can matter.  Everything skips, with the reason,
when ejabberd is not installed; an installed ejabberd that does not start
fails the tests, with its log, so a broken set-up is never a silent skip.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.e2e import TIMEOUT, sleep
from tests.ejabberd import Ejabberd, EjabberdError, findEjabberd
from tests.test_e2e_muc import Inbox
from tests.test_e2e_presence import asDeferred, online
from tests.test_e2e_s2s import s2sOf, s2sPort, subscribeAndTalk
from xmppd.s2s.streams import S2SStream

ensureDeferred = pytest_twisted.ensureDeferred

EJABBERD_DOMAIN = "ejabberd.test"
MODULES = ["presence", "roster", "messages", "disco", "ping", "muc"]


@pytest.fixture(scope="module")
def executables():
    """erl and ejabberd's ERL_LIBS; the module skips when ejabberd is not installed."""
    found = findEjabberd()
    if isinstance(found, str):
        # Here rather than in the async fixture below: pytest-twisted
        # mishandles a skip before an async fixture's first yield.
        pytest.skip(found)
    return found


@pytest_twisted.async_yield_fixture(scope="module")
async def ejabberdNode(tmp_path_factory, executables):
    """
    One started ejabberd with the accounts the tests use, for the module;
    or the L{EjabberdError} that kept it from starting.
    """
    server = Ejabberd(tmp_path_factory.mktemp("ejabberd"), EJABBERD_DOMAIN, executables)
    try:
        try:
            await server.start()
            for user in ("juliet", "nurse", "tybalt"):
                await server.addUser(user)
        except EjabberdError as e:
            print(e)
            yield e
        else:
            yield server
    finally:
        # pytest-twisted starts a fixture's teardown outside the reactor's
        # greenlet; continue from inside the loop.
        await sleep(0)
        await server.close()


@pytest.fixture
def startedEjabberd(ejabberdNode):
    """The module's ejabberd; the test fails, with its log, when it did not start."""
    if isinstance(ejabberdNode, EjabberdError):
        pytest.fail("ejabberd is installed but did not start: %s" % (ejabberdNode,))
    return ejabberdNode


@pytest_twisted.async_yield_fixture
async def ejabberd(startedEjabberd, makeServer):
    """
    The module's ejabberd, for one test, whose clients are disconnected
    after it (before L{tests.e2e.makeServer} checks that no asyncio task is
    left, hence the order of the arguments).
    """
    yield startedEjabberd
    await sleep(0)
    await startedEjabberd.closeClients()


async def xmppdNode(makeServer, ejabberd: Ejabberd, domain: str):
    """
    A started node serving C{domain} (and its MUC service), with the
    accounts romeo and benvolio, reaching ejabberd by static overrides and
    found by ejabberd through SRV records.
    """
    target = "127.0.0.1:%d" % (ejabberd.s2sPort,)
    node = await makeServer({
        "server": {"domains": [domain], "modules": MODULES},
        "s2s": {"listen": "tcp:0:interface=127.0.0.1", "require_encryption": True,
                "hosts": {ejabberd.domain: target, ejabberd.mucDomain: target}}})
    port = await s2sPort(node)
    for name in (domain, "conference." + domain):
        ejabberd.publish(name, port)
    for user in ("romeo", "benvolio"):
        await node.addUser(user)
    return node


def streams(node) -> set[tuple]:
    """The node's authenticated s2s pairs: (direction, local, remote, method, encrypted)."""
    return {(c["direction"], c["local"], c["remote"], c["method"], c["encrypted"])
            for c in s2sOf(node).connections() if c["method"] is not None}


def dialbackBothWays(domain: str, remote: str = EJABBERD_DOMAIN) -> set[tuple]:
    return {("out", domain, remote, "dialback", True), ("in", domain, remote, "dialback", True)}


@ensureDeferred
async def test_subscriptionsAndMessages(makeServer, ejabberd):
    """Users of xmppd and ejabberd subscribe to each other (asked from either side), see each other and talk."""
    domain = "talk.xmppd.example"
    node = await xmppdNode(makeServer, ejabberd, domain)
    romeo = await online(node, "romeo", "orchard")
    juliet = await online(ejabberd, "juliet", "balcony")
    await subscribeAndTalk(romeo, juliet)

    nurse = await online(ejabberd, "nurse", "chamber")
    benvolio = await online(node, "benvolio", "street")
    await subscribeAndTalk(nurse, benvolio)

    # Comings and goings: Romeo leaves and comes back; Juliet sees both,
    # and Romeo's server probes hers (RFC 6121 §4.3) for her presence.
    await romeo.disconnect()
    await juliet.presences.next("unavailable", sender="romeo@%s/orchard" % (domain,))
    romeo = await online(node, "romeo", "gate")
    await juliet.presences.next(sender=romeo.jid.full)
    assert (await romeo.presences.next("away", sender=juliet.jid.full))["status"] \
        == "at the window"

    assert streams(node) == dialbackBothWays(domain)
    assert ("_xmpp-server._tcp." + domain, "SRV") in ejabberd.zone.queries


@ensureDeferred
async def test_errorsAndQueries(makeServer, ejabberd):
    """A message to a user the other server does not have comes back as an error, and each user's queries to the other server are answered."""
    domain = "ask.xmppd.example"
    node = await xmppdNode(makeServer, ejabberd, domain)
    clients = []
    for server, user in ((node, "romeo"), (ejabberd, "juliet")):
        client = server.client(user, "desk")
        client.xmpp.register_plugin("xep_0030")
        await client.login()
        clients.append(client)
    romeo, juliet = clients

    for sender, ghost in ((romeo, "ghost@" + EJABBERD_DOMAIN), (juliet, "ghost@" + domain)):
        sender.send(ghost, "Is anybody there?")
        bounced = await sender.nextMessage()
        assert (bounced["type"], bounced["from"], bounced["error"]["condition"]) == (
            "error", ghost, "service-unavailable")

    for asker, server in ((romeo, EJABBERD_DOMAIN), (juliet, domain)):
        info = await asDeferred(asker.xmpp.plugin["xep_0030"].get_info(jid=server,
                                                                       timeout=TIMEOUT))
        assert info["from"] == server
        assert "urn:xmpp:ping" in info["disco_info"]["features"]

    assert streams(node) == dialbackBothWays(domain)


async def mucClient(server, user: str, resource: str):
    """A logged-in client with the MUC plugin."""
    client = server.client(user, resource)
    # slixmpp's MUC plugin takes a room's presences before its presence event.
    client.inbox = Inbox(client)
    for plugin in ("xep_0030", "xep_0004", "xep_0045"):
        client.xmpp.register_plugin(plugin)
    await client.login()
    return client


async def nextGroupchat(client):
    """The next groupchat message with a body (not the subject)."""
    while True:
        message = await client.nextMessage()
        if message["type"] == "groupchat" and message["body"]:
            return message


async def talkInRoom(host, guest, room: str) -> None:
    """
    C{host} (a user of the room's server) enters C{room} first, creating
    it, C{guest} (a user of the other server) enters next; each sees the
    other, a message from each reaches both, a private message through the
    room reaches the host, and the host sees the guest leave.
    """
    hostMUC, guestMUC = (c.xmpp.plugin["xep_0045"] for c in (host, guest))
    await asDeferred(hostMUC.join_muc_wait(room, "host", timeout=TIMEOUT))
    # A room that waits for its configuration (XEP-0045 §10.1.2) opens
    # once its owner accepts the default one.
    form = await asDeferred(hostMUC.get_room_config(room))
    form["type"] = "submit"
    await asDeferred(hostMUC.set_room_config(room, form))
    own, _, occupants, _ = await asDeferred(guestMUC.join_muc_wait(room, "guest",
                                                                   timeout=TIMEOUT))
    assert own["from"] == room + "/guest"
    assert {p["from"].full for p in occupants} == {room + "/host", room + "/guest"}
    for speaker, text in ((guest, "What's in a name?"), (host, "That which we call a rose")):
        speaker.xmpp.send_message(mto=room, mbody=text, mtype="groupchat")
        nick = "guest" if speaker is guest else "host"
        for client in (host, guest):
            message = await nextGroupchat(client)
            assert (message["from"], message["body"]) == (room + "/" + nick, text)
    # The host saw the guest come in (slixmpp keeps the room's roster).
    assert set(hostMUC.get_roster(room)) == {"host", "guest"}

    # A private message through the room, then the guest leaves.
    guest.send(room + "/host", "Parting is such sweet sorrow")
    whisper = await host.nextMessage()
    assert (whisper["type"], whisper["from"], whisper["body"]) == (
        "chat", room + "/guest", "Parting is such sweet sorrow")
    guestMUC.leave_muc(room, "guest", "Good night, good night!")
    left = await host.inbox.presence(room + "/guest", "unavailable")
    assert left["status"] == "Good night, good night!"


@ensureDeferred
async def test_roomOnEjabberd(makeServer, ejabberd):
    """A user of xmppd enters a room on ejabberd's MUC service and talks there with a user of ejabberd."""
    domain = "guest.xmppd.example"
    node = await xmppdNode(makeServer, ejabberd, domain)
    tybalt = await mucClient(ejabberd, "tybalt", "street")
    romeo = await mucClient(node, "romeo", "orchard")

    await talkInRoom(tybalt, romeo, "square@" + ejabberd.mucDomain)

    assert streams(node) == dialbackBothWays(domain, ejabberd.mucDomain)


@ensureDeferred
async def test_roomOnXmppd(makeServer, ejabberd):
    """A user of ejabberd enters a room on xmppd's MUC service and talks there with a user of xmppd."""
    domain = "host.xmppd.example"
    node = await xmppdNode(makeServer, ejabberd, domain)
    benvolio = await mucClient(node, "benvolio", "street")
    tybalt = await mucClient(ejabberd, "tybalt", "square")

    await talkInRoom(benvolio, tybalt, "feast@conference." + domain)

    assert streams(node) == dialbackBothWays("conference." + domain)


@ensureDeferred
async def test_dialbackPrefixedOnTheWire(makeServer, ejabberd, monkeypatch):
    """What our streams write to ejabberd carries dialback as db:result and db:verify, never unprefixed (XEP-0220 §2)."""
    written = []
    send = S2SStream.send

    def recordingSend(self, obj):
        written.append(self.serialize(obj) if not isinstance(obj, str) else obj)
        send(self, obj)

    monkeypatch.setattr(S2SStream, "send", recordingSend)
    domain = "wire.xmppd.example"
    node = await xmppdNode(makeServer, ejabberd, domain)
    romeo = await online(node, "romeo", "orchard")
    juliet = await online(ejabberd, "juliet", "window")
    romeo.send(juliet.jid.full, "Wherefore art thou?")
    assert (await juliet.nextMessage())["body"] == "Wherefore art thou?"
    juliet.send(romeo.jid.full, "Deny thy father.")
    assert (await romeo.nextMessage())["body"] == "Deny thy father."

    wire = "".join(written)
    assert "<db:result from='%s' to='%s'>" % (domain, EJABBERD_DOMAIN) in wire
    # Our answer to ejabberd's request, and our question about its key.
    assert "<db:result from='%s' to='%s' type='valid'/>" % (domain, EJABBERD_DOMAIN) in wire
    assert "<db:verify from='%s' to='%s' id='" % (domain, EJABBERD_DOMAIN) in wire
    assert "jabber:server:dialback" not in wire
    assert streams(node) == dialbackBothWays(domain)
