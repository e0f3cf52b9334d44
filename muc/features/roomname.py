# -*- test-case-name: tests.test_muc_features -*-
"""muc#roomconfig_roomname: the room's name in disco (XEP-0045 §6.4)."""

from muc.options import TextOption
from xmppd.core.hooks import DELIVER

OPTIONS = (TextOption("muc#roomconfig_roomname", "name", "Room name", maxLength=200),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    if event.room.config.get("name"):
        event.info["muc#roomconfig_roomname"] = ("Room name", event.room.config["name"])
