# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_allowpm: who may send private messages in the room (§7.5):
anyone, participants (and moderators), moderators, or nobody.
"""

from muc.events import Refusal
from muc.options import ChoiceOption
from xmppd.core.hooks import DELIVER

OPTIONS = (ChoiceOption("muc#roomconfig_allowpm", "allowpm", "Allow private messages from",
                        "anyone", (("anyone", "Anyone"), ("participants", "Participants"),
                                   ("moderators", "Moderators"), ("none", "Nobody"))),)

ALLOWED = {
    "anyone": ("moderator", "participant", "visitor"),
    "participants": ("moderator", "participant"),
    "moderators": ("moderator",),
    "none": (),
}


def register(hooks):
    hooks.add("room/pm", onPrivateMessage, DELIVER)


def onPrivateMessage(event):
    policy = event.room.config.get("allowpm", "anyone")
    if event.occupant.role not in ALLOWED.get(policy, ()):
        return Refusal("forbidden", "private messages are not allowed here")
    return None
