# -*- test-case-name: tests.test_ctl -*-
"""
C{xmppctl check}: whether the server could start with this configuration.

One line per thing checked (the configuration, C{server.data_dir}, the TLS
certificate, the store (for Redis, whether it keeps what it acknowledges) and
the accounts' SCRAM keys, each client listener, whether HTTP File Upload
can run),
each C{ok}, C{warning} or C{error}; any error makes the exit status 1.
Listeners are checked by listening on them for a moment, the only reliable
test that the server could.  C{check certs} and C{check dns DOMAIN} are
L{xmppd.cli.checkmore}.
"""

from __future__ import annotations

import argparse
import errno
import os
from typing import Any

from twisted.internet import defer

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol

from xmppd.cli.common import FAILED, OK, CtlError, say, withStorage, withWholeStorage
from xmppd.config import Config, splitEndpoint
from xmppd.stream import tls

COMMANDS = ("check",)

#: C{check} reports on a memory store instead of refusing it.
PERSISTENT = False

#: Accounts whose credentials are read at once when counting SCRAM keys.
PIPELINE = 32


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    check = commands.add_parser(
        "check", help="check the configuration, certificate, storage and listeners; "
        "'check certs': the certificates; 'check dns DOMAIN': the DNS records")
    check.add_argument("what", nargs="?", choices=("certs", "dns"),
                       help="certs: expiry, names and chain of each domain's certificate; "
                       "dns: SRV and A/AAAA records of DOMAIN against the listeners")
    check.add_argument("domain", nargs="?", metavar="DOMAIN", help="the domain of check dns")
    check.add_argument("--json", action="store_true",
                       help="print the findings of check certs or check dns as JSON")
    check.add_argument("--resolver", metavar="HOST:PORT",
                       help="check dns: ask this DNS server instead of /etc/resolv.conf's")
    check.add_argument("--trust-store", metavar="FILE",
                       help="check certs: verify chains against this PEM bundle instead "
                       "of the system's trust store")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Check C{config}, one line per thing checked; 1 if anything is wrong."""
    if getattr(args, "what", None):
        # check certs, check dns DOMAIN (L{xmppd.cli.checkmore}).
        from xmppd.cli import checkmore
        return await checkmore.run(args, config, reactor)
    report = _Report()
    report.ok("config", f"{config.path or 'built-in defaults'} "
              f"(serving {', '.join(config.server.domains)})")
    dataDirExists = _checkDataDir(config, report)
    _checkCertificate(config, report)
    await _checkStorage(config, reactor, report, dataDirExists)
    for section, key in (("c2s", "endpoint"), ("c2s", "direct_tls_endpoint"),
                         ("http", "endpoint"), ("http", "tls_endpoint")):
        description = getattr(getattr(config, section), key)
        if description:
            await _checkListener(f"{section}.{key} {description}", description, reactor,
                                 report)
    _checkUpload(config, report)
    return FAILED if report.failed else OK


def _checkUpload(config: Config, report: _Report) -> None:
    """HTTP File Upload needs the HTTP service: say when it is switched off by that."""
    if "upload" not in config.server.modules:
        return
    if not (config.http.endpoint or config.http.tls_endpoint):
        report.warning("upload", "off: HTTP is off (http.endpoint and http.tls_endpoint are "
                       "empty), so no upload service runs")
    elif not config.upload.public_url and not config.http.tls_endpoint:
        report.warning("upload", "upload URLs will be plain http:// (no http.tls_endpoint); "
                       "behind a TLS proxy, set upload.public_url")
    else:
        report.ok("upload", f"files up to {config.upload.max_file_size} bytes in "
                  f"{os.path.join(config.server.data_dir, 'upload')}")


class _Report:
    """The lines of C{xmppctl check}; any error makes the exit status 1."""

    def __init__(self) -> None:
        self.failed = False

    def ok(self, what: str, detail: str) -> None:
        say(f"ok       {what}: {detail}")

    def warning(self, what: str, detail: str) -> None:
        say(f"warning  {what}: {detail}")

    def error(self, what: str, detail: str) -> None:
        self.failed = True
        say(f"error    {what}: {detail}")



def _checkDataDir(config: Config, report: _Report) -> bool:
    """Report on C{server.data_dir}; return whether it exists."""
    path = config.server.data_dir
    if os.path.isdir(path):
        if os.access(path, os.W_OK | os.X_OK):
            report.ok("server.data_dir", f"{path} is writable")
        else:
            report.error("server.data_dir", f"{path} is not writable by this user")
        return True
    if os.path.exists(path):
        report.error("server.data_dir", f"{path} exists and is not a directory")
        return False
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
        report.ok("server.data_dir", f"{path} will be created on first start")
    else:
        report.error("server.data_dir", f"{path} does not exist and cannot be "
                     f"created ({parent} is not writable by this user)")
    return False


def _checkCertificate(config: Config, report: _Report) -> None:
    if not config.tls.certificate:
        what = "tls (self-signed)"
        certPath, keyPath = tls.selfSignedPaths(config)
        reason = tls.selfSignedRenewalReason(config)
        if reason == "none yet":
            report.ok(what, f"will be generated in {os.path.dirname(certPath)} "
                      f"on first start")
            return
        if reason is not None:
            report.ok(what, f"{certPath} will be replaced on next start ({reason})")
            return
    else:
        what = "tls"
        certPath, keyPath = config.tls.certificate, config.tls.private_key
    try:
        credentials = tls.loadCertificate(certPath, keyPath)
    except tls.TLSConfigError as e:
        report.error(what, str(e))
        return
    for problem in tls.certificateProblems(credentials, config.server.domains):
        report.warning(what, problem)
    report.ok(what, f"{certPath} names {', '.join(credentials.domains)}; valid "
              f"until {credentials.notValidAfter:%Y-%m-%d}")


async def _checkStorage(config: Config, reactor: Any, report: _Report,
                        dataDirExists: bool) -> None:
    backend = config.storage.backend
    if backend == "memory":
        report.warning("storage", 'backend "memory" keeps nothing across restarts')
        return
    if backend == "redis":
        await _checkRedis(config, reactor, report)
        return
    if not dataDirExists:
        report.ok("storage", f"{backend}: the database will be created on first start")
        return
    try:
        accounts, withoutSHA256 = await withStorage(config, reactor, _accountsWithoutSHA256)
    except CtlError as e:
        report.error("storage", str(e).removeprefix("storage: "))
    else:
        report.ok("storage", f"{backend} opens in {config.server.data_dir} "
                  f"({len(accounts)} account{'' if len(accounts) == 1 else 's'})")
        _reportSHA256(config, report, len(accounts), withoutSHA256)


async def _checkRedis(config: Config, reactor: Any, report: _Report) -> None:
    """
    Whether Redis answers, and whether it keeps what it acknowledges
    (L{xmppd.storage.redis.engine}): a Redis that cannot is an error, or,
    with C{storage.redis_unsafe}, a warning that says what may be lost.
    """

    async def inspect(storage):
        counted = await _accountsWithoutSHA256(storage.users)
        return storage.mode, storage.setup, counted

    try:
        mode, setup, (accounts, withoutSHA256) = await withWholeStorage(config, reactor, inspect)
    except CtlError as e:
        report.error("storage", str(e).removeprefix("storage: "))
        return
    address = config.storage.redis
    counted = f"{len(accounts)} account{'' if len(accounts) == 1 else 's'}"
    if mode == "always":
        report.ok("storage", f"Redis at {address} ({setup}: every write is on disk "
                  f"before it is acknowledged; {counted})")
    elif mode == "waitaof":
        report.ok("storage", f"Redis at {address} ({setup}; every write waits for "
                  f"WAITAOF before it is acknowledged; {counted})")
    else:
        report.warning("storage", f"Redis at {address} {setup}: acknowledged messages "
                       f"may be lost on a crash or power failure (storage.redis_unsafe "
                       f"is set); set appendonly yes and appendfsync always")
    _reportSHA256(config, report, len(accounts), withoutSHA256)


async def _accountsWithoutSHA256(users) -> tuple[list, int]:
    """Every account, and how many have no SCRAM-SHA-256 keys."""
    accounts = await users.listUsers()
    queue = iter(accounts)
    without = 0

    async def worker() -> None:
        nonlocal without
        for username, domain in queue:
            credentials = await users.getCredentials(username, domain) or {}
            without += "SCRAM-SHA-256" not in credentials

    await defer.gatherResults([defer.Deferred.fromCoroutine(worker())
                               for _ in range(PIPELINE)])
    return accounts, without


def _reportSHA256(config: Config, report: _Report, accounts: int, without: int) -> None:
    """
    Accounts imported with SCRAM-SHA-1 keys only (ejabberd exports) cannot
    use SCRAM-SHA-256 until a PLAIN login adds the keys; clients that never
    try another mechanism need it left out of C{sasl.mechanisms} meanwhile.
    """
    offered = any(name.startswith("SCRAM-SHA-256") for name in config.sasl.mechanisms)
    what = "sasl"
    if not without:
        if offered:
            report.ok(what, "every account has SCRAM-SHA-256 keys")
        else:
            report.ok(what, "every account has SCRAM-SHA-256 keys; sasl.mechanisms may "
                      "offer SCRAM-SHA-256 again")
        return
    counted = (f"{without} of {accounts} account{'' if accounts == 1 else 's'} "
               f"{'has' if without == 1 else 'have'} no SCRAM-SHA-256 keys yet (they get "
               f"them at their next PLAIN login)")
    if offered:
        report.warning(what, f"{counted}; clients choosing SCRAM-SHA-256 are told to use "
                       f"another mechanism, and those that never do (go-xmpp) cannot "
                       f"log in until sasl.mechanisms leaves SCRAM-SHA-256 out")
    else:
        report.ok(what, f"{counted}; SCRAM-SHA-256 is not offered (sasl.mechanisms)")


async def _checkListener(what: str, description: str, reactor: Any,
                         report: _Report) -> None:
    """Try to listen now, the only reliable test that the server could."""
    kind = splitEndpoint(description)[0][0].lower()
    if kind == "systemd":
        report.ok(what, "inherited from systemd; not checked")
        return
    try:
        port = await serverFromString(reactor, description).listen(
            Factory.forProtocol(Protocol))
    except CannotListenError as e:
        code = getattr(e.socketError, "errno", None)
        if code == errno.EADDRINUSE:
            report.warning(what, "port in use (is the server already running?)")
        elif code == errno.EACCES:
            report.error(what, "permission denied (ports below 1024 need privileges)")
        elif code == errno.EADDRNOTAVAIL:
            report.error(what, "this machine has no such address")
        else:
            report.error(what, f"cannot listen: {e.socketError}")
        return
    except OSError as e:
        report.error(what, f"cannot listen: {e.strerror or e}")
        return
    await port.stopListening()
    report.ok(what, "can listen")
