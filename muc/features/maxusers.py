# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_maxusers: the room size limit.  A full room refuses newcomers
with service-unavailable, except its admins and owners (XEP-0045 §7.2.10).
An owner may choose up to C{[muc] max_occupants_limit}.
"""

from wokkel import data_form

from muc.events import Refusal
from muc.options import ChoiceOption
from xmppd.core.hooks import DELIVER, POLICY

SIZES = (10, 20, 30, 50, 100, 200, 500, 1000)


class MaxUsersOption(ChoiceOption):
    def __init__(self):
        ChoiceOption.__init__(self, "muc#roomconfig_maxusers", "maxusers",
                              "Maximum number of occupants", 200, ())

    def defaultFor(self, settings):
        return settings.max_occupants

    def field(self, value):
        # The usual sizes and the room's own; built per form, since options
        # are shared by every room (no state on them).
        sizes = sorted({*SIZES, value})
        return data_form.Field(self.fieldType, var=self.var, label=self.label, value=str(value),
                               options=[data_form.Option(str(n), str(n)) for n in sizes])

    def parse(self, values, settings):
        try:
            value = int(values[0]) if values else settings.max_occupants
        except ValueError:
            raise ValueError("Maximum number of occupants must be a number, not %r" % values[0])
        if not 1 <= value <= settings.max_occupants_limit:
            raise ValueError("Maximum number of occupants must be between 1 and %d"
                             % settings.max_occupants_limit)
        return value


OPTIONS = (MaxUsersOption(),)


def register(hooks):
    hooks.add("room/join", onJoin, POLICY.then(2))
    hooks.add("room/disco", onDisco, DELIVER)


def onJoin(event):
    room = event.room
    if event.affiliation in ("owner", "admin"):
        return None
    if len(room.occupants) >= room.config.get("maxusers", 0):
        return Refusal("service-unavailable", "this room is full")
    return None


def onDisco(event):
    event.info["muc#roominfo_occupants"] = ("Number of occupants", str(len(event.room.occupants)))
