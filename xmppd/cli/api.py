# -*- test-case-name: tests.test_httpapi -*-
"""
C{xmppctl api token create NAME --scope send|admin}, C{xmppctl api token
list [--json]} and C{xmppctl api token revoke NAME}: the tokens of the
HTTP API (L{xmppd.admin.api}), in the data directory's token file
(L{xmppd.admin.apitokens}).  C{create} prints the token once, on its own
line; only its SHA-256 is kept, so a lost token is revoked and made
again.  A running server sees the change at its next request.

With a C{[cluster]} section the tokens are the cluster's, in its Redis
(L{xmppd.admin.clustertokens}): the same commands work from any machine
that reaches it, every node sees a change within the pub/sub delay, and
each command says so in one line on standard error (standard output stays
the token, or the list, for scripts).  C{xmppctl api token import} copies
this node's token file into the cluster's Redis once (a node of a cluster
ignores the file and says so at start).
"""

from __future__ import annotations

import argparse
import json
import sys
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
    actions.add_parser("import", help="on a cluster: copy this node's token file "
                       "(data_dir/api_tokens.json) into the cluster's Redis")


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    if config.cluster.enabled:
        return await runOnCluster(args, config, reactor)
    if args.action == "import":
        raise CtlError("there is no [cluster] section: the tokens are in %s already"
                       % (TokenFile(config.server.data_dir).path,))
    tokens = TokenFile(config.server.data_dir)
    try:
        if args.action == "create":
            say(tokens.create(args.name, args.scope))
        elif args.action == "revoke":
            tokens.revoke(args.name)
            say(f"revoked API token {args.name!r}")
        else:
            listTokens(tokens.load(), args.json)
    except TokenError as e:
        raise CtlError(str(e)) from None
    return OK


def listTokens(rows: list, asJSON: bool) -> None:
    if asJSON:
        say(json.dumps({"tokens": [{"name": t.name, "scope": t.scope,
                                    "created": stamp(t.created)} for t in rows]}))
        return
    if not rows:
        say("no API tokens")
    for t in rows:
        say(f"{t.name}\t{t.scope}\tcreated {stamp(t.created)}")


async def runOnCluster(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """The same commands on the cluster's Redis (see the module docstring)."""
    # Imported here: only a cluster's configuration needs Redis.
    from xmppd.admin import clustertokens
    from xmppd.cluster import keys
    from xmppd.cluster.service import clusterAddress
    from xmppd.storage.redisclient import CONNECT_TIMEOUT, connectRedis
    address = clusterAddress(config)
    where = "the cluster's Redis at %s:%s" % (address.host, address.port)
    try:
        redis = await connectRedis(address, reconnect=False).addTimeout(CONNECT_TIMEOUT,
                                                                         reactor)
    except Exception as e:
        raise CtlError("cannot reach %s: %s" % (where, e or type(e).__name__)) from None
    try:
        say("API tokens of the whole cluster, in %s (%s)" % (where, keys.API_TOKENS),
            sys.stderr)
        if args.action == "create":
            say(await clustertokens.createToken(redis, args.name, args.scope))
        elif args.action == "revoke":
            await clustertokens.revokeToken(redis, args.name)
            say(f"revoked API token {args.name!r} on every node")
        elif args.action == "import":
            path = TokenFile(config.server.data_dir).path
            copied, skipped = await clustertokens.importTokens(redis, config.server.data_dir)
            say("copied %d API token%s from %s%s" % (
                len(copied), "" if len(copied) == 1 else "s", path,
                ": " + ", ".join(copied) if copied else ""))
            if skipped:
                raise CtlError("not copied, the cluster has other tokens of these names "
                               "(revoke them there first, or leave them): %s"
                               % (", ".join(skipped),))
            say(f"{path} is not read on a cluster; remove it")
        else:
            listTokens(await clustertokens.listTokens(redis), args.json)
    except TokenError as e:
        raise CtlError(str(e)) from None
    except CtlError:
        raise
    except Exception as e:
        raise CtlError("%s: %s" % (where, e or type(e).__name__)) from None
    finally:
        await redis.disconnect()
    return OK
