# -*- test-case-name: tests.test_ctl_operate -*-
"""
C{xmppctl sessions}, C{kick JID}, C{announce DOMAIN TEXT}, C{stats},
C{rooms} and C{rooms destroy ROOMJID}: the running server, steered through its admin socket
(C{admin.socket}, see L{xmppd.admin.service}), which calls the same admin
operations as the ad-hoc commands (L{xmppd.admin.operations}).

    xmppctl sessions [--domain DOMAIN] [--json]
    xmppctl kick JID [--json]            # a bare JID ends all its sessions
    xmppctl announce DOMAIN TEXT [--subject S] [--json]
    xmppctl stats [--json]
    xmppctl rooms [--json]
    xmppctl rooms destroy ROOMJID [--reason TEXT] [--json]

C{rooms destroy} destroys a room of the server's in-process MUC service as
its owner would (XEP-0045 §10.9): its occupants get unavailable presence
with the reason, and it is removed from storage.  A room of an external
MUC component, or one another cluster node holds, is refused with where to
destroy it instead.

Each prints readable lines, or with C{--json} the server's answer, one
line.  When no server runs with this configuration it says so in one line
and exits with 1; a refused request (a domain not served, an address that
is not an account's) is one line and exit status 1 too.
"""

from __future__ import annotations

import argparse
from typing import Any

from xmppd.cli.common import OK, askServer, say
from xmppd.config import Config

COMMANDS = ("sessions", "kick", "announce", "stats", "rooms")

#: They ask the running server, not the store.
PERSISTENT = False


def addCommands(commands: Any) -> None:
    """Add this area's commands to the C{add_subparsers()} result C{commands}."""
    def withJSON(parser):
        parser.add_argument("--json", action="store_true",
                            help="print the server's answer as JSON")
        return parser

    sessions = withJSON(commands.add_parser(
        "sessions", help="list the client sessions of the running server"))
    sessions.add_argument("--domain", metavar="DOMAIN", help="only this served domain's")
    kick = withJSON(commands.add_parser(
        "kick", help="end a user's sessions (all of a bare JID's, or one full JID's)"))
    kick.add_argument("jid", metavar="JID")
    announce = withJSON(commands.add_parser(
        "announce", help="send a message from DOMAIN to all its online users"))
    announce.add_argument("domain", metavar="DOMAIN")
    announce.add_argument("text", metavar="TEXT")
    announce.add_argument("--subject", help="the message's subject")
    withJSON(commands.add_parser(
        "stats", help="users, sessions, rooms and connections of the running server"))
    rooms = withJSON(commands.add_parser(
        "rooms", help="the MUC rooms of the running server, with their occupants; "
                      "rooms destroy ROOMJID destroys one"))
    actions = rooms.add_subparsers(dest="action", metavar="ACTION")
    destroy = actions.add_parser(
        "destroy", help="destroy a room: its occupants are sent out with the reason "
                        "(XEP-0045 §10.9) and it is removed from storage")
    # SUPPRESS: "rooms --json destroy R" keeps the --json given before the action.
    destroy.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the server's answer as JSON")
    destroy.add_argument("room", metavar="ROOMJID")
    destroy.add_argument("--reason", metavar="TEXT", help="the reason its occupants are told")


async def run(args: argparse.Namespace, config: Config, reactor: Any) -> int:
    """Ask the running server; print its answer."""
    request: dict[str, Any] = {"command": args.command}
    if args.command == "sessions" and args.domain is not None:
        request["domain"] = args.domain
    elif args.command == "kick":
        request["jid"] = args.jid
    elif args.command == "announce":
        request.update(domain=args.domain, text=args.text)
        if args.subject is not None:
            request["subject"] = args.subject
    elif args.command == "rooms" and getattr(args, "action", None) == "destroy":
        request = {"command": "destroy-room", "room": args.room}
        if args.reason is not None:
            request["reason"] = args.reason
    answer, raw = await askServer(config, reactor, request)
    lines = [raw.decode("utf-8")] if args.json else FORMATS[request["command"]](answer)
    for line in lines:
        say(line)
    return OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def formatSessions(answer: dict) -> list[str]:
    sessions = answer.get("sessions") or []
    lines = [f"sessions: {len(sessions)}"]
    rows = [[s.get("jid"), "available" if s.get("available") else "unavailable",
             s.get("peer"), {True: "yes", False: "no"}.get(s.get("encrypted"), "-")]
            for s in sessions]
    headers = ["JID", "PRESENCE", "PEER", "TLS"]
    if any(s.get("node") for s in sessions):
        # A cluster: which node holds each (another node's show no peer).
        headers.append("NODE")
        for row, s in zip(rows, sessions):
            row.append(s.get("node"))
    lines.extend(table(headers, rows))
    return lines


def formatKick(answer: dict) -> list[str]:
    return [f"ended {_plural(answer.get('ended', 0), 'session')} of {answer.get('jid')}"]


def formatAnnounce(answer: dict) -> list[str]:
    return [f"sent to {_plural(answer.get('sent', 0), 'session')} of {answer.get('domain')}"]


def formatStats(answer: dict) -> list[str]:
    users = answer.get("users") or {}
    lines = [f"registered users: {users.get('registered', 0)}",
             f"online users: {users.get('online', 0)} "
             f"({_plural(users.get('sessions', 0), 'session')})"]
    for domain, counts in sorted((users.get("domains") or {}).items()):
        lines.append(f"  {domain}: {counts.get('registered', 0)} registered, "
                     f"{counts.get('online', 0)} online, "
                     f"{_plural(counts.get('sessions', 0), 'session')}")
    lines.append(f"rooms: {answer.get('rooms', 0)} "
                 f"({_plural(answer.get('occupants', 0), 'occupant')})")
    lines.append(f"s2s connections: {answer.get('s2s', 0)}")
    lines.append(f"components: {answer.get('components', 0)}")
    return lines


def formatRooms(answer: dict) -> list[str]:
    rooms = answer.get("rooms") or []
    lines = [f"rooms: {len(rooms)}"]
    lines.extend(table(["ROOM", "OCCUPANTS"], [[r.get("jid"), r.get("occupants")]
                                               for r in rooms]))
    return lines


def formatDestroyed(answer: dict) -> list[str]:
    return [f"destroyed {answer.get('room')} "
            f"({_plural(answer.get('occupants', 0), 'occupant')} told)"]


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
            for row in cells]


FORMATS = {"sessions": formatSessions, "kick": formatKick, "announce": formatAnnounce,
           "stats": formatStats, "rooms": formatRooms, "destroy-room": formatDestroyed}
