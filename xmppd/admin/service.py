# -*- test-case-name: tests.test_admin -*-
"""
The local admin socket: what a running node tells its operator, asked by
C{xmppctl connections} (issue 7: operators see the server-to-server and
component connections and how each peer authenticated) and C{xmppctl hooks}
(issue 11: which features listen to which hook, in the order they run).

The node listens on a UNIX socket, C{admin.socket} (by default
C{<server.data_dir>/admin.sock}; C{""} disables it).  The socket file is
made 0600 and the data directory is 0700, so only the server's own user
(and root) may talk to it: there is no authentication beyond that.  An
explicit C{admin.socket} should likewise live in a directory only that user
can enter, since the file exists for an instant before it is made 0600.

The protocol is one JSON object per line each way, UTF-8, lines ending in
C{"\\n"}: a request C{{"command": "connections"}} is answered by
C{{"ok": true, ...}}, and anything that cannot be done by
C{{"ok": false, "error": "one line"}}.  A client may send several requests
on one connection; answers come in order.  A request longer than
L{MAX_REQUEST} bytes is answered with an error and the connection closed;
an idle connection is closed after L{IDLE_TIMEOUT} seconds, one that does
not read its answers once L{SEND_QUEUE_LIMIT} bytes wait for it, and at
most L{MAX_CONNECTIONS} are served at once, so no client can hold the node
or the other clients up.  Answers are built from what the node holds in
memory, but for C{stats} (below); nothing waits on the network.

C{connections} answers::

    {"ok": true, "time": 1700000000.0,
     "components": [{"domain": "muc.example.org", "peer": "127.0.0.1:40312",
                     "method": "handshake", "since": 1699999000.0}],
     "s2s": [{"direction": "in", "local": "example.org", "remote": "example.net",
              "method": "EXTERNAL", "peer": "192.0.2.7:5269",
              "since": 1699999500.0, "encrypted": true}],
     "c2s": {"sessions": 12, "connections": 13}}

Times are the node's clock (seconds since the epoch); C{time} is the node's
now, so a client computes ages without trusting its own clock.  C{s2s}
lists what the service named C{"s2s"} reports (C{method} is C{"EXTERNAL"},
C{"dialback"} or C{null} while the peer has not authenticated), and is
empty on a node without one.

C{hooks} answers, for every served domain (C{server.domains}), what firing
each hook for that domain runs, in order, with the priority band of each
callback (L{xmppd.core.hooks.Band}); and under C{node} the callbacks
registered for every domain rather than one (they are also merged, in
order, into each domain's list)::

    {"ok": true,
     "domains": [{"domain": "example.org", "hooks": [
         {"hook": "message/bare", "callbacks": [
             {"callback": "xmppd.features.privacy.policy.Policy.onStanza",
              "band": "POLICY"}, ...]}, ...]}],
     "node": [{"hook": "disco/items", "callbacks": [...]}]}

A callback is named by its module and qualified name
(L{xmppd.core.hooks.describe}); hooks nobody listens to are left out.  With
C{"domain": "example.org"} in the request, only that domain is listed, and
C{node} is left out; a domain that is not served is an error.

C{sessions}, C{kick}, C{announce}, C{stats}, C{rooms} and C{destroy-room} (issue 17) call
the node's admin operations (L{xmppd.admin.operations}), the same ones the
ad-hoc commands call, and answer with what they return:

    {"command": "sessions", "domain": "example.org"}  (domain optional)
      -> {"ok": true, "time": ..., "sessions": [{"jid": "romeo@example.org/phone",
          "available": true, "priority": 0, "peer": "192.0.2.1", "encrypted": true,
          "transport": "..."}]}
    {"command": "kick", "jid": "romeo@example.org"}  (a full JID: that session)
      -> {"ok": true, "jid": "romeo@example.org", "ended": 2}
    {"command": "announce", "domain": "example.org", "text": "...", "subject": "..."}
      -> {"ok": true, "domain": "example.org", "sent": 12}
    {"command": "stats"} -> {"ok": true, "users": {"registered": ..., "online": ...,
          "sessions": ..., "domains": {...}}, "rooms": 3, "occupants": 7, "s2s": 1, ...}
    {"command": "rooms"} -> {"ok": true, "rooms": [{"jid": "...", "occupants": 2,
          "persistent": false, "domain": "example.org"}]}
    {"command": "destroy-room", "room": "room@conference.example.org", "reason": "..."}
      (reason optional) -> {"ok": true, "room": "...", "destroyed": true, "occupants": 2}

C{destroy-room} destroys a room of this process's MUC service as its
owner would (XEP-0045 §10.9: occupants get unavailable presence with
C{<destroy/>} and the reason, the room leaves storage); a room of an
external MUC component or held by another cluster node is refused, with
where to destroy it instead (L{xmppd.admin.operations}).

C{stats} waits on storage (the number of accounts): a command may answer
later, and answers still go out in the order the requests came.  A
refusal of an operation (L{xmppd.admin.operations.OperationError}) is
C{{"ok": false, "error": "one line"}}.

Starting: a socket file left by a node that was killed is removed, but only
once connecting to it is refused (nobody answers); when another node
answers there, this one does not start (one line, see
L{xmppd.core.server.XMPPServer.fatal}), since two nodes on one data directory
would share the server secret and the self-signed certificate but not
their sessions.  Stopping removes the file.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import time
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IReactorUNIX
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin

from xmppd.admin.adhoc import AdHocHandler
from xmppd.admin.operations import AdminOperations, OperationError
from xmppd.admin.reload import ReloadRefused, reload
from xmppd.config import Config, ConfigError, describe, normalizeDomain, option, section
from xmppd.core.hooks import OBSERVE
from xmppd.core.hooks import describe as callbackName
from xmppd.stream.limits import SendQueueWatch

#: Longest request line in bytes.
MAX_REQUEST = 4096
#: Admin connections served at once; more are turned away with an error.
MAX_CONNECTIONS = 16
#: Seconds an admin connection may stay silent before it is closed.
IDLE_TIMEOUT = 60.0
#: Bytes of answers queued for a client that does not read before it is dropped.
SEND_QUEUE_LIMIT = 1048576
#: Longest answer line a client accepts, in bytes.
MAX_RESPONSE = 16 * 1048576
#: Seconds to wait for a connection or an answer (starting up and xmppctl).
TIMEOUT = 10.0
#: Longest path the kernel takes for a UNIX socket, in bytes (sun_path less its NUL).
MAX_PATH = 107
#: The default of C{admin.socket}, relative to C{server.data_dir}.
DEFAULT_SOCKET = "admin.sock"


def socketOption() -> Callable[[str, Any], str]:
    """A path kept as written (relative ones are taken in C{server.data_dir}); C{""} disables."""

    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path (a string), or \"\" to disable "
                              f"the admin socket, got {describe(value)}")
        if "\0" in value:
            raise ConfigError(f"{key}: a path cannot contain a NUL character")
        return os.path.expanduser(value)

    return check


@section("admin")
@dataclasses.dataclass(frozen=True)
class AdminConfig:
    socket: str = option(
        DEFAULT_SOCKET, socketOption(),
        "the local admin socket that xmppctl connections and hooks ask, a path relative to "
        "server.data_dir unless absolute; \"\" disables it")


def socketPath(config: Config) -> str | None:
    """Where the node's admin socket is, or C{None} when it is disabled."""
    if not config.admin.socket:
        return None
    return os.path.join(config.server.data_dir, config.admin.socket)


def pathTooLong(path: str) -> bool:
    return len(os.fsencode(path)) > MAX_PATH


class AdminError(Exception):
    """
    The admin socket cannot be used; C{str()} is one line for the operator.
    C{unusable} marks a configuration problem rather than a state of the node.
    """

    def __init__(self, message: str, unusable: bool = False):
        super().__init__(message)
        self.unusable = unusable


class NotRunning(AdminError):
    """Nothing answers on the admin socket: no node runs with this configuration."""


class Refused(Exception):
    """A command cannot do what the request asks; C{str()} is the one-line answer."""


def encode(answer: dict) -> bytes:
    """One answer line; C{ensure_ascii} keeps any newline out of it."""
    return json.dumps(answer, separators=(",", ":"), default=str).encode("ascii")


# The server's side.


class AdminProtocol(LineOnlyReceiver, TimeoutMixin):
    """One admin connection: requests in, answers out, in order."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST
    log = Logger()

    def __init__(self, factory: "AdminFactory"):
        self.factory = factory
        self.callLater = factory.service.clock.callLater
        self.closing = False
        #: The last answer under way; the next request's waits for it.
        self.pending = defer.succeed(None)

    def connectionMade(self) -> None:
        self.sendQueue = SendQueueWatch(SEND_QUEUE_LIMIT, self.onSendQueueOverflow)
        self.transport.registerProducer(self.sendQueue, True)
        if len(self.factory.streams) >= MAX_CONNECTIONS:
            self.answer({"ok": False, "error": f"too many admin connections (at most "
                                               f"{MAX_CONNECTIONS}); try again later"})
            self.close()
            return
        self.factory.streams.add(self)
        self.setTimeout(IDLE_TIMEOUT)

    def connectionLost(self, reason=None) -> None:
        self.closing = True
        self.setTimeout(None)
        self.factory.streams.discard(self)

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        self.resetTimeout()
        line = line.strip()
        if line:
            # Answers go out in order even when one waits (on storage).
            self.pending.addCallback(lambda _: self.factory.service.handle(line))
            self.pending.addCallback(self.answerUnlessClosed)

    def answerUnlessClosed(self, answer: dict) -> None:
        if not self.closing:
            self.answer(answer)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.closing:
            return
        self.answer({"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
        self.close()

    def answer(self, answer: dict) -> None:
        data = encode(answer) + self.delimiter
        self.transport.write(data)
        self.sendQueue.written(len(data))

    def timeoutConnection(self) -> None:
        self.close()

    def onSendQueueOverflow(self) -> None:
        self.log.warn("Dropping an admin connection that does not read its answers")
        self.closing = True
        self.transport.abortConnection()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.setTimeout(None)
        # The transport closes only once no producer is registered.
        self.transport.unregisterProducer()
        self.transport.loseConnection()


class AdminFactory(protocol.ServerFactory):
    def __init__(self, service: "AdminService"):
        self.service = service
        #: The connections being served, so stopping can close them.
        self.streams: set[AdminProtocol] = set()

    def buildProtocol(self, addr) -> AdminProtocol:
        return AdminProtocol(self)


class AdminService(service.Service):
    """
    The admin socket of one node (see the module docstring).  C{ready} fires
    with the listening port, or C{None} when there is no socket; C{commands}
    maps a command's name to a function of the request returning the answer
    (without C{"ok"}), so another part of the node may add its own.
    """

    name = "admin"
    log = Logger()

    def __init__(self, server, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.server = server
        self.reactor = reactor
        self.clock = server.clock
        self.path = socketPath(server.config)
        self.factory = AdminFactory(self)
        self.port = None
        self.ready = defer.Deferred()
        #: The node's admin operations, which every way in calls (DESIGN §7).
        self.operations = server.adminOperations = AdminOperations(server)
        # The ad-hoc command's reload (XEP-0133) is this node's live reload.
        self.operations.reloader = self.reloadForCommand
        self.hooked = False
        self.commands: dict[str, Callable[[dict], Any]] = {
            "connections": self.connections,
            "hooks": self.hooks,
            "sessions": self.sessions,
            "kick": self.kick,
            "announce": self.announce,
            "stats": self.stats,
            "rooms": self.rooms,
            "destroy-room": self.destroyRoom,
            "reload": self.reload,
        }

    def serveDomain(self, local) -> None:
        """Answer the ad-hoc commands (XEP-0050/0133) at the served domain C{local}."""
        local.addHandler(AdHocHandler(local.domain, self.operations, self.clock))

    def startService(self) -> None:
        service.Service.startService(self)
        if not self.hooked:
            # The message of the day, at login (once per session).
            self.hooked = True
            self.server.hooks.add("session/bound", self.operations.onSessionBound, OBSERVE)
        if self.ready.called:
            self.ready = defer.Deferred()
        d = defer.Deferred.fromCoroutine(self.listen())
        d.addCallbacks(self.ready.callback, self.startFailed)

    async def listen(self):
        path = self.path
        if path is None:
            self.log.info("admin.socket is \"\": no admin socket")
            return None
        if not IReactorUNIX.providedBy(self.reactor):
            self.log.warn("No admin socket: this platform has no UNIX sockets")
            return None
        if pathTooLong(path):
            if self.server.config.admin.socket == DEFAULT_SOCKET:
                # The data directory is deep: run without the socket rather
                # than refuse to start a node that used to start.
                self.log.warn("No admin socket: {path} is longer than {limit} bytes; "
                              "set admin.socket to a shorter path",
                              path=path, limit=MAX_PATH)
                return None
            raise AdminError(f"admin.socket {path}: longer than the {MAX_PATH} bytes "
                             f"a UNIX socket path may have")
        await self.removeStale(path)
        try:
            port = self.reactor.listenUNIX(path, self.factory, mode=0o600)
        except error.CannotListenError as e:
            raise AdminError(f"admin.socket {path}: cannot listen: {e.socketError}") from None
        if not self.running:
            # Stopped while starting.
            await defer.maybeDeferred(port.stopListening)
            return None
        self.port = port
        self.log.info("admin.socket listening on {path}", path=path)
        return port

    async def removeStale(self, path: str) -> None:
        """
        Remove a socket file nobody answers on (its node was killed); refuse
        to go on when another node answers, or when the file is no socket.
        """
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        except OSError as e:
            raise AdminError(f"admin.socket {path}: {e.strerror}") from None
        if not stat.S_ISSOCK(mode):
            raise AdminError(f"admin.socket {path}: exists and is not a socket; "
                             f"remove it or choose another path")
        try:
            answered = await connect(self.reactor, path, protocol.Protocol(), TIMEOUT)
        except NotRunning:
            self.log.info("Removing the stale admin socket {path} (nobody answers)",
                          path=path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        answered.transport.loseConnection()
        raise AdminError(f"admin.socket {path}: another xmppd answers there (is it "
                         f"running already with this data_dir?)")

    def startFailed(self, failure) -> None:
        message = (failure.getErrorMessage() if failure.check(AdminError)
                   else f"admin.socket {self.path}: {failure.getErrorMessage()}")
        self.server.fatal(message)
        self.ready.errback(failure)

    def stopService(self):
        """Stop listening (which removes the socket file) and close every admin connection."""
        service.Service.stopService(self)
        for stream in list(self.factory.streams):
            stream.close()
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return None

    # -- requests ------------------------------------------------------------

    def handle(self, line: bytes) -> defer.Deferred:
        """A Deferred of the answer to one request line; never fails."""
        return defer.ensureDeferred(self.handleAsync(line))

    async def handleAsync(self, line: bytes) -> dict:
        try:
            request = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            return {"ok": False, "error": "a request must be UTF-8"}
        except ValueError as e:
            return {"ok": False, "error": f"not JSON: {e}"}
        command = request.get("command") if isinstance(request, dict) else None
        if not isinstance(command, str):
            return {"ok": False, "error": 'expected an object like {"command": "connections"}'}
        handler = self.commands.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {json.dumps(command[:100])} "
                                          f"(known: {', '.join(sorted(self.commands))})"}
        try:
            answer = {"ok": True, **(await defer.maybeDeferred(handler, request))}
            encode(answer)
        except (Refused, OperationError, ReloadRefused) as e:
            return {"ok": False, "error": str(e)}
        except Exception:
            self.log.failure("Admin command {command} failed", command=command)
            return {"ok": False, "error": f"{command} failed; see the server's log"}
        return answer

    def reloadForCommand(self) -> defer.Deferred:
        """
        The live reload for the ad-hoc command: what changed in one line,
        or the file's one-line refusal as the operation's refusal.
        """
        def refused(failure):
            failure.trap(ReloadRefused)
            raise OperationError(failure.getErrorMessage())
        return reload(self.server).addCallbacks(
            lambda changes: "; ".join(changes) or "nothing changed", refused)

    def reload(self, request: dict) -> defer.Deferred:
        """Read the configuration file again and apply it (L{xmppd.admin.reload})."""
        return reload(self.server).addCallback(lambda changes: {"changes": changes})

    def connections(self, request: dict) -> dict:
        """The component and s2s connections, and how many clients are online."""
        return self.operations.connections()

    def hooks(self, request: dict) -> dict:
        """Who listens to which hook, in order: per served domain, and node-wide."""
        hooks = self.server.hooks
        domains = list(self.server.config.server.domains)
        wanted = request.get("domain")
        if wanted is not None:
            domains = [self.servedDomain(wanted, domains)]
        answer: dict[str, Any] = {"domains": [
            {"domain": domain, "hooks": listing(hooks.listeners(domain))}
            for domain in domains]}
        if wanted is None:
            answer["node"] = listing(hooks.listeners(None, own=True))
        return answer

    def sessions(self, request: dict) -> dict:
        """The client sessions bound here (of C{domain} when given)."""
        domain = request.get("domain")
        if domain is not None:
            domain = self.operations.servedDomain(domain)
        return {"time": self.clock.seconds(), "sessions": self.operations.sessions(domain)}

    def kick(self, request: dict) -> dict:
        """End the sessions of C{jid} (a bare JID: all of them) with a stream error."""
        jid = self.operations.fullOrBare(request.get("jid"))
        return {"jid": jid.full(), "ended": self.operations.endSessions(jid)}

    def announce(self, request: dict) -> dict:
        """Send C{text} from C{domain} to every session of that domain."""
        domain = self.operations.servedDomain(request.get("domain"))
        subject = request.get("subject")
        return {"domain": domain, "sent": self.operations.announce(
            domain, request.get("text"), subject if isinstance(subject, str) else None)}

    async def stats(self, request: dict) -> dict:
        """Users, sessions, rooms, s2s and components of the node."""
        return await self.operations.stats()

    def rooms(self, request: dict) -> dict:
        """The MUC rooms held here, with their numbers of occupants."""
        return {"rooms": self.operations.rooms()}

    async def destroyRoom(self, request: dict) -> dict:
        """Destroy room C{room} (XEP-0045 §10.9), telling its occupants C{reason}."""
        room = self.operations.room(request.get("room"))
        reason = request.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise Refused("reason: expected a string")
        told = await self.operations.destroyRoom(room, reason)
        return {"room": room.full(), "destroyed": True, "occupants": told}

    @staticmethod
    def servedDomain(wanted: Any, domains: list[str]) -> str:
        """C{wanted} as one of C{domains}, in their canonical form; else L{Refused}."""
        if not isinstance(wanted, str):
            raise Refused("domain: expected a string")
        try:
            domain = normalizeDomain(wanted)
        except ValueError:
            domain = None
        if domain not in domains:
            raise Refused(f"{wanted[:100]} is not served here "
                          f"(server.domains: {', '.join(domains)})")
        return domain

    def child(self, name: str, ask: Callable[[Any], list]) -> list:
        """C{ask(service)} of the node's service C{name}, or C{[]} when it has none."""
        try:
            child = self.server.getServiceNamed(name)
        except KeyError:
            return []
        return list(ask(child))


def listing(rows: list) -> list[dict]:
    """L{xmppd.core.hooks.Hooks.listeners} rows as the C{hooks} answer gives them."""
    return [{"hook": name,
             "callbacks": [{"callback": callbackName(callback), "band": str(band)}
                           for callback, band in listening]}
            for name, listening in rows]


# The client's side (xmppctl).


class AdminClientProtocol(LineOnlyReceiver):
    """Sends requests and hands back the raw answer lines, in order."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_RESPONSE

    def __init__(self):
        self.waiting: list[defer.Deferred] = []
        self.gone = False

    def request(self, request: dict) -> defer.Deferred:
        """A Deferred firing with the answer line (bytes) to C{request}."""
        d = defer.Deferred()
        if self.gone:
            d.errback(AdminError("the server closed the admin connection"))
            return d
        self.waiting.append(d)
        self.sendLine(json.dumps(request).encode("utf-8"))
        return d

    def lineReceived(self, line: bytes) -> None:
        if self.waiting:
            self.waiting.pop(0).callback(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.fail(AdminError(f"the server's answer is longer than {MAX_RESPONSE} bytes"))
        self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        self.gone = True
        self.fail(AdminError("the server closed the admin connection without answering"))

    def fail(self, exception: Exception) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.errback(exception)


async def connect(reactor, path: str, client: protocol.Protocol,
                  timeout: float = TIMEOUT) -> protocol.Protocol:
    """
    Connect C{client} to the admin socket at C{path}.

    @raise NotRunning: there is no socket file, or nobody answers on it.
    @raise AdminError: any other reason (the message says which).
    """
    if pathTooLong(path):
        raise AdminError(f"the admin socket path {path} is longer than {MAX_PATH} bytes; "
                         f"set admin.socket to a shorter path", unusable=True)
    endpoint = UNIXClientEndpoint(reactor, path, timeout=timeout)
    try:
        return await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    except error.ConnectionRefusedError:
        raise NotRunning(f"xmppd is not running (nobody answers on the admin socket "
                         f"at {path})") from None
    except error.TimeoutError:
        raise AdminError(f"the admin socket at {path} did not accept the connection "
                         f"within {timeout:g} s") from None
    except error.ConnectError as e:
        if e.osError == errno.ENOENT:
            raise NotRunning(f"xmppd is not running (no admin socket at {path})") from None
        if e.osError == errno.EACCES:
            raise AdminError(f"cannot connect to the admin socket at {path}: permission "
                             f"denied (run as the server's user)") from None
        raise AdminError(f"cannot connect to the admin socket at {path}: "
                         f"{os.strerror(e.osError) if isinstance(e.osError, int) else e}"
                         ) from None


async def query(reactor, path: str, request: dict,
                timeout: float = TIMEOUT) -> tuple[dict, bytes]:
    """
    Ask the node at C{path} one request; return its answer, parsed and raw.

    @raise AdminError: no answer (L{NotRunning} when no node runs), or the
        node refused the request (its error message).
    """
    client = await connect(reactor, path, AdminClientProtocol(), timeout)
    try:
        line = await client.request(request).addTimeout(timeout, reactor)
    except defer.TimeoutError:
        raise AdminError(f"no answer on the admin socket at {path} within "
                         f"{timeout:g} s") from None
    finally:
        client.transport.loseConnection()
    try:
        answer = json.loads(line.decode("utf-8"))
    except ValueError:
        raise AdminError("the server's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise AdminError("the server's answer is not a JSON object")
    if answer.get("ok") is not True:
        raise AdminError(f"the server refused: {answer.get('error') or 'no reason given'}")
    return answer, line


async def ask(config: Config, reactor, request: dict,
              timeout: float = TIMEOUT) -> tuple[dict, bytes]:
    """
    Ask the node that runs with C{config} one request (what every C{xmppctl}
    command about the running server does); its answer, parsed and raw.

    @raise AdminError: see L{query}; C{unusable} when the socket is disabled.
    """
    path = socketPath(config)
    if path is None:
        raise AdminError(f"admin.socket is \"\" in {config.path or 'the configuration'}: "
                         f"the admin socket is disabled", unusable=True)
    return await query(reactor, path, request, timeout)


def formatConnections(answer: dict) -> list[str]:
    """The answer to C{connections} as readable tables."""
    now = answer.get("time") or time.time()
    lines = []
    components = answer.get("components") or []
    lines.append(f"components: {len(components)}")
    lines.extend(_table(["DOMAIN", "PEER", "AUTH", "SINCE"], [
        [c.get("domain"), c.get("peer"), c.get("method"), _since(c.get("since"), now)]
        for c in components]))
    s2s = answer.get("s2s") or []
    lines.append(f"s2s: {len(s2s)}")
    lines.extend(_table(["DIR", "LOCAL", "REMOTE", "AUTH", "TLS", "BIDI", "PEER", "SINCE"], [
        [c.get("direction"), c.get("local"), c.get("remote"),
         c.get("method") or "(none yet)", "yes" if c.get("encrypted") else "no",
         "yes" if c.get("bidi") else "no", c.get("peer"), _since(c.get("since"), now)]
        for c in s2s]))
    c2s = answer.get("c2s") or {}
    sessions = c2s.get("sessions", 0)
    lines.append(f"c2s: {sessions} session{'' if sessions == 1 else 's'}"
                 + (f" on {c2s['connections']} connection"
                    f"{'' if c2s['connections'] == 1 else 's'}"
                    if "connections" in c2s else ""))
    return lines


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    cells = [header] + [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in cells]


def _since(since: Any, now: float) -> str:
    if not isinstance(since, (int, float)):
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    return f"{stamp} ({_duration(max(0, now - since))})"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"
