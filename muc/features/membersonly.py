# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_membersonly: only members (and admins, owners) may enter
(XEP-0045 §7.2.7, registration-required); making a room members-only
removes the occupants who are not members, status 322 (§9.3... §10.2).
"""

from muc.events import Refusal
from muc.options import BooleanOption
from muc.protocol import STATUS_MEMBERS_ONLY
from xmppd.core.hooks import DELIVER, POLICY

OPTIONS = (BooleanOption("muc#roomconfig_membersonly", "membersonly",
                         "Make room members-only", False),)


def register(hooks):
    hooks.add("room/join", onJoin, POLICY.then(1))
    hooks.add("room/disco", onDisco, DELIVER)
    hooks.add("room/configured", onConfigured, DELIVER)


def onJoin(event):
    if event.room.config.get("membersonly") and event.affiliation == "none":
        return Refusal("registration-required", "this room is for members only")
    return None


def onDisco(event):
    event.features.append("muc_membersonly" if event.room.config.get("membersonly")
                          else "muc_open")


def onConfigured(event):
    room = event.room
    if room.config.get("membersonly") and not event.old.get("membersonly"):
        # Service admins ([muc] admins) entered as owners and stay.
        admins = room.service.settings.admins
        for occupant in list(room.occupants.values()):
            if room.affiliationOf(occupant.bare) == "none" and occupant.bare not in admins:
                room.removeOccupant(occupant, [STATUS_MEMBERS_ONLY], affiliation="none")
