# -*- test-case-name: tests.test_ctl -*-
"""
C{xmppctl}: manage accounts and check a configuration from the command line.

    xmppctl [--config FILE] adduser romeo@example.org [--password P]
    xmppctl [--config FILE] passwd romeo@example.org [--password P]
    xmppctl [--config FILE] deluser romeo@example.org
    xmppctl [--config FILE] users [example.org]
    xmppctl [--config FILE] import FILE... [--replace] [--dry-run]
    xmppctl [--config FILE] export FILE [--domain example.org]
    xmppctl [--config FILE] check
    xmppctl [--config FILE] connections [--json]

The configuration is the server's own (C{--config}, else C{$XMPPD_CONFIG},
else C{./xmppd.toml} when it exists, else the built-in defaults), so
C{xmppctl} opens the same store the server does; SQLite lets both use it at
once.  Without C{--password}, C{adduser} and C{passwd} ask twice on a
terminal, and otherwise read one line from standard input as the password,
for scripts (C{echo "$PW" | xmppctl adduser ...}) that should keep
passwords out of the process list.

C{import} and C{export} move accounts in the XEP-0227 format (see
L{xmppd.cli.pie}): from Prosody (C{prosody-migrator}'s xep0227 store, one file
per user: pass them all), from ejabberd (C{export_piefxis}: pass the main
file, its XIncludes are followed) or from another xmppd.  Every file is
read and checked before anything is written, so a bad file changes nothing;
accounts that exist already are refused unless C{--replace} is given, which
replaces their credentials, roster, vCard and private XML.  Plain passwords
become SCRAM credentials (SHA-1 and SHA-256) on import; accounts imported
with only SCRAM-SHA-1 credentials log in with SCRAM-SHA-1 or PLAIN, not
SCRAM-SHA-256, until their password is set again.  Offline messages are
kept, for the offline feature to deliver, under the account-data key
C{offline-import} (a JSON list of serialized messages).  C{export} writes
every account of every served domain (or of C{--domain}) with its SCRAM
credentials to a new file readable only by its owner (XEP-0227 §6), then
renames it over C{FILE}, so a reader never sees half a file.

C{connections} asks the running server, over its admin socket
(C{admin.socket}, see L{xmppd.admin.service}), for its component and
server-to-server connections (with how each peer authenticated) and its
number of client sessions, and prints them as tables, or with C{--json}
as the server's JSON answer, one line.  When no server runs with this
configuration it says so in one line and exits with 1.

Exit status: 0 done; 1 the operation was refused or failed (the account
exists or does not, the address or password is invalid, C{check} found an
error); 2 the command line or the configuration cannot be used.  Every error
is one line on standard error starting with C{xmppctl: }; a traceback is
printed only with C{--debug}.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import sqlite3
import sys
import traceback
from typing import Any, TextIO

from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol

from xmppd.stream import tls
from xmppd.config import (CONFIG_ENVIRONMENT, DEFAULT_CONFIG, Config, ConfigError,
                          findConfigFile, loadConfig, normalizeDomain, splitEndpoint)
from xmppd.config.hosts import hostKey, hostSettings
from xmppd.core.jid import InvalidJID, prepLocalpart
from xmppd.core.scram import InvalidPassword, makeCredentials
from xmppd.storage import StorageError, makeStorage
from xmppd.storage.interfaces import NoSuchUser, UserExists

PROG = "xmppctl"

#: Exit statuses.
OK, FAILED, USAGE = 0, 1, 2


class CtlError(Exception):
    """A one-line message for the operator and the exit status that goes with it."""

    def __init__(self, message: str, status: int = FAILED):
        super().__init__(message)
        self.status = status


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage the accounts of an xmppd server and check "
        "its configuration.")
    parser.add_argument(
        "--config", metavar="FILE",
        help=f"configuration file (default: ${CONFIG_ENVIRONMENT}, else "
        f"./{DEFAULT_CONFIG} if it exists, else the built-in defaults)")
    parser.add_argument("--debug", action="store_true",
                        help="print a traceback on unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    passwordHelp = ("the password; visible to other users of this machine, so "
                    "prefer the prompt or one line on standard input")
    adduser = commands.add_parser("adduser", help="create an account")
    adduser.add_argument("jid", metavar="USER@DOMAIN")
    adduser.add_argument("--password", help=passwordHelp)
    passwd = commands.add_parser("passwd", help="set the password of an account")
    passwd.add_argument("jid", metavar="USER@DOMAIN")
    passwd.add_argument("--password", help=passwordHelp)
    deluser = commands.add_parser("deluser", help="remove an account and all its data")
    deluser.add_argument("jid", metavar="USER@DOMAIN")
    users = commands.add_parser("users", help="list accounts, one address per line")
    users.add_argument("domain", nargs="?", metavar="DOMAIN")
    importer = commands.add_parser(
        "import", help="import accounts from XEP-0227 files (Prosody, ejabberd, "
        "xmppctl export)")
    importer.add_argument("files", nargs="+", metavar="FILE",
                          help='a XEP-0227 file ("-" for standard input)')
    importer.add_argument("--replace", action="store_true",
                          help="replace the credentials, roster, vCard and private "
                          "XML of accounts that exist already (default: refuse)")
    importer.add_argument("--dry-run", action="store_true",
                          help="check the files and say what would be imported")
    exporter = commands.add_parser("export", help="write accounts to a XEP-0227 file")
    exporter.add_argument("file", metavar="FILE",
                          help='the file to write ("-" for standard output)')
    exporter.add_argument("--domain", metavar="DOMAIN",
                          help="only this domain's accounts (default: every served domain)")
    commands.add_parser("check", help="check the configuration, certificate, "
                        "storage and listeners")
    connections = commands.add_parser(
        "connections", help="list the running server's component and s2s connections")
    connections.add_argument("--json", action="store_true",
                             help="print the server's answer as JSON")
    return parser


def parseAccount(text: str, config: Config) -> tuple[str, str]:
    """
    Split and prepare C{user@domain} (RFC 7622): the localpart with the
    UsernameCaseMapped profile, the domain as L{xmppd.config} prepares
    served domains.  The domain must be served here.

    @raise CtlError: the address is not a valid bare JID of a served domain.
    """
    localpart, at, domainpart = text.partition("@")
    if not at or not localpart or not domainpart or "@" in domainpart or "/" in domainpart:
        raise CtlError(f"{text!r} is not an account address like romeo@"
                       f"{config.server.domains[0]}")
    try:
        username = prepLocalpart(localpart)
    except InvalidJID:
        raise CtlError(f"{localpart!r} is not a valid username (RFC 7622 "
                       f"localpart)") from None
    return username, servedDomain(domainpart, config)


def servedDomain(text: str, config: Config) -> str:
    """C{text} prepared as a domain, which must be one of C{server.domains}."""
    try:
        domain = normalizeDomain(text)
    except ValueError:
        domain = None
    if domain not in config.server.domains:
        raise CtlError(f"{text} is not served here (server.domains: "
                       f"{', '.join(config.server.domains)})")
    return domain


def readPassword(jid: str, stdin: TextIO | None = None) -> str:
    """
    Ask twice on a terminal; otherwise take one line of C{stdin}.

    @raise CtlError: the two entries differ or there is no input.
    """
    stdin = sys.stdin if stdin is None else stdin
    try:
        if stdin.isatty():
            password = getpass.getpass(f"Password for {jid}: ")
            if getpass.getpass("Same password again: ") != password:
                raise CtlError("the passwords do not match; nothing changed")
            return password
        line = stdin.readline()
    except (EOFError, KeyboardInterrupt):
        raise CtlError("no password given; nothing changed") from None
    if not line:
        raise CtlError("no password on standard input; nothing changed")
    return line.removesuffix("\n").removesuffix("\r")


def _say(line: str, stream: TextIO | None = None) -> None:
    print(line, file=stream or sys.stdout, flush=True)


def _fail(message: str) -> None:
    _say(f"{PROG}: {message}", sys.stderr)


async def runCommand(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """
    Do what C{args} (from L{buildParser}) asks with C{config}, printing
    results on standard output and errors on standard error.  Passwords
    must already be in C{args.password}: L{main} asks for them before the
    reactor runs.

    @return: the exit status.
    """
    try:
        if args.command == "check":
            return await _check(config, reactor)
        if args.command == "connections":
            return await _connections(args, config, reactor)
        if config.storage.backend == "memory":
            raise CtlError('storage.backend = "memory" keeps no data between processes; '
                           f'{PROG} needs a persistent backend', USAGE)
        if args.command in ("import", "export"):
            # Imported here: portability builds on this module's helpers.
            from xmppd.cli import portability
            run = portability.runImport if args.command == "import" else portability.runExport
            return await run(args, config, reactor)
        return await _manageAccounts(args, config, reactor)
    except CtlError as e:
        _fail(str(e))
        return e.status


async def _connections(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    # Imported here: only this command talks to the running server.
    from xmppd.admin import service as admin
    try:
        lines = await admin.connectionsReport(config, reactor, asJSON=args.json)
    except admin.AdminError as e:
        raise CtlError(str(e), USAGE if e.unusable else FAILED) from None
    for line in lines:
        _say(line)
    return OK


async def _manageAccounts(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    if args.command == "users":
        domain = servedDomain(args.domain, config) if args.domain else None
        for username, userDomain in await _withStorage(
                config, reactor, lambda users: users.listUsers(domain)):
            _say(f"{username}@{userDomain}")
        return OK

    username, domain = parseAccount(args.jid, config)
    jid = f"{username}@{domain}"
    if args.command in ("adduser", "passwd"):
        if args.password is None:
            raise CtlError("no password given", USAGE)
        try:
            credentials = makeCredentials(args.password)
        except InvalidPassword as e:
            raise CtlError(f"{e}; nothing changed") from None
    try:
        if args.command == "adduser":
            await _withStorage(config, reactor,
                               lambda users: _addUser(users, config, username, domain,
                                                      credentials))
            _say(f"added {jid}")
        elif args.command == "passwd":
            await _withStorage(config, reactor,
                               lambda users: users.setCredentials(username, domain,
                                                                  credentials))
            _say(f"changed the password of {jid}")
        elif args.command == "deluser":
            await _withStorage(config, reactor,
                               lambda users: users.removeUser(username, domain))
            _say(f"removed {jid} and all its data")
    except UserExists:
        raise CtlError(f"{jid} exists already") from None
    except NoSuchUser:
        raise CtlError(f"there is no account {jid}") from None
    return OK


async def _addUser(users, config: Config, username: str, domain: str, credentials) -> None:
    """Create the account, unless its domain has its max_users accounts already."""
    limit = hostSettings(config, domain).maxUsers
    if limit and len(await users.listUsers(domain)) >= limit:
        raise CtlError(f"{domain} has {limit} accounts, its limit "
                       f"({hostKey(domain, 'max_users')}); nothing changed")
    await users.addUser(username, domain, credentials)


async def _withStorage(config: Config, reactor: Any, operation) -> Any:
    """Open the store, run C{operation(storage.users)}, and always close it."""
    return await _withWholeStorage(config, reactor,
                                   lambda storage: operation(storage.users))


async def _withWholeStorage(config: Config, reactor: Any, operation) -> Any:
    """Open the store, run C{operation(storage)}, and always close it."""
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor)
    try:
        await storage.open()
    except (StorageError, sqlite3.Error) as e:
        await storage.close()
        raise CtlError(f"storage: {e}") from None
    try:
        return await operation(storage)
    except (UserExists, NoSuchUser):
        raise
    except (StorageError, sqlite3.Error) as e:
        raise CtlError(f"storage: {e}") from None
    finally:
        await storage.close()


# check


class _Report:
    """The lines of C{xmppctl check}; any error makes the exit status 1."""

    def __init__(self) -> None:
        self.failed = False

    def ok(self, what: str, detail: str) -> None:
        _say(f"ok       {what}: {detail}")

    def warning(self, what: str, detail: str) -> None:
        _say(f"warning  {what}: {detail}")

    def error(self, what: str, detail: str) -> None:
        self.failed = True
        _say(f"error    {what}: {detail}")


async def _check(config: Config, reactor: Any) -> int:
    report = _Report()
    report.ok("config", f"{config.path or 'built-in defaults'} "
              f"(serving {', '.join(config.server.domains)})")
    dataDirExists = _checkDataDir(config, report)
    _checkCertificate(config, report)
    await _checkStorage(config, reactor, report, dataDirExists)
    for key in ("endpoint", "direct_tls_endpoint"):
        description = getattr(config.c2s, key)
        if description:
            await _checkListener(f"c2s.{key} {description}", description, reactor, report)
    return FAILED if report.failed else OK


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
    if not dataDirExists:
        report.ok("storage", f"{backend}: the database will be created on first start")
        return
    try:
        accounts = await _withStorage(config, reactor, lambda users: users.listUsers())
    except CtlError as e:
        report.error("storage", str(e).removeprefix("storage: "))
    else:
        report.ok("storage", f"{backend} opens in {config.server.data_dir} "
                  f"({len(accounts)} account{'' if len(accounts) == 1 else 's'})")


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


def main(argv: list[str] | None = None) -> int:
    """
    The C{xmppctl} command.  Runs the reactor, so call it once per process;
    tests call L{runCommand} inside their own reactor instead.
    """
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed
        return e.code if isinstance(e.code, int) else USAGE
    try:
        config = loadConfig(findConfigFile(args.config))
        if args.command in ("adduser", "passwd") and args.password is None:
            # Ask before the reactor runs: its signal handlers would turn
            # Ctrl-C at the prompt into a silent stop.
            args.password = readPassword(args.jid)
    except ConfigError as e:
        _fail(str(e))
        return USAGE
    except CtlError as e:
        _fail(str(e))
        return e.status

    from twisted.internet import task

    statuses: list[int] = []

    async def run(reactor: Any) -> None:
        try:
            statuses.append(await runCommand(args, config, reactor))
        except Exception as e:  # noqa: BLE001 - the promise is one line, no traceback
            if args.debug:
                traceback.print_exc()
            _fail(f"unexpected error: {type(e).__name__}: {e} "
                  f"(run with --debug for details)")
            statuses.append(FAILED)

    try:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))
    except SystemExit:
        pass
    if not statuses:
        _fail("interrupted")
        return FAILED
    return statuses[0]


if __name__ == "__main__":
    # Run the module as imported (xmppd.cli.ctl), not this __main__ copy, so the
    # modules built on it (xmppd.cli.portability) share its classes.
    from xmppd.cli import ctl
    sys.exit(ctl.main())
