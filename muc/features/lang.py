# -*- test-case-name: tests.test_muc_owner -*-
"""muc#roomconfig_lang: the room's natural language (muc#roominfo_lang)."""

from muc.options import TextOption
from xmppd.core.hooks import DELIVER

OPTIONS = (TextOption("muc#roomconfig_lang", "lang", "Natural language for room discussions",
                      maxLength=35),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    if event.room.config.get("lang"):
        event.info["muc#roominfo_lang"] = ("Language", event.room.config["lang"])
