# -*- test-case-name: tests.test_ctl_fast -*-
"""
C{xmppctl fast list USER@DOMAIN} and C{xmppctl fast revoke USER@DOMAIN
[USER-AGENT-ID | --all]}: the FAST tokens (XEP-0484) of an account, by the
client (SASL2 user-agent id) they are bound to, read from and removed in
the server's own store.  A running server checks the store at every
login, so a revoked token fails from the next login on (sessions already
logged in stay: revoking is about logging in again).

C{list} prints one line per token: the user agent id, the slot
(C{current}: in use; C{new}: issued and not used yet), the mechanism, and
when it was issued and expires (UTC, with C{expired} when it has); with
C{--json}, one JSON object.  Tokens themselves are never stored, so never
shown.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from xmppd.cli.common import OK, USAGE, CtlError, parseAccount, say, withWholeStorage
from xmppd.config import Config

COMMANDS = ("fast",)

#: The tokens live in the server's store.
PERSISTENT = True


def addCommands(commands: Any) -> None:
    """Add C{fast} and its two actions to the C{add_subparsers()} result C{commands}."""
    fast = commands.add_parser("fast", help="list or revoke the FAST login tokens of "
                               "an account (XEP-0484)")
    actions = fast.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the account's tokens, one client a line")
    listing.add_argument("jid", metavar="USER@DOMAIN")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    revoke = actions.add_parser("revoke", help="remove the tokens of one client, or all")
    revoke.add_argument("jid", metavar="USER@DOMAIN")
    revoke.add_argument("userAgent", nargs="?", metavar="USER-AGENT-ID",
                        help="the client's SASL2 user-agent id, as fast list shows it")
    revoke.add_argument("--all", action="store_true", help="every client of the account")
    revoke.add_argument("--json", action="store_true", help="print one JSON object")


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    username, domain = parseAccount(args.jid, config)
    jid = f"{username}@{domain}"
    if args.action == "revoke" and (args.userAgent is None) == (not args.all):
        raise CtlError("name one USER-AGENT-ID or give --all", USAGE)

    async def operation(storage):
        if not await storage.users.userExists(username, domain):
            raise CtlError(f"there is no account {jid}")
        if args.action == "list":
            return await storage.fast.list(username, domain)
        return await storage.fast.revoke(username, domain, args.userAgent)

    result = await withWholeStorage(config, reactor, operation)
    if args.action == "list":
        now = time.time()
        if args.json:
            say(json.dumps({"account": jid, "tokens": [
                {"user_agent": t.userAgent, "slot": t.slot, "mechanism": t.mechanism,
                 "issued": stamp(t.issued), "expiry": stamp(t.expiry),
                 "expired": t.expiry <= now} for t in result]}))
        elif not result:
            say(f"{jid} has no FAST tokens")
        else:
            for t in result:
                say(f"{t.userAgent}\t{t.slot}\t{t.mechanism}\tissued {stamp(t.issued)}"
                    f"\texpires {stamp(t.expiry)}" + ("\texpired" if t.expiry <= now else ""))
        return OK
    if args.json:
        say(json.dumps({"account": jid, "user_agent": args.userAgent, "revoked": result}))
    else:
        whose = "every client" if args.all else f"client {args.userAgent!r}"
        say(f"revoked {result} FAST token{'s' if result != 1 else ''} of {jid} "
            f"({whose})")
    return OK
