# -*- test-case-name: tests.test_muc_archive -*-
"""
muc#roomconfig_enablelogging: the room archives its messages (XEP-0313 on
the room's JID, see L{muc.features.archive}); occupants are told on entering
(status 170) and when it changes (170, 171).
"""

from muc.options import BooleanOption
from muc.protocol import STATUS_LOGGING, STATUS_LOGGING_OFF
from xmppd.core.hooks import DELIVER

OPTIONS = (BooleanOption("muc#roomconfig_enablelogging", "logging", "Enable public logging",
                         False),)


def register(hooks):
    hooks.add("room/configured", onConfigured, DELIVER)


def onConfigured(event):
    old, new = bool(event.old.get("logging")), bool(event.room.config.get("logging"))
    if old != new:
        event.statuses.append(STATUS_LOGGING if new else STATUS_LOGGING_OFF)
