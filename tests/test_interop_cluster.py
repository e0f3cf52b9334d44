"""
Federation in a cluster (issue 14 item 7), end to end: two real C{twistd}
nodes, A and B, serving one domain on one redis-server
(L{tests.clusterhelpers}), and a real foreign server, Prosody
(L{tests.prosody}) or ejabberd (L{tests.ejabberd}), with slixmpp users on
all three.

The foreign server finds the cluster in DNS, through the test's own DNS
server (L{tests.foreignserver.Zone}), whose SRV record for the cluster's
domain names node A only: every connection it makes lands on A.  The
nodes reach it through a static override (C{[s2s] hosts}).  Neither side
trusts the other's self-signed certificate, so every stream is
authenticated with dialback (XEP-0220), which is what a cluster makes
hard:

  - a user on B writes to the foreign server: B opens its own outgoing
    stream and sends a dialback key it made; the foreign server checks the
    key with the domain's authoritative server as DNS names it, node A,
    which never saw that stream and verifies the key only because every
    node keys dialback with the cluster's secret (L{xmppd.cluster.secret});
  - the foreign server's users write to users on B and on A: their
    stanzas arrive on A, the only node it knows, and cross to B through
    the cluster;
  - a foreign user and a user on B subscribe to each other's presence
    (requests, approvals and presence crossing both ways), and the
    foreign server's presence probe, which lands on A, is answered by B.

Each scenario runs in two orders: B writes first (the foreign server
connects to A just to check B's key), or the foreign user writes first
(it already has a stream to A when B's key comes; Prosody asks over it);
with Prosody, also with its bidirectional streams (XEP-0288,
C{mod_s2s_bidi}), where A answers through Prosody's stream instead of
opening its own.  And with both nodes in DNS, A first, killing A makes
Prosody come in through B (L{test_prosodyFailover}).
Which node holds which stream is read from each node's admin socket
(C{xmppctl connections --json}), as an operator would.  Tests skip, with
the reason, without Prosody (or lua-unbound), ejabberd or redis-server.
"""

from __future__ import annotations

import json
import time

import pytest
import pytest_twisted
from twisted.names import dns

from tests.clusterhelpers import clusterServer, startProcess
from tests.e2e import TIMEOUT, sleep
from tests.ejabberd import Ejabberd, EjabberdError, findEjabberd
from tests.foreignserver import POLL_INTERVAL, ForeignServer, freePort
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_e2e_presence import online
from tests.test_e2e_s2s import subscribeAndTalk
from tests.test_interop_prosody import (  # noqa: F401  (fixtures)
    MODULES, NO_UNBOUND, PROSODY_DOMAIN, enableBidi, executables, prosody, unstartedProsody)

ensureDeferred = pytest_twisted.ensureDeferred


async def federatingNode(makeServer, redisServer, node: str, domain: str,
                         remote: ForeignServer, users=()):
    """
    Cluster node C{node} (not started) serving C{domain}, its s2s listener
    on a port of its own (C{s2sPort}, for the SRV records), reaching
    C{remote} by a static override.
    """
    port = freePort()
    server = await clusterServer(makeServer, redisServer, node, users=users, config={
        "server": {"domains": [domain], "modules": MODULES},
        "s2s": {"listen": "tcp:%d:interface=127.0.0.1" % (port,),
                "hosts": {remote.domain: "127.0.0.1:%d" % (remote.s2sPort,)}}})
    server.s2sPort = port
    return server


async def s2sStreams(node) -> set[tuple[str, str, str]]:
    """The node's authenticated s2s streams, as C{xmppctl connections} lists them: (direction, remote, method)."""
    result = await node.xmppctl("connections", "--json")
    assert result.status == 0, result.out + result.err
    return {(s["direction"], s["remote"], s["method"])
            for s in json.loads(result.out)["s2s"] if s["method"] is not None}


async def federateWithTwoNodes(makeServer, redisServer, remote: ForeignServer, domain: str,
                               publish, remoteFirst: bool, bidi: bool = False) -> None:
    """
    The scenario of the module docstring: nodes A (Benvolio) and B (Romeo)
    serving C{domain}, found by C{remote} at A only (C{publish(port)} puts
    A's port in DNS), whose users are the Nurse and Juliet.  C{bidi}: the
    remote server makes its streams bidirectional (XEP-0288).
    """
    a = await federatingNode(makeServer, redisServer, "a", domain, remote,
                             users=("romeo", "benvolio"))
    b = await federatingNode(makeServer, redisServer, "b", domain, remote)
    publish(a.s2sPort)
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        benvolio = await online(a, "benvolio", "square")
        romeo = await online(b, "romeo", "orchard")
        nurse = await online(remote, "nurse", "kitchen")

        async def nurseWrites():
            # Stanzas of the foreign server arrive on A, for users on either node.
            nurse.send(romeo.jid.bare, "Bid her devise some means to come to shrift")
            heard = await romeo.nextMessage()
            assert (heard["from"], heard["body"]) == (
                nurse.jid, "Bid her devise some means to come to shrift")
            nurse.send(benvolio.jid.full, "Is Romeo there?")
            heard = await benvolio.nextMessage()
            assert (heard["from"], heard["body"]) == (nurse.jid, "Is Romeo there?")

        if remoteFirst:
            await nurseWrites()
        # Romeo, on B: B opens a stream of its own, and the foreign server
        # asks A (the SRV target) whether B's dialback key is right.
        romeo.send(nurse.jid.full, "Commend me to thy lady")
        heard = await nurse.nextMessage()
        assert (heard["from"], heard["body"]) == (romeo.jid, "Commend me to thy lady")
        if not remoteFirst:
            await nurseWrites()
        assert ("_xmpp-server._tcp." + domain, "SRV") in remote.zone.queries
        # B sent through a stream it opened; A, which has sent nothing yet,
        # has none, and every incoming stream landed on A.
        streamsOfA, streamsOfB = await s2sStreams(a), await s2sStreams(b)
        assert ("out", remote.domain, "dialback") in streamsOfB
        assert ("out", remote.domain, "dialback") not in streamsOfA
        assert ("in", remote.domain, "dialback") in streamsOfA
        assert ("in", remote.domain, "dialback") not in streamsOfB

        # Presence subscriptions: Juliet and Romeo (on B) ask each other,
        # Benvolio (on A) asks the Nurse.
        juliet = await online(remote, "juliet", "balcony")
        await subscribeAndTalk(juliet, romeo)
        # Juliet leaves and comes back: Romeo (on B) sees both, and her
        # server's probe, which lands on A, is answered for Romeo by B.
        await juliet.disconnect()
        await romeo.presences.next("unavailable", sender=juliet.jid.full)
        juliet = await online(remote, "juliet", "window")
        await romeo.presences.next(sender=juliet.jid.full)
        probed = await juliet.presences.next("away", sender=romeo.jid.full)
        assert probed["status"] == "at the window"
        benvolio.xmpp.send_presence_subscription(pto=nurse.jid.bare)
        await benvolio.presences.next(sender=nurse.jid.full)
        await nurse.presences.next(sender=benvolio.jid.full)

        # A opened a stream of its own for Benvolio's, or sent it through
        # the remote server's bidirectional one; still nothing came in on B.
        assert (("out", remote.domain, "dialback") in await s2sStreams(a)) != bidi
        assert ("in", remote.domain, "dialback") not in await s2sStreams(b)
    finally:
        for process in processes:
            await process.kill("TERM")


# -- Prosody -----------------------------------------------------------------

PROSODY_CLUSTER_DOMAIN = "xmppd.example"


def prosodyPublisher(prosody, domain: str):
    """Point C{domain}'s SRV record, in Prosody's zone, at one port on loopback."""
    def publish(port: int) -> None:
        prosody.zone.records = {
            ("_xmpp-server._tcp." + domain, dns.SRV): [dns.Record_SRV(0, 0, port, domain)],
            (domain, dns.A): [dns.Record_A("127.0.0.1")]}
    return publish


@pytest.mark.parametrize("remoteFirst, bidi", [(False, False), (True, False),
                                                (False, True), (True, True)],
                         ids=["nodeFirst", "remoteFirst", "nodeFirstBidi", "remoteFirstBidi"])
@ensureDeferred
async def test_prosody(makeServer, redisServer, unstartedProsody, remoteFirst, bidi):
    """Prosody, which knows only node A, federates with users on both nodes, both ways."""
    prosody = unstartedProsody
    if prosody.zone is None:
        pytest.skip(NO_UNBOUND)
    if bidi:
        enableBidi(prosody)
    await prosody.start()
    await prosody.addUser("nurse")
    await federateWithTwoNodes(makeServer, redisServer, prosody, PROSODY_CLUSTER_DOMAIN,
                               prosodyPublisher(prosody, PROSODY_CLUSTER_DOMAIN), remoteFirst,
                               bidi)


async def prosodyNoticed(prosody, line: str, before: int) -> None:
    """Wait (at most L{TIMEOUT}) until Prosody's log has more than C{before} times C{line}."""
    deadline = time.monotonic() + TIMEOUT
    while prosody.logPath.read_text("utf-8", "replace").count(line) <= before:
        assert time.monotonic() < deadline, "Prosody never logged %r" % (line,)
        await sleep(POLL_INTERVAL)


@ensureDeferred
async def test_prosodyFailover(makeServer, redisServer, prosody):
    """
    With both nodes in DNS, A first, Prosody's stream lands on A; when A
    is killed, Prosody's next message comes in through B, and reaches
    Romeo, whose session is on B, all the same.
    """
    if prosody.zone is None:
        pytest.skip(NO_UNBOUND)
    await prosody.addUser("nurse")
    domain = PROSODY_CLUSTER_DOMAIN
    a = await federatingNode(makeServer, redisServer, "a", domain, prosody, users=("romeo",))
    b = await federatingNode(makeServer, redisServer, "b", domain, prosody)
    prosody.zone.records = {
        ("_xmpp-server._tcp." + domain, dns.SRV): [dns.Record_SRV(0, 0, a.s2sPort, domain),
                                                   dns.Record_SRV(10, 0, b.s2sPort, domain)],
        (domain, dns.A): [dns.Record_A("127.0.0.1")]}
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        romeo = await online(b, "romeo", "orchard")
        nurse = await online(prosody, "nurse", "kitchen")
        nurse.send(romeo.jid.full, "Romeo, are you there?")
        assert (await romeo.nextMessage())["body"] == "Romeo, are you there?"
        assert ("in", PROSODY_DOMAIN, "dialback") in await s2sStreams(a)
        assert ("in", PROSODY_DOMAIN, "dialback") not in await s2sStreams(b)

        # A dies; once Prosody has seen its stream go, it tries the next
        # SRV target, B, which checks Prosody's key and takes the message.
        gone = "Destroying outgoing session %s->%s" % (PROSODY_DOMAIN, domain)
        before = prosody.logPath.read_text("utf-8", "replace").count(gone)
        await processes[0].kill("KILL")
        await prosodyNoticed(prosody, gone, before)
        nurse.send(romeo.jid.full, "Where are you?")
        assert (await romeo.nextMessage())["body"] == "Where are you?"
        assert ("in", PROSODY_DOMAIN, "dialback") in await s2sStreams(b)
    finally:
        for process in processes:
            await process.kill("TERM")


# -- ejabberd ----------------------------------------------------------------

@pytest.fixture(scope="module")
def ejabberdExecutables():
    """erl and ejabberd's ERL_LIBS; the tests skip when ejabberd is not installed."""
    found = findEjabberd()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest_twisted.async_yield_fixture(scope="module")
async def ejabberdNode(tmp_path_factory, ejabberdExecutables):
    """One ejabberd for the module (each test federates with a domain of its own), or why it did not start."""
    server = Ejabberd(tmp_path_factory.mktemp("ejabberd"), "ejabberd.test", ejabberdExecutables)
    try:
        try:
            await server.start()
            for user in ("juliet", "nurse"):
                await server.addUser(user)
        except EjabberdError as e:
            yield e
        else:
            yield server
    finally:
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
    """The module's ejabberd, its clients disconnected after the test (before makeServer's check)."""
    yield startedEjabberd
    await sleep(0)
    await startedEjabberd.closeClients()


@pytest.mark.parametrize("remoteFirst", [False, True], ids=["nodeFirst", "remoteFirst"])
@ensureDeferred
async def test_ejabberd(makeServer, redisServer, ejabberd, remoteFirst):
    """ejabberd, which knows only node A, federates with users on both nodes, both ways."""
    domain = ("remote" if remoteFirst else "node") + ".cluster.example"
    await federateWithTwoNodes(makeServer, redisServer, ejabberd, domain,
                               lambda port: ejabberd.publish(domain, port), remoteFirst)

