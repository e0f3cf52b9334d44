"""
Tests for L{xmppd.s2s.service}: how the node is wired (the router's default
route, listeners after storage), and what operators see.
"""

from __future__ import annotations

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory

from tests.helpers import toml
from tests.s2shelpers import DOMAIN, REMOTE, Harness, stanza
from xmppd.config import loadConfig
from xmppd.core.router import UnroutableRoute
from xmppd.s2s.incoming import IncomingFactory
from xmppd.s2s.service import S2SService
from xmppd.core.server import XMPPServer
from xmppd.tap import makeService
from xmppd.stream.tls import ensureCertificate


def writeConfig(tmp_path, **s2s) -> str:
    path = tmp_path / "xmppd.toml"
    lines = ["[server]", 'domains = ["%s"]' % DOMAIN, "data_dir = %s" % toml(str(tmp_path / "d")),
             "modules = []", "[storage]", 'backend = "memory"',
             "[http]", 'endpoint = ""', 'tls_endpoint = ""', "[s2s]"]
    lines += ["%s = %s" % (key, toml(value)) for key, value in s2s.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_wiring(tmp_path):
    """makeService adds federation after the served domains, before the component and client listeners."""
    server = makeService(loadConfig(writeConfig(tmp_path, listen="tcp:0")))
    names = [child.name for child in server]
    assert names.index("s2s") > names.index(DOMAIN)
    assert names[-2:] == ["s2s", "c2s"]
    s2s = server.getServiceNamed("s2s")
    assert s2s.serverTLS is not None and s2s.clientTLS is not None


def test_disabled(tmp_path):
    """With s2s.listen empty there is no federation: other domains stay unroutable."""
    server = makeService(loadConfig(writeConfig(tmp_path, listen="")))
    assert "s2s" not in [child.name for child in server]
    assert isinstance(server.router.defaultRoute, UnroutableRoute)


def test_defaultRouteWhileRunning(tmp_path):
    """While it runs the service is the router's default route, and gives it back when it stops."""
    reactor = MemoryReactorClock()
    server = XMPPServer(loadConfig(writeConfig(tmp_path, listen="tcp:0")), reactor=reactor)
    service = S2SService(server, None, None, reactor=reactor)
    previous = server.router.defaultRoute
    service.startService()
    assert server.router.defaultRoute is service
    service.stopService()
    assert server.router.defaultRoute is previous


def test_listeners(tmp_path):
    """Both listeners start: plain for STARTTLS, and TLS from the first byte for direct TLS."""
    reactor = MemoryReactorClock()
    config = loadConfig(writeConfig(tmp_path, listen="tcp:0", direct_tls_listen="tcp:0"))
    server = XMPPServer(config, reactor=reactor)
    service = S2SService(server, *ensureCertificate(config), reactor=reactor)
    ports = []
    service.ready.addCallback(ports.extend)
    service.startService()
    assert len(ports) == 2
    plain, direct = (entry[1] for entry in reactor.tcpServers)
    assert isinstance(plain, IncomingFactory) and not plain.secure
    assert isinstance(direct, TLSMemoryBIOFactory) and direct.wrappedFactory.secure


class BusyReactor(MemoryReactorClock):
    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


def test_portInUse(tmp_path):
    """An s2s port in use stops the node with one line naming the key."""
    fatal = []
    reactor = BusyReactor()
    server = XMPPServer(loadConfig(writeConfig(tmp_path, listen="tcp:5269")), reactor=reactor)
    server.onFatal = fatal.append
    service = S2SService(server, None, None, reactor=reactor)
    service.ready.addErrback(lambda failure: None)
    service.startService()
    [message] = fatal
    assert message.startswith("s2s.listen tcp:5269: cannot listen:")
    assert "\n" not in message


def test_invalidAddressesDropped(tmp_path):
    """A stanza with an address that cannot be parsed is dropped, not sent anywhere."""
    harness = Harness(tmp_path)
    harness.service.deliver(stanza("<message to='romeo@@x' from='juliet@example.org'/>"))
    assert harness.outgoing == [] and harness.service.routes == {}


def test_authenticatedStreamsLogged(tmp_path, monkeypatch):
    """Each authenticated stream is logged once with direction, domains, method and peer."""
    events = []
    monkeypatch.setattr(S2SService, "log", Logger(observer=events.append))
    harness = Harness(tmp_path)
    harness.incoming(host="192.0.2.9").authenticate()
    lines = [formatEvent(e) for e in events]
    assert ("s2s in %s <- %s authenticated with dialback (peer 192.0.2.9:%d, TLS)"
            % (DOMAIN, REMOTE, harness.ports)) in lines


def test_hostOverrideAtRunTime(tmp_path):
    """A host override set while running is used by the next connection."""
    harness = Harness(tmp_path)
    harness.service.setHostOverride(REMOTE, "127.0.0.1:6000")
    harness.router.route(stanza("<message to='romeo@%s' from='juliet@%s'/>" % (REMOTE, DOMAIN)))
    [(target, _, _, _)] = harness.attempts
    assert (target.host, target.port) == ("127.0.0.1", 6000)
