# -*- test-case-name: tests.test_ctl -*-
"""
C{xmppctl}: manage accounts and check a configuration from the command line.

This module builds the command line from the areas of C{xmppctl}, one
module each, and runs the reactor: L{xmppd.cli.accounts} (C{adduser},
C{passwd}, C{deluser}, C{users}), L{xmppd.cli.fast}, L{xmppd.cli.portability} (C{import},
C{export}), L{xmppd.cli.check}, L{xmppd.cli.connections} and
L{xmppd.cli.hooks}, L{xmppd.cli.operate}, L{xmppd.cli.cluster} and L{xmppd.cli.api}; what they share is in L{xmppd.cli.common}.

    xmppctl [--config FILE] adduser romeo@example.org [--password P]
    xmppctl [--config FILE] passwd romeo@example.org [--password P]
    xmppctl [--config FILE] deluser romeo@example.org
    xmppctl [--config FILE] users [example.org]
    xmppctl [--config FILE] fast list romeo@example.org [--json]
    xmppctl [--config FILE] fast revoke romeo@example.org (USER-AGENT-ID | --all) [--json]
    xmppctl [--config FILE] import FILE... [--replace] [--dry-run]
    xmppctl [--config FILE] export FILE [--domain example.org]
    xmppctl [--config FILE] check
    xmppctl [--config FILE] check certs [--json] [--trust-store FILE]
    xmppctl [--config FILE] check dns DOMAIN [--json] [--resolver HOST:PORT]
    xmppctl [--config FILE] connections [--json]
    xmppctl [--config FILE] hooks [--json] [--domain example.org]
    xmppctl [--config FILE] sessions [--json] [--domain example.org]
    xmppctl [--config FILE] kick JID [--json]
    xmppctl [--config FILE] announce DOMAIN TEXT [--subject S] [--json]
    xmppctl [--config FILE] stats [--json]
    xmppctl [--config FILE] rooms [--json]
    xmppctl [--config FILE] rooms destroy ROOMJID [--reason TEXT] [--json]
    xmppctl [--config FILE] cluster [--json]
    xmppctl [--config FILE] drain NODE [--undo] [--timeout SECONDS]
    xmppctl [--config FILE] reload [--json]
    xmppctl [--config FILE] api token create NAME --scope send|admin
    xmppctl [--config FILE] api token list [--json]
    xmppctl [--config FILE] api token revoke NAME
    xmppctl [--config FILE] api token import

The configuration is the server's own (C{--config}, else C{$XMPPD_CONFIG},
else C{./xmppd.toml} when it exists, else the built-in defaults), so
C{xmppctl} opens the same store the server does; SQLite lets both use it at
once.  Without C{--password}, C{adduser} and C{passwd} ask twice on a
terminal, and otherwise read one line from standard input as the password,
for scripts (C{echo "$PW" | xmppctl adduser ...}) that should keep
passwords out of the process list.

C{fast list} and C{fast revoke} show and remove the FAST login tokens
(XEP-0484) of an account, per client (L{xmppd.cli.fast}).

C{import} and C{export} move accounts in the XEP-0227 format (see
L{xmppd.cli.pie}): from Prosody (C{prosody-migrator}'s xep0227 store, one file
per user: pass them all), from ejabberd (C{export_piefxis}: pass the main
file, its XIncludes are followed) or from another xmppd.  Every file is
read and checked before anything is written, so a bad file changes nothing;
accounts that exist already are refused unless C{--replace} is given, which
replaces their credentials, roster, vCard, private XML and (when the file
has any) PEP nodes.  PEP nodes travel with their configuration, items,
affiliations and subscriptions (L{xmppd.cli.piepep}).  Plain passwords
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

C{hooks} asks the running server the same way which features listen to
which hook, per served domain (or only C{--domain}) and node-wide, and
prints each hook with its callbacks in the order they run, one a line, or
with C{--json} the server's answer.

C{sessions}, C{kick}, C{announce}, C{stats}, C{rooms} and C{rooms
destroy} steer the running server the same way, calling the admin operations the ad-hoc
commands call (L{xmppd.cli.operate}).

C{cluster} lists the nodes of the cluster on the configuration's Redis,
their sessions and rooms; C{drain NODE} makes node NODE send its clients to
another node (see-other-host) and take no new ones (L{xmppd.cli.cluster}).

C{reload} makes the running server read its configuration again
(L{xmppd.cli.reload}).
C{api token} makes, lists and revokes the tokens of the HTTP API
(L{xmppd.cli.api}); on a cluster, in its Redis, for every node, and
C{api token import} copies a node's token file there.

Exit status: 0 done; 1 the operation was refused or failed (the account
exists or does not, the address or password is invalid, C{check} found an
error); 2 the command line or the configuration cannot be used.  Every error
is one line on standard error starting with C{xmppctl: }; a traceback is
printed only with C{--debug}.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from twisted.internet import defer

from xmppd.cli import accounts, api, check, cluster, connections, fast, hooks, operate, portability, reload
from xmppd.cli.common import FAILED, OK, PROG, USAGE, CtlError, fail
from xmppd.config import (CONFIG_ENVIRONMENT, DEFAULT_CONFIG, Config, ConfigError,
                          findConfigFile, loadConfig)

__all__ = ["AREAS", "FAILED", "OK", "USAGE", "CtlError", "buildParser", "main",
           "runCommand"]

#: The areas of C{xmppctl}, in the order their commands are listed in
#: C{--help}.  Each is a module with C{COMMANDS} (the names it runs),
#: C{PERSISTENT} (whether they need a store that outlives the process),
#: C{addCommands(subparsers)} and C{async run(args, config, reactor)}.
AREAS = (accounts, fast, portability, check, connections, hooks, operate, cluster, reload, api)


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
    for area in AREAS:
        area.addCommands(commands)
    return parser


async def runCommand(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """
    Do what C{args} (from L{buildParser}) asks with C{config}, printing
    results on standard output and errors on standard error.  Passwords
    must already be in C{args.password}: L{main} asks for them before the
    reactor runs.

    @return: the exit status.
    """
    area = next(area for area in AREAS if args.command in area.COMMANDS)
    try:
        if area.PERSISTENT and config.storage.backend == "memory":
            raise CtlError('storage.backend = "memory" keeps no data between processes; '
                           f'{PROG} needs a persistent backend', USAGE)
        return await area.run(args, config, reactor)
    except CtlError as e:
        fail(str(e))
        return e.status


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
        accounts.askBeforeRunning(args)
    except ConfigError as e:
        # A broken file is what reload must hear about from the server
        # itself (and log there): ask it where its admin socket is.
        config = reload.socketConfig(findConfigFile(args.config)) \
            if args.command in reload.COMMANDS else None
        if config is None:
            fail(str(e))
            return USAGE
    except CtlError as e:
        fail(str(e))
        return e.status

    from twisted.internet import task

    statuses: list[int] = []

    async def run(reactor: Any) -> None:
        try:
            statuses.append(await runCommand(args, config, reactor))
        except BrokenPipeError:
            # The reader went away (`xmppctl hooks | head`): what it wanted
            # was printed, so stop quietly as Unix tools do, and keep Python
            # from complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            statuses.append(OK)
        except Exception as e:  # noqa: BLE001 - the promise is one line, no traceback
            if args.debug:
                traceback.print_exc()
            fail(f"unexpected error: {type(e).__name__}: {e} "
                 f"(run with --debug for details)")
            statuses.append(FAILED)

    try:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))
    except SystemExit:
        pass
    if not statuses:
        fail("interrupted")
        return FAILED
    return statuses[0]


if __name__ == "__main__":
    sys.exit(main())
