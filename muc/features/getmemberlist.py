# -*- test-case-name: tests.test_muc_features,tests.test_muc_affiliations -*-
"""
muc#roomconfig_getmemberlist: the roles and affiliations that may retrieve
the member list (XEP-0045 §9.5, §10.2).  Admins and owners always may; a
role lets occupants with it read the list while they are in the room, an
affiliation (C{member}) lets those accounts read it from anywhere
(L{muc.roles.mayListAffiliation}).
"""

from muc.options import MultiChoiceOption
from muc.features.presencebroadcast import ROLES

CHOICES = ROLES + (("owner", "Owner"), ("admin", "Admin"), ("member", "Member"))

OPTIONS = (MultiChoiceOption("muc#roomconfig_getmemberlist", "getmemberlist",
                             "Roles and affiliations that may retrieve the member list",
                             ("moderator",), CHOICES),)
