# -*- test-case-name: tests.test_muc_features -*-
"""
muc#roomconfig_presencebroadcast: the roles whose presence is broadcast
(XEP-0045 §10.2); the room model asks L{muc.room.Room.broadcastsPresenceOf}.
"""

from muc.options import MultiChoiceOption

ROLES = (("moderator", "Moderator"), ("participant", "Participant"), ("visitor", "Visitor"))

OPTIONS = (MultiChoiceOption("muc#roomconfig_presencebroadcast", "presencebroadcast",
                             "Roles for which presence is broadcast",
                             ("moderator", "participant", "visitor"), ROLES),)
