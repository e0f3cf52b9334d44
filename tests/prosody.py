"""
A real Prosody for interoperability tests (tests/test_interop_prosody.py):
Debian's C{prosody} package, run from a configuration written into the
test's C{tmp_path}, on loopback, and stopped at the end, by what every
foreign server shares (L{tests.foreignserver.ForeignServer}); it can be
told to ask a small DNS server (L{tests.foreignserver.Zone}).

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

import os
import shutil

from twisted.internet.utils import getProcessOutputAndValue

from tests.e2e import TIMEOUT, password, reactor
from tests.foreignserver import ForeignServer, Zone
from xmppd.stream.tls import generateSelfSigned

#: Seconds Prosody has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0

__all__ = ["Prosody", "ProsodyError", "Zone", "findProsody"]


def findProsody() -> tuple[str, str] | str:
    """The paths of C{prosody} and C{prosodyctl}, or why they cannot be used."""
    prosody, prosodyctl = shutil.which("prosody"), shutil.which("prosodyctl")
    if prosody is None or prosodyctl is None:
        return ("Prosody is not installed (no prosody/prosodyctl on PATH); "
                "`apt-get install prosody` lets this test run")
    return prosody, prosodyctl


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


class ProsodyError(Exception):
    """Prosody could not be set up, started or stopped: the message quotes its log."""


class Prosody(ForeignServer):
    """
    One Prosody serving C{domain} from C{directory}, reached by clients at
    127.0.0.1:L{c2sPort} and by servers at 127.0.0.1:L{s2sPort}, STARTTLS
    required on both; it authenticates servers by dialback when it does not
    trust their certificates (C{s2s_secure_auth = false}).  C{settings}
    add to or replace the global options.

    Like L{tests.e2e.Server}, it makes L{tests.e2e.Client}s (C{client},
    C{login}) and disconnects them in C{close}
    (L{tests.foreignserver.ForeignServer}).
    """

    name = "Prosody"
    errorType = ProsodyError
    stopTimeout = STOP_TIMEOUT

    def __init__(self, directory, domain: str, executables: tuple[str, str], **settings):
        directory.mkdir(parents=True, exist_ok=True)
        ForeignServer.__init__(self, directory, domain)
        self.prosodyPath, self.prosodyctlPath = executables
        self.configPath = directory / "prosody.cfg.lua"
        self.logPath = directory / "prosody.log"
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
        await self.spawn(self.prosodyPath,
                         [self.prosodyPath, "--config", str(self.configPath), "-F"],
                         env=dict(os.environ))
