# -*- test-case-name: tests.test_muc_invites -*-
"""
Invitations (XEP-0045 §7.8): mediated invitations through the room, and
declines sent back to the inviter.  Direct invitations (XEP-0249) go from
client to client and need nothing of the room.

An occupant sends C{<x xmlns='…muc#user'><invite to='…'/></x>} to the room;
the room checks C{"room/invite"} (L{muc.features.allowinvites}), makes the
invitee a member of a members-only room (§7.8.2), and sends the invitee a
message from the room naming the inviter, with the reason and the password
if the room has one, a human-readable body ("romeo@example.org invites you
to the room room@conference.example.org: reason") and the XEP-0249
C{<x xmlns='jabber:x:conference' jid reason password/>} for clients that
only understand direct invitations.
"""

from __future__ import annotations

from muc.protocol import NS_CONFERENCE, NS_MUC_USER, element
from muc.events import MessageEvent
from xmppd.core.jid import InvalidJID, parseJID


def onUserX(room, stanza, sender, x) -> None:
    invites = list(x.elements(NS_MUC_USER, "invite"))
    declines = list(x.elements(NS_MUC_USER, "decline"))
    if invites:
        invite(room, stanza, sender, invites)
    elif declines:
        decline(room, stanza, sender, declines[0])
    else:
        room.refuse(stanza, "bad-request", "nothing to do with this message")


def reasonOf(elem) -> str | None:
    for reason in elem.elements(NS_MUC_USER, "reason"):
        return str(reason)
    return None


def invite(room, stanza, sender, invites) -> None:
    occupant = room.byJID.get(sender.full())
    if occupant is None:
        room.refuse(stanza, "not-acceptable", "only occupants may invite people")
        return
    targets = []
    for elem in invites:
        try:
            targets.append((parseJID(elem.getAttribute("to") or ""), reasonOf(elem)))
        except InvalidJID:
            room.refuse(stanza, "jid-malformed", "an invitation needs a valid 'to'")
            return
    for invitee, _ in targets:
        refusal = room.hooks.fire("room/invite", MessageEvent(room, occupant, stanza, invitee))
        if refusal is not None:
            room.refuse(stanza, refusal.condition, refusal.text, refusal.errorType)
            return
    for invitee, reason in targets:
        bare = invitee.userhost()
        if room.config.get("membersonly") and room.affiliationOf(bare) == "none":
            from muc.admin import setAffiliation
            setAffiliation(room, bare, "member", None)
        message = element("message", **{"from": room.jidText, "to": invitee.full()})
        x = message.addElement((NS_MUC_USER, "x"))
        tag = x.addElement("invite")
        tag["from"] = sender.full()
        if reason:
            tag.addElement("reason", content=reason)
        password = None
        if room.config.get("passwordprotected") and room.config.get("password"):
            password = room.config["password"]
            x.addElement("password", content=password)
        # XEP-0249's element too (§7.8.2's implementation note: servers keep
        # emitting it), for clients that only know direct invitations.
        conference = message.addElement((NS_CONFERENCE, "x"))
        conference["jid"] = room.jidText
        if reason:
            conference["reason"] = reason
        if password is not None:
            conference["password"] = password
        # A body, so that a client that knows neither still shows something.
        message.addElement("body", content="%s invites you to the room %s%s" % (
            sender.userhost(), room.jidText, (": " + reason) if reason else ""))
        room.service.send(message)


def decline(room, stanza, sender, elem) -> None:
    try:
        inviter = parseJID(elem.getAttribute("to") or "")
    except InvalidJID:
        room.refuse(stanza, "jid-malformed", "a decline needs a valid 'to'")
        return
    message = element("message", **{"from": room.jidText, "to": inviter.full()})
    tag = message.addElement((NS_MUC_USER, "x")).addElement("decline")
    tag["from"] = sender.userhost()
    reason = reasonOf(elem)
    if reason:
        tag.addElement("reason", content=reason)
    room.service.send(message)
