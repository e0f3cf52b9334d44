# -*- test-case-name: tests.test_muc_features,tests.test_muc_service -*-
"""
muc#roomconfig_persistentroom: a persistent room outlives its last occupant
and a restart (the service saves it); a temporary one is destroyed when the
last occupant leaves (XEP-0045 §4.2).
"""

from muc.options import BooleanOption
from xmppd.core.hooks import DELIVER


class PersistentOption(BooleanOption):
    def defaultFor(self, settings):
        return settings.persistent_default


OPTIONS = (PersistentOption("muc#roomconfig_persistentroom", "persistent", "Make room persistent",
                            False),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    event.features.append("muc_persistent" if event.room.config.get("persistent")
                          else "muc_temporary")
