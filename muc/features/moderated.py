# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_moderatedroom: newcomers without an affiliation are visitors,
and visitors may not speak (XEP-0045 §7.4, forbidden) until a moderator
gives them voice (§8.3) or approves their request for it (§7.13,
§8.6, L{muc.voice}).
"""

from muc.events import Refusal
from muc.options import BooleanOption
from muc.protocol import NS_MUC_REQUEST
from xmppd.core.hooks import DELIVER, POLICY

OPTIONS = (BooleanOption("muc#roomconfig_moderatedroom", "moderated", "Make room moderated",
                         False),)


def register(hooks):
    hooks.add("room/message", onMessage, POLICY.then(1))
    hooks.add("room/subject", onSubject, POLICY)
    hooks.add("room/disco", onDisco, DELIVER)


def onMessage(event):
    if event.occupant.role == "visitor":
        return Refusal("forbidden", "you have no voice in this room")
    return None


def onSubject(event):
    if event.occupant.role == "visitor":
        return False  # Voice first: a visitor may never change the subject.
    return None


def onDisco(event):
    event.features.append("muc_moderated" if event.room.config.get("moderated")
                          else "muc_unmoderated")
    # Visitors may ask the moderators for voice (§7.13, L{muc.voice}).
    event.features.append(NS_MUC_REQUEST)
