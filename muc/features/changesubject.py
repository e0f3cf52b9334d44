# -*- test-case-name: tests.test_muc_features -*-
"""muc#roomconfig_changesubject: participants may change the subject, not only moderators (§8.1)."""

from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER

OPTIONS = (BooleanOption("muc#roomconfig_changesubject", "changesubject",
                         "Allow occupants to change the subject", False),)


def register(hooks):
    hooks.add("room/subject", onSubject, DELIVER)


def onSubject(event):
    return True if event.room.config.get("changesubject") else None
