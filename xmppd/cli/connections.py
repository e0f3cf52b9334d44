# -*- test-case-name: tests.test_admin -*-
"""
C{xmppctl connections}: the running server's component and server-to-server
connections (with how each peer authenticated) and its number of client
sessions, asked over its admin socket (C{admin.socket}, see
L{xmppd.admin.service}) and printed as tables, or with C{--json} as the
server's JSON answer, one line.  When no server runs with this configuration
it says so in one line and exits with 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from xmppd.cli.common import OK, askServer, say
from xmppd.config import Config

COMMANDS = ("connections",)

#: C{connections} asks the running server, not the store.
PERSISTENT = False


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    connections = commands.add_parser(
        "connections", help="list the running server's component and s2s connections")
    connections.add_argument("--json", action="store_true",
                             help="print the server's answer as JSON")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Print the running server's connections."""
    answer, raw = await askServer(config, reactor, {"command": "connections"})
    # Imported here, as in askServer: only this command formats this answer.
    from xmppd.admin.service import formatConnections
    for line in [raw.decode("utf-8")] if args.json else formatConnections(answer):
        say(line)
    return OK
