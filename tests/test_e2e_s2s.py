"""
End-to-end federation: two real xmppd nodes, "a.localhost" and
"b.localhost", each built by L{xmppd.tap.makeService} with its s2s listener
on an ephemeral loopback port and a static host override pointing at the
other; slixmpp users on each node subscribe to each other, see each other's
presence and exchange messages, once with dialback (neither node trusts
the other's self-signed certificate) and once with SASL EXTERNAL (each
node's C{ca_file} holds both certificates).  Both nodes support
bidirectional streams (XEP-0288), so the stream the first one opens
carries both directions; with C{s2s.bidi} off on either, each direction
has its own connection.  A dead destination bounces with
C{remote-server-timeout} within C{s2s.connect_timeout}.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
import pytest_twisted
from twisted.internet import defer, protocol

from tests.e2e import TIMEOUT, reactor
from tests.test_e2e_presence import asDeferred, online, rosterOf
from xmppd.s2s.incoming import IncomingFactory
from xmppd.s2s.resolver import DomainNotFound, Target
from xmppd.stream.tls import ensureCertificate

ensureDeferred = pytest_twisted.ensureDeferred

A = "a.localhost"
B = "b.localhost"
#: Both nodes are small: only what the tests use.
MODULES = ["presence", "roster", "messages", "disco", "ping"]


def nodeConfig(domain: str, **s2s) -> dict:
    return {"server": {"domains": [domain], "modules": MODULES},
            "s2s": {"listen": "tcp:0:interface=127.0.0.1", **s2s}}


def s2sOf(node):
    return node.service.getServiceNamed("s2s")


async def s2sPort(node) -> int:
    ports = await s2sOf(node).ready.addTimeout(TIMEOUT, reactor())
    return ports[0].getHost().port


async def federation(makeServer, tmp_path=None, only=None, **s2s):
    """
    Node A and node B, started, each reaching the other through a static
    override; with C{tmp_path}, each node's C{ca_file} trusts both nodes'
    self-signed certificates (made before either node starts).  C{s2s}
    options apply to both nodes, C{only} ({domain: options}) to one.
    """
    if tmp_path is not None:
        bundle = tmp_path / "peers.pem"
        s2s = dict(s2s, ca_file=str(bundle))
    only = only or {}
    a = await makeServer(nodeConfig(A, **s2s, **only.get(A, {})), start=False)
    b = await makeServer(nodeConfig(B, **s2s, **only.get(B, {})), start=False)
    if tmp_path is not None:
        pems = [open(ensureCertificate(node.config)[0]).read() for node in (a, b)]
        bundle.write_text("".join(pems))
    await b.start()
    await a.start()
    s2sOf(a).setHostOverride(B, "127.0.0.1:%d" % (await s2sPort(b),))
    s2sOf(b).setHostOverride(A, "127.0.0.1:%d" % (await s2sPort(a),))
    await a.addUser("romeo")
    await b.addUser("juliet")
    return a, b


async def contactsAcrossServers(a, b):
    """Romeo (on A) and Juliet (on B) online and subscribed to each other through federation."""
    romeo = await online(a, "romeo", "orchard")
    juliet = await online(b, "juliet", "balcony")
    # Each slixmpp approves the request and asks back (auto_authorize, auto_subscribe).
    romeo.xmpp.send_presence_subscription(pto="juliet@" + B)
    await romeo.presences.next(sender=juliet.jid.full)
    await juliet.presences.next(sender=romeo.jid.full)
    return romeo, juliet


async def exchangeMessages(romeo, juliet):
    romeo.send(juliet.jid.full, "Shall I hear more, or shall I speak at this?")
    heard = await juliet.nextMessage()
    assert heard["body"] == "Shall I hear more, or shall I speak at this?"
    assert heard["from"] == romeo.jid
    juliet.send("romeo@" + A, "'Tis but thy name that is my enemy.")
    answer = await romeo.nextMessage()
    assert answer["body"] == "'Tis but thy name that is my enemy."
    assert answer["from"] == juliet.jid


async def subscribeAndTalk(asker, answerer) -> None:
    """
    C{asker} asks to see C{answerer}'s presence; C{answerer}'s slixmpp
    approves and asks back, and C{asker}'s approves in turn, so each
    request and each approval crosses both servers.  Then both see each
    other, their rosters say C{both} (checked once each approval has
    arrived: a server may deliver the asker's presence before its
    approval), and they exchange messages and a presence change.  The
    interoperability tests run it with a user of each server.
    """
    asker.xmpp.send_presence_subscription(pto=answerer.jid.bare)
    seenByAsker = await asker.presences.next(sender=answerer.jid.full)
    seenByAnswerer = await answerer.presences.next(sender=asker.jid.full)
    await asker.presences.next("subscribed", sender=answerer.jid.bare)
    await answerer.presences.next("subscribed", sender=asker.jid.bare)
    assert seenByAsker["to"].bare == asker.jid.bare
    assert seenByAnswerer["to"].bare == answerer.jid.bare
    assert (await rosterOf(asker))[answerer.jid.bare][0] == "both"
    assert (await rosterOf(answerer))[asker.jid.bare][0] == "both"

    asker.send(answerer.jid.full, "Shall I hear more, or shall I speak at this?")
    heard = await answerer.nextMessage()
    assert (heard["from"], heard["body"]) == (asker.jid,
                                              "Shall I hear more, or shall I speak at this?")
    answerer.send(asker.jid.bare, "'Tis but thy name that is my enemy.")
    answer = await asker.nextMessage()
    assert (answer["from"], answer["body"]) == (answerer.jid,
                                                "'Tis but thy name that is my enemy.")

    answerer.xmpp.send_presence(pshow="away", pstatus="at the window")
    changed = await asker.presences.next("away", sender=answerer.jid.full)
    assert changed["status"] == "at the window"
    asker.xmpp.send_presence(pshow="dnd", pstatus="under the balcony")
    changed = await answerer.presences.next("dnd", sender=asker.jid.full)
    assert changed["status"] == "under the balcony"


def methods(node) -> set[tuple[str, str, str, str | None, bool, bool]]:
    return {(c["direction"], c["local"], c["remote"], c["method"], c["encrypted"], c["bidi"])
            for c in s2sOf(node).connections() if c["method"] is not None}


def countAccepted(monkeypatch) -> collections.Counter:
    """From now on, count the connections each node's s2s listener accepts: {S2SService: count}."""
    counts = collections.Counter()
    build = IncomingFactory.buildProtocol

    def counting(factory, addr):
        counts[factory.service] += 1
        return build(factory, addr)
    monkeypatch.setattr(IncomingFactory, "buildProtocol", counting)
    return counts


@pytest.fixture
def accepted(monkeypatch):
    """L{countAccepted} for the whole test."""
    return countAccepted(monkeypatch)


@ensureDeferred
async def test_dialback(makeServer, accepted):
    """Users of servers that do not trust each other's certificates talk over dialback, on one bidi stream."""
    a, b = await federation(makeServer)
    romeo, juliet = await contactsAcrossServers(a, b)

    assert (await rosterOf(romeo))["juliet@" + B][0] == "both"
    assert (await rosterOf(juliet))["romeo@" + A][0] == "both"
    await exchangeMessages(romeo, juliet)
    assert methods(a) == {("out", A, B, "dialback", True, True)}
    assert methods(b) == {("in", B, A, "dialback", True, True)}
    # B accepted the one stream; A only B's short dialback check (XEP-0220 §2.3).
    assert (accepted[s2sOf(b)], accepted[s2sOf(a)]) == (1, 1)


@ensureDeferred
async def test_certificates(makeServer, tmp_path, accepted):
    """Servers that trust each other's certificates authenticate with SASL EXTERNAL, and users talk over one connection."""
    a, b = await federation(makeServer, tmp_path, require_valid_certificates=True)
    romeo, juliet = await contactsAcrossServers(a, b)

    await exchangeMessages(romeo, juliet)
    assert methods(a) == {("out", A, B, "EXTERNAL", True, True)}
    assert methods(b) == {("in", B, A, "EXTERNAL", True, True)}
    assert (len(s2sOf(a).connections()), len(s2sOf(b).connections())) == (1, 1)
    assert (accepted[s2sOf(b)], accepted[s2sOf(a)]) == (1, 0)
    [outgoing] = [c for c in s2sOf(a).connections() if c["direction"] == "out"]
    assert outgoing["peer"].startswith("127.0.0.1:")
    assert abs(outgoing["since"] - time.time()) < TIMEOUT


@pytest.mark.parametrize("without", [A, B], ids=["initiator-without", "receiver-without"])
@ensureDeferred
async def test_withoutBidi(makeServer, tmp_path, accepted, without):
    """When either server has bidi off, each direction gets its own connection and users talk as before."""
    a, b = await federation(makeServer, tmp_path, only={without: {"bidi": False}},
                            require_valid_certificates=True)
    romeo, juliet = await contactsAcrossServers(a, b)

    await exchangeMessages(romeo, juliet)
    assert methods(a) == {("out", A, B, "EXTERNAL", True, False),
                          ("in", A, B, "EXTERNAL", True, False)}
    assert methods(b) == {("out", B, A, "EXTERNAL", True, False),
                          ("in", B, A, "EXTERNAL", True, False)}
    assert (accepted[s2sOf(b)], accepted[s2sOf(a)]) == (1, 1)


@ensureDeferred
async def test_directTLS(makeServer):
    """A server reached with TLS from the first byte (XEP-0368, _xmpps-server) carries messages as well."""
    b = await makeServer(nodeConfig(B, direct_tls_listen="tcp:0:interface=127.0.0.1"))
    plain, direct = await s2sOf(b).ready.addTimeout(TIMEOUT, reactor())
    a = await makeServer(nodeConfig(A))
    s2sOf(a).resolver.resolve = lambda domain: defer.succeed(
        [Target("127.0.0.1", direct.getHost().port, True)])
    s2sOf(b).setHostOverride(A, "127.0.0.1:%d" % (await s2sPort(a),))
    await a.addUser("romeo")
    await b.addUser("juliet")
    romeo = await a.login("romeo", "orchard")
    juliet = await b.login("juliet", "balcony")

    romeo.send(juliet.jid.full, "With love's light wings did I o'erperch these walls.")

    assert (await juliet.nextMessage())["body"].startswith("With love's light wings")
    [outgoing] = [c for c in s2sOf(a).connections() if c["direction"] == "out"]
    assert outgoing["peer"] == "127.0.0.1:%d" % direct.getHost().port
    assert (outgoing["method"], outgoing["encrypted"]) == ("dialback", True)


class Silent(protocol.Protocol):
    """A server that accepts connections and never says a word."""


@ensureDeferred
async def test_deadDestinationBounces(makeServer):
    """A message to a server that never answers comes back as remote-server-timeout within connect_timeout."""
    silent = reactor().listenTCP(0, protocol.Factory.forProtocol(Silent), interface="127.0.0.1")
    try:
        a = await makeServer(nodeConfig(A, connect_timeout=0.5))
        s2sOf(a).setHostOverride("dead.localhost", "127.0.0.1:%d" % silent.getHost().port)
        await a.addUser("romeo")
        romeo = await a.login("romeo", "orchard")
        errors = asyncio.Queue()
        romeo.xmpp.add_event_handler("message_error", errors.put_nowait)

        started = time.monotonic()
        romeo.send("tybalt@dead.localhost", "Art thou there?")
        error = await asDeferred(asyncio.wait_for(errors.get(), TIMEOUT))

        assert error["error"]["condition"] == "remote-server-timeout"
        assert error["from"] == "tybalt@dead.localhost"
        assert 0.4 < time.monotonic() - started < 3
    finally:
        await defer.maybeDeferred(silent.stopListening)


@ensureDeferred
async def test_unknownDomainBounces(makeServer):
    """A message to a domain whose server cannot be resolved comes back as remote-server-not-found."""
    a = await makeServer(nodeConfig(A))
    s2sOf(a).resolver.resolve = lambda domain: defer.fail(DomainNotFound(domain))
    await a.addUser("romeo")
    romeo = await a.login("romeo", "orchard")
    errors = asyncio.Queue()
    romeo.xmpp.add_event_handler("message_error", errors.put_nowait)

    romeo.send("tybalt@nowhere.invalid", "Art thou there?")
    error = await asDeferred(asyncio.wait_for(errors.get(), TIMEOUT))

    assert error["error"]["condition"] == "remote-server-not-found"



@ensureDeferred
async def test_operatorSeesServerConnections(makeServer):
    """xmppctl connections on federating nodes lists their one bidirectional stream with how it authenticated."""
    a, b = await federation(makeServer)
    romeo, juliet = await contactsAcrossServers(a, b)
    await exchangeMessages(romeo, juliet)
    for node, row in ((a, ["out", A, B, "dialback", "yes", "yes"]),
                      (b, ["in", B, A, "dialback", "yes", "yes"])):
        result = await node.xmppctl("connections")
        assert result.status == 0, result.err
        rows = [line.split() for line in result.out.splitlines()]
        assert ["DIR", "LOCAL", "REMOTE", "AUTH", "TLS", "BIDI"] in [r[:6] for r in rows]
        assert row in [r[:6] for r in rows]


@ensureDeferred
async def test_remoteUserInRoom(makeServer):
    """A user of another server enters a room on this server's MUC service and talks there, through federation."""
    muc = "conference." + A
    room = "lounge@" + muc
    a = await makeServer({"server": {"domains": [A], "modules": MODULES + ["muc"]},
                          "s2s": {"listen": "tcp:0:interface=127.0.0.1"}}, start=False)
    b = await makeServer(nodeConfig(B), start=False)
    await b.start()
    await a.start()
    portA = await s2sPort(a)
    s2sOf(a).setHostOverride(B, "127.0.0.1:%d" % (await s2sPort(b),))
    for domain in (A, muc):
        s2sOf(b).setHostOverride(domain, "127.0.0.1:%d" % (portA,))
    await a.addUser("romeo")
    await b.addUser("juliet")
    clients = []
    for node, user in ((a, "romeo"), (b, "juliet")):
        client = node.client(user, "phone")
        for plugin in ("xep_0030", "xep_0004", "xep_0045"):
            client.xmpp.register_plugin(plugin)
        await client.login()
        clients.append(client)
    romeo, juliet = clients
    romeoMUC, julietMUC = (c.xmpp.plugin["xep_0045"] for c in clients)

    await asDeferred(romeoMUC.join_muc_wait(room, "romeo", timeout=TIMEOUT))
    form = await asDeferred(romeoMUC.get_room_config(room))
    form["type"] = "submit"
    await asDeferred(romeoMUC.set_room_config(room, form))
    await asDeferred(julietMUC.join_muc_wait(room, "juliet", timeout=TIMEOUT))

    juliet.xmpp.send_message(mto=room, mbody="What's in a name?", mtype="groupchat")
    for client in (romeo, juliet):
        while True:
            message = await client.nextMessage()
            if message["type"] == "groupchat" and message["body"]:
                break
        assert message["from"] == room + "/juliet"
        assert message["body"] == "What's in a name?"
