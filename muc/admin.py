# -*- test-case-name: tests.test_muc_admin -*-
"""
Moderation and administration (XEP-0045 §8 moderator use cases, §9 admin
use cases, the muc#admin namespace): kicking, voice, moderator status, bans,
membership, admin and owner lists, and reading those lists.

A request is checked whole before anything changes: every item must be
allowed, or the room answers with the first error and changes nothing.
Errors: a requester without the right at all gets C{forbidden}, a target
who outranks the requester C{not-allowed} (§8.2), an unknown nick
C{item-not-found}, and removing the last owner C{conflict} (§10.9).
"""

from __future__ import annotations

from twisted.words.xish import domish

from muc import roles
from muc.notices import announceAffiliation
from muc.protocol import (
    NS_MUC_ADMIN, STATUS_AFFILIATION_CHANGED, STATUS_BANNED, STATUS_KICKED, element,
    itemElement)
from muc.room import parseNick
from xmppd.core.jid import InvalidJID, parseJID


class AdminError(Exception):
    def __init__(self, condition: str, text: str):
        Exception.__init__(self, text)
        self.condition = condition
        self.text = text


def isServiceAdmin(room, sender) -> bool:
    return sender.userhost() in room.service.settings.admins


def requesterAffiliation(room, sender) -> str:
    """Service admins (C{[muc] admins}) count as owners of every room."""
    if isServiceAdmin(room, sender):
        return "owner"
    return room.affiliationOf(sender.userhost())


def requesterRole(room, sender) -> str:
    """
    The requester's role; service admins count as moderators, in the room
    or not, so that they can act as the owners they are in every room.
    """
    if isServiceAdmin(room, sender):
        return "moderator"
    actor = room.byJID.get(sender.full())
    return actor.role if actor is not None else "none"


def onAdminIQ(room, iq: domish.Element, query: domish.Element, sender) -> None:
    try:
        if iq["type"] == "get":
            result = listItems(room, query, sender)
        else:
            changeItems(room, query, sender)
            result = None
    except AdminError as e:
        room.refuse(iq, e.condition, e.text)
        return
    reply = element("iq", **{"type": "result", "id": iq.getAttribute("id"),
                             "from": room.jidText, "to": sender.full()})
    if result is not None:
        answer = reply.addElement((NS_MUC_ADMIN, "query"))
        for item in result:
            answer.addChild(item)
    room.service.send(reply)


# -- reading lists (§8.5, §9.5, §9.8, §10.5, §10.8) -----------------------

def listItems(room, query, sender) -> list[domish.Element]:
    items = list(query.elements(NS_MUC_ADMIN, "item"))
    if len(items) != 1:
        raise AdminError("bad-request", "ask for one list at a time")
    item = items[0]
    affiliation = item.getAttribute("affiliation")
    role = item.getAttribute("role")
    actorAffiliation = requesterAffiliation(room, sender)
    actorRole = requesterRole(room, sender)
    if affiliation is not None:
        if affiliation not in roles.AFFILIATIONS or affiliation == "none":
            raise AdminError("bad-request", "no such list: %s" % affiliation)
        allowed = room.config.get("getmemberlist", ())
        if not roles.mayListAffiliation(actorAffiliation, actorRole, affiliation, allowed):
            raise AdminError("forbidden", "you may not see that list")
        return [itemElement(affiliation, None, jid=bare, nick=room.registered.get(bare),
                            uri=NS_MUC_ADMIN)
                for bare, a in sorted(room.affiliations.items()) if a == affiliation]
    if role is not None:
        if role not in ("moderator", "participant", "visitor"):
            raise AdminError("bad-request", "no such list: %s" % role)
        if actorRole != "moderator":
            raise AdminError("forbidden", "only moderators may see that list")
        return [itemElement(room.affiliationOf(o.bare), o.role, jid=o.jid.full(), nick=o.nick,
                            uri=NS_MUC_ADMIN)
                for o in room.occupants.values() if o.role == role]
    raise AdminError("bad-request", "an item names an affiliation or a role")


# -- changes (§8.2-8.4, §8.6-8.7, §9.1-9.7, §10.3-10.7) -------------------

def changeItems(room, query, sender) -> None:
    actorAffiliation = requesterAffiliation(room, sender)
    actorRole = requesterRole(room, sender)
    actor = room.byJID.get(sender.full())
    actorNick = actor.nick if actor is not None else None
    changes = []
    affiliations = dict(room.affiliations)
    for item in query.elements(NS_MUC_ADMIN, "item"):
        reason = None
        for elem in item.elements(NS_MUC_ADMIN, "reason"):
            reason = str(elem)
        role = item.getAttribute("role")
        affiliation = item.getAttribute("affiliation")
        nick = item.getAttribute("nick")
        if role is not None and affiliation is None:
            if role not in roles.ROLES:
                raise AdminError("bad-request", "no such role: %s" % role)
            if actorRole != "moderator":
                raise AdminError("forbidden", "only moderators may change roles")
            target = targetOccupant(room, item)
            if not roles.mayChangeRole(actorAffiliation, actorRole,
                                       room.affiliationOf(target.bare), target.role, role):
                raise AdminError("not-allowed", "you may not change the role of %s"
                                 % target.nick)
            changes.append(("role", target, role, reason))
        elif affiliation is not None:
            if affiliation not in roles.AFFILIATIONS:
                raise AdminError("bad-request", "no such affiliation: %s" % affiliation)
            if actorAffiliation not in ("owner", "admin"):
                raise AdminError("forbidden", "only admins and owners may change affiliations")
            bare = targetBare(room, item)
            current = affiliations.get(bare, "none")
            if not roles.mayChangeAffiliation(actorAffiliation, current, affiliation):
                raise AdminError("not-allowed", "you may not make %s %s" % (bare, affiliation))
            if affiliation == "none":
                affiliations.pop(bare, None)
            else:
                affiliations[bare] = affiliation
            changes.append(("affiliation", bare, affiliation, reason))
        else:
            raise AdminError("bad-request", "an item changes a role or an affiliation")
    if not changes:
        raise AdminError("bad-request", "nothing to change")
    if room.affiliations and "owner" in room.affiliations.values() \
            and "owner" not in affiliations.values():
        raise AdminError("conflict", "a room must keep at least one owner")
    for kind, target, value, reason in changes:
        if kind == "role":
            if target.nick in room.occupants:
                setRole(room, target, value, reason, actorNick)
        else:
            setAffiliation(room, target, value, reason, actorNick)


def targetBare(room, item) -> str:
    """
    The account an affiliation item is about (§9: affiliations belong to
    bare JIDs).  Clients send it in several valid shapes, all accepted: a
    bare JID, a full JID (its resource is dropped), or only a nick, which
    names an occupant in the room or, for someone absent, the account that
    registered that nick (§7.10).
    """
    jid = item.getAttribute("jid")
    if jid is not None:
        try:
            return parseJID(jid).userhost()
        except InvalidJID:
            raise AdminError("jid-malformed", "%r is not a JID" % jid)
    nick = parseNick(item.getAttribute("nick"))
    target = room.occupants.get(nick or "")
    if target is not None:
        return target.bare
    owner = room.nickOwner(nick) if nick else None
    if owner is None:
        raise AdminError("item-not-found", "nobody has that nickname in this room")
    return owner


def targetOccupant(room, item):
    """
    The occupant a role item is about: by nick (§8), or, from clients that
    send the real JID instead, the occupant of that full JID or, for a bare
    JID, that account's occupant.
    """
    nick = item.getAttribute("nick")
    if nick is not None:
        target = room.occupants.get(parseNick(nick) or "")
        if target is None:
            raise AdminError("item-not-found", "no occupant has that nickname")
        return target
    jid = item.getAttribute("jid")
    if jid is None:
        raise AdminError("bad-request", "a role item names an occupant by its nick")
    try:
        real = parseJID(jid)
    except InvalidJID:
        raise AdminError("jid-malformed", "%r is not a JID" % jid)
    target = room.byJID.get(real.full())
    if target is None and real.resource is None:
        bare = real.userhost()
        target = next((o for o in room.occupants.values() if o.bare == bare), None)
    if target is None:
        raise AdminError("item-not-found", "that JID is not in this room")
    return target


def setRole(room, occupant, role: str, reason: str | None, actor: str | None) -> None:
    """Kick (role none, status 307), or change voice or moderator status."""
    if role == "none":
        room.removeOccupant(occupant, [STATUS_KICKED], reason=reason, actor=actor)
        return
    if occupant.role == role:
        return
    occupant.role = role
    room.broadcastPresence(occupant, reason=reason, actor=actor, toSelf=True)


def setAffiliation(room, bare: str, affiliation: str, reason: str | None,
                   actor: str | None = None) -> None:
    """
    Grant or revoke an affiliation; occupants of that account are told
    (banned ones leave with 301, non-members of a members-only room with
    321) and get the role that goes with it.
    """
    previous = room.affiliationOf(bare)
    if affiliation == "none":
        room.affiliations.pop(bare, None)
    else:
        room.affiliations[bare] = affiliation
    room.changed()
    present = [o for o in room.occupants.values() if o.bare == bare]
    if not present and previous != affiliation:
        announceAffiliation(room, bare, affiliation, reason, actor)
    for occupant in present:
        if affiliation == "outcast":
            room.removeOccupant(occupant, [STATUS_BANNED], reason=reason, actor=actor,
                                affiliation="outcast")
            continue
        if affiliation == "none" and room.config.get("membersonly"):
            room.removeOccupant(occupant, [STATUS_AFFILIATION_CHANGED], reason=reason,
                                actor=actor, affiliation="none")
            continue
        role = roles.defaultRole(affiliation, bool(room.config.get("moderated")),
                                 bool(room.config.get("membersonly")))
        if occupant.role == "visitor" and role != "moderator" and affiliation == "none":
            role = "visitor"
        occupant.role = role
        room.broadcastPresence(occupant, reason=reason, actor=actor, toSelf=True)


def applyAffiliations(room, planned: dict) -> None:
    """Make the room's affiliations C{planned} (bare JID -> affiliation), one change per account."""
    current = dict(room.affiliations)
    for bare in sorted(set(current) | set(planned)):
        affiliation = planned.get(bare, "none")
        if current.get(bare, "none") != affiliation:
            setAffiliation(room, bare, affiliation, None)
