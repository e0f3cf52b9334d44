# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_whois: who sees occupants' real JIDs: moderators
(semi-anonymous, the default) or anyone (non-anonymous, status 100 on
entering).  A change tells everyone with status 172 or 173 (XEP-0045 §10.2).
"""

from muc.options import ChoiceOption
from muc.protocol import STATUS_NOW_NON_ANONYMOUS, STATUS_NOW_SEMI_ANONYMOUS
from xmppd.core.hooks import DELIVER

OPTIONS = (ChoiceOption("muc#roomconfig_whois", "whois", "Who may discover real JIDs",
                        "moderators", (("moderators", "Moderators only"),
                                       ("anyone", "Anyone"))),)


def register(hooks):
    hooks.add("room/disco", onDisco, DELIVER)
    hooks.add("room/configured", onConfigured, DELIVER)


def onDisco(event):
    event.features.append("muc_nonanonymous" if event.room.config.get("whois") == "anyone"
                          else "muc_semianonymous")


def onConfigured(event):
    old, new = event.old.get("whois"), event.room.config.get("whois")
    if old != new:
        event.statuses.append(STATUS_NOW_NON_ANONYMOUS if new == "anyone"
                              else STATUS_NOW_SEMI_ANONYMOUS)
