# -*- test-case-name: tests.test_muc_voice -*-
"""
Voice requests (XEP-0045 §7.13, §8.6): a visitor in a moderated room asks
for voice, the room asks its moderators, and a moderator's approval makes
the visitor a participant.

  - A visitor sends the room a C{<message/>} with a submitted data form of
    FORM_TYPE C{http://jabber.org/protocol/muc#request} whose C{muc#role}
    is C{participant} (§7.13).  The room sends every moderator's devices
    an approval form (§8.6): C{muc#role}, C{muc#jid} (the visitor's real
    JID), C{muc#roomnick} and C{muc#request_allow} (false).
  - A moderator who submits that form with C{muc#request_allow} true
    grants voice exactly as the muc#admin protocol does (§8.3): everyone
    gets the occupant's presence with role C{participant}, the moderator's
    nick as the actor.  Submitting false, or cancelling, changes nothing.
  - What the spec leaves to the service: a request from outside the room
    is C{not-acceptable} (as a groupchat message would be), a form that
    asks for another role C{bad-request}, an approval from someone who is
    not a moderator C{forbidden}, an approval naming nobody present
    C{item-not-found}.  A request from an occupant who already has voice,
    or an approval for one, is moot and dropped, as Prosody does.  A
    visitor's repeated requests reach the moderators once per
    L{REQUEST_INTERVAL}, so one visitor cannot flood them.
"""

from __future__ import annotations

from wokkel import data_form

from muc import roles
from muc.admin import requesterAffiliation, setRole
from muc.broadcast import Prepared
from muc.protocol import NS_DATA, NS_MUC_REQUEST, element
from muc.room import parseNick
from xmppd.core.jid import InvalidJID, parseJID

#: Seconds before another request of the same visitor reaches the moderators.
REQUEST_INTERVAL = 60.0

TRUE = ("1", "true")


def requestForm(stanza) -> tuple[str | None, dict[str, str]] | None:
    """
    The type and values (var -> first value) of the muc#request data form
    C{stanza} carries, or None.  Read by hand rather than with wokkel's
    parser: submitting clients may leave out C{type='hidden'} on
    FORM_TYPE (XEP-0004 §3.2 lets a submitted form omit field types),
    which wokkel would then not take as the form's namespace.
    """
    for x in stanza.elements(NS_DATA, "x"):
        values = {}
        for field in x.elements(NS_DATA, "field"):
            var = field.getAttribute("var")
            if var is not None and var not in values:
                values[var] = next((str(v) for v in field.elements(NS_DATA, "value")), "")
        if values.get("FORM_TYPE") == NS_MUC_REQUEST:
            return x.getAttribute("type"), values
    return None


def onRoomMessage(room, stanza, sender) -> bool:
    """Handle a voice request or approval sent to C{room}; False when C{stanza} is neither."""
    form = requestForm(stanza)
    if form is None:
        return False
    formType, values = form
    if formType == "cancel":
        return True  # A moderator who skips a request (§8.6).
    if formType != "submit":
        room.refuse(stanza, "bad-request", "submit the voice request form")
        return True
    occupant = room.byJID.get(sender.full())
    if occupant is None:
        room.refuse(stanza, "not-acceptable", "only occupants may ask for or grant voice")
        return True
    if occupant.role == "moderator":
        approve(room, stanza, sender, occupant, values)
    elif values.get("muc#request_allow") in TRUE:
        room.refuse(stanza, "forbidden", "only moderators may grant voice")
    else:
        request(room, stanza, occupant, values)
    return True


def request(room, stanza, occupant, values) -> None:
    """§7.13: forward a visitor's request to the moderators, once per interval."""
    if values.get("muc#role", "participant") != "participant":
        room.refuse(stanza, "bad-request", "a voice request asks for the participant role")
        return
    if occupant.role != "visitor":
        return  # It already has voice.
    now = room.service.clock.seconds()
    last = room.voiceRequests.get(occupant)
    if last is not None and now - last < REQUEST_INTERVAL:
        return
    moderators = [o for o in room.occupants.values() if o.role == "moderator"]
    if not moderators:
        return  # Nobody could answer; the visitor may ask again later.
    room.voiceRequests[occupant] = now
    prepared = Prepared(approvalForm(room, occupant))
    for moderator in moderators:
        for jid in list(moderator.sessions.values()):
            room.service.fanout(prepared, jid)


def approvalForm(room, occupant):
    """The message a moderator answers (§8.6)."""
    form = data_form.Form(
        "form", title="Voice request", formNamespace=NS_MUC_REQUEST,
        instructions=("To approve this request for voice, select the "
                      "\"Grant voice to this person?\" checkbox and submit the form. "
                      "To skip this request, cancel the form."))
    form.addField(data_form.Field("list-single", var="muc#role", label="Requested role",
                                  value="participant",
                                  options=[data_form.Option("participant", "Participant")]))
    form.addField(data_form.Field("jid-single", var="muc#jid", label="User ID",
                                  value=occupant.jid.full()))
    form.addField(data_form.Field("text-single", var="muc#roomnick", label="Room nickname",
                                  value=occupant.nick))
    form.addField(data_form.Field("boolean", var="muc#request_allow",
                                  label="Grant voice to this person?", value=False))
    message = element("message", **{"from": room.jidText})
    message.addChild(form.toElement())
    return message


def approve(room, stanza, sender, moderator, values) -> None:
    """§8.6: a moderator's answer; true grants the participant role (§8.3)."""
    if values.get("muc#request_allow") not in TRUE:
        return  # Declined.
    target = requester(room, values)
    if target is None:
        room.refuse(stanza, "item-not-found", "the occupant who asked for voice is not here")
        return
    if target.role != "visitor":
        return  # Someone already gave it voice.
    if not roles.mayChangeRole(requesterAffiliation(room, sender), moderator.role,
                               room.affiliationOf(target.bare), target.role, "participant"):
        room.refuse(stanza, "not-allowed", "you may not change the role of %s" % target.nick)
        return
    room.voiceRequests.pop(target, None)
    setRole(room, target, "participant", None, moderator.nick)


def requester(room, values):
    """The occupant an approval names: by its real JID, else by its nick."""
    jid = values.get("muc#jid")
    if jid:
        try:
            real = parseJID(jid)
        except InvalidJID:
            real = None
        if real is not None:
            target = room.byJID.get(real.full())
            if target is None and real.resource is None:
                target = next((o for o in room.occupants.values()
                               if o.bare == real.userhost()), None)
            if target is not None:
                return target
    nick = parseNick(values.get("muc#roomnick"))
    return room.occupants.get(nick) if nick else None
