# -*- test-case-name: tests.test_httpapi -*-
"""
C{xmppctl api token create NAME --scope send|admin}, C{xmppctl api token
list [--json]} and C{xmppctl api token revoke NAME}: the tokens of the
HTTP API (L{xmppd.admin.api}), in the data directory's token file
(L{xmppd.admin.apitokens}).  C{create} prints the token once, on its own
line; only its SHA-256 is kept, so a lost token is revoked and made
again.  A running server sees the change at its next request.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from xmppd.admin.apitokens import SCOPES, TokenError, TokenFile
from xmppd.cli.common import OK, CtlError, say
from xmppd.config import Config

COMMANDS = ("api",)

#: The tokens live in a file of the data directory, whatever the backend.
PERSISTENT = False


def addCommands(commands: Any) -> None:
    """Add C{api token create|list|revoke} to the C{add_subparsers()} result C{commands}."""
    api = commands.add_parser("api", help="the tokens of the HTTP API (/api)")
    areas = api.add_subparsers(dest="area", required=True, metavar="AREA")
    token = areas.add_parser("token", help="create, list or revoke API tokens")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a token and print it (once)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--scope", choices=SCOPES, required=True,
                        help="send: POST /api/send only; admin: every call")
    listing = actions.add_parser("list", help="the tokens: name, scope, created")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    revoke = actions.add_parser("revoke", help="remove a token")
    revoke.add_argument("name", metavar="NAME")


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    tokens = TokenFile(config.server.data_dir)
    try:
        if args.action == "create":
            say(tokens.create(args.name, args.scope))
        elif args.action == "revoke":
            tokens.revoke(args.name)
            say(f"revoked API token {args.name!r}")
        elif args.json:
            say(json.dumps({"tokens": [{"name": t.name, "scope": t.scope,
                                        "created": stamp(t.created)}
                                       for t in tokens.load()]}))
        else:
            rows = tokens.load()
            if not rows:
                say("no API tokens")
            for t in rows:
                say(f"{t.name}\t{t.scope}\tcreated {stamp(t.created)}")
    except TokenError as e:
        raise CtlError(str(e)) from None
    return OK
