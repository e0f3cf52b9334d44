"""
A real Prosody for interoperability tests (tests/test_interop_prosody.py):
Debian's C{prosody} package, run from a configuration written into the
test's C{tmp_path}, on loopback, and stopped at the end; and a small DNS
server (L{Zone}) that Prosody can be told to ask.

The test installs nothing: L{findProsody} says why Prosody cannot be used
(not on C{PATH}), and the test skips with that reason.  Prosody refuses to
start as root unless C{run_as_root = true} (its C{mod_posix}); the
configuration sets it, which changes nothing when the tests run as another
user.  Everything Prosody writes (data, pid file, log) stays in its
directory; it listens on 127.0.0.1 only, on ports picked free just before
it starts, and never daemonizes, so L{Prosody.stop} (SIGTERM, then SIGKILL
after L{STOP_TIMEOUT}) is sure to end it.

Prosody has no static host overrides: it finds other servers in DNS.  With
C{lua-unbound} installed (Debian's package recommends it), its resolver
takes an C{unbound} table, whose C{forward} sends every query to a server
of our choice: L{Prosody.resolveWith} points it at a L{Zone}, so no query
leaves the machine.  Without it, Prosody asks the system's resolver.
L{Prosody.close} stops both.

Accounts are made with C{prosodyctl register}, as an operator would, and
the certificate is one L{xmppd.stream.tls.generateSelfSigned} makes for Prosody's
domain: its clients (L{tests.e2e.Client}) and other servers do not verify
it.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket

from twisted.internet import defer, endpoints, error, protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.names import common, dns, server
from twisted.names import error as dnsError

from tests.e2e import TIMEOUT, Client, password, reactor, sleep
from xmppd.stream.tls import generateSelfSigned

#: Seconds Prosody has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
#: Seconds between two looks at a starting or stopping Prosody.
POLL_INTERVAL = 0.05
#: How much of Prosody's log and console an error message quotes.
LOG_TAIL = 4000


def findProsody() -> tuple[str, str] | str:
    """The paths of C{prosody} and C{prosodyctl}, or why they cannot be used."""
    prosody, prosodyctl = shutil.which("prosody"), shutil.which("prosodyctl")
    if prosody is None or prosodyctl is None:
        return ("Prosody is not installed (no prosody/prosodyctl on PATH); "
                "`apt-get install prosody` lets this test run")
    return prosody, prosodyctl


def freePort(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at C{host} right now (Prosody takes fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lua(value) -> str:
    """A Lua literal for a string, number, boolean, or a list or table of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"%s"' % (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"),)
    if isinstance(value, dict):
        return "{ %s }" % " ".join("%s = %s;" % (k, lua(v)) for k, v in value.items())
    return "{ %s }" % " ".join("%s;" % (lua(v),) for v in value)


class _ZoneServerFactory(server.DNSServerFactory):
    """
    Twisted's DNS server, except that an answer copies the question's RD
    bit, as RFC 1035 §4.1.1 says it must: Erlang's resolver (OTP 25,
    ejabberd's) rejects an answer whose RD differs from its query's.
    """

    def _responseFromMessage(self, message, *args, **kwargs):
        response = server.DNSServerFactory._responseFromMessage(self, message, *args, **kwargs)
        response.recDes = message.recDes
        return response


class Zone(common.ResolverBase):
    """
    A DNS server on 127.0.0.1 (UDP, an ephemeral port) answering from
    C{records}, C{{(name, type): [payload]}} (names in lower case without
    the final dot, types like C{dns.SRV}, payloads like C{dns.Record_SRV}):
    a known name with nothing of the asked type gets an empty answer, an
    unknown name C{NXDOMAIN}.  C{queries} keeps the last questions as
    C{(name, type name)}.
    """

    def __init__(self):
        common.ResolverBase.__init__(self)
        self.records: dict[tuple[str, int], list] = {}
        self.queries: collections.deque = collections.deque(maxlen=100)
        self.port = None

    def start(self) -> int:
        """Listen; returns the port."""
        factory = _ZoneServerFactory(authorities=[self])
        self.port = reactor().listenUDP(0, dns.DNSDatagramProtocol(factory),
                                        interface="127.0.0.1")
        return self.port.getHost().port

    def stop(self) -> defer.Deferred:
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)

    def _lookup(self, name: bytes, cls, type, timeout):
        name = name.decode("ascii", "replace").lower().rstrip(".")
        self.queries.append((name, dns.QUERY_TYPES.get(type, str(type))))
        if not any(known == name for known, _ in self.records):
            return defer.fail(dnsError.DomainError(name))
        answers = [dns.RRHeader(name, type, cls, ttl=0, payload=payload, auth=True)
                   for payload in self.records.get((name, type), [])]
        return defer.succeed((answers, [], []))


class ProsodyError(Exception):
    """Prosody could not be set up, started or stopped: the message quotes its log."""


class _Process(protocol.ProcessProtocol):
    """Keeps the end of Prosody's console output and says when it has ended."""

    def __init__(self):
        self.output = bytearray()
        self.ended = defer.Deferred()

    def childDataReceived(self, fd, data):
        self.output += data
        del self.output[:-LOG_TAIL]

    def processEnded(self, reason):
        self.ended.callback(reason.value)


class Prosody:
    """
    One Prosody serving C{domain} from C{directory}, reached by clients at
    127.0.0.1:L{c2sPort} and by servers at 127.0.0.1:L{s2sPort}, STARTTLS
    required on both; it authenticates servers by dialback when it does not
    trust their certificates (C{s2s_secure_auth = false}).  C{settings}
    add to or replace the global options.

    Like L{tests.e2e.Server}, it makes L{Client}s (C{client}, C{login})
    and disconnects them in L{close}.
    """

    def __init__(self, directory, domain: str, executables: tuple[str, str], **settings):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.domain = domain
        self.prosodyPath, self.prosodyctlPath = executables
        self.configPath = directory / "prosody.cfg.lua"
        self.logPath = directory / "prosody.log"
        self.c2sPort = freePort()
        self.s2sPort = freePort()
        #: What L{tests.e2e.Client.login} connects to.
        self.starttlsPort = self.c2sPort
        self.directTLSPort = None
        self.clients: list[Client] = []
        #: The L{Zone} Prosody asks, once L{resolveWith} has set one.
        self.zone: Zone | None = None
        self.process = None
        self._protocol: _Process | None = None
        certs = directory / "certs"
        certs.mkdir(exist_ok=True)
        self.certificate, self.key = certs / (domain + ".crt"), certs / (domain + ".key")
        generateSelfSigned([domain], str(self.certificate), str(self.key))
        (directory / "data").mkdir(exist_ok=True)
        self.settings = {
            # mod_posix refuses root otherwise; CI and containers run as root.
            "run_as_root": True,
            "daemonize": False,
            "pidfile": str(directory / "prosody.pid"),
            "data_path": str(directory / "data"),
            "certificates": str(certs),
            "log": {"debug": str(self.logPath)},
            "modules_enabled": ["roster", "saslauth", "tls", "dialback", "disco", "ping"],
            "c2s_ports": [self.c2sPort],
            "c2s_interfaces": ["127.0.0.1"],
            "c2s_direct_tls_ports": [],
            "s2s_ports": [self.s2sPort],
            "s2s_interfaces": ["127.0.0.1"],
            "s2s_direct_tls_ports": [],
            "use_ipv6": False,
            "c2s_require_encryption": True,
            "s2s_require_encryption": True,
            # xmppd's certificate is self-signed: authenticate it by dialback.
            "s2s_secure_auth": False,
            "authentication": "internal_hashed",
            "storage": "internal",
            "allow_registration": False,
            **settings,
        }
        self.writeConfig()

    def writeConfig(self) -> None:
        lines = ["-- Written by tests/prosody.py for one test."]
        lines += ["%s = %s" % (name, lua(value)) for name, value in self.settings.items()]
        lines += ["VirtualHost %s" % (lua(self.domain),),
                  "  ssl = %s" % (lua({"certificate": str(self.certificate),
                                       "key": str(self.key)}),)]
        self.configPath.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def resolveWith(self, zone: Zone) -> None:
        """
        Send every DNS query to C{zone}, started here (takes effect at
        L{start}; needs lua-unbound, see L{hasUnbound}).
        """
        self.zone = zone
        self.settings["unbound"] = {"resolvconf": False, "hoststxt": False,
                                    "forward": "127.0.0.1@%d" % (zone.start(),)}
        self.writeConfig()

    def logTail(self) -> str:
        """The end of Prosody's log and console output, for error messages."""
        text = ""
        if self.logPath.exists():
            text = self.logPath.read_text("utf-8", "replace")[-LOG_TAIL:]
        console = bytes(self._protocol.output).decode("utf-8", "replace") if self._protocol else ""
        return "--- prosody.log (end) ---\n%s\n--- console ---\n%s" % (text, console)

    async def prosodyctl(self, *argv: str) -> str:
        """Run C{prosodyctl --config <ours> ARGV}; its output, or L{ProsodyError}."""
        out, err, status = await getProcessOutputAndValue(
            self.prosodyctlPath, ["--config", str(self.configPath), *argv],
            env=dict(os.environ), path=str(self.directory), reactor=reactor(),
        ).addTimeout(TIMEOUT, reactor())
        if status != 0:
            raise ProsodyError("prosodyctl %s exited with %s: %s %s" % (
                argv[0], status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")))
        return out.decode("utf-8", "replace")

    async def hasUnbound(self) -> bool:
        """Whether this Prosody resolves with lua-unbound (C{prosodyctl about} lists it)."""
        return "luaunbound:" in await self.prosodyctl("about")

    async def addUser(self, user: str, secret: str | None = None) -> None:
        """C{prosodyctl register user domain password}, as an operator does."""
        await self.prosodyctl("register", user, self.domain, secret or password(user))

    async def start(self) -> None:
        """Start Prosody and wait (at most L{TIMEOUT}) until its c2s and s2s ports answer."""
        assert self.process is None, "already running"
        self._protocol = _Process()
        self.process = reactor().spawnProcess(
            self._protocol, self.prosodyPath,
            [self.prosodyPath, "--config", str(self.configPath), "-F"],
            env=dict(os.environ), path=str(self.directory))
        deadline = reactor().seconds() + TIMEOUT
        for port in (self.c2sPort, self.s2sPort):
            while not await self._answers(port):
                if self._protocol.ended.called:
                    raise ProsodyError("Prosody exited while starting:\n" + self.logTail())
                if reactor().seconds() > deadline:
                    raise ProsodyError("Prosody did not listen on 127.0.0.1:%d within %s s:\n%s"
                                       % (port, TIMEOUT, self.logTail()))
                await sleep(POLL_INTERVAL)

    async def _answers(self, port: int) -> bool:
        endpoint = endpoints.TCP4ClientEndpoint(reactor(), "127.0.0.1", port, timeout=1)
        try:
            connection = await endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        except error.ConnectError:
            return False
        connection.transport.abortConnection()
        return True

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after L{STOP_TIMEOUT}; returns once Prosody has ended."""
        process, self.process = self.process, None
        if process is None:
            return
        ended = self._protocol.ended
        for sig, patience in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, TIMEOUT)):
            if ended.called:
                return
            try:
                process.signalProcess(sig)
            except error.ProcessExitedAlready:
                pass
            deadline = reactor().seconds() + patience
            while not ended.called and reactor().seconds() < deadline:
                await sleep(POLL_INTERVAL)
        if not ended.called:
            raise ProsodyError("Prosody (pid %s) survived SIGKILL" % (process.pid,))

    def client(self, user: str, resource: str | None = None, secret: str | None = None) -> Client:
        """A L{tests.e2e.Client} for C{user@<domain>}, not connected yet."""
        jid = "%s@%s" % (user, self.domain) + ("/" + resource if resource else "")
        client = Client(self, jid, secret or password(user))
        self.clients.append(client)
        return client

    async def login(self, user: str, resource: str | None = None, **kwargs) -> Client:
        """L{client}, then L{Client.login}."""
        client = self.client(user, resource, **kwargs)
        await client.login()
        return client

    async def close(self) -> None:
        """Disconnect every client made here, then stop Prosody and its L{Zone}."""
        clients, self.clients = self.clients, []
        try:
            for client in clients:
                await client.close()
        finally:
            try:
                await self.stop()
            finally:
                if self.zone is not None:
                    await self.zone.stop()
