# -*- test-case-name: tests.test_muc_admin -*-
"""
Roles and affiliations, and who may do what (XEP-0045 §5).

Affiliations are long-lived and tied to a bare JID (owner, admin, member,
outcast, none); roles last one visit (moderator, participant, visitor,
none).  The tables below are §5.1.2 and §5.2.1 written out, so the rest of
the code asks questions ("may this actor kick that occupant?") instead of
comparing strings.
"""

from __future__ import annotations

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")

#: Higher outranks lower; outcasts rank below everyone.
AFFILIATION_RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}


def defaultRole(affiliation: str, moderated: bool, membersOnly: bool) -> str:
    """The role an occupant gets on entering (§5.1.2)."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member":
        return "participant"
    if moderated:
        return "visitor"
    return "participant"


def mayChangeRole(actorAffiliation: str, actorRole: str, targetAffiliation: str,
                  targetRole: str, newRole: str) -> bool:
    """
    §8 and §9: moderators kick and grant or revoke voice; only admins and
    owners grant or revoke moderator status; nobody changes the role of an
    occupant whose affiliation is admin or owner unless they outrank it
    (owners may revoke an admin's moderator role, §9.7 does not let admins).
    """
    if actorRole != "moderator":
        return False
    if targetAffiliation in ("owner", "admin"):
        # An owner may not be kicked or demoted by anyone; an admin only by an owner.
        if targetAffiliation == "owner":
            return False
        return actorAffiliation == "owner"
    if newRole == "moderator" or targetRole == "moderator":
        return actorAffiliation in ("owner", "admin")
    return True


def mayChangeAffiliation(actorAffiliation: str, targetAffiliation: str,
                         newAffiliation: str) -> bool:
    """
    §9 and §10: admins manage members and outcasts of people below admin;
    owners manage everything, including other owners and admins.
    """
    if actorAffiliation == "owner":
        return True
    if actorAffiliation == "admin":
        return (targetAffiliation in ("none", "member", "outcast")
                and newAffiliation in ("none", "member", "outcast"))
    return False


def mayListAffiliation(actorAffiliation: str, actorRole: str, affiliation: str,
                       memberListAllowed) -> bool:
    """
    Who may read which list (§9.5, §9.8, §10.5, §10.8): admins and owners
    every list; the member list also whoever the room's
    C{muc#roomconfig_getmemberlist} names by role or by affiliation, so
    that members may read it (in the room or not) where the owner allows.
    """
    if actorAffiliation in ("owner", "admin"):
        return True
    return affiliation == "member" and (actorRole in memberListAllowed
                                        or actorAffiliation in memberListAllowed)
