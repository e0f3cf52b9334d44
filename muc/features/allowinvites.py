# -*- test-case-name: tests.test_muc_invites,tests.test_muc_owner -*-
"""
muc#roomconfig_allowinvites: whether occupants may invite others (§7.8.2).
In an open room anyone in it may invite; in a members-only room only admins
and owners, unless this is on (and then the invitee becomes a member).
"""

from muc.events import Refusal
from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER

OPTIONS = (BooleanOption("muc#roomconfig_allowinvites", "allowinvites",
                         "Allow occupants to invite others", False),)


def register(hooks):
    hooks.add("room/invite", onInvite, DELIVER)


def onInvite(event):
    room = event.room
    if not room.config.get("membersonly"):
        return None
    if room.affiliationOf(event.occupant.bare) in ("owner", "admin"):
        return None
    if not room.config.get("allowinvites"):
        return Refusal("forbidden", "only admins may invite people to this room")
    return None
