"""
End-to-end kit (STYLE "Testing style" 5): a real xmppd node on ephemeral
loopback ports, started by L{xmppd.testing} (which builds it with
L{xmppd.tap.makeService}, as twistd does), accounts made by C{xmppctl}'s
own code, and slixmpp clients that log in over STARTTLS or direct TLS.

    @pytest_twisted.ensureDeferred
    async def test_messageToFullJID(server):
        await server.addUser("romeo")
        await server.addUser("juliet")
        romeo = await server.login("romeo", "orchard")
        juliet = await server.login("juliet", "balcony")
        romeo.send("juliet@localhost/balcony", "But soft!")
        assert (await juliet.nextMessage())["body"] == "But soft!"

Fixtures (made visible to every test module by C{tests/conftest.py}):
L{server}, a started node with the default e2e configuration;
L{stoppedServer}, the same not started yet; L{makeServer}, a factory for
nodes with other settings (C{await makeServer({"c2s": {"require_tls":
False}})}).  Each node lives in a directory of its own under C{tmp_path}.

How the two event loops meet.  C{pyproject.toml} runs pytest with
C{--reactor=asyncio}: pytest-twisted installs Twisted's
C{AsyncioSelectorReactor}, whose C{run()} is the asyncio loop's
C{run_forever()}, inside a greenlet, and runs each
C{@pytest_twisted.ensureDeferred} test as a Twisted coroutine
(C{Deferred.fromCoroutine}) from a reactor call.  The server's sockets and
slixmpp's sockets are therefore served by the same loop, in the same thread,
and slixmpp (which picks up the running loop) needs no thread or loop of its
own.  A Twisted coroutine can only C{await} Deferreds, not asyncio futures,
so everything asyncio here (slixmpp's events, its connect and disconnect) is
run as an asyncio task and handed to the test as a Deferred
(C{Deferred.fromFuture}, see L{_deferred}); Deferreds of the server are
awaited directly.  Every wait ends after L{TIMEOUT} seconds at most
(C{asyncio.wait_for} on the asyncio side, C{Deferred.addTimeout} on the
Twisted side).

Teardown: every client a node made is disconnected (a clean
C{</stream:stream>}, then an abort if the server does not answer) and its
slixmpp send-queue task stopped, every node is stopped with its store, and
the test fails if an asyncio task is still pending, so no "Task was
destroyed but it is pending" appears later.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import sys
from dataclasses import dataclass

import pytest_twisted
import slixmpp
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from xmppd.cli import ctl
from xmppd.config import loadConfig
from xmppd.storage.interfaces import RosterItem
from xmppd.stream.tls import SELF_SIGNED_CERT, SELF_SIGNED_DIR
from xmppd.testing import ServerFixture, defaultConfig, overlay
from tests.helpers import toml as _toml

#: The longest any single wait may take, in seconds.
TIMEOUT = 10.0
DOMAIN = "localhost"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def wait(awaitable) -> defer.Deferred:
    """An asyncio awaitable (a slixmpp IQ future, a queue get...) as a Deferred, failing after TIMEOUT."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(
        asyncio.wait_for(awaitable, TIMEOUT)))


async def pubsubFailure(awaitable) -> tuple[str, str | None]:
    """The (condition, pubsub#errors condition) a slixmpp IQ failed with."""
    from slixmpp.exceptions import IqError
    try:
        await wait(awaitable)
    except IqError as caught:
        error = caught.iq["error"]
    else:
        raise AssertionError("the request succeeded; an error was expected")
    app = [child.tag.split("}")[1] for child in error.xml
           if child.tag.startswith("{http://jabber.org/protocol/pubsub#errors}")]
    return error["condition"], (app[0] if app else None)


#: What an e2e node runs with over L{xmppd.testing.defaultConfig} (both
#: client listeners on ephemeral loopback ports, failed logins answered
#: quickly, no federation unless a test asks for it as
#: tests/test_e2e_s2s.py does) unless a test says otherwise: durable storage.
E2E_CONFIG = {"storage": {"backend": "sqlite"}}

def reactor():
    """
    The running reactor.  Imported when used, never when this module is
    imported: C{tests/conftest.py} loads this module before pytest-twisted
    installs the asyncio reactor, and importing C{twisted.internet.reactor}
    then would install the default one instead.
    """
    from twisted.internet import reactor
    return reactor


def sleep(seconds: float) -> defer.Deferred:
    """A Deferred that fires after C{seconds} (0: on the next turn of the loop)."""
    return deferLater(reactor(), seconds, lambda: None)


def password(user: str) -> str:
    """The password L{Server.addUser} gives C{user} unless told otherwise."""
    return f"{user}'s secret"


async def contacts(server, *users) -> None:
    """
    The accounts exist and every two of them share presence both ways
    (roster items with subscription "both", stored directly: the tests
    that use it are about what contacts see, not about subscribing).
    """
    rosters = server.service.storage.rosters
    for user in users:
        await server.addUser(user)
    for user in users:
        for other in users:
            if other != user:
                await rosters.setItem(user, DOMAIN, RosterItem("%s@%s" % (other, DOMAIN),
                                                               subscription="both"))


def _deferred(coroutineFunction):
    """
    Run an asyncio coroutine function as an asyncio task and return a
    Deferred of its result, so that a Twisted-driven test can await it
    (cancelling the Deferred cancels the task).
    """

    @functools.wraps(coroutineFunction)
    def wrapper(*args, **kwargs):
        task = asyncio.ensure_future(coroutineFunction(*args, **kwargs))
        return defer.Deferred.fromFuture(task)

    return wrapper


def writeConfig(path, sections: dict) -> None:
    """Write C{{section: {key: value}}} as a TOML file."""
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in keys.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class LoginFailed(Exception):
    """A login did not end in a session: C{condition} says why."""

    def __init__(self, condition: str, detail: str = ""):
        super().__init__(f"{condition}: {detail}" if detail else condition)
        self.condition = condition


@dataclass
class CtlResult:
    """What an operator sees after one C{xmppctl} command."""

    status: int
    out: str
    err: str


class Server:
    """
    One node in C{directory}: its configuration file, its data directory,
    and the clients the test made through it, disconnected by L{close}.
    L{stop} then L{start} is a restart on the same data directory (the
    ports change).  Starting and stopping is L{xmppd.testing.ServerFixture}'s
    (C{node}), on the configuration file this kit writes for C{xmppctl}.
    """

    def __init__(self, directory, config: dict | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.dataDir = directory / "data"
        self.configPath = directory / "xmppd.toml"
        sections = overlay(defaultConfig(str(self.dataDir)), E2E_CONFIG)
        writeConfig(self.configPath, overlay(sections, config))
        self.node = ServerFixture(config=str(self.configPath), directory=str(directory),
                                  timeout=TIMEOUT)
        self.config = self.node.config
        #: The node's first served domain: the one of its accounts and clients.
        self.domain = self.node.domain
        self.starttlsPort: int | None = None
        self.directTLSPort: int | None = None
        self.clients: list[Client] = []

    @property
    def service(self):
        """The running node's root service (C{None} while stopped)."""
        return self.node.service

    @property
    def certificatePath(self):
        """The self-signed certificate the node makes when none is configured."""
        return self.dataDir / SELF_SIGNED_DIR / SELF_SIGNED_CERT

    async def start(self) -> None:
        """Build the node as twistd does, start it, and wait until it listens."""
        assert self.service is None, "already running"
        await self.node.start()
        self.starttlsPort = self.node.c2sPort
        self.directTLSPort = self.node.directTLSPort

    async def stop(self) -> None:
        """Stop the node (listeners, then storage) and wait until it has."""
        await self.node.stop()

    async def xmppctl(self, *argv: str) -> CtlResult:
        """Run C{xmppctl --config <this node's file> ARGV} in a process of its own."""
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        d = getProcessOutputAndValue(
            sys.executable, ["-m", "xmppd.cli.ctl", "--config", str(self.configPath), *argv],
            env=env, path=str(self.directory), reactor=reactor())
        out, err, status = await d.addTimeout(TIMEOUT, reactor())
        return CtlResult(status, out.decode("utf-8"), err.decode("utf-8"))

    async def addUser(self, user: str, secret: str | None = None,
                      domain: str | None = None) -> None:
        """
        What C{xmppctl adduser user@<domain>} does, run in this process
        (the command's own parser and L{xmppd.cli.ctl.runCommand} on this node's
        configuration file) so a test does not pay ~0.3 s for a new Python;
        tests about C{xmppctl} itself use L{xmppctl}.  The password defaults
        to L{password}, the domain to the node's first.
        """
        argv = ["--config", str(self.configPath), "adduser", f"{user}@{domain or self.domain}",
                "--password", secret or password(user)]
        args = ctl.buildParser().parse_args(argv)
        status = await defer.Deferred.fromCoroutine(
            ctl.runCommand(args, loadConfig(args.config), reactor()))
        assert status == ctl.OK, f"xmppctl {' '.join(argv)} exited with {status}"

    def client(self, user: str, resource: str | None = None, secret: str | None = None,
               directTLS: bool = False, mechanism: str | None = None) -> "Client":
        """
        A client for C{user@<domain>}, not connected yet; the fixture
        disconnects it at the end of the test.  C{mechanism} forces one SASL
        mechanism; C{directTLS} uses the XEP-0368 port instead of STARTTLS.
        """
        jid = f"{user}@{self.domain}" + (f"/{resource}" if resource else "")
        client = Client(self, jid, secret or password(user),
                        directTLS=directTLS, mechanism=mechanism)
        self.clients.append(client)
        return client

    async def login(self, user: str, resource: str | None = None, **kwargs) -> "Client":
        """L{client}, then L{Client.login}."""
        client = self.client(user, resource, **kwargs)
        await client.login()
        return client

    async def close(self) -> None:
        """Disconnect every client this node made, then stop the node."""
        clients, self.clients = self.clients, []
        try:
            for client in clients:
                await client.close()
        finally:
            await self.stop()


class SlixmppPeer:
    """
    What the kit's slixmpp wrappers (clients here, components in
    test_e2e_components) share: stream errors collected in C{streamErrors},
    messages queued, bounded waits whose results are Deferreds, and a
    teardown that leaves no slixmpp task behind.  C{_pending} is the future
    a connection attempt waits on, settled by the events below.
    """

    def watch(self, xmpp) -> None:
        """Take C{xmpp} and listen to the events every wrapper needs."""
        self.xmpp = xmpp
        self.streamErrors: list[str] = []
        self.messages: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.connected = False
        self._pending: asyncio.Future | None = None
        self._closed = asyncio.get_running_loop().create_future()
        xmpp.add_event_handler("connected", self._onConnected)
        xmpp.add_event_handler("stream_error", self._onStreamError)
        xmpp.add_event_handler("disconnected", self._onDisconnected)
        xmpp.add_event_handler("message", self._onMessage)

    @_deferred
    async def nextMessage(self) -> slixmpp.Message:
        """The next message received (waits at most L{TIMEOUT})."""
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    @_deferred
    async def closedByServer(self):
        """Fires with the list of stream error conditions once the connection is gone."""
        await asyncio.wait_for(asyncio.shield(self._closed), TIMEOUT)
        return self.streamErrors

    async def _disconnect(self) -> None:
        if self.connected:
            # slixmpp sends </stream:stream>, waits up to 2 s for the
            # server's, then aborts the connection.
            self.xmpp.disconnect(wait=2.0)
            await asyncio.wait_for(asyncio.shield(self._closed), TIMEOUT)

    async def _close(self) -> None:
        """Teardown: disconnect, and stop slixmpp's background send task."""
        await self._disconnect()
        self.xmpp.cancel_connection_attempt()
        sender = self.xmpp._run_out_filters
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait([sender], timeout=TIMEOUT)

    def _settle(self, error: Exception | None = None) -> None:
        if self._pending is not None and not self._pending.done():
            if error is None:
                self._pending.set_result(None)
            else:
                self._pending.set_exception(error)

    def _onConnected(self, event) -> None:
        self.connected = True

    def _onStreamError(self, error) -> None:
        self.streamErrors.append(error["condition"])
        self._settle(LoginFailed(error["condition"], error["text"]))

    def _onDisconnected(self, reason) -> None:
        self.connected = False
        self._settle(LoginFailed("disconnected", str(reason or "")))
        if not self._closed.done():
            self._closed.set_result(None)

    def _onMessage(self, message) -> None:
        self.messages.put_nowait(message)


class Client(SlixmppPeer):
    """
    A slixmpp C{ClientXMPP} with bounded waits whose results are Deferreds.

    C{xmpp} is the slixmpp client itself, for what this wrapper does not
    cover; C{jid} is the JID the server bound; C{streamErrors} collects the
    conditions of the stream errors received.
    """

    def __init__(self, server: Server, jid: str, secret: str, directTLS: bool = False,
                 mechanism: str | None = None):
        self.server = server
        self.directTLS = directTLS
        xmpp = slixmpp.ClientXMPP(jid, secret, sasl_mech=mechanism)
        # One way in per client, so a test knows which one it tested.
        xmpp.enable_direct_tls = directTLS
        xmpp.enable_starttls = not directTLS
        xmpp.enable_plaintext = False
        # The node's certificate is self-signed (see test_e2e_login for the
        # check that it is the one the node generated).
        xmpp.ssl_context.check_hostname = False
        xmpp.ssl_context.verify_mode = ssl.CERT_NONE
        xmpp.whitespace_keepalive = False
        self.watch(xmpp)
        self.sessionStarted = False
        xmpp.add_event_handler("session_start", self._onSessionStart)
        xmpp.add_event_handler("failed_auth", self._onFailedAuth)
        xmpp.add_event_handler("connection_failed", self._onConnectionFailed)

    # -- what the test sees ----------------------------------------------

    @property
    def jid(self) -> slixmpp.JID:
        """The full JID the server bound (valid after L{login})."""
        return self.xmpp.boundjid

    @property
    def tls(self) -> ssl.SSLObject | None:
        """The TLS state of the connection, or C{None} if it is not encrypted."""
        transport = self.xmpp.transport
        return None if transport is None else transport.get_extra_info("ssl_object")

    @property
    def mechanism(self) -> str | None:
        """The SASL mechanism of the last authentication."""
        mech = getattr(self.xmpp.plugin["feature_mechanisms"], "mech", None)
        return None if mech is None else mech.name

    @_deferred
    async def login(self) -> slixmpp.JID:
        """
        Connect, negotiate and bind; fires with the bound JID.  Fails with
        L{LoginFailed} on a SASL failure (C{condition} is the RFC 6120 §6.5
        one), a stream error, a closed connection, or after L{TIMEOUT}.
        """
        loop = asyncio.get_running_loop()
        self._pending = loop.create_future()
        port = self.server.directTLSPort if self.directTLS else self.server.starttlsPort
        self.xmpp.connect("127.0.0.1", port)
        try:
            await asyncio.wait_for(self._pending, TIMEOUT)
        except asyncio.TimeoutError:
            raise LoginFailed("timeout", f"no session after {TIMEOUT} s") from None
        finally:
            self._pending = None
            # No reconnection attempts behind the test's back.
            self.xmpp.cancel_connection_attempt()
        return self.jid

    def send(self, to: str, body: str, type: str = "chat") -> None:
        """Send a message stanza."""
        self.xmpp.send_message(mto=to, mbody=body, mtype=type)

    @_deferred
    async def disconnect(self) -> None:
        """Close the stream as a client does, and wait until the connection is gone."""
        await self._disconnect()

    @_deferred
    async def close(self) -> None:
        """Teardown: disconnect, and stop slixmpp's background send task."""
        await self._close()

    # -- slixmpp events ----------------------------------------------------

    def _onSessionStart(self, event) -> None:
        self.sessionStarted = True
        self._settle()

    def _onFailedAuth(self, failure) -> None:
        self._settle(LoginFailed(failure["condition"], failure["text"]))

    def _onConnectionFailed(self, error) -> None:
        self._settle(LoginFailed("connection-failed", str(error)))


@pytest_twisted.async_yield_fixture
async def makeServer(tmp_path):
    """
    C{await makeServer(config=None, start=True)} makes a L{Server} with
    C{config} ({section: {key: value}}) over the e2e defaults, in a
    directory of its own, started unless told otherwise.  All of them are
    closed after the test.
    """
    nodes: list[Server] = []

    async def make(config: dict | None = None, start: bool = True) -> Server:
        node = Server(tmp_path / f"node{len(nodes) + 1}", config)
        nodes.append(node)
        if start:
            await node.start()
        return node

    yield make
    # pytest-twisted starts a fixture's teardown outside the reactor's
    # greenlet; continue from inside the loop, as the test did.
    await sleep(0)
    errors = []
    for node in nodes:
        try:
            await node.close()
        except Exception as e:  # noqa: BLE001 - close the others, then report
            errors.append(e)
    if errors:
        raise errors[0]
    # A task finishing its last step needs one more turn of the loop.
    await sleep(0)
    pending = [task for task in asyncio.all_tasks() if not task.done()]
    if pending:
        # Cancel them so that the next test starts clean, then fail this one.
        for task in pending:
            task.cancel()
        await defer.Deferred.fromFuture(asyncio.ensure_future(
            asyncio.wait(pending, timeout=TIMEOUT)))
        raise AssertionError(f"asyncio tasks left running after the test: {pending!r}")


@pytest_twisted.async_fixture
async def server(makeServer):
    """A started node with the e2e defaults (see L{E2E_CONFIG})."""
    return await makeServer()


@pytest_twisted.async_fixture
async def stoppedServer(makeServer):
    """A node with the e2e defaults, not started: the test calls C{start()}."""
    return await makeServer(start=False)
