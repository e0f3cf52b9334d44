# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_passwordprotectedroom and muc#roomconfig_roomsecret: entering
needs the password (XEP-0045 §7.2.6, not-authorized otherwise); disco says
muc_passwordprotected or muc_unsecured.
"""

import hmac

from muc.events import Refusal
from muc.options import BooleanOption, PrivateOption
from xmppd.core.hooks import DELIVER, POLICY

OPTIONS = (
    BooleanOption("muc#roomconfig_passwordprotectedroom", "passwordprotected",
                  "Password required to enter", False),
    PrivateOption("muc#roomconfig_roomsecret", "password", "Password", maxLength=200),
)


def register(hooks):
    hooks.add("room/join", onJoin, POLICY)
    hooks.add("room/disco", onDisco, DELIVER)


def required(room) -> bool:
    return bool(room.config.get("passwordprotected") and room.config.get("password"))


def onJoin(event):
    room = event.room
    if not required(room):
        return None
    given = (event.password or "").encode("utf-8")
    if not hmac.compare_digest(given, room.config["password"].encode("utf-8")):
        return Refusal("not-authorized", "this room needs a password")
    return None


def onDisco(event):
    event.features.append("muc_passwordprotected" if required(event.room) else "muc_unsecured")
