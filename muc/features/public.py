# -*- test-case-name: tests.test_muc_features -*-
"""muc#roomconfig_publicroom: listed in the service's disco items (§6.3) or hidden."""

from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER


class PublicOption(BooleanOption):
    def defaultFor(self, settings):
        return settings.public_default


OPTIONS = (PublicOption("muc#roomconfig_publicroom", "public",
                        "Make room publicly searchable", True),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    event.features.append("muc_public" if event.room.config.get("public") else "muc_hidden")
