# -*- test-case-name: tests.test_muc_moderation -*-
"""
Moderated message retraction (XEP-0425): a moderator removes an occupant's
message from a room by the C{<stanza-id/>} the room gave it (XEP-0359,
assigned by L{muc.features.archive} in a logging room).

  - The request is an IQ set to the room's JID, in either form clients
    send: C{<moderate id xmlns='urn:xmpp:message-moderate:1'>} with a
    C{<retract xmlns='urn:xmpp:message-retract:1'/>} (0.3.0, current), or
    C{<apply-to id xmlns='urn:xmpp:fasten:0'>} around C{<moderate
    xmlns='urn:xmpp:message-moderate:0'>} with a
    C{<retract xmlns='urn:xmpp:message-retract:0'/>} (0.2.x, still sent by
    older Converse.js and Gajim).  An optional C{<reason/>} goes along.
  - Who: moderators (§8 of XEP-0045), and owners and admins who are not in
    the room (they would be moderators there); anyone else gets
    C{forbidden}.  An id the room's archive and history do not know gets
    C{item-not-found}; a message the room sent itself (an earlier
    moderation) C{not-acceptable}.
  - Every occupant, the moderator included, then gets one message from the
    room carrying both notification forms, so old and new clients apply it:
    C{<retract id xmlns='urn:xmpp:message-retract:1'>} with a
    C{<moderated/>} (C{by} the moderator's occupant JID, their XEP-0421
    occupant id) and the reason (0.3.0 §3.1, which a client knowing only
    XEP-0424 also understands), and the 0.2.1 C{<apply-to/>} form.  A
    logging room archives that message too (XEP-0424 §6: clients that were
    away learn of the retraction from the archive).
  - The archived message becomes a tombstone (XEP-0425 §4, XEP-0424 §5):
    its body and every other child that could tell what it said are
    dropped; it keeps its attributes, stanza-id, origin-id and the
    author's occupant id, and gains C{<retracted stamp/>} with the
    C{<moderated/>} and reason inside (0.3.0), plus the 0.2.1 tombstone
    (C{<moderated by>} around C{<retracted/>}).  MAM queries on the room
    return the tombstone in the message's place; the message also leaves
    the discussion history that newcomers get.
  - disco#info of a logging room (the only kind that gives stanza-ids)
    lists C{urn:xmpp:message-moderate:1}, C{urn:xmpp:message-moderate:0}
    and C{urn:xmpp:message-retract:1#tombstone}.

Implements: XEP-0425 0.3.0 (and the 0.2.1 request, notification and tombstone), XEP-0424 0.4.2 (tombstones of moderated messages)
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from muc import roles
from muc.admin import requesterAffiliation, requesterRole
from muc.features import archive
from muc.features.occupantid import occupantId
from muc.history import stamp
from muc.protocol import NS_OCCUPANT_ID, NS_STANZA_ID, element
from xmppd.core.hooks import DELIVER
from xmppd.features.mam.query import newArchiveId, parseStored

OPTIONS = ()

NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_MODERATE_0 = "urn:xmpp:message-moderate:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_TOMBSTONE = NS_RETRACT + "#tombstone"

#: What of a moderated message its tombstone keeps: ids, never content
#: (XEP-0425 §4: "any related elements which might leak information").
KEPT = frozenset(((NS_STANZA_ID, "stanza-id"), (NS_STANZA_ID, "origin-id"),
                  (NS_OCCUPANT_ID, "occupant-id")))

log = Logger()


@dataclass(frozen=True)
class Request:
    """A moderation request, whichever form it came in."""

    stanzaId: str | None
    retract: bool
    reason: str | None


class Refused(Exception):
    def __init__(self, condition: str, text: str):
        Exception.__init__(self, text)
        self.condition = condition
        self.text = text


def register(hooks):
    hooks.add("room/iq", onIQ, DELIVER)
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    if event.room.config.get("logging"):
        event.features.extend((NS_MODERATE, NS_MODERATE_0, NS_TOMBSTONE))


def parseRequest(iq: domish.Element) -> Request | None:
    """The moderation C{iq} asks for, or None when it is no moderation request."""
    for child in iq.elements():
        if (child.uri, child.name) == (NS_MODERATE, "moderate"):
            return Request(child.getAttribute("id"),
                           any(True for _ in child.elements(NS_RETRACT, "retract")),
                           reasonOf(child))
        if (child.uri, child.name) == (NS_FASTEN, "apply-to"):
            for moderate in child.elements(NS_MODERATE_0, "moderate"):
                return Request(child.getAttribute("id"),
                               any(True for _ in moderate.elements(NS_RETRACT_0, "retract")),
                               reasonOf(moderate))
        return None
    return None


def reasonOf(parent: domish.Element) -> str | None:
    # Clients put <reason/> in the moderate element's namespace or in none.
    for child in parent.elements():
        if child.name == "reason":
            return str(child).strip() or None
    return None


def onIQ(event):
    iq = event.stanza
    request = parseRequest(iq)
    if request is None:
        return None
    room = event.room
    try:
        check(room, iq, event.sender, request)
    except Refused as e:
        room.refuse(iq, e.condition, e.text)
        return True
    defer.ensureDeferred(moderate(room, iq, event.sender, request)).addErrback(
        lambda f: log.failure("Moderating a message in {room}", f, room=room.jidText))
    return True


def check(room, iq: domish.Element, sender, request: Request) -> None:
    if iq.getAttribute("type") != "set":
        raise Refused("bad-request", "a moderation is an IQ set")
    if not request.stanzaId:
        raise Refused("bad-request", "name the message by the stanza-id the room gave it")
    if not request.retract:
        raise Refused("feature-not-implemented", "the only moderation here is retraction")
    if not isModerator(room, sender):
        raise Refused("forbidden", "only moderators may retract other people's messages")


def isModerator(room, sender) -> bool:
    """
    Moderators in the room; owners and admins outside it, whose role there
    would be moderator (XEP-0045 §5.1.2), may moderate too.
    """
    role = requesterRole(room, sender)
    if role == "none":
        role = roles.defaultRole(requesterAffiliation(room, sender), False, False)
    return role == "moderator"


def stanzaIdOf(room, message: domish.Element) -> str | None:
    """The stanza-id the room gave C{message} (XEP-0359 §4: by the room's JID)."""
    for tag in message.elements(NS_STANZA_ID, "stanza-id"):
        if tag.getAttribute("by") == room.jidText:
            return tag.getAttribute("id")
    return None


async def moderate(room, iq: domish.Element, sender, request: Request) -> None:
    storage = room.service.storage
    stanzaId = request.stanzaId
    # The message leaves the history at once: entering occupants never see
    # it again, whatever the archive answers.
    inHistory = room.history.remove(lambda m: stanzaIdOf(room, m) == stanzaId)
    if inHistory:
        room.changed()
    try:
        page = await storage.queryMessages(room.service.domain, room.name, ids=[stanzaId],
                                           limit=1)
    except Exception:
        log.failure("Looking up a moderated message in {room}", room=room.jidText)
        room.refuse(iq, "internal-server-error")
        return
    original = page.messages[0] if page.messages else None
    if original is None and not inHistory:
        room.refuse(iq, "item-not-found", "this room has no message with that stanza-id")
        return
    if original is not None and original.peer == room.jidText:
        room.refuse(iq, "not-acceptable", "only occupants' messages can be moderated")
        return
    # The room may have been unloaded and restored while storage answered.
    current = room.service.rooms.get(room.name, room)
    moderator = current.byJID.get(sender.full())
    by = moderator.roomJID.full() if moderator is not None else current.jidText
    actorId = occupantId(current, moderator) if moderator is not None else None
    when = stamp(current.service.clock.seconds())
    if original is not None:
        tombstone = tombstoneOf(parseStored(original.xml), by, actorId, request.reason, when)
        try:
            await storage.replaceMessage(room.service.domain, room.name, stanzaId,
                                         archive.stored(tombstone))
        except Exception:
            log.failure("Storing a tombstone in {room}", room=room.jidText)
            room.refuse(iq, "internal-server-error")
            return
    log.info("{actor} moderated message {id} in {room}", actor=sender.full(), id=stanzaId,
             room=current.jidText)
    announcement = announcementOf(current, stanzaId, by, actorId, request.reason)
    if current.config.get("logging"):
        archive.record(current, announcement)
    current.sendToAll(announcement)
    current.service.send(element("iq", **{"type": "result", "id": iq.getAttribute("id"),
                                          "from": current.jidText, "to": sender.full()}))


def moderatedElement(uri: str, by: str | None, actorId: str | None) -> domish.Element:
    moderated = domish.Element((uri, "moderated"))
    if by is not None:
        moderated["by"] = by
    if actorId is not None:
        moderated.addElement((NS_OCCUPANT_ID, "occupant-id"))["id"] = actorId
    return moderated


def announcementOf(room, stanzaId: str, by: str, actorId: str | None,
                   reason: str | None) -> domish.Element:
    """The message every occupant gets: the 0.3.0 form and the 0.2.1 form side by side."""
    message = element("message", **{"from": room.jidText, "type": "groupchat",
                                     "id": newArchiveId()})
    retract = message.addElement((NS_RETRACT, "retract"))
    retract["id"] = stanzaId
    retract.addChild(moderatedElement(NS_MODERATE, by, actorId))
    if reason is not None:
        retract.addElement((NS_RETRACT, "reason"), content=reason)
    applyTo = message.addElement((NS_FASTEN, "apply-to"))
    applyTo["id"] = stanzaId
    legacy = applyTo.addChild(moderatedElement(NS_MODERATE_0, by, None))
    legacy.addElement((NS_RETRACT_0, "retract"))
    if reason is not None:
        legacy.addElement((NS_MODERATE_0, "reason"), content=reason)
    return message


def tombstoneOf(original: domish.Element, by: str, actorId: str | None, reason: str | None,
                when: str) -> domish.Element:
    """C{original} as the archive keeps it once moderated: its ids, and what became of it."""
    tombstone = domish.Element((original.uri, original.name))
    tombstone.attributes = dict(original.attributes)
    tombstone.children = [child for child in original.elements()
                          if (child.uri, child.name) in KEPT]
    retracted = tombstone.addElement((NS_RETRACT, "retracted"))
    retracted["stamp"] = when
    retracted.addChild(moderatedElement(NS_MODERATE, by, actorId))
    if reason is not None:
        retracted.addElement((NS_RETRACT, "reason"), content=reason)
    legacy = tombstone.addChild(moderatedElement(NS_MODERATE_0, by, None))
    legacy.addElement((NS_RETRACT_0, "retracted"))["stamp"] = when
    if reason is not None:
        legacy.addElement((NS_MODERATE_0, "reason"), content=reason)
    return tombstone
