# -*- test-case-name: tests.test_muc_admin,tests.test_muc_owner -*-
"""
muc#roomconfig_roomadmins and muc#roomconfig_roomowners: the admin and owner
lists in the configuration form (XEP-0045 §10.2).  Their values are the
room's affiliations, not configuration keys: submitting the form grants and
revokes them like the muc#admin protocol does (L{muc.admin}), and a form
that would leave the room without an owner is refused (§10.9).
"""

from muc.options import JIDListOption


class AffiliationListOption(JIDListOption):
    def __init__(self, var, label, affiliation):
        JIDListOption.__init__(self, var, None, label, ())
        self.affiliation = affiliation

    def defaultFor(self, settings):
        return None

    def current(self, room):
        return tuple(sorted(bare for bare, a in room.affiliations.items()
                            if a == self.affiliation))

    def plan(self, affiliations: dict, value) -> None:
        """
        Change C{affiliations} (a copy: bare JID -> affiliation) as
        submitting C{value} would: this list becomes exactly C{value}.  The
        owner form applies all lists together (L{muc.owner.applyForm}), so
        an owner named in both lists is an owner, never briefly an admin.
        """
        wanted = set(value)
        for bare, affiliation in list(affiliations.items()):
            if affiliation == self.affiliation and bare not in wanted:
                del affiliations[bare]
        for bare in value:
            affiliations[bare] = self.affiliation

    def store(self, room, value):
        from muc.admin import applyAffiliations
        planned = dict(room.affiliations)
        self.plan(planned, value)
        applyAffiliations(room, planned)


OPTIONS = (
    AffiliationListOption("muc#roomconfig_roomadmins", "Room admins", "admin"),
    AffiliationListOption("muc#roomconfig_roomowners", "Room owners", "owner"),
)
