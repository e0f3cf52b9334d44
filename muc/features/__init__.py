# -*- test-case-name: tests.test_muc_owner -*-
"""
Room options, one module each (STYLE D): the module's C{OPTIONS} are its
fields of the configuration form (L{muc.options}), and its C{register(hooks)},
if any, subscribes its vetoes and disco features to the service's hooks
(L{muc.events}).  L{FEATURES} is the order of the form.
"""

from __future__ import annotations

import importlib

FEATURES = (
    "roomname", "roomdesc", "lang", "persistent", "public", "maxusers", "password",
    "membersonly", "moderated", "whois", "presencebroadcast", "changesubject",
    "allowinvites", "allowpm", "getmemberlist", "logging", "reservednick",
    "canchangenick", "registration", "affiliations", "shaper", "occupantid", "archive",
    "moderation",
)


def load():
    """The feature modules, in form order."""
    return [importlib.import_module("muc.features." + name) for name in FEATURES]
