# -*- test-case-name: tests.test_muc_features -*-
"""muc#roomconfig_roomdesc: a short description, in disco (muc#roominfo_description)."""

from muc.options import TextOption
from xmppd.core.hooks import DELIVER

OPTIONS = (TextOption("muc#roomconfig_roomdesc", "description", "Description", maxLength=1000),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    event.info["muc#roominfo_description"] = ("Description", event.room.config.get("description", ""))
