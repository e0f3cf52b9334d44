# -*- test-case-name: tests.test_library -*-
"""
Tests of xmppd as a library (L{xmppd.api}, L{xmppd.testing}), written as
C{twisted.trial.unittest.TestCase}s so that the two ways a Twisted program
runs its tests both run them: C{trial tests.test_library} (on trial's
default reactor) and pytest (on pytest-twisted's asyncio reactor, see
C{pyproject.toml}), which runs trial test cases through its unittest
support.  Nothing here needs pytest, so trial can import it.  Under
pytest these cases run before every other test: trial runs the reactor
itself while it waits, which it cannot do once pytest-twisted has started
the reactor for good (see C{pytest_collection_modifyitems} in
C{tests/conftest.py}).

The README's section "Use xmppd from your own Twisted program and tests"
is tested here too: its embedding example is executed by
L{ReadmeTests.test_embeddingExample}, and its trial example is executed when
this module is imported, which defines its test case in this module, where
both runners find it and run it like the others.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from twisted.application.service import IServiceCollection, MultiService
from twisted.internet import defer, endpoints, error, protocol
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.words.protocols.jabber import sasl
from twisted.words.xish import domish

import xmppd
from xmppd.stream.listening import ListenError
from xmppd.config import Config, ConfigError, loadConfig
from xmppd.core.server import XMPPServer
# Imported now, not first inside a trial test: trial re-issues the warnings
# a test causes as the test's own, and pyproject.toml's filter for wokkel's
# deprecation warnings (issued while wokkel is imported) no longer matches.
from xmppd import tap  # noqa: F401
from xmppd.testing import ServerFixture, startServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
README_SECTION = "## Use xmppd from your own Twisted program and tests"


def readmeExamples() -> list[str]:
    """The Python code blocks of the README's library section, in order."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


# The README's trial example, defined in this module (see the docstring).
exec(compile(readmeExamples()[1], README, "exec"), globals())


def tempDirectory(testCase: unittest.TestCase) -> str:
    """A new directory removed after the test (not under the current directory,
    which is the repository when pytest runs)."""
    directory = tempfile.mkdtemp(prefix="xmppd-test-")
    testCase.addCleanup(FilePath(directory).remove)
    return directory


def reactor():
    """The running reactor, imported when a test runs (pytest-twisted chooses it)."""
    from twisted.internet import reactor
    return reactor


class MakeServerTests(unittest.TestCase):
    """L{xmppd.makeServer}: a node from a dict, a file or a Config."""

    def config(self, **sections) -> dict:
        dataDir = os.path.join(tempDirectory(self), "data")
        document = {"server": {"domains": ["example.org"], "data_dir": dataDir}}
        document.update(sections)
        return document

    def test_fromDict(self):
        """A dict of the file's shape gives the node that file would give, not started."""
        server = xmppd.makeServer(self.config(c2s={"endpoint": "tcp:0"}))
        self.assertIsInstance(server, XMPPServer)
        self.assertIsInstance(server, MultiService)
        self.assertFalse(server.running)
        self.assertEqual(server.config.server.domains, ("example.org",))
        self.assertEqual(server.config.c2s.endpoint, "tcp:0")
        self.assertIsNone(server.config.path)
        self.assertIn("example.org", server.namedServices)
        self.assertIn("c2s", server.namedServices)

    def test_fromFile(self):
        """A TOML file's path, as C{twistd -n xmppd --config} reads it."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "xmppd.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write('[server]\ndomains = ["example.org"]\n'
                    'data_dir = %r\n' % (os.path.join(directory, "data"),))
        for given in (path, FilePath(path)):
            server = xmppd.makeServer(given)
            self.assertEqual(server.config.server.domains, ("example.org",))
            self.assertEqual(server.config.path, path)

    def test_fromConfig(self):
        """A Config loaded already is used as it is."""
        config = xmppd.makeServer(self.config()).config
        self.assertIsInstance(config, Config)
        self.assertIs(xmppd.makeServer(config).config, config)

    def test_pythonValues(self):
        """In a dict, tuples may stand for arrays and path objects for strings."""
        dataDir = FilePath(tempDirectory(self)).child("data")
        server = xmppd.makeServer({"server": {"domains": ("example.org", "example.net"),
                                              "data_dir": dataDir}})
        self.assertEqual(server.config.server.domains, ("example.org", "example.net"))
        self.assertEqual(server.config.server.data_dir, dataDir.path)

    def test_badDictGivesTheFilesError(self):
        """A wrong value in a dict is reported exactly as the same value in a file is."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "xmppd.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("[c2s]\nendpoint = 5222\n")
        fromFile = self.assertRaises(ConfigError, loadConfig, path)
        fromDict = self.assertRaises(ConfigError, xmppd.makeServer,
                                     {"c2s": {"endpoint": 5222}})
        self.assertEqual(str(fromDict), str(fromFile))
        self.assertTrue(str(fromDict).startswith("c2s.endpoint: "), str(fromDict))

    def test_unknownKeyIsNamed(self):
        """A key in the wrong section is named, with where it belongs."""
        e = self.assertRaises(ConfigError, xmppd.makeServer,
                              {"server": {"endpoint": "tcp:5222"}})
        self.assertEqual(str(e), "server.endpoint: unknown key (did you mean c2s.endpoint?)")

    def test_notAConfiguration(self):
        """Something that is no configuration at all is refused in one line."""
        e = self.assertRaises(ConfigError, xmppd.makeServer, 42)
        self.assertIn("expected a file path, a dict or a Config", str(e))

    def test_missingFile(self):
        """A file that is not there is named in the error."""
        path = os.path.join(tempDirectory(self), "nowhere.toml")
        e = self.assertRaises(ConfigError, xmppd.makeServer, path)
        self.assertIn(path, str(e))

    def test_importIsCheap(self):
        """C{import xmppd} loads neither the server nor a reactor; C{xmppd.makeServer} does."""
        code = ("import sys, xmppd\n"
                "print('twisted.internet.reactor' in sys.modules, 'xmppd.tap' in sys.modules)\n"
                "xmppd.makeServer\n"
                "print('xmppd.api' in sys.modules)\n"
                "import xmppd.testing\n"
                "print('twisted.internet.reactor' in sys.modules)\n")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        self.assertEqual(out.split(), ["False", "False", "True", "False"])


class WhenListeningTests(unittest.TestCase):
    """L{xmppd.whenListening}: the addresses of a started node's listeners."""

    @defer.inlineCallbacks
    def test_everyListenerByKey(self):
        """Each enabled listener is reported under its key, with the port it really has."""
        server = yield startServer(self, s2s=True, components={"bot.localhost": "s3cret"})
        addresses = yield xmppd.whenListening(server.service)
        self.assertEqual(sorted(addresses), ["c2s.direct_tls_endpoint", "c2s.endpoint",
                                             "components.listen", "http.endpoint",
                                             "http.tls_endpoint", "s2s.listen"])
        ports = {key: address.port for key, address in addresses.items()}
        self.assertNotIn(0, ports.values())
        self.assertEqual(len(set(ports.values())), 6)
        self.assertEqual(ports["c2s.endpoint"], server.c2sPort)
        self.assertEqual(ports["c2s.direct_tls_endpoint"], server.directTLSPort)
        self.assertEqual(ports["s2s.listen"], server.s2sPort)
        self.assertEqual(ports["components.listen"], server.componentsPort)
        self.assertEqual(ports["http.endpoint"], server.httpPort)
        self.assertEqual(ports["http.tls_endpoint"], server.httpsPort)

    @defer.inlineCallbacks
    def test_directTLSPortSpeaksTLS(self):
        """The port under c2s.direct_tls_endpoint answers a TLS client with a stream."""
        server = yield startServer(self)
        endpoint = endpoints.wrapClientTLS(
            server.clientTLSOptions(),
            endpoints.TCP4ClientEndpoint(reactor(), "127.0.0.1", server.directTLSPort))
        probe = yield endpoint.connect(protocol.Factory.forProtocol(StreamProbe))
        header = yield probe.answered.addTimeout(10, reactor())
        self.assertIn(b"<stream:stream", header)
        probe.transport.loseConnection()
        yield probe.lost.addTimeout(10, reactor())

    def test_onlyEnabledListeners(self):
        """Without federation, components or HTTP, only the client listeners are reported."""
        d = startServer(self, config={"c2s": {"direct_tls_endpoint": ""},
                                      "http": {"endpoint": "", "tls_endpoint": ""}})
        d.addCallback(lambda server: xmppd.whenListening(server.service))
        d.addCallback(lambda addresses: self.assertEqual(list(addresses), ["c2s.endpoint"]))
        return d


    @defer.inlineCallbacks
    def test_portInUse(self):
        """A listener whose port is taken fails the start with one line naming its key."""
        first = yield startServer(self)
        second = ServerFixture(config={"c2s": {
            "endpoint": f"tcp:{first.c2sPort}:interface=127.0.0.1"}})
        self.addCleanup(second.close)
        e = yield self.assertFailure(second.start(), ListenError)
        self.assertTrue(str(e).startswith(
            f"c2s.endpoint tcp:{first.c2sPort}:interface=127.0.0.1: cannot listen: "), str(e))
        self.assertIsNone(second.service)
        self.assertEqual(second.addresses, {})


class StreamProbe(protocol.Protocol):
    """Sends a client stream header and keeps the first bytes of the answer."""

    def connectionMade(self):
        self.answered = defer.Deferred()
        self.lost = defer.Deferred()
        self.transport.write(b"<?xml version='1.0'?><stream:stream to='localhost' "
                             b"xmlns='jabber:client' "
                             b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")

    def dataReceived(self, data):
        if not self.answered.called:
            self.answered.callback(data)

    def connectionLost(self, reason):
        self.lost.callback(None)


class FixtureTests(unittest.TestCase):
    """L{xmppd.testing.ServerFixture} with real clients over TCP."""

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield startServer(self, {"romeo": "wherefore", "juliet": "balcony"})

    def test_whatATestSees(self):
        """The fixture tells the domain, the client port and the account addresses."""
        self.assertEqual(self.server.domain, "localhost")
        self.assertIsInstance(self.server.c2sPort, int)
        self.assertNotEqual(self.server.c2sPort, 0)
        self.assertEqual(self.server.jid("romeo", "orchard"), "romeo@localhost/orchard")
        self.assertTrue(os.path.isdir(self.server.dataDir))

    @defer.inlineCallbacks
    def test_messageBetweenAccounts(self):
        """Two accounts log in over TCP (STARTTLS, SASL, bind) and one's message reaches the other."""
        romeo = yield self.server.login("romeo", resource="orchard")
        juliet = yield self.server.login("juliet", resource="balcony")
        self.assertEqual(juliet.authenticator.jid.full(), "juliet@localhost/balcony")
        received = defer.Deferred()
        juliet.addOnetimeObserver("/message", received.callback)
        message = domish.Element((None, "message"))
        message["to"] = "juliet@localhost/balcony"
        message["type"] = "chat"
        message.addElement("body", content="But soft!")
        romeo.send(message)
        stanza = yield received.addTimeout(10, reactor())
        self.assertEqual(stanza["from"], "romeo@localhost/orchard")
        self.assertEqual(str(stanza.body), "But soft!")

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        """A wrong password fails the login with a SASL error and leaves no connection."""
        yield self.assertFailure(self.server.login("romeo", "not-the-password"),
                                 sasl.SASLAuthError)
        self.assertEqual(self.server.clients, [])

    @defer.inlineCallbacks
    def test_addAccount(self):
        """An account added to the running server can log in at once."""
        yield self.server.addAccount("mercutio", "queen-mab")
        stream = yield self.server.login("mercutio")
        self.assertEqual(stream.authenticator.jid.userhost(), "mercutio@localhost")

    @defer.inlineCallbacks
    def test_restart(self):
        """After a stop and a start on the same data directory, the accounts still log in."""
        yield self.server.stop()
        self.assertIsNone(self.server.service)
        yield self.server.start()
        stream = yield self.server.login("juliet")
        self.assertEqual(stream.authenticator.jid.userhost(), "juliet@localhost")

    @defer.inlineCallbacks
    def test_closeLeavesNothing(self):
        """Closing stops listening, disconnects the clients and removes the directory."""
        fixture = ServerFixture({"romeo": "wherefore"})
        self.addCleanup(fixture.close)
        yield fixture.start()
        stream = yield fixture.login("romeo")
        port, directory = fixture.c2sPort, fixture.directory
        yield fixture.close()
        self.assertTrue(stream.lost.called)
        self.assertFalse(os.path.exists(directory))
        refused = endpoints.TCP4ClientEndpoint(reactor(), "127.0.0.1", port).connect(
            protocol.Factory.forProtocol(protocol.Protocol))
        yield self.assertFailure(refused, error.ConnectionRefusedError)

    def test_loginBeforeStart(self):
        """Logging in to a fixture that was not started fails at once, saying so."""
        fixture = ServerFixture()
        self.addCleanup(fixture.close)
        failure = self.failureResultOf(fixture.login("romeo", "wherefore"), RuntimeError)
        self.assertIn("start() it first", str(failure.value))

    @defer.inlineCallbacks
    def test_asyncContextManager(self):
        """A coroutine uses the fixture with C{async with}; it is closed on the way out."""
        async def use():
            async with ServerFixture({"romeo": "wherefore"}) as server:
                stream = await server.login("romeo")
                return server, stream.authenticator.jid.full()
        server, bound = yield defer.Deferred.fromCoroutine(use())
        self.assertEqual(bound, "romeo@localhost/test")
        self.assertIsNone(server.service)
        self.assertFalse(os.path.exists(server.directory))


class ReadmeTests(unittest.TestCase):
    """The README's library section shows code that runs."""

    def test_embeddingExample(self):
        """The embedding example adds an xmppd node, not started, to the program's service tree."""
        directory = tempDirectory(self)
        here = os.getcwd()
        os.chdir(directory)  # the example's data directory is relative
        try:
            namespace: dict = {}
            exec(compile(readmeExamples()[0], README, "exec"), namespace)
        finally:
            os.chdir(here)
        application = namespace["application"]
        self.assertTrue(IServiceCollection.providedBy(application))
        [node] = [s for s in application if isinstance(s, XMPPServer)]
        self.assertFalse(node.running)
        self.assertEqual(node.config.server.data_dir, os.path.join(
            os.path.realpath(directory), "xmpp-data"))

    def test_ciRunsTheReadmeCommand(self):
        """CI runs the README's test command exactly, the one that runs trial too."""
        with open(README, encoding="utf-8") as f:
            [command] = [line for line in f if line.startswith("scripts/install-test-deps ")]
        with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
            self.assertEqual(f.read().splitlines()[-1], command.rstrip("\n"))
        self.assertTrue(command.rstrip().endswith("&& scripts/test"), command)

    def test_trialExampleIsCollected(self):
        """The trial example defines a test case in this module, so both runners run it."""
        cases = [value for value in globals().values()
                 if isinstance(value, type) and issubclass(value, unittest.TestCase)
                 and value.__module__ == __name__ and value not in (
                     MakeServerTests, WhenListeningTests, FixtureTests, ReadmeTests)]
        self.assertEqual(len(cases), 1, cases)
