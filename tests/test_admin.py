"""
Tests for L{xmppd.admin.service}, the local admin socket, and C{xmppctl
connections}: the protocol over a real UNIX socket in C{tmp_path} with the
real reactor, what happens to a socket file left behind or held by another
node, the command against a running node with a component connected, and
the C{hooks} command (who listens to which hook) in memory.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import types

import pytest
import pytest_twisted
from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.basic import LineOnlyReceiver

from xmppd.admin import service as admin
from xmppd.components.client import ComponentClient
from xmppd.config import ConfigError, loadConfig
from xmppd.core.hooks import DELIVER, OBSERVE, POLICY
from xmppd.core.jid import parseJID
from xmppd.core.server import XMPPServer
from tests.e2e import DOMAIN, TIMEOUT, reactor, writeConfig

COMPONENT = "echo." + DOMAIN
SECRET = "the echo component's secret"


def makeConfig(tmp_path, socketPath=None, domains=(DOMAIN,)):
    """A configuration with its data in C{tmp_path}/data and, if given, C{admin.socket}."""
    sections = {"server": {"domains": list(domains), "data_dir": str(tmp_path / "data")},
                "storage": {"backend": "memory"}}
    if socketPath is not None:
        sections["admin"] = {"socket": socketPath}
    path = tmp_path / "xmppd.toml"
    writeConfig(path, sections)
    return loadConfig(str(path))


class Connections(service.Service):
    """A child service standing for the components or s2s service: only C{connections()}."""

    def __init__(self, name, connections):
        self.name = name
        self.answer = connections

    def connections(self):
        return self.answer() if callable(self.answer) else self.answer


class AnswerClient(LineOnlyReceiver):
    """A test client that sends raw bytes and collects the answers, parsed."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self):
        self.answers = defer.DeferredQueue(size=100)
        self.closed = defer.Deferred()

    def lineReceived(self, line):
        self.answers.put(json.loads(line))

    def connectionLost(self, reason=None):
        self.closed.callback(None)

    def ask(self, request) -> defer.Deferred:
        self.sendLine(json.dumps(request).encode("utf-8"))
        return self.nextAnswer()

    def nextAnswer(self) -> defer.Deferred:
        return self.answers.get().addTimeout(TIMEOUT, reactor())

    def whenClosed(self) -> defer.Deferred:
        return self.closed.addTimeout(TIMEOUT, reactor())


@pytest_twisted.async_yield_fixture
async def nodes(tmp_path):
    """
    C{await nodes(socketPath=None, clock=None, children=())} makes an
    L{XMPPServer} holding only the admin service (and C{children}), starts
    it, and returns the server; C{nodes.clients} are closed and every
    server stopped after the test.
    """
    made = []
    clients = []

    async def make(socketPath=None, clock=None, children=(), start=True):
        server = XMPPServer(makeConfig(tmp_path, socketPath), reactor=reactor(), clock=clock)
        server.fatalMessages = []
        server.onFatal = server.fatalMessages.append
        for child in children:
            child.setServiceParent(server)
        server.admin = admin.AdminService(server, reactor=reactor())
        server.admin.setServiceParent(server)
        made.append(server)
        if start:
            server.startService()
            await server.admin.ready.addTimeout(TIMEOUT, reactor())
        return server

    async def connect(server) -> AnswerClient:
        client = await admin.connect(reactor(), server.admin.path, AnswerClient())
        clients.append(client)
        return client

    make.connect = connect
    yield make
    for client in clients:
        client.transport.loseConnection()
    for server in made:
        if server.running:
            await defer.maybeDeferred(server.stopService).addTimeout(TIMEOUT, reactor())


# -- configuration ------------------------------------------------------------------


def test_defaultSocketInDataDir(tmp_path):
    """By default the admin socket is admin.sock in the data directory."""
    assert admin.socketPath(makeConfig(tmp_path)) == str(tmp_path / "data" / "admin.sock")


def test_socketPathRelativeToDataDir(tmp_path):
    """A relative admin.socket is taken in the data directory, an absolute one as it is."""
    assert admin.socketPath(makeConfig(tmp_path, "run/a.sock")) == str(
        tmp_path / "data" / "run" / "a.sock")
    assert admin.socketPath(makeConfig(tmp_path, "/run/xmppd/a.sock")) == "/run/xmppd/a.sock"


def test_socketDisabled(tmp_path):
    """An empty admin.socket means no admin socket."""
    assert admin.socketPath(makeConfig(tmp_path, "")) is None


def test_socketNotAString(tmp_path):
    """A value that is not a path is refused with the key named."""
    path = tmp_path / "xmppd.toml"
    path.write_text("[admin]\nsocket = 1\n")
    with pytest.raises(ConfigError) as raised:
        loadConfig(str(path))
    assert str(raised.value).startswith("admin.socket: expected a path")


# -- the protocol ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_connections(nodes):
    """connections lists components and how they authenticated, s2s links and c2s counts."""
    link = {"direction": "in", "local": DOMAIN, "remote": "example.net",
            "method": "EXTERNAL", "peer": "192.0.2.7:5269", "since": 50.0,
            "encrypted": True}
    clock = Clock()
    clock.advance(100)
    c2s = service.Service()
    c2s.name = "c2s"
    c2s.factories = [types.SimpleNamespace(streams={1, 2}), types.SimpleNamespace(streams={3})]
    server = await nodes(clock=clock, children=[
        Connections("components", [(COMPONENT, "127.0.0.1:4000", 70.0)]),
        Connections("s2s", [link]), c2s])
    server.sessions.bind(parseJID("romeo@localhost/orchard"), object())
    client = await nodes.connect(server)
    assert await client.ask({"command": "connections"}) == {
        "ok": True, "time": 100.0,
        "components": [{"domain": COMPONENT, "peer": "127.0.0.1:4000",
                        "method": "handshake", "since": 70.0}],
        "s2s": [link],
        "c2s": {"sessions": 1, "connections": 3}}


@pytest_twisted.ensureDeferred
async def test_connectionsWithoutServices(nodes):
    """A node without s2s or components answers with empty lists."""
    server = await nodes()
    client = await nodes.connect(server)
    answer = await client.ask({"command": "connections"})
    assert answer["ok"] is True
    assert (answer["components"], answer["s2s"], answer["c2s"]) == (
        [], [], {"sessions": 0, "connections": 0})


@pytest_twisted.ensureDeferred
async def test_badRequests(nodes):
    """Unknown commands and malformed requests get an error each, and the connection goes on."""
    server = await nodes()
    client = await nodes.connect(server)
    answer = await client.ask({"command": "shutdown"})
    assert answer == {"ok": False,
                      "error": 'unknown command "shutdown" (known: announce, connections, destroy-room, hooks, kick, reload, rooms, sessions, stats)'}
    client.transport.write(b"{not json\n[1, 2]\n\xff\n{}\n")
    for expected in ("not JSON", "expected an object", "must be UTF-8", "expected an object"):
        answer = await client.nextAnswer()
        assert answer["ok"] is False and expected in answer["error"]
    assert (await client.ask({"command": "connections"}))["ok"] is True


@pytest_twisted.ensureDeferred
async def test_answersInOrder(nodes):
    """Several requests in one write are answered one line each, in order."""
    server = await nodes()
    client = await nodes.connect(server)
    client.transport.write(b'{"command": "x"}\r\n\n{"command": "connections"}\n{"command": "y"}\n')
    answers = [await client.nextAnswer() for _ in range(3)]
    assert [a["ok"] for a in answers] == [False, True, False]
    assert '"x"' in answers[0]["error"] and '"y"' in answers[2]["error"]


@pytest_twisted.ensureDeferred
async def test_longLineClosesOnlyThatConnection(nodes):
    """A request over the size limit is refused and its connection closed; others go on."""
    server = await nodes()
    patient = await nodes.connect(server)
    broken = await nodes.connect(server)
    broken.transport.write(b'{"command": "' + b"x" * admin.MAX_REQUEST)
    answer = await broken.nextAnswer()
    assert answer == {"ok": False, "error": f"request longer than {admin.MAX_REQUEST} bytes"}
    await broken.whenClosed()
    assert (await patient.ask({"command": "connections"}))["ok"] is True


@pytest_twisted.ensureDeferred
async def test_failingServiceIsAnError(nodes):
    """A service that fails to report gives an error answer, not a dropped connection."""

    def broken():
        raise RuntimeError("boom")

    server = await nodes(children=[Connections("s2s", broken)])
    client = await nodes.connect(server)
    answer = await client.ask({"command": "connections"})
    assert answer == {"ok": False, "error": "connections failed; see the server's log"}
    assert (await client.ask({"command": "connections"}))["ok"] is False
    assert not client.closed.called


@pytest_twisted.ensureDeferred
async def test_idleConnectionClosed(nodes):
    """A connection that stays silent for the idle timeout is closed."""
    clock = Clock()
    server = await nodes(clock=clock)
    client = await nodes.connect(server)
    assert (await client.ask({"command": "connections"}))["ok"] is True
    clock.advance(admin.IDLE_TIMEOUT - 1)
    assert (await client.ask({"command": "connections"}))["ok"] is True
    clock.advance(admin.IDLE_TIMEOUT - 1)
    assert not client.closed.called
    clock.advance(1)
    await client.whenClosed()


@pytest_twisted.ensureDeferred
async def test_tooManyConnections(nodes):
    """Connections beyond the limit are turned away with an error; the others are served."""
    server = await nodes()
    clients = [await nodes.connect(server) for _ in range(admin.MAX_CONNECTIONS)]
    for client in clients:
        assert (await client.ask({"command": "connections"}))["ok"] is True
    extra = await nodes.connect(server)
    answer = await extra.nextAnswer()
    assert answer["ok"] is False and "too many admin connections" in answer["error"]
    await extra.whenClosed()
    assert (await clients[0].ask({"command": "connections"}))["ok"] is True


def test_clientThatDoesNotReadIsDropped(tmp_path):
    """A client that lets answers pile up unread is disconnected instead of growing memory."""
    server = XMPPServer(makeConfig(tmp_path), reactor=Clock())
    stream = admin.AdminFactory(admin.AdminService(server, reactor=Clock())).buildProtocol(None)
    transport = StringTransport()
    stream.makeConnection(transport)
    transport.producer.pauseProducing()  # the client's socket buffer is full
    request = b'{"command": "connections"}\n'
    written = 0
    while not transport.disconnecting and written <= admin.SEND_QUEUE_LIMIT + 1000:
        stream.dataReceived(request)
        written = len(transport.value())
    assert transport.disconnected  # aborted, not waiting for the client to read
    assert admin.SEND_QUEUE_LIMIT < written < admin.SEND_QUEUE_LIMIT + 1000


# -- the socket file --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_socketIsPrivate(nodes):
    """The socket file is readable and writable by the server's user only."""
    server = await nodes()
    mode = os.stat(server.admin.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest_twisted.ensureDeferred
async def test_disabled(nodes, tmp_path):
    """With admin.socket empty there is no socket, and the node runs."""
    server = await nodes(socketPath="")
    assert server.admin.port is None
    assert not (tmp_path / "data" / "admin.sock").exists()
    assert server.fatalMessages == []


@pytest_twisted.ensureDeferred
async def test_stopRemovesSocket(nodes):
    """Stopping the node removes the socket, so xmppctl then finds no server."""
    server = await nodes()
    path = server.admin.path
    await server.stopService()
    assert not os.path.exists(path)
    with pytest.raises(admin.NotRunning) as raised:
        await admin.query(reactor(), path, {"command": "connections"})
    assert str(raised.value) == f"xmppd is not running (no admin socket at {path})"


@pytest_twisted.ensureDeferred
async def test_staleSocketRemoved(nodes, tmp_path):
    """A socket file left by a killed node (nobody answers) is replaced at start."""
    path = tmp_path / "data" / "admin.sock"
    path.parent.mkdir(mode=0o700)
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))
    leftover.close()
    with pytest.raises(admin.NotRunning):
        await admin.query(reactor(), str(path), {"command": "connections"})
    server = await nodes()
    assert server.fatalMessages == []
    client = await nodes.connect(server)
    assert (await client.ask({"command": "connections"}))["ok"] is True


@pytest_twisted.ensureDeferred
async def test_refusesWhenAnotherNodeAnswers(nodes):
    """A second node on the same socket does not start, with one line; the first goes on."""
    first = await nodes()
    second = await nodes(start=False)
    second.startService()
    with pytest.raises(admin.AdminError):
        await second.admin.ready.addTimeout(TIMEOUT, reactor())
    path = first.admin.path
    assert second.fatalMessages == [
        f"admin.socket {path}: another xmppd answers there (is it running already "
        f"with this data_dir?)"]
    assert second.admin.port is None
    client = await nodes.connect(first)
    assert (await client.ask({"command": "connections"}))["ok"] is True


@pytest_twisted.ensureDeferred
async def test_refusesWhatIsNotASocket(nodes, tmp_path):
    """A file that is not a socket at the socket's path is left alone; the node does not start."""
    path = tmp_path / "data" / "admin.sock"
    path.parent.mkdir(mode=0o700)
    path.write_text("notes")
    server = await nodes(start=False)
    server.startService()
    with pytest.raises(admin.AdminError):
        await server.admin.ready.addTimeout(TIMEOUT, reactor())
    assert server.fatalMessages == [f"admin.socket {path}: exists and is not a socket; "
                                    f"remove it or choose another path"]
    assert path.read_text() == "notes"


# -- hooks ---------------------------------------------------------------------------


class Listener:
    """Callbacks with names a test can spell."""

    def onBlock(self, event):
        return None

    def onDeliver(self, event):
        return None

    def onItems(self, event):
        return None


def hooksNode(tmp_path):
    """
    A node (not started) serving example.org and example.net: a POLICY and a
    DELIVER callback on message/bare for example.org, one DELIVER for
    example.net, and one OBSERVE on disco/items for every domain.
    """
    server = XMPPServer(makeConfig(tmp_path, domains=("example.org", "example.net")),
                        reactor=reactor())
    listener = Listener()
    server.hooks.scoped("example.org").add("message/bare", listener.onDeliver, DELIVER)
    server.hooks.scoped("example.org").add("message/bare", listener.onBlock, POLICY)
    server.hooks.scoped("example.net").add("message/bare", listener.onDeliver, DELIVER)
    server.hooks.add("disco/items", listener.onItems, OBSERVE)
    return admin.AdminService(server, reactor=reactor())


def ask(adminService, request) -> dict:
    """What the admin service answers to C{request}, as a client reads it."""
    answers = []
    adminService.handle(json.dumps(request).encode()).addCallback(answers.append)
    [answer] = answers
    return json.loads(admin.encode(answer))


NAME = "tests.test_admin.Listener."


def test_hooks(tmp_path):
    """hooks lists each domain's callbacks per hook, in run order with bands, then node-wide."""
    items = {"hook": "disco/items",
             "callbacks": [{"callback": NAME + "onItems", "band": "OBSERVE"}]}
    assert ask(hooksNode(tmp_path), {"command": "hooks"}) == {
        "ok": True,
        "domains": [
            {"domain": "example.org", "hooks": [
                items,
                {"hook": "message/bare", "callbacks": [
                    {"callback": NAME + "onBlock", "band": "POLICY"},
                    {"callback": NAME + "onDeliver", "band": "DELIVER"}]}]},
            {"domain": "example.net", "hooks": [
                items,
                {"hook": "message/bare", "callbacks": [
                    {"callback": NAME + "onDeliver", "band": "DELIVER"}]}]}],
        "node": [items]}


def test_hooksOfOneDomain(tmp_path):
    """hooks with a domain, in any case, lists only that domain and no node-wide section."""
    answer = ask(hooksNode(tmp_path), {"command": "hooks", "domain": "Example.NET"})
    assert [listing["domain"] for listing in answer["domains"]] == ["example.net"]
    assert "node" not in answer


def test_hooksOfADomainNotServed(tmp_path):
    """hooks for a domain the node does not serve is refused with the served ones named."""
    adminService = hooksNode(tmp_path)
    assert ask(adminService, {"command": "hooks", "domain": "example.com"}) == {
        "ok": False,
        "error": "example.com is not served here (server.domains: example.org, example.net)"}
    assert ask(adminService, {"command": "hooks", "domain": 7}) == {
        "ok": False, "error": "domain: expected a string"}


def test_hooksBeforeDomainsStart(tmp_path):
    """A node whose domains have loaded no feature yet lists each served domain, hookless."""
    server = XMPPServer(makeConfig(tmp_path), reactor=reactor())
    assert ask(admin.AdminService(server, reactor=reactor()), {"command": "hooks"}) == {
        "ok": True, "domains": [{"domain": DOMAIN, "hooks": []}], "node": []}


def test_formatConnections():
    """The table shows each link's direction, domains, method, TLS, peer and age."""
    lines = admin.formatConnections({
        "ok": True, "time": 1000.0,
        "components": [{"domain": COMPONENT, "peer": "127.0.0.1:4000",
                        "method": "handshake", "since": 880.0}],
        "s2s": [{"direction": "out", "local": DOMAIN, "remote": "example.net",
                 "method": None, "peer": "192.0.2.7:5269", "since": 995.0,
                 "encrypted": False}],
        "c2s": {"sessions": 1, "connections": 2}})
    assert lines[0] == "components: 1"
    assert lines[1].split() == ["DOMAIN", "PEER", "AUTH", "SINCE"]
    assert lines[2].split()[:3] == [COMPONENT, "127.0.0.1:4000", "handshake"]
    assert lines[2].endswith("(2m 0s)")
    assert lines[3] == "s2s: 1"
    assert lines[5].split()[:6] == ["out", DOMAIN, "example.net", "(none", "yet)", "no"]
    assert lines[5].endswith("(5s)")
    assert lines[6] == "c2s: 1 session on 2 connections"


# -- xmppctl connections against a node ------------------------------------------------


class Service:
    """The component's service: tells when the component is connected."""

    def __init__(self):
        self.up = defer.Deferred()

    def deliver(self, stanza):
        pass

    def componentConnected(self):
        self.up.callback(None)


@pytest_twisted.ensureDeferred
async def test_xmppctlConnections(makeServer):
    """xmppctl connections prints the component, how it authenticated, and the sessions."""
    logged = []
    observer = lambda event: logged.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        node = await makeServer({"components": {
            "listen": "tcp:0:interface=127.0.0.1", "secrets": {COMPONENT: SECRET}}})
        components = node.service.getServiceNamed("components")
        port = (await components.ready).getHost().port
        target = Service()
        component = ComponentClient(target, COMPONENT, SECRET,
                                    [f"tcp:host=127.0.0.1:port={port}"], reactor=reactor())
        component.startService()
        try:
            await target.up.addTimeout(TIMEOUT, reactor())
            await node.addUser("romeo")
            await node.login("romeo", "orchard")
            result = await node.xmppctl("connections")
            asJSON = await node.xmppctl("connections", "--json")
        finally:
            streams = list(components.factory.streams)
            await defer.maybeDeferred(component.stopService).addTimeout(TIMEOUT, reactor())
            await defer.gatherResults([s.whenClosed() for s in streams]).addTimeout(
                TIMEOUT, reactor())
    finally:
        globalLogPublisher.removeObserver(observer)
    assert (result.status, result.err) == (0, ""), result
    lines = result.out.splitlines()
    assert lines[0] == "components: 1"
    [row] = [line for line in lines if COMPONENT in line]
    domain, peer, method = row.split()[:3]
    assert (domain, method) == (COMPONENT, "handshake")
    assert peer.startswith("127.0.0.1:")
    assert "s2s: 0" in lines
    assert lines[-1] == "c2s: 1 session on 1 connection"
    answer = json.loads(asJSON.out)
    assert answer["ok"] is True
    assert [(c["domain"], c["peer"]) for c in answer["components"]] == [(COMPONENT, peer)]
    assert any(f"Component {COMPONENT} connected from {peer}, authenticated by handshake"
               in line for line in logged)
    assert any(f"Component {COMPONENT} disconnected ({peer}), authenticated by handshake"
               in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_xmppctlConnectionsServerStopped(makeServer):
    """With the server stopped, xmppctl connections says so in one line and exits with 1."""
    node = await makeServer()
    await node.stop()
    result = await node.xmppctl("connections")
    path = node.dataDir / "admin.sock"
    assert (result.status, result.out) == (1, "")
    assert result.err == f"xmppctl: xmppd is not running (no admin socket at {path})\n"


@pytest_twisted.ensureDeferred
async def test_xmppctlConnectionsDisabled(makeServer):
    """With the admin socket disabled, xmppctl connections says the configuration cannot tell."""
    node = await makeServer({"admin": {"socket": ""}}, start=False)
    result = await node.xmppctl("connections")
    assert result.status == 2
    assert result.err.startswith('xmppctl: admin.socket is "" in ')
    assert result.err.endswith(": the admin socket is disabled\n")
