# -*- test-case-name: tests.test_ctl_hooks -*-
"""
C{xmppctl hooks}: which features listen to which hook of the running
server, in the order they run (issue 11 §3), asked over its admin socket
(C{admin.socket}, see L{xmppd.admin.service}).

For each served domain, or only C{--domain DOMAIN}, every hook someone
listens to, then its callbacks in the order a stanza of that domain meets
them, one a line, with the priority band each runs in
(L{xmppd.core.hooks.Band}); then the callbacks registered for every domain
rather than one (node-wide; they appear, merged in order, in each domain's
lists too).  A callback is named as a person knows it: its feature's module
and its qualified name (C{messages.MessageHandler.onBareMessage},
C{offline.handler.OfflineHandler.onOffline}), C{xmppd.features.} and
C{xmppd.} left out.  With C{--json}, the server's JSON answer, one line,
names in full.  When no server runs with this configuration it says so in
one line and exits with 1, as C{xmppctl connections} does.
"""

from __future__ import annotations

import argparse
from typing import Any

from xmppd.cli.common import OK, askServer, say
from xmppd.config import Config

COMMANDS = ("hooks",)

#: C{hooks} asks the running server, not the store.
PERSISTENT = False

#: Left out of a callback's name, the first that matches: features are
#: known by their own module's name, the core by its folder.
PREFIXES = ("xmppd.features.", "xmppd.")


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    hooks = commands.add_parser(
        "hooks", help="list who listens to the running server's hooks, in order")
    hooks.add_argument("--json", action="store_true",
                       help="print the server's answer as JSON")
    hooks.add_argument("--domain", metavar="DOMAIN",
                       help="only the hooks of this served domain")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Print who listens to the running server's hooks."""
    request = {"command": "hooks"}
    if args.domain is not None:
        request["domain"] = args.domain
    answer, raw = await askServer(config, reactor, request)
    for line in [raw.decode("utf-8")] if args.json else formatHooks(answer):
        say(line)
    return OK


def formatHooks(answer: dict) -> list[str]:
    """
    The answer to C{hooks} as readable lines: a heading per domain (and one
    for the node-wide listeners), each hook indented under it, each callback
    indented under its hook, with its band in a column of its own.
    """
    sections = [(str(listing.get("domain")), listing.get("hooks") or [])
                for listing in answer.get("domains") or []]
    if "node" in answer:
        sections.append(("node-wide (also in each domain's lists)", answer["node"] or []))
    bands = [_band(callback) for _, hooks in sections for hook in hooks
             for callback in hook.get("callbacks") or []]
    width = max(map(len, bands), default=0)
    lines = []
    for heading, hooks in sections:
        lines.append(f"{heading}: {len(hooks)} hook{'' if len(hooks) == 1 else 's'}")
        for hook in hooks:
            lines.append(f"  {hook.get('hook')}")
            lines.extend(f"    {_band(callback).ljust(width)}  "
                         f"{shortName(str(callback.get('callback')))}"
                         for callback in hook.get("callbacks") or [])
    return lines


def shortName(callback: str) -> str:
    """C{callback} (module and qualified name) without the first of L{PREFIXES} it has."""
    for prefix in PREFIXES:
        if callback.startswith(prefix):
            return callback[len(prefix):]
    return callback


def _band(callback: dict) -> str:
    return str(callback.get("band") or "-")
