# -*- test-case-name: tests.test_muc_features -*-
"""x-muc#roomconfig_canchangenick: whether occupants may change their nick (§7.6, not-acceptable)."""

from muc.events import Refusal
from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER

OPTIONS = (BooleanOption("x-muc#roomconfig_canchangenick", "canchangenick",
                         "Allow occupants to change nicknames", True),)


def register(hooks):
    hooks.add("room/nick", onNick, DELIVER)


def onNick(event):
    if not event.room.config.get("canchangenick", True):
        return Refusal("not-acceptable", "nicknames cannot be changed in this room")
    return None
