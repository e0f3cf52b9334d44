"""
A real ejabberd for interoperability tests (tests/test_interop_ejabberd.py):
Debian's C{ejabberd} package, run as an Erlang node of its own from a
configuration written into a temporary directory, on loopback, and stopped
at the end.

The test installs nothing: L{findEjabberd} says why ejabberd cannot be used
(no C{ejabberdctl}, no C{erl}, no ejabberd application), and the test skips
with that reason.  Debian's C{ejabberdctl} runs the node as the
C{ejabberd} user (through C{su}) from C{/etc/ejabberd} and
C{/var/lib/ejabberd}: the system's service.  We take from it only where
the Erlang VM and ejabberd's libraries are (C{ERL}, C{ERL_LIBS}) and start
C{erl} ourselves, as the current user, the way its C{foreground} command
does (C{-noinput -mnesia dir ... -s ejabberd}), with everything pointed at
our directory:

  - C{EJABBERD_CONFIG_PATH}: our C{ejabberd.yml}, written as JSON (which
    YAML reads as it is, so no quoting rules of our own);
  - C{EJABBERD_LOG_PATH} and C{-mnesia dir}: the log and the database
    spool;
  - C{HOME}: Erlang reads and writes its C{.erlang.cookie} there;
  - a node name and cookie of our own, and no epmd: C{-erl_epmd_port P
    -start_epmd false} (OTP 23) makes the node listen for distribution on
    port C{P} of 127.0.0.1 and find every other node there, so we neither
    start an epmd nor meet another one's nodes (RabbitMQ's, or the system
    ejabberd's);
  - C{ERL_INETRC}: the VM's resolver configuration (ERTS "Inet
    Configuration").  ejabberd finds other servers in DNS and has no
    static overrides; our C{inetrc} sends every DNS query of Erlang's own
    resolver to a L{tests.foreignserver.Zone} on loopback and reads no
    C{/etc/resolv.conf} nor C{/etc/hosts}, so no query leaves the machine
    and the system's files stay untouched.  Debian's ejabberd 23.01 asks
    that resolver for SRV records only and looks the target's address up
    with the C library (see L{Ejabberd.publish}).

Accounts are made with ejabberd's own C{ejabberd_ctl} (what C{ejabberdctl
register} runs) from a hidden Erlang node that connects to ours with the
same port and cookie; L{Ejabberd.start} waits until C{status} says the
node has started.  L{Ejabberd.stop} sends SIGTERM (the VM stops cleanly,
C{init:stop()}), then SIGKILL after L{STOP_TIMEOUT}; and the node halts by
itself when its standard input closes (L{HALT_ON_EOF}), so a test process
that is killed leaves no node behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.names import dns

from tests.e2e import password, reactor, sleep
from tests.foreignserver import POLL_INTERVAL, ForeignServer, Zone, freePort
from xmppd.stream.tls import generateSelfSigned

#: Where Debian's package puts the script the rest is read from.
EJABBERDCTL = "/usr/sbin/ejabberdctl"
#: Seconds the Erlang VM has to start ejabberd and listen (it takes 1-3 s).
START_TIMEOUT = 30.0
#: Seconds ejabberd has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0

#: Run by the node at start: it halts when its standard input closes, that
#: is when the test process is gone, even killed, so no node outlives it.
HALT_ON_EOF = ("spawn(fun() -> Port = open_port({fd, 0, 1}, [eof, binary]),"
               " (fun Wait() -> receive {Port, eof} -> erlang:halt(1);"
               " {Port, _} -> Wait() end end)() end)")

__all__ = ["Ejabberd", "EjabberdError", "Zone", "findEjabberd"]


def findEjabberd() -> tuple[str, str] | str:
    """
    C{(erl, ERL_LIBS)} of Debian's ejabberd, read from its C{ejabberdctl},
    or why it cannot be used.
    """
    ctl = shutil.which("ejabberdctl") or (EJABBERDCTL if os.path.exists(EJABBERDCTL) else None)
    if ctl is None:
        return ("ejabberd is not installed (no ejabberdctl); "
                "`apt-get install ejabberd` (scripts/install-test-deps) lets this test run")
    with open(ctl, encoding="utf-8", errors="replace") as f:
        script = f.read()
    erl = re.search(r"""^ERL=["']?([^"'\n]+)""", script, re.M)
    libs = re.search(r"""^ERL_LIBS=["']?([^"'\n]+)""", script, re.M)
    erl = erl.group(1) if erl else shutil.which("erl")
    if not erl or not os.access(erl, os.X_OK):
        return "ejabberd's Erlang VM (erl) is missing (apt-get install erlang-base)"
    if libs is None or not any(name.startswith("ejabberd-")
                               for name in os.listdir(libs.group(1))):
        return "%s names no ERL_LIBS holding ejabberd's application" % (ctl,)
    return erl, libs.group(1)


def erlangString(text: str) -> str:
    """An Erlang string literal (C{"..."}) for the command line and C{inetrc}."""
    return '"%s"' % (text.replace("\\", "\\\\").replace('"', '\\"'),)


class EjabberdError(Exception):
    """ejabberd could not be set up, started or stopped: the message quotes its log."""


class Ejabberd(ForeignServer):
    """
    One ejabberd node serving C{domain} (and its MUC service at
    C{conference.<domain>}) from C{directory}, reached by clients at
    127.0.0.1:L{c2sPort} and by servers at 127.0.0.1:L{s2sPort}, STARTTLS
    required on both (C{starttls_required}, C{s2s_use_starttls: required}).
    Its certificate is self-signed, so other servers authenticate it by
    dialback, and it authenticates them by dialback too (C{mod_s2s_dialback})
    when their certificate does not verify.  It asks L{zone} for every DNS
    name.

    Like L{tests.e2e.Server}, it makes L{tests.e2e.Client}s (C{client},
    C{login}) and disconnects them in C{close}
    (L{tests.foreignserver.ForeignServer}).
    """

    name = "ejabberd"
    errorType = EjabberdError
    startTimeout = START_TIMEOUT
    stopTimeout = STOP_TIMEOUT

    def __init__(self, directory, domain: str, executables: tuple[str, str]):
        ForeignServer.__init__(self, directory, domain)
        self.erl, self.erlLibs = executables
        self.mucDomain = "conference." + domain
        for name in ("spool", "logs", "home"):
            (directory / name).mkdir(parents=True, exist_ok=True)
        self.configPath = directory / "ejabberd.yml"
        self.inetrcPath = directory / "inetrc"
        self.logPath = directory / "logs" / "ejabberd.log"
        self.distPort = freePort()
        token = secrets.token_hex(4)
        self.node = "xmppdtest%s@localhost" % (token,)
        self.cookie = secrets.token_hex(16)
        #: The DNS server this node asks, started by L{start}.
        self.zone = Zone()
        certificate, key = directory / "cert.pem", directory / "key.pem"
        generateSelfSigned([domain, self.mucDomain], str(certificate), str(key))
        # ejabberd wants the key and its certificate in one file.
        self.certificate = directory / "ejabberd.pem"
        self.certificate.write_text(certificate.read_text() + key.read_text())
        self.settings = {
            "loglevel": "info",
            "hosts": [domain],
            "certfiles": [str(self.certificate)],
            "listen": [
                {"port": self.c2sPort, "ip": "127.0.0.1", "module": "ejabberd_c2s",
                 "starttls_required": True},
                {"port": self.s2sPort, "ip": "127.0.0.1", "module": "ejabberd_s2s_in"},
            ],
            "s2s_use_starttls": "required",
            # Our servers listen on 127.0.0.1 only: no attempt at ::1 first.
            "outgoing_s2s_families": ["ipv4"],
            "auth_password_format": "scram",
            "api_permissions": {"console commands": {
                "from": ["ejabberd_ctl"], "who": "all", "what": "*"}},
            "modules": {
                "mod_disco": {},
                "mod_roster": {},
                "mod_ping": {},
                "mod_s2s_dialback": {},
                # Anyone, from any server, may make a room (the default);
                # no history, so that a test sees only what it said.
                "mod_muc": {"host": self.mucDomain, "history_size": 0},
            },
        }

    def writeConfig(self) -> None:
        self.configPath.write_text(json.dumps(self.settings, indent=1) + "\n", encoding="utf-8")
        # Names are looked up in DNS only, at our Zone; "localhost" (the
        # node's own host, for distribution) comes from this file.
        # resolv_conf and hosts_file first: setting either resets the name
        # servers given before it.
        lines = ["{resolv_conf, \"\"}.",
                 "{hosts_file, \"\"}.",
                 "{lookup, [file, dns]}.",
                 "{host, {127,0,0,1}, [\"localhost\"]}.",
                 "{nameserver, {127,0,0,1}, %d}." % (self.zone.port.getHost().port,),
                 "{timeout, 1000}.",
                 "{retry, 1}."]
        self.inetrcPath.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOME": str(self.directory / "home"),
            "ERL_LIBS": self.erlLibs,
            "EJABBERD_CONFIG_PATH": str(self.configPath),
            "EJABBERD_LOG_PATH": str(self.logPath),
            "ERL_INETRC": str(self.inetrcPath),
            "ERL_CRASH_DUMP": str(self.directory / "logs" / "erl_crash.dump"),
        })
        return env

    def distribution(self) -> list[str]:
        """The flags that make a node meet ours: our port, our cookie, no epmd."""
        return ["-setcookie", self.cookie, "-erl_epmd_port", str(self.distPort),
                "-start_epmd", "false"]

    def _ctl(self, *argv: str) -> defer.Deferred:
        return getProcessOutputAndValue(
            self.erl, ["-sname", "ctl%s@localhost" % (secrets.token_hex(4),),
                       *self.distribution(), "-dist_listen", "false", "-hidden",
                       "-noinput", "-s", "ejabberd_ctl", "-extra", self.node, *argv],
            env=self.environment(), path=str(self.directory), reactor=reactor(),
        ).addTimeout(START_TIMEOUT, reactor())

    async def ctl(self, *argv: str) -> str:
        """
        An C{ejabberdctl} command (C{register}, C{registered_users}, ...)
        run against our node; its output, or L{EjabberdError}.
        """
        out, err, status = await self._ctl(*argv)
        if status != 0:
            raise EjabberdError("ejabberdctl %s exited with %s: %s %s\n%s" % (
                argv[0], status, out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"), self.logTail()))
        return out.decode("utf-8", "replace")

    async def addUser(self, user: str, secret: str | None = None) -> None:
        """C{ejabberdctl register user domain password}, as an operator does."""
        await self.ctl("register", user, self.domain, secret or password(user))

    async def start(self) -> None:
        """
        Start the node and wait (at most L{START_TIMEOUT}) until its c2s and
        s2s ports answer and C{ejabberdctl status} says it has started (the
        listeners open while modules are still loading, and a command run
        then can crash the database).
        """
        assert self.process is None, "already running"
        self.zone.start()
        self.writeConfig()
        argv = [self.erl, "-sname", self.node, *self.distribution(),
                "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
                "-noinput", "-mnesia", "dir", erlangString(str(self.directory / "spool")),
                "-eval", HALT_ON_EOF, "-s", "ejabberd"]
        deadline = await self.spawn(self.erl, argv, env=self.environment())
        while True:
            out, err, status = await self._ctl("status")
            if status == 0:
                return
            self.failIfEnded()
            if reactor().seconds() > deadline:
                raise EjabberdError("ejabberd did not say it had started within %s s (%s):\n%s"
                                    % (START_TIMEOUT, out.decode("utf-8", "replace").strip(),
                                       self.logTail()))
            await sleep(POLL_INTERVAL)

    def publish(self, domain: str, port: int) -> None:
        """
        Point C{domain}'s C{_xmpp-server} SRV record, in our L{zone}, at
        C{localhost:port}.

        The target is C{localhost}, not a name of the zone: ejabberd's XMPP
        library (Debian's p1_xmpp 1.6) asks for SRV records through
        Erlang's resolver, which our C{inetrc} points at the zone, but for
        the target's address it calls C{net:getaddrinfo}, the C library's
        resolver, which reads only the system's files; every system
        resolves C{localhost} to loopback (RFC 6761 §6.3).
        """
        self.zone.records[("_xmpp-server._tcp." + domain, dns.SRV)] = [
            dns.Record_SRV(0, 0, port, "localhost")]
