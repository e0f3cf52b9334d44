"""
Tests for L{xmppd.cli.operate}: C{xmppctl sessions}, C{kick}, C{announce},
C{stats}, C{rooms} and C{rooms destroy} against a running node (its admin socket), with
slixmpp clients that see the kick and the announcement, and the one line
printed when no node runs.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted

from xmppd.cli.operate import formatDestroyed, formatRooms, formatSessions, formatStats
from tests.e2e import DOMAIN
from tests.test_e2e_muc import NS_MUC_USER, createRoom, join, mucClient

ROOM = f"chapel@conference.{DOMAIN}"


@pytest_twisted.ensureDeferred
async def test_sessionsStatsAndKick(makeServer):
    """sessions lists the bound clients; stats counts them; kick ends them with a stream error."""
    node = await makeServer()
    await node.addUser("romeo")
    await node.addUser("juliet")
    romeo = await node.login("romeo", "orchard")
    await node.login("juliet", "balcony")

    listed = await node.xmppctl("sessions")
    assert (listed.status, listed.err) == (0, ""), listed
    lines = listed.out.splitlines()
    assert lines[0] == "sessions: 2"
    assert lines[1].split()[:4] == ["JID", "PRESENCE", "PEER", "TLS"]
    assert [line.split()[0] for line in lines[2:]] == [
        f"juliet@{DOMAIN}/balcony", f"romeo@{DOMAIN}/orchard"]
    asJSON = json.loads((await node.xmppctl("sessions", "--json")).out)
    assert [s["jid"] for s in asJSON["sessions"]] == [
        f"juliet@{DOMAIN}/balcony", f"romeo@{DOMAIN}/orchard"]
    assert all(s["encrypted"] for s in asJSON["sessions"])

    stats = json.loads((await node.xmppctl("stats", "--json")).out)
    assert stats["users"]["domains"][DOMAIN] == {"registered": 2, "online": 2, "sessions": 2}
    readable = (await node.xmppctl("stats")).out.splitlines()
    assert readable[:2] == ["registered users: 2", "online users: 2 (2 sessions)"]

    kicked = await node.xmppctl("kick", f"romeo@{DOMAIN}")
    assert (kicked.status, kicked.out, kicked.err) == (
        0, f"ended 1 session of romeo@{DOMAIN}\n", "")
    assert await romeo.closedByServer() == ["policy-violation"]
    bad = await node.xmppctl("kick", "romeo@example.com", "--json")
    assert (bad.status, bad.out) == (1, "")
    assert bad.err == (f"xmppctl: the server refused: example.com is not served here "
                       f"(server.domains: {DOMAIN})\n")


@pytest_twisted.ensureDeferred
async def test_announce(makeServer):
    """announce sends a headline from the domain to every online user of it."""
    node = await makeServer()
    await node.addUser("romeo")
    romeo = await node.login("romeo", "orchard")
    result = await node.xmppctl("announce", DOMAIN, "Maintenance at noon",
                                "--subject", "Notice", "--json")
    assert result.status == 0, result
    assert json.loads(result.out) == {"ok": True, "domain": DOMAIN, "sent": 1}
    message = await romeo.nextMessage()
    assert (message["from"], message["type"], message["subject"], message["body"]) == (
        DOMAIN, "headline", "Notice", "Maintenance at noon")
    empty = await node.xmppctl("announce", DOMAIN, " ")
    assert (empty.status, empty.err) == (
        1, "xmppctl: the server refused: expected the text of the announcement\n")


@pytest_twisted.ensureDeferred
async def test_rooms(makeServer):
    """rooms lists the rooms in use with their numbers of occupants."""
    node = await makeServer()
    await node.addUser("romeo")
    empty = await node.xmppctl("rooms")
    assert (empty.status, empty.out) == (0, "rooms: 0\n")
    romeo = await mucClient(node, "romeo", "orchard")
    await join(romeo, ROOM, "Romeo")
    result = await node.xmppctl("rooms")
    assert result.status == 0, result
    assert result.out.splitlines()[0] == "rooms: 1"
    assert result.out.splitlines()[2].split() == [ROOM, "1"]
    assert json.loads((await node.xmppctl("rooms", "--json")).out)["rooms"] == [
        {"jid": ROOM, "occupants": 1, "persistent": False, "domain": DOMAIN}]


@pytest_twisted.ensureDeferred
async def test_roomsDestroy(makeServer):
    """rooms destroy sends a slixmpp occupant out with <destroy/> and the reason; then it is gone."""
    node = await makeServer()
    await node.addUser("romeo")
    await node.addUser("juliet")
    romeo = await mucClient(node, "romeo", "orchard")
    juliet = await mucClient(node, "juliet", "balcony")
    # Persistent: asking again below reads storage, which must have forgotten it.
    await createRoom(romeo, ROOM, "Romeo", persistentroom="1")
    await join(juliet, ROOM, "Juliet")
    result = await node.xmppctl("rooms", "destroy", ROOM, "--reason", "The chapel closes",
                                "--json")
    assert result.status == 0, result
    assert json.loads(result.out) == {"ok": True, "room": ROOM, "destroyed": True,
                                      "occupants": 2}
    for client, nick in ((romeo, "Romeo"), (juliet, "Juliet")):
        gone = await client.inbox.presence(f"{ROOM}/{nick}", "unavailable")
        destroy = gone.xml.find("{%s}x/{%s}destroy" % (NS_MUC_USER, NS_MUC_USER))
        assert destroy is not None, gone
        assert destroy.findtext("{%s}reason" % NS_MUC_USER) == "The chapel closes"
    assert (await node.xmppctl("rooms")).out == "rooms: 0\n"
    again = await node.xmppctl("rooms", "destroy", ROOM)
    assert (again.status, again.out, again.err) == (
        1, "", f"xmppctl: the server refused: there is no room {ROOM}\n")
    other = await node.xmppctl("rooms", "destroy", f"hall@rooms.{DOMAIN}")
    assert other.err == (f"xmppctl: the server refused: there is no MUC service "
                         f"rooms.{DOMAIN} on this node\n")


@pytest.mark.parametrize("command", [["sessions"], ["kick", f"romeo@{DOMAIN}"],
                                     ["announce", DOMAIN, "hello"], ["stats"], ["rooms"]])
@pytest_twisted.ensureDeferred
async def test_serverNotRunning(makeServer, command):
    """With no server running, each command says so in one line and exits with 1."""
    node = await makeServer(start=False)
    result = await node.xmppctl(*command)
    path = node.dataDir / "admin.sock"
    assert (result.status, result.out) == (1, "")
    assert result.err == f"xmppctl: xmppd is not running (no admin socket at {path})\n"


def test_formats():
    """The readable forms of the answers."""
    assert formatSessions({"sessions": []}) == ["sessions: 0"]
    # A cluster: another node's session has no peer or TLS known here, and a NODE column.
    lines = formatSessions({"sessions": [
        {"jid": "a@x/1", "available": True, "peer": "127.0.0.1", "encrypted": True, "node": "n1"},
        {"jid": "b@x/2", "available": False, "peer": None, "encrypted": None, "node": "n2"}]})
    assert [line.split() for line in lines[1:]] == [
        ["JID", "PRESENCE", "PEER", "TLS", "NODE"], ["a@x/1", "available", "127.0.0.1", "yes", "n1"],
        ["b@x/2", "unavailable", "-", "-", "n2"]]
    assert formatRooms({"rooms": [{"jid": ROOM, "occupants": 3}]})[2].split() == [ROOM, "3"]
    assert formatDestroyed({"room": ROOM, "occupants": 1}) == [
        f"destroyed {ROOM} (1 occupant told)"]
    lines = formatStats({"users": {"registered": 1, "online": 1, "sessions": 1, "domains": {
        DOMAIN: {"registered": 1, "online": 1, "sessions": 1}}}, "rooms": 2, "occupants": 1,
        "s2s": 0, "components": 0})
    assert lines == ["registered users: 1", "online users: 1 (1 session)",
                     f"  {DOMAIN}: 1 registered, 1 online, 1 session",
                     "rooms: 2 (1 occupant)", "s2s connections: 0", "components: 0"]
