# -*- test-case-name: tests.test_muc_service -*-
"""
A persistent room as stored (L{xmppd.storage.interfaces.IRoomStore}): its
configuration, affiliations, registered nicks, subject and history, as
JSON.  What is only true while the service runs (occupants, roles) is not
kept: after a restart people enter again.
"""

from __future__ import annotations

import json

from xmppd.features.mam.query import parseStored

VERSION = 1


def dump(room) -> str:
    return json.dumps({
        "version": VERSION,
        # Options without a key of their own (the owner and admin lists of
        # muc.features.affiliations live in the affiliations) have nothing to keep.
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in room.config.items()
                   if k is not None},
        "affiliations": room.affiliations,
        "registered": room.registered,
        "subject": room.subject,
        "subjectFrom": room.subjectFrom,
        "history": room.history.toState(),
    }, separators=(",", ":"), sort_keys=True)


def restore(room, text: str) -> None:
    """Fill a new room from its stored state; unknown keys are kept for newer versions."""
    state = json.loads(text)
    for key, value in state.get("config", {}).items():
        room.config[key] = tuple(value) if isinstance(value, list) else value
    room.affiliations.update(state.get("affiliations", {}))
    room.registered.update(state.get("registered", {}))
    room.subject = state.get("subject", "")
    room.subjectFrom = state.get("subjectFrom")
    room.history.restore(state.get("history", []), parseStored)


def configOf(text: str) -> dict:
    """Only the configuration of a stored room (for the room directory)."""
    return json.loads(text).get("config", {})
