# -*- test-case-name: tests.test_ctl -*-
"""
C{xmppctl adduser}, C{passwd}, C{deluser} and C{users}: the accounts of the
served domains, in the server's own store.

Without C{--password}, C{adduser} and C{passwd} ask twice on a terminal,
and otherwise read one line from standard input as the password, for
scripts (C{echo "$PW" | xmppctl adduser ...}) that should keep passwords
out of the process list.  See L{xmppd.cli.ctl} for the command line and
exit statuses.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from xmppd.cli.common import (OK, USAGE, CtlError, parseAccount, say, servedDomain,
                               withStorage)
from xmppd.config import Config
from xmppd.config.hosts import hostKey, hostSettings
from xmppd.core.scram import InvalidPassword, makeCredentials
from xmppd.storage.interfaces import NoSuchUser, UserExists

COMMANDS = ("adduser", "passwd", "deluser", "users")

#: These commands change or read the store, which must outlive the process.
PERSISTENT = True


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
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


def askBeforeRunning(args: argparse.Namespace) -> None:
    """
    Read the password C{adduser} and C{passwd} need when the command line
    did not give it.  Call it before the reactor runs: its signal handlers
    would turn Ctrl-C at the prompt into a silent stop.

    @raise CtlError: no password could be read.
    """
    if args.command in ("adduser", "passwd") and args.password is None:
        args.password = readPassword(args.jid)


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


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Run one of L{COMMANDS}; passwords must already be in C{args.password}."""
    if args.command == "users":
        domain = servedDomain(args.domain, config) if args.domain else None
        for username, userDomain in await withStorage(
                config, reactor, lambda users: users.listUsers(domain)):
            say(f"{username}@{userDomain}")
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
            await withStorage(config, reactor,
                              lambda users: _addUser(users, config, username, domain,
                                                     credentials))
            say(f"added {jid}")
        elif args.command == "passwd":
            await withStorage(config, reactor,
                              lambda users: users.setCredentials(username, domain,
                                                                 credentials))
            say(f"changed the password of {jid}")
        elif args.command == "deluser":
            await withStorage(config, reactor,
                              lambda users: users.removeUser(username, domain))
            say(f"removed {jid} and all its data")
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
