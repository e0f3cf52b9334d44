# -*- test-case-name: tests.test_reload -*-
"""
C{xmppctl reload}: make the running server read its configuration file
again and apply what can change live (L{xmppd.admin.reload}), through its
admin socket.  Prints one line per change (C{needs a restart: KEY} for what
only a restart changes), or C{nothing changed}; with C{--json} the
server's answer.  A configuration that does not validate is refused with
its one-line error, exit status 1, and the server keeps running as it was.
"""

from __future__ import annotations

import argparse
from typing import Any

from xmppd.cli.common import OK, askServer, say
from xmppd.config import Config, ConfigError, configFromDict

COMMANDS = ("reload",)

#: C{reload} asks the running server, not the store.
PERSISTENT = False


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    reload = commands.add_parser(
        "reload", help="make the running server read its configuration again")
    reload.add_argument("--json", action="store_true",
                        help="print the server's answer as JSON")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Ask the running server to reload; print what changed."""
    answer, raw = await askServer(config, reactor, {"command": "reload"})
    if args.json:
        say(raw.decode("utf-8"))
    else:
        for line in answer.get("changes") or ["nothing changed"]:
            say(line)
    return OK


def socketConfig(path: str | None) -> Config | None:
    """
    When the file does not validate, a configuration with only what finds
    the running server's admin socket (C{server.data_dir}, C{admin.socket}),
    so the server answers with the error (and logs it); C{None} when even
    those cannot be read (then xmppctl reports the error itself).
    """
    import tomllib
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            document = tomllib.loads(f.read().decode("utf-8"))
        wanted = {"server": {"data_dir": document["server"]["data_dir"]}} \
            if "data_dir" in document.get("server", {}) else {}
        if "socket" in document.get("admin", {}):
            wanted["admin"] = {"socket": document["admin"]["socket"]}
        return configFromDict(wanted, path)
    except (OSError, ValueError, TypeError, AttributeError, ConfigError):
        return None
