# -*- test-case-name: tests.test_muc_registration -*-
"""x-muc#roomconfig_registration: whether people may register with the room (§7.10, L{muc.registration})."""

from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER

OPTIONS = (BooleanOption("x-muc#roomconfig_registration", "registration",
                         "Allow users to register with the room", True),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    if event.room.config.get("registration", True):
        event.features.append("jabber:iq:register")
