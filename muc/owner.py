# -*- test-case-name: tests.test_muc_owner -*-
"""
Owner use cases (XEP-0045 §10, the muc#owner namespace): the configuration
form, instant and reserved rooms, and destroying a room.

  - A new room is locked (§10.1.1) until its owner submits a form: an empty
    one accepts the defaults (an instant room, §10.1.2), a filled one
    configures it (a reserved room, §10.1.3); cancelling the first form
    destroys the room.
  - The form (§10.2) lists every option of L{muc.features} with its current
    value.  A submitted form is read whole before anything changes: one
    value that cannot be used answers C{not-acceptable} naming it, and the
    room stays as it was.  After a change everyone in the room gets a
    message with status 104 (and 170-174 for logging and anonymity).
  - Destroying (§10.9) sends every occupant unavailable presence with the
    reason and the alternate venue, and forgets the room, stored state and
    archive included.
"""

from __future__ import annotations

from twisted.words.xish import domish
from wokkel import data_form

from muc.admin import applyAffiliations, requesterAffiliation
from muc.events import ConfiguredEvent
from muc.protocol import (
    NS_DATA, NS_MUC_OWNER, NS_MUC_ROOMCONFIG, STATUS_CONFIG_CHANGED, child, element, itemElement,
    userX)


def onOwnerIQ(room, iq: domish.Element, query: domish.Element, sender) -> None:
    if requesterAffiliation(room, sender) != "owner":
        room.refuse(iq, "forbidden", "only owners may configure this room")
        return
    if iq["type"] == "get":
        reply = result(room, iq, sender)
        reply.addElement((NS_MUC_OWNER, "query")).addChild(configForm(room).toElement())
        room.service.send(reply)
        return
    destroy = child(query, NS_MUC_OWNER, "destroy")
    if destroy is not None:
        reason = None
        for elem in destroy.elements(NS_MUC_OWNER, "reason"):
            reason = str(elem)
        destroyRoom(room, destroy.getAttribute("jid"), reason)
        room.service.send(result(room, iq, sender))
        return
    form = child(query, NS_DATA, "x")
    if form is None:
        room.refuse(iq, "bad-request", "send a configuration form or a destroy request")
        return
    formType = form.getAttribute("type")
    if formType == "cancel":
        room.service.send(result(room, iq, sender))
        if room.locked:
            destroyRoom(room, None, None)  # §10.1.3: cancelling a new room's form.
        return
    if formType != "submit":
        room.refuse(iq, "bad-request", "the form must be submitted or cancelled")
        return
    try:
        submitted = data_form.Form.fromElement(form)
    except data_form.Error as e:
        room.refuse(iq, "bad-request", "the form cannot be read: %s" % (e,))
        return
    problem = applyForm(room, submitted)
    if problem is not None:
        room.refuse(iq, "not-acceptable", problem)
        return
    room.service.send(result(room, iq, sender))


def result(room, iq, sender) -> domish.Element:
    return element("iq", **{"type": "result", "id": iq.getAttribute("id"),
                            "from": room.jidText, "to": sender.full()})


def configForm(room) -> data_form.Form:
    form = data_form.Form("form", title="Configuration of %s" % room.jidText,
                          instructions=("Your room has been created. Submit the form as it "
                                        "is to accept the defaults.") if room.locked else None,
                          formNamespace=NS_MUC_ROOMCONFIG)
    for option in room.service.options:
        form.addField(option.field(option.current(room)))
    return form


def applyForm(room, form: data_form.Form) -> str | None:
    """Apply a submitted form; a problem's text, or None when it was applied."""
    if form.formNamespace not in (None, NS_MUC_ROOMCONFIG):
        return "this is not a room configuration form"
    settings = room.service.settings
    parsed = []
    for option in room.service.options:
        field = form.fields.get(option.var)
        if field is None:
            continue
        try:
            parsed.append((option, option.parse([str(v) for v in field.values], settings)))
        except ValueError as e:
            return str(e)
    # The owner and admin lists (muc.features.affiliations) change
    # affiliations, all at once after the configuration; §10.9: a room
    # keeps at least one owner.
    planned = dict(room.affiliations)
    lists = False
    for option, value in parsed:
        plan = getattr(option, "plan", None)
        if plan is not None:
            plan(planned, value)
            lists = True
    if "owner" in room.affiliations.values() and "owner" not in planned.values():
        return "a room must keep at least one owner"
    old = dict(room.config)
    for option, value in parsed:
        if getattr(option, "plan", None) is None:
            option.store(room, value)
    if lists:
        applyAffiliations(room, planned)
    wasLocked, room.locked = room.locked, False
    event = ConfiguredEvent(room, old)
    room.hooks.notify("room/configured", event)
    room.changed()
    if not wasLocked and (room.config != old or event.statuses):
        notice = element("message", **{"from": room.jidText, "type": "groupchat"})
        notice.addChild(userX([STATUS_CONFIG_CHANGED, *event.statuses]))
        room.sendToAll(notice)
    room.service.roomConfigured(room)
    return None


def destroyRoom(room, alternate: str | None, reason: str | None):
    """
    §10.9: everyone leaves with the reason and where to go instead; the
    room is forgotten.  Returns the Deferred of its removal from storage
    (L{muc.service.MUCService.roomDestroyed}), for a caller that waits.
    """
    for occupant in list(room.occupants.values()):
        presence = element("presence", **{"from": occupant.roomJID.full(),
                                          "type": "unavailable"})
        x = presence.addChild(userX((), itemElement("none", "none")))
        destroy = x.addElement("destroy")
        if alternate:
            destroy["jid"] = alternate
        if reason:
            destroy.addElement("reason", content=reason)
        for fullText in occupant.sessions:
            copy = domish.Element((presence.uri, presence.name))
            copy.attributes = dict(presence.attributes)
            copy["to"] = fullText
            copy.children = presence.children
            room.service.send(copy)
    room.occupants.clear()
    room.byJID.clear()
    room.destroyed = True
    return room.service.roomDestroyed(room)


