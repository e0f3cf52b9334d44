"""
What the interoperability tests' real foreign servers share
(L{tests.prosody.Prosody}, L{tests.ejabberd.Ejabberd}): a free port for
each listener, a DNS server on loopback (L{Zone}) they can be told to ask,
and L{ForeignServer}, which runs one server as a child process, waits
until its ports answer, quotes its log when it fails, stops it for sure
(SIGTERM, then SIGKILL) and makes and disconnects its L{tests.e2e.Client}s.

A subclass says how to start its server (L{ForeignServer.spawn} with its
command line), where its log is, how long it may take, and which exception
reports its failures.
"""

from __future__ import annotations

import collections
import signal
import socket

from twisted.internet import defer, endpoints, error, protocol
from twisted.names import common, dns, server
from twisted.names import error as dnsError

from tests.e2e import TIMEOUT, Client, password, reactor, sleep

#: Seconds between two looks at a starting or stopping server.
POLL_INTERVAL = 0.05
#: How much of a server's log and console an error message quotes.
LOG_TAIL = 4000


def freePort(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at C{host} right now (foreign servers take fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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


class _Process(protocol.ProcessProtocol):
    """Keeps the end of a server's console output and says when it has ended."""

    def __init__(self):
        self.output = bytearray()
        self.ended = defer.Deferred()

    def childDataReceived(self, fd, data):
        self.output += data
        del self.output[:-LOG_TAIL]

    def processEnded(self, reason):
        self.ended.callback(reason.value)


class ForeignServer:
    """
    One foreign server serving C{domain} from C{directory}, reached by
    clients at 127.0.0.1:C{c2sPort} and by servers at
    127.0.0.1:C{s2sPort}.  Like L{tests.e2e.Server}, it makes L{Client}s
    (L{client}, L{login}) and disconnects them in L{close}.

    A subclass sets L{name}, L{errorType}, L{startTimeout},
    L{stopTimeout}, C{logPath} (the log file L{logTail} quotes) and,
    when it asks one, L{zone}.
    """

    #: How error messages call the server.
    name = "the server"
    #: What a failure to start or stop raises.
    errorType: type[Exception] = Exception
    #: Seconds the server has to listen once started.
    startTimeout = TIMEOUT
    #: Seconds the server has to exit after SIGTERM before it is killed.
    stopTimeout = 5.0

    def __init__(self, directory, domain: str):
        self.directory = directory
        self.domain = domain
        self.c2sPort = freePort()
        self.s2sPort = freePort()
        #: What L{tests.e2e.Client.login} connects to.
        self.starttlsPort = self.c2sPort
        self.directTLSPort = None
        self.clients: list[Client] = []
        #: The L{Zone} the server asks, if any; L{close} stops it.
        self.zone: Zone | None = None
        self.process = None
        self._protocol: _Process | None = None

    def logTail(self) -> str:
        """The end of the server's log and console output, for error messages."""
        text = ""
        if self.logPath.exists():
            text = self.logPath.read_text("utf-8", "replace")[-LOG_TAIL:]
        console = bytes(self._protocol.output).decode("utf-8", "replace") if self._protocol else ""
        return "--- %s (end) ---\n%s\n--- console ---\n%s" % (self.logPath.name, text, console)

    def failIfEnded(self) -> None:
        """Raise L{errorType} with the log if the server has exited while starting."""
        if self._protocol.ended.called:
            raise self.errorType("%s exited while starting:\n%s" % (self.name, self.logTail()))

    async def spawn(self, executable: str, argv: list[str], env: dict[str, str]) -> float:
        """
        Run C{argv} and wait until the c2s and s2s ports answer; returns
        the deadline (L{startTimeout} from now) a subclass may go on
        waiting until, for whatever else says the server is ready.
        """
        assert self.process is None, "already running"
        self._protocol = _Process()
        self.process = reactor().spawnProcess(self._protocol, executable, argv,
                                              env=env, path=str(self.directory))
        deadline = reactor().seconds() + self.startTimeout
        for port in (self.c2sPort, self.s2sPort):
            while not await self._answers(port):
                self.failIfEnded()
                if reactor().seconds() > deadline:
                    raise self.errorType("%s did not listen on 127.0.0.1:%d within %s s:\n%s"
                                         % (self.name, port, self.startTimeout, self.logTail()))
                await sleep(POLL_INTERVAL)
        return deadline

    async def _answers(self, port: int) -> bool:
        endpoint = endpoints.TCP4ClientEndpoint(reactor(), "127.0.0.1", port, timeout=1)
        try:
            connection = await endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        except error.ConnectError:
            return False
        connection.transport.abortConnection()
        return True

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after L{stopTimeout}; returns once the process has ended."""
        process, self.process = self.process, None
        if process is None:
            return
        ended = self._protocol.ended
        for sig, patience in ((signal.SIGTERM, self.stopTimeout), (signal.SIGKILL, TIMEOUT)):
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
            raise self.errorType("%s (pid %s) survived SIGKILL" % (self.name, process.pid))

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

    async def closeClients(self) -> None:
        """Disconnect every client made so far (between tests; the server goes on)."""
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()

    async def close(self) -> None:
        """Disconnect every client made here, then stop the server and its L{Zone}."""
        try:
            await self.closeClients()
        finally:
            try:
                await self.stop()
            finally:
                if self.zone is not None:
                    await self.zone.stop()
