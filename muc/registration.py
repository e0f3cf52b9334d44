# -*- test-case-name: tests.test_muc_registration -*-
"""
Registering with a room (XEP-0045 §7.10): an account reserves a nick and
becomes a member; nobody else may then use that nick in the room (conflict),
and the nick is found again by reserved-nick discovery (§7.12, disco#info
node C{x-roomuser-item}).  C{<remove/>} cancels a registration.  Rooms with
registration off (C{x-muc#roomconfig_registration}) answer
service-unavailable; outcasts are forbidden.
"""

from __future__ import annotations

from wokkel import data_form

from muc import nickname
from muc.admin import requesterAffiliation, setAffiliation
from muc.protocol import NS_DATA, NS_MUC_REGISTER, NS_REGISTER, child, element
from xmppd.core.jid import InvalidJID, prepResourcepart


def onRegisterIQ(room, iq, query, sender) -> None:
    if not room.config.get("registration", True):
        room.refuse(iq, "service-unavailable", "this room does not take registrations")
        return
    bare = sender.userhost()
    if requesterAffiliation(room, sender) == "outcast":
        room.refuse(iq, "forbidden", "you are banned from this room")
        return
    reply = element("iq", **{"type": "result", "id": iq.getAttribute("id"),
                             "from": room.jidText, "to": sender.full()})
    if iq["type"] == "get":
        answer = reply.addElement((NS_REGISTER, "query"))
        if bare in room.registered:
            answer.addElement("registered")
            answer.addElement("username", content=room.registered[bare])
        else:
            form = data_form.Form("form", title="Register with %s" % room.jidText,
                                  formNamespace=NS_MUC_REGISTER)
            form.addField(data_form.Field("text-single", var="muc#register_roomnick",
                                          label="Desired nickname", required=True))
            answer.addChild(form.toElement())
        room.service.send(reply)
        return
    if child(query, NS_REGISTER, "remove") is not None:
        # Cancelling (XEP-0077 §3.2 applied to a room, §7.10): the nick is
        # freed and membership ends, whether it came from registering or
        # from an admin; the iq result comes first, then, in a members-only
        # room, the account's occupant leaves with status 321.
        member = room.affiliationOf(bare) == "member"
        if bare not in room.registered and not member:
            room.refuse(iq, "item-not-found", "you are not registered with this room")
            return
        room.registered.pop(bare, None)
        room.service.send(reply)
        if member:
            setAffiliation(room, bare, "none", None)
        room.changed()
        return
    x = child(query, NS_DATA, "x")
    if x is None:
        room.refuse(iq, "bad-request", "submit the registration form")
        return
    form = data_form.Form.fromElement(x)
    if form.formType == "cancel":
        room.service.send(reply)
        return
    field = form.fields.get("muc#register_roomnick")
    given = str(field.value or "") if field is not None else ""
    if not given:
        room.refuse(iq, "not-acceptable", "a nickname is required")
        return
    try:
        # The nick the room would let its owner enter with (RFC 8266, muc.nickname).
        nick = nickname.enforce(prepResourcepart(given))
    except InvalidJID:
        room.refuse(iq, "not-acceptable", "that nickname is not a valid resourcepart")
        return
    except nickname.InvalidNickname as e:
        room.refuse(iq, "not-acceptable", str(e))
        return
    owner = room.nickOwner(nick)
    inUse = room.occupantNamed(nick)
    if (owner is not None and owner != bare) or (inUse is not None and inUse.bare != bare):
        room.refuse(iq, "conflict", "that nickname is taken")
        return
    room.registered[bare] = nick
    if room.affiliationOf(bare) == "none":
        setAffiliation(room, bare, "member", None)
    room.changed()
    room.service.send(reply)
