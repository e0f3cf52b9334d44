# -*- test-case-name: tests.test_muc_features -*-
"""muc#roomconfig_getmemberlist: roles that may read the member list (§9.5)."""

from muc.options import MultiChoiceOption
from muc.features.presencebroadcast import ROLES

OPTIONS = (MultiChoiceOption("muc#roomconfig_getmemberlist", "getmemberlist",
                             "Roles that may retrieve the member list",
                             ("moderator",), ROLES),)
