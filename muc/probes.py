# -*- test-case-name: tests.test_muc_presence -*-
"""
Presence probes to a room or an occupant (XEP-0045 §17.3 allows a room to
answer them; RFC 6121 §4.3 says what an answer is), as Prosody answers them.

  - Only occupants may probe (a client that is not in the room gets
    C{not-acceptable}, as it would for a private message, §7.5): who is in
    a room is for those in it.
  - A probe to an occupant JID gets that occupant's current presence, with
    the C{muc#user} item as the prober may see it (the real JID only to
    those who may, §7.2.3; status 110 when it is the prober's own).  An
    occupant whose presence the room does not broadcast (C{presencebroadcast})
    answers only to moderators and to itself.
  - A nick nobody is using gets unavailable presence with role "none"; a
    nick registered to someone (§7.10) carries that member's affiliation.
  - A probe to the room's bare JID gets every occupant's presence the
    prober may see, its own last with 110: the occupant list a client that
    lost track of the room needs.
"""

from __future__ import annotations

from muc.protocol import STATUS_SELF, element, itemElement, userX


def onProbe(room, stanza, sender, nick) -> None:
    prober = room.byJID.get(sender.full())
    if prober is None:
        room.refuse(stanza, "not-acceptable", "only occupants may probe presence in this room")
        return
    to = sender.full()
    if nick is None:
        for other in list(room.occupants.values()):
            if other is not prober and visible(room, other, prober):
                room.service.send(room.presenceOf(other, prober, to=to))
        room.service.send(room.presenceOf(prober, prober, to=to, statuses=[STATUS_SELF]))
        return
    target = room.occupantNamed(nick)
    if target is not None and (target is prober or visible(room, target, prober)):
        statuses = [STATUS_SELF] if target is prober else []
        room.service.send(room.presenceOf(target, prober, to=to, statuses=statuses))
        return
    owner = room.nickOwner(nick)
    affiliation = room.affiliationOf(owner) if owner is not None else "none"
    showJID = owner is not None and room.seesJIDs(prober)
    presence = element("presence", **{"from": stanza["to"], "to": to, "type": "unavailable"})
    presence.addChild(userX((), itemElement(affiliation, "none", jid=owner if showJID else None,
                                            nick=nick if owner is not None else None)))
    room.service.send(presence)


def visible(room, occupant, prober) -> bool:
    """Whether C{prober} may hear of C{occupant}'s presence (muc#roomconfig_presencebroadcast)."""
    return room.broadcastsPresenceOf(occupant) or prober.role == "moderator"
