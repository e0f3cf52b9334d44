"""
Federation with a server that is not xmppd: Prosody from Debian's packages
(L{tests.prosody}), on loopback, serving C{prosody.test}.  A user of each
server subscribes to the other, both see each other's presence and
messages go both ways.  Neither server trusts the other's self-signed
certificate: both streams are encrypted with STARTTLS and authenticated
with dialback (XEP-0220), each key checked over a connection back to the
sender's server.

Each server must find the other.  xmppd reaches Prosody through a static
host override (C{[s2s] hosts}).  Prosody has no such thing: it looks a
domain up in DNS (C{_xmpps-server}, then C{_xmpp-server} SRV records, then
A/AAAA on port 5269).  Two ways to point it at the xmppd node:

  - SRV records (L{test_srvRecords}): Prosody's resolver (lua-unbound)
    asks the test's own DNS server (L{tests.foreignserver.Zone}), which points
    C{_xmpp-server._tcp.xmppd.example} at the node's ephemeral s2s port;
  - an IP-literal domain (L{test_ipLiteralDomain}; RFC 7622 §3.2): Prosody
    takes a domain that is an address as the address itself
    (C{net/resolvers/service.lua} and C{basic.lua}), on port 5269, so the
    node serves a random 127.x.y.z (Linux delivers all of 127.0.0.0/8 on
    loopback) and listens there on 5269.

Prosody ships bidirectional streams (XEP-0288) as C{mod_s2s_bidi}, loaded
only when enabled.  With it, and with each server trusting the other's
certificate (SASL EXTERNAL both ways), the one connection xmppd opens
carries everything both ways (L{test_bidiOneConnection}); with dialback,
Prosody checks xmppd's key over a connection of its own, which it then
uses too, so there are two, both bidirectional (L{test_bidiWithDialback}).

Each test skips with its reason when it cannot run (no lua-unbound; 5269
taken on every address tried, as when Debian's own Prosody service listens
on all addresses); both skip when Prosody is not installed.
"""

from __future__ import annotations

import random
import socket

import pytest
import pytest_twisted
from twisted.names import dns

from tests.prosody import Prosody, Zone, findProsody
from tests.test_e2e_presence import online
from tests.test_e2e_s2s import countAccepted, methods, s2sOf, s2sPort, subscribeAndTalk
from xmppd.s2s.config import DEFAULT_PORT
from xmppd.stream.tls import ensureCertificate

ensureDeferred = pytest_twisted.ensureDeferred

PROSODY_DOMAIN = "prosody.test"
#: Found by Prosody through SRV records (unbound answers .test itself, RFC 6761).
XMPPD_DOMAIN = "xmppd.example"
MODULES = ["presence", "roster", "messages", "disco", "ping"]


@pytest.fixture
def executables():
    """The paths of prosody and prosodyctl; the test skips when they are not installed."""
    found = findProsody()
    if isinstance(found, str):
        # Here rather than in the async fixture below: pytest-twisted
        # mishandles a skip before an async fixture's first yield.
        pytest.skip(found)
    return found


@pytest_twisted.async_yield_fixture
async def unstartedProsody(tmp_path, executables):
    """A Prosody serving C{prosody.test} with the account juliet, asking a L{Zone} for DNS when it can; not started."""
    server = Prosody(tmp_path / "prosody", PROSODY_DOMAIN, executables)
    try:
        if await server.hasUnbound():
            server.resolveWith(Zone())
        await server.addUser("juliet")
        yield server
    finally:
        await server.close()


@pytest_twisted.async_yield_fixture
async def prosody(unstartedProsody):
    """The same, started."""
    await unstartedProsody.start()
    yield unstartedProsody


async def xmppdNode(makeServer, domain: str, listen: str, prosody: Prosody):
    """A started node serving C{domain}, its s2s listener on C{listen}, reaching Prosody by a static override."""
    node = await makeServer({
        "server": {"domains": [domain], "modules": MODULES},
        "s2s": {"listen": listen,
                "hosts": {PROSODY_DOMAIN: "127.0.0.1:%d" % (prosody.s2sPort,)}}})
    await node.addUser("romeo")
    return node


def dialbackBothWays(domain: str, bidi: bool = False) -> set[tuple]:
    """The streams (direction, local, remote, method, encrypted, bidi) of two servers using dialback."""
    return {("out", domain, PROSODY_DOMAIN, "dialback", True, bidi),
            ("in", domain, PROSODY_DOMAIN, "dialback", True, bidi)}


async def presenceAndMessagesBothWays(node, prosody: Prosody, streams=None) -> None:
    """
    Romeo (on xmppd) and Juliet (on Prosody) subscribe, see each other, and
    talk (L{tests.test_e2e_s2s.subscribeAndTalk}); then the node's
    authenticated streams are C{streams} (L{dialbackBothWays} by default).
    """
    romeo = await online(node, "romeo", "orchard")
    juliet = await online(prosody, "juliet", "balcony")
    await subscribeAndTalk(romeo, juliet)
    assert methods(node) == (streams if streams is not None else dialbackBothWays(node.domain))


NO_UNBOUND = ("Prosody resolves without lua-unbound here, so its DNS queries cannot be "
              "sent to the test's DNS server (apt-get install lua-unbound)")


async def publish(node, prosody: Prosody) -> None:
    """Point the SRV record of the node's domain, in Prosody's L{Zone}, at its s2s port."""
    prosody.zone.records = {
        ("_xmpp-server._tcp." + node.domain, dns.SRV): [
            dns.Record_SRV(0, 0, await s2sPort(node), node.domain)],
        (node.domain, dns.A): [dns.Record_A("127.0.0.1")]}


@ensureDeferred
async def test_srvRecords(makeServer, prosody):
    """Prosody finds xmppd through its SRV record, and their users subscribe, see each other and talk both ways."""
    if prosody.zone is None:
        pytest.skip(NO_UNBOUND)
    node = await xmppdNode(makeServer, XMPPD_DOMAIN, "tcp:0:interface=127.0.0.1", prosody)
    await publish(node, prosody)

    await presenceAndMessagesBothWays(node, prosody)

    assert ("_xmpp-server._tcp." + XMPPD_DOMAIN, "SRV") in prosody.zone.queries


def enableBidi(prosody: Prosody, **settings) -> None:
    """Load Prosody's mod_s2s_bidi (XEP-0288; shipped, but not loaded unless enabled)."""
    prosody.settings["modules_enabled"] = prosody.settings["modules_enabled"] + ["s2s_bidi"]
    prosody.settings.update(settings)
    prosody.writeConfig()


@ensureDeferred
async def test_bidiOneConnection(makeServer, unstartedProsody, monkeypatch):
    """With Prosody's mod_s2s_bidi and certificates trusted both ways, one connection carries everything both ways."""
    prosody = unstartedProsody
    accepted = countAccepted(monkeypatch)
    node = await makeServer({
        "server": {"domains": [XMPPD_DOMAIN], "modules": MODULES},
        "s2s": {"listen": "tcp:0:interface=127.0.0.1",
                "hosts": {PROSODY_DOMAIN: "127.0.0.1:%d" % (prosody.s2sPort,)},
                "ca_file": str(prosody.certificate), "require_valid_certificates": True}},
        start=False)
    # Prosody trusts the node's self-signed certificate for its s2s streams.
    enableBidi(prosody, s2s_ssl={"cafile": ensureCertificate(node.config)[0]})
    await prosody.start()
    await node.start()
    await node.addUser("romeo")
    if prosody.zone is not None:
        await publish(node, prosody)

    await presenceAndMessagesBothWays(node, prosody, {
        ("out", XMPPD_DOMAIN, PROSODY_DOMAIN, "EXTERNAL", True, True)})

    assert len(s2sOf(node).connections()) == 1
    assert accepted[s2sOf(node)] == 0


@ensureDeferred
async def test_bidiWithDialback(makeServer, unstartedProsody):
    """With Prosody's mod_s2s_bidi and dialback, every stream is bidirectional, and users talk as before."""
    prosody = unstartedProsody
    if prosody.zone is None:
        pytest.skip(NO_UNBOUND)
    enableBidi(prosody)
    await prosody.start()
    node = await xmppdNode(makeServer, XMPPD_DOMAIN, "tcp:0:interface=127.0.0.1", prosody)
    await publish(node, prosody)

    # Prosody checks the node's dialback key over a connection of its own,
    # which it then authenticates and uses as its own stream: two
    # connections, both bidirectional, stanzas taking whichever came first.
    await presenceAndMessagesBothWays(node, prosody, dialbackBothWays(XMPPD_DOMAIN, bidi=True))


def loopbackDomain() -> str | None:
    """A 127.x.y.z whose port 5269 is free: the node's domain and s2s address (or None)."""
    for _ in range(20):
        address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255),
                                    random.randint(1, 254))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, DEFAULT_PORT))
            except OSError:
                continue
        return address
    return None


@ensureDeferred
async def test_ipLiteralDomain(makeServer, prosody):
    """Prosody reaches an xmppd serving an IP-literal domain at that address, and their users talk as before."""
    domain = loopbackDomain()
    if domain is None:
        pytest.skip("port %d is taken on every 127.x.y.z tried (something listens on "
                    "*:%d, such as the system's Prosody)" % (DEFAULT_PORT, DEFAULT_PORT))
    node = await xmppdNode(makeServer, domain, "tcp:%d:interface=%s" % (DEFAULT_PORT, domain),
                           prosody)
    await s2sPort(node)

    await presenceAndMessagesBothWays(node, prosody)
