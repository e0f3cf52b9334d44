# -*- test-case-name: tests.test_muc_features -*-
"""
x-muc#roomconfig_reservednick: people who registered a nick with the room
(§7.10) always enter with it (status 210 when they asked for another) and
may not change it; the room model applies it.
"""

from muc.options import BooleanOption

OPTIONS = (BooleanOption("x-muc#roomconfig_reservednick", "reservednick",
                         "Only allow registered users to use their reserved nickname", False),)
