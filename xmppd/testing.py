# -*- test-case-name: tests.test_library -*-
"""
A real xmppd server for other programs' tests: L{ServerFixture} starts one
in this process, on ephemeral loopback ports, in a temporary data directory,
with the accounts a test asks for, and stops it leaving the reactor clean
(listeners closed, client streams closed, storage closed, no delayed call
left), as C{trial} checks after every test.

From a C{twisted.trial.unittest.TestCase}::

    from xmppd.testing import startServer

    class ChatTests(unittest.TestCase):
        @defer.inlineCallbacks
        def setUp(self):
            self.server = yield startServer(self, {"romeo": "wherefore"})

        def test_login(self):
            port = self.server.c2sPort   # connect a client to 127.0.0.1:port
            ...

From a coroutine (pytest with pytest-twisted, or C{Deferred.fromCoroutine}),
the fixture is an asynchronous context manager::

    async with ServerFixture({"romeo": "wherefore"}) as server:
        ...

The server is built by L{xmppd.makeServer}, so it is wired exactly as
C{twistd -n xmppd} wires it; every wait here ends after C{timeout} seconds.
Nothing imports the reactor before a fixture starts, so importing this
module never chooses one (pytest-twisted installs its own first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from twisted.internet import defer
from twisted.words.protocols.jabber import client, jid, xmlstream

from xmppd.api import loadServerConfig, makeServer, whenListening
from xmppd.config import Config, normalizeDomain

#: The longest the fixture waits for the server to start or stop, in seconds.
TIMEOUT = 10.0

#: Where the fixture's listeners listen: any free port, loopback only.
EPHEMERAL = "tcp:0:interface=127.0.0.1"


def defaultConfig(dataDir: str, s2s: bool = False,
                  components: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """
    What a fixture's server runs with unless the test says otherwise, as a
    dict of the configuration file's shape: the domain C{localhost}, data in
    C{dataDir}, client listeners (STARTTLS and direct TLS) and HTTP on ephemeral
    loopback ports, failed logins answered quickly, and no federation (it
    would listen on the well-known port and look remote domains up).  With
    C{s2s}, federation listens on an ephemeral port; C{components} (domain
    -> secret) adds an ephemeral listener for those external components.
    """
    config: dict[str, dict[str, Any]] = {
        "server": {"domains": ["localhost"], "data_dir": dataDir},
        "c2s": {"endpoint": EPHEMERAL, "direct_tls_endpoint": EPHEMERAL},
        "limits": {"auth_failure_delay": 0.01, "auth_failure_delay_max": 0.05},
        "s2s": {"listen": EPHEMERAL if s2s else ""},
        "http": {"endpoint": EPHEMERAL, "tls_endpoint": EPHEMERAL},
    }
    if components:
        config["components"] = {"listen": EPHEMERAL, "secrets": dict(components)}
    return config


def overlay(base: Mapping[str, Mapping[str, Any]],
            changes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """C{base} with each section's keys replaced by those C{changes} gives."""
    merged = {name: dict(keys) for name, keys in base.items()}
    for name, keys in (changes or {}).items():
        merged.setdefault(name, {}).update(keys)
    return merged


class ServerFixture:
    """
    One xmppd server for a test; see the module docstring.

    @ivar domain: the first served domain, the one of L{addAccount}.
    @ivar config: the validated L{xmppd.config.Config} it runs with.
    @ivar directory: the server's temporary directory (its data directory
        is C{data} in it), removed by L{close} when the fixture made it.
    @ivar service: the running server's root service, or C{None}.
    @ivar addresses: where it listens, by configuration key (see
        L{xmppd.whenListening}); empty while it does not run.
    """

    def __init__(self, accounts: Mapping[str, str] | None = None, *,
                 config: "Mapping[str, Any] | str | os.PathLike | Config | None" = None,
                 s2s: bool = False, components: Mapping[str, str] | None = None,
                 directory: str | os.PathLike | None = None, reactor: Any = None,
                 timeout: float = TIMEOUT):
        """
        @param accounts: user -> password, created on the first domain when
            the server starts (at a restart: those that do not exist).
        @param config: a dict of the configuration file's shape, laid over
            L{defaultConfig} section by section (C{{"c2s": {"require_tls":
            False}}}); or a file path or L{Config}, used as it is (its
            listeners should then be on port 0).
        @param s2s: listen for federation too (see L{defaultConfig}).
        @param components: external components' domain -> secret.
        @param directory: where the server keeps its data; a new temporary
            directory, removed by L{close}, by default.
        @param reactor: the reactor to run on; the global one by default.
        @param timeout: the longest a start or a stop may take, in seconds.

        @raise xmppd.config.ConfigError: the configuration is not valid.
        """
        dictionary = config is None or isinstance(config, Mapping)
        if (s2s or components) and not dictionary:
            raise ValueError("s2s and components are for a dict configuration; "
                             "a file or Config is used as it is")
        self.ownsDirectory = directory is None
        if directory is None:
            directory = tempfile.mkdtemp(prefix="xmppd-test-")
        self.directory = os.path.abspath(os.fspath(directory))
        self.accounts = dict(accounts or {})
        self.reactor = reactor
        self.timeout = timeout
        if dictionary:
            base = defaultConfig(os.path.join(self.directory, "data"), s2s, components)
            config = overlay(base, config)
        try:
            self.config = loadServerConfig(config)
        except BaseException:
            self._removeDirectory()
            raise
        self.domain = self.config.server.domains[0]
        self.service = None
        self.addresses: dict[str, Any] = {}
        #: The connections L{login} made and L{stop} closes first.
        self.clients: list[xmlstream.XmlStream] = []

    # -- what a test reads -------------------------------------------------

    @property
    def dataDir(self) -> str:
        """The server's data directory (database, certificate, secret)."""
        return self.config.server.data_dir

    def port(self, key: str) -> int | None:
        """The port of the listener configured at C{key}, if it listens."""
        address = self.addresses.get(key)
        return None if address is None else address.port

    @property
    def c2sPort(self) -> int | None:
        """The client port (STARTTLS, C{c2s.endpoint})."""
        return self.port("c2s.endpoint")

    @property
    def directTLSPort(self) -> int | None:
        """The client port with TLS from the first byte (XEP-0368)."""
        return self.port("c2s.direct_tls_endpoint")

    @property
    def httpPort(self) -> int | None:
        """The plain HTTP port (WebSocket, host-meta)."""
        return self.port("http.endpoint")

    @property
    def httpsPort(self) -> int | None:
        """The HTTPS port."""
        return self.port("http.tls_endpoint")

    @property
    def s2sPort(self) -> int | None:
        """The federation port, when started with C{s2s=True}."""
        return self.port("s2s.listen")

    @property
    def componentsPort(self) -> int | None:
        """The external components' port, when started with C{components}."""
        return self.port("components.listen")

    @property
    def certificatePath(self) -> str:
        """The certificate the server presents (self-signed unless configured)."""
        from xmppd.stream.tls import selfSignedPaths
        return self.config.tls.certificate or selfSignedPaths(self.config)[0]

    def jid(self, user: str, resource: str | None = None) -> str:
        """C{user@<domain>}, with C{/resource} when given."""
        return f"{user}@{self.domain}" + (f"/{resource}" if resource else "")

    def clientTLSOptions(self):
        """
        TLS options for a Twisted client of this server
        (L{twisted.internet.ssl.optionsForClientTLS}): the server's name is
        checked against the server's own certificate, so a test client
        verifies TLS as a real one does.
        """
        from twisted.internet import ssl
        with open(self.certificatePath, "rb") as f:
            certificate = ssl.Certificate.loadPEM(f.read())
        return ssl.optionsForClientTLS(self.domain, trustRoot=certificate)

    # -- life --------------------------------------------------------------

    def _getReactor(self):
        if self.reactor is None:
            from twisted.internet import reactor
            self.reactor = reactor
        return self.reactor

    def start(self) -> defer.Deferred:
        """
        Build and start the server, wait until it listens, and create the
        accounts; fires with this fixture.  After L{stop}, starting again
        restarts it on the same data directory (the ports change).  When
        the start fails, what did start is stopped again.
        """
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self) -> "ServerFixture":
        if self.service is not None:
            raise RuntimeError("the server runs already")
        reactor = self._getReactor()
        self.service = makeServer(self.config, reactor=reactor)
        self.service.startService()
        try:
            self.addresses = await whenListening(self.service).addTimeout(
                self.timeout, reactor)
            users = self.service.storage.users
            for user, password in self.accounts.items():
                if not await users.userExists(self._username(user), self.domain):
                    await self._addAccount(user, password, self.domain)
        except BaseException:
            await self.stop()
            raise
        return self

    def addAccount(self, user: str, password: str,
                   domain: str | None = None) -> defer.Deferred:
        """
        Create the account C{user@domain} (the fixture's domain by default)
        on the running server, as C{xmppctl adduser} does; fires when it is
        stored.  Fails with L{xmppd.storage.interfaces.UserExists} when it
        exists already.
        """
        if domain is None:
            domain = self.domain
            self.accounts[user] = password
        return defer.Deferred.fromCoroutine(
            self._addAccount(user, password, normalizeDomain(domain)))

    async def _addAccount(self, user: str, password: str, domain: str) -> None:
        from xmppd.core.scram import makeCredentials
        if self.service is None:
            raise RuntimeError("the server does not run: start() it first")
        await self.service.storage.users.addUser(
            self._username(user), domain, makeCredentials(password))

    @staticmethod
    def _username(user: str) -> str:
        from xmppd.core.jid import prepLocalpart
        return prepLocalpart(user)

    def login(self, user: str, password: str | None = None,
              resource: str = "test") -> defer.Deferred:
        """
        Log C{user@<domain>/resource} in with Twisted's own XMPP client
        (L{twisted.words.protocols.jabber.client}: STARTTLS checked against
        the server's certificate, SASL, resource binding) on the client port;
        fires with the connected L{xmlstream.XmlStream} (C{send} stanzas,
        C{addObserver} for what arrives; C{authenticator.jid} is the bound
        JID), or fails with the client's error (a
        L{twisted.words.protocols.jabber.sasl.SASLAuthError} for a wrong
        password).  The password defaults to the one the fixture created
        the account with; L{stop} closes the connection.
        """
        if self.c2sPort is None:
            return defer.fail(RuntimeError("the server does not listen for clients: "
                                           "start() it first"))
        if password is None:
            password = self.accounts[user]
        reactor = self._getReactor()
        factory = client.XMPPClientFactory(
            jid.JID(self.jid(user, resource)), password,
            configurationForTLS=self.clientTLSOptions())
        loggedIn = defer.Deferred()
        streams: list[xmlstream.XmlStream] = []

        def connected(stream):
            # A test's client connects once: no reconnection behind its back
            # (building the protocol has just switched reconnecting on).
            factory.stopTrying()
            streams.append(stream)
            self.clients.append(stream)
            stream.lost = defer.Deferred()
            stream.addObserver(xmlstream.STREAM_END_EVENT,
                               lambda reason: stream.lost.callback(None))

        def settle(result):
            if not loggedIn.called:
                loggedIn.callback(result)

        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, connected)
        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, settle)
        factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, settle)
        factory.clientConnectionFailed = lambda connector, reason: settle(reason)
        connector = reactor.connectTCP("127.0.0.1", self.c2sPort, factory,
                                       timeout=self.timeout)

        async def checked(result):
            if isinstance(result, xmlstream.XmlStream):
                return result
            # A Failure (SASL, TLS, a stream error, a refused connection, no
            # session in time): hang up before reporting it.
            if connector.state == "connecting":
                connector.stopConnecting()
            for stream in streams:
                self.clients.remove(stream)
            await self._close(streams)
            result.raiseException()
        loggedIn.addTimeout(self.timeout, reactor)
        return loggedIn.addBoth(lambda result: defer.Deferred.fromCoroutine(checked(result)))

    def _close(self, streams) -> defer.Deferred:
        """Close C{streams} as a client does, and wait until each connection is gone."""
        gone = []
        for stream in streams:
            if not stream.lost.called:
                gone.append(stream.lost)
                if stream.transport is not None:
                    if stream._headerSent:
                        stream.sendFooter()
                    stream.transport.loseConnection()
        d = defer.gatherResults(gone)
        return d.addTimeout(self.timeout, self._getReactor())

    def stop(self) -> defer.Deferred:
        """
        Stop the server: the connections of L{login} first, then listeners
        and client streams (each client is sent a C{system-shutdown} stream
        error), storage last; fires when all of it is closed.  Does nothing
        when it does not run.
        """
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        service, self.service = self.service, None
        self.addresses = {}
        clients, self.clients = self.clients, []
        try:
            await self._close(clients)
        finally:
            if service is not None:
                await defer.maybeDeferred(service.stopService).addTimeout(
                    self.timeout, self._getReactor())

    def close(self) -> defer.Deferred:
        """L{stop}, then remove the temporary directory if the fixture made it."""
        d = self.stop()
        d.addBoth(self._removeAfter)
        return d

    def _removeAfter(self, result):
        self._removeDirectory()
        return result

    def _removeDirectory(self) -> None:
        if self.ownsDirectory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __aenter__(self) -> defer.Deferred:
        return self.start()

    def __aexit__(self, *exc_info) -> defer.Deferred:
        return self.close().addCallback(lambda _: False)


def startServer(testCase=None, accounts: Mapping[str, str] | None = None,
                **kwargs) -> defer.Deferred:
    """
    Start a L{ServerFixture} (C{accounts} and C{kwargs} as for it) and fire
    with it; with a trial C{testCase}, its L{ServerFixture.close} is
    registered as the test's cleanup first, so the server is stopped and
    its directory removed after the test, whether the test or the start
    failed.
    """
    fixture = ServerFixture(accounts, **kwargs)
    if testCase is not None:
        testCase.addCleanup(fixture.close)
    return fixture.start()
