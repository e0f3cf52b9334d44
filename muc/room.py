# -*- test-case-name: tests.test_muc_room,tests.test_muc_presence,tests.test_muc_nickname -*-
"""
The room model (XEP-0045 §7, §8): occupants entering and leaving, presence,
nicks, groupchat and private messages, the subject and the history.

Pure: a room does no I/O.  It takes parsed stanzas from its service and
emits stanzas through it (C{service.send} for one element,
C{service.fanout} for a stanza serialized once for many recipients); it
fires hooks (L{muc.events}) at each decision a room option may veto, and
tells the service when it changed (to save it), emptied or was destroyed.
Its test builds a room on a stub service and feeds it XML literals.

Sending may re-enter the room: a served domain bounces a message to a
session that is gone at once, and the room removes that occupant (status
333) while it is still sending.  So every loop that sends walks a copy of
the occupants and their sessions.

Rules a client notices, with their sections:

  - Entering (§7.2): the new occupant gets every other occupant's presence,
    then its own with status 110 (plus 100 in a non-anonymous room, 170
    when logging is on, 201 for a room it just created, 210 when the
    service changed its nick), then the history, then the subject (even an
    empty one).  Everyone else gets its presence once.  Errors: a locked
    room item-not-found (§10.1.1), an outcast forbidden (§7.2.8), a nick in
    use or registered to someone else conflict (§7.2.9), then the options'
    vetoes (password not-authorized of type auth, members-only
    registration-required, full service-unavailable).
  - One account may be in a room from several devices under one nick; they
    share one occupant, and every device gets what the occupant gets.
  - Leaving (§7.14), nick changes (§7.6, status 303), presence updates
    (§7.7).  The last occupant leaving a temporary room destroys it.
  - Nicks (L{muc.nickname}, RFC 8266): a nick the PRECIS Nickname profile
    refuses gets jid-malformed (type modify) with a text saying why; one it
    maps is used mapped (status 210); nicks equal after its comparison
    rules ("Romeo", "ROMEO") are one nick and collide (conflict).
  - Joining again under one's own nick (presence with the MUC C{<x/>}
    from a device already in the room) resends the room state as a fresh
    join would: occupants, own presence, history as asked, subject.
  - Presence probes (L{muc.probes}) get the occupant's current presence.
  - Messages (§7.4): only occupants may send groupchat messages
    (not-acceptable otherwise), sent to every occupant with the sender's
    occupant JID.  A message with a subject and neither body nor thread
    changes the subject (§8.1); with a body it is an ordinary message,
    kept in the history and archive, and the subject stays.  Private
    messages (§7.5) go to every device of the target nick.
  - An error reply from an occupant's device (it went away without telling
    the room, or cannot take what the room sends) removes that device,
    status 333 with the error as status text (§11.1); an error of type
    "wait" removes nobody.
  - Every error the room answers with names the room in C{by}.
"""

from __future__ import annotations

import weakref

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from muc import nickname, probes, roles
from muc.broadcast import Prepared
from muc.events import JoinEvent, MessageEvent, StanzaOutEvent
from muc.history import History, historyRequest, stamp
from muc.occupant import Occupant
from muc.protocol import (
    NS_DELAY, NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, NS_PING, STATUS_CREATED,
    STATUS_ERROR_REMOVED, STATUS_LOGGING, STATUS_NICK_ASSIGNED, STATUS_NICK_CHANGED,
    STATUS_NON_ANONYMOUS, STATUS_SELF, child, element, itemElement, roomError, userX)
from xmppd.core.jid import InvalidJID, makeJID, prepResourcepart

#: The one error type after which a device stays in the room: "wait" means
#: it is there but busy (RFC 6120 §8.3.2); any other error reply to what the
#: room sent means the room cannot reach that device (status 333).
TRANSIENT_ERROR = "wait"

#: Children of a client's groupchat message the room never passes on: ids
#: that only the room may assign (XEP-0421 §4, XEP-0359 §6).
FORGEABLE = frozenset(((NS_OCCUPANT_ID, "occupant-id"), ("urn:xmpp:sid:0", "stanza-id")))

#: How many IQs forwarded between occupants wait for their answer at most.
MAX_PENDING_IQS = 1000


class Room:
    log = Logger()

    def __init__(self, service, jid: JID):
        self.service = service
        self.hooks = service.hooks
        #: The room's bare JID; C{name} is its localpart.
        self.jid = jid
        self.jidText = jid.full()
        self.name = jid.user
        # Options without a key (the owner and admin lists) live elsewhere.
        self.config: dict = {option.key: option.defaultFor(service.settings)
                             for option in service.options if option.key is not None}
        #: Real bare JID string -> "owner" | "admin" | "member" | "outcast".
        self.affiliations: dict[str, str] = {}
        #: Real bare JID string -> registered nick (§7.10).
        self.registered: dict[str, str] = {}
        #: Nick -> occupant, and each real full JID string -> its occupant.
        self.occupants: dict[str, Occupant] = {}
        self.byJID: dict[str, Occupant] = {}
        #: RFC 8266 comparison key of each occupant's nick -> the occupant
        #: (L{muc.nickname}), so "Romeo" and "ROMEO" collide in one look-up.
        self.nickKeys: dict[str, Occupant] = {}
        self.subject = ""
        #: The occupant JID (or the room's) that set the subject.
        self.subjectFrom: str | None = None
        self.history = History(service.settings.history_length)
        #: A new room stays locked until its owner configures it (§10.1.1).
        self.locked = False
        self.destroyed = False
        #: (forwarded iq id, the target's real JID) -> (the asking real JID,
        #: its own iq id), for IQs between occupants (§7.5 for IQs, vCards
        #: and the like).  The room gives each forwarded IQ an id of its own,
        #: so two askers who chose the same id never get each other's answer.
        self.pendingIQs: dict[tuple[str, str], tuple[str, str]] = {}
        self.forwardedIQs = 0
        #: Visitor occupant -> when its last voice request went to the
        #: moderators (L{muc.voice}); it goes with the occupant.
        self.voiceRequests: weakref.WeakKeyDictionary[Occupant, float] = \
            weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return "<Room %s>" % self.jidText

    # -- small questions ---------------------------------------------------

    def affiliationOf(self, bare: str) -> str:
        return self.affiliations.get(bare, "none")

    def occupantJID(self, nick: str) -> JID:
        return makeJID(self.jid.user, self.jid.host, nick)

    def seesJIDs(self, occupant: Occupant) -> bool:
        """Whether C{occupant} is shown real JIDs (§5.2.1: whois)."""
        return self.config.get("whois") == "anyone" or occupant.role == "moderator"

    def broadcastsPresenceOf(self, occupant: Occupant) -> bool:
        roles_ = self.config.get("presencebroadcast")
        return roles_ is None or occupant.role in roles_

    def nickOwner(self, nick: str) -> str | None:
        """The bare JID that registered C{nick} (or an equivalent nick, RFC 8266 §2.4), if any."""
        key = nickname.comparisonKey(nick)
        for bare, registered in self.registered.items():
            if registered == nick or nickname.comparisonKey(registered) == key:
                return bare
        return None

    def occupantNamed(self, nick: str) -> Occupant | None:
        """The occupant whose nick is C{nick} or equivalent to it (RFC 8266 §2.4)."""
        occupant = self.occupants.get(nick)
        if occupant is not None:
            return occupant
        occupant = self.nickKeys.get(nickname.comparisonKey(nick))
        if occupant is not None and self.occupants.get(occupant.nick) is not occupant:
            # Removed by code that bypassed L{forgetNick}: not an occupant any more.
            del self.nickKeys[nickname.comparisonKey(nick)]
            return None
        return occupant

    def rememberNick(self, occupant: Occupant) -> None:
        self.occupants[occupant.nick] = occupant
        self.nickKeys[nickname.comparisonKey(occupant.nick)] = occupant

    def forgetNick(self, occupant: Occupant) -> None:
        if self.occupants.get(occupant.nick) is occupant:
            del self.occupants[occupant.nick]
        key = nickname.comparisonKey(occupant.nick)
        if self.nickKeys.get(key) is occupant:
            del self.nickKeys[key]

    def refuse(self, stanza: domish.Element, condition: str, text: str | None = None,
               errorType: str | None = None) -> None:
        """An error reply from the room, C{by} the room (XEP-0045 examples, RFC 6120 §8.3.2)."""
        reply = roomError(self.jidText, stanza, condition, text, errorType)
        if reply is not None:
            self.service.send(reply)

    def changed(self) -> None:
        """Something worth saving changed (config, affiliations, subject)."""
        self.service.roomChanged(self)

    # -- presence (§7.2, §7.6, §7.7, §7.14) ------------------------------

    def onPresence(self, stanza: domish.Element, sender: JID, nick: str | None) -> None:
        presenceType = stanza.getAttribute("type")
        if presenceType == "error":
            self.onError(stanza, sender)
            return
        occupant = self.byJID.get(sender.full())
        if presenceType == "unavailable":
            if occupant is not None:
                self.leave(occupant, sender.full(), stanza)
            return
        if presenceType == "probe":
            probes.onProbe(self, stanza, sender, nick)
            return
        if presenceType is not None:
            return  # Subscriptions to a room mean nothing (§7.2 speaks of available presence).
        if nick is None:
            # §7.2.1: entering needs a nick.
            self.refuse(stanza, "jid-malformed", "a room is entered as room@service/nick")
            return
        try:
            wanted = nickname.enforce(nick)
        except nickname.InvalidNickname as e:
            self.refuse(stanza, "jid-malformed", str(e), "modify")
            return
        if occupant is None:
            self.join(stanza, sender, wanted, requested=nick)
        elif occupant.nick != wanted:
            self.changeNick(occupant, stanza, wanted)
        elif child(stanza, NS_MUC, "x") is not None:
            self.rejoin(occupant, stanza, sender.full())
        else:
            self.updatePresence(occupant, stanza)

    def join(self, stanza: domish.Element, sender: JID, nick: str, created: bool = False,
             requested: str | None = None) -> None:
        """
        §7.2: C{sender} enters as C{nick}, a nick L{nickname.enforce}
        accepted; C{requested} is the nick as the client asked for it
        (status 210 when the room changed it).
        """
        bare = sender.userhost()
        # Service admins ([muc] admins) enter every room as its owners.
        affiliation = "owner" if bare in self.service.settings.admins else self.affiliationOf(bare)
        if self.locked and affiliation != "owner":
            self.refuse(stanza, "item-not-found", "this room is not configured yet")
            return
        if affiliation == "outcast":
            self.refuse(stanza, "forbidden", "you are banned from this room")
            return
        x = child(stanza, NS_MUC, "x")
        assigned = None
        reserved = self.registered.get(bare)
        if reserved is not None and reserved != nick and self.config.get("reservednick"):
            # x-muc#roomconfig_reservednick: members are known by their registered nick.
            assigned, nick = nick, reserved
        existing = self.occupantNamed(nick)
        if existing is not None and existing.bare == bare and existing.nick != nick:
            # The same account under an equivalent nick (RFC 8266 §2.4): that occupant.
            assigned, nick = assigned or nick, existing.nick
        if assigned is None and requested is not None and requested != nick:
            assigned = requested  # RFC 8266 mapped it (spaces, width, NFKC).
        if existing is not None and existing.bare != bare:
            self.refuse(stanza, "conflict", "that nickname is in use")
            return
        owner = self.nickOwner(nick)
        if owner is not None and owner != bare:
            self.refuse(stanza, "conflict", "that nickname is registered by someone else")
            return
        password = None
        if x is not None:
            for elem in x.elements(NS_MUC, "password"):
                password = str(elem)
        if existing is None:
            refusal = self.hooks.fire("room/join", JoinEvent(
                self, sender, nick, affiliation, stanza, password))
            if refusal is not None:
                self.refuse(stanza, refusal.condition, refusal.text, refusal.errorType)
                return
        fullText = sender.full()
        if existing is None:
            occupant = Occupant(nick, self.occupantJID(nick), bare, roles.defaultRole(
                affiliation, bool(self.config.get("moderated")),
                bool(self.config.get("membersonly"))))
            self.rememberNick(occupant)
            newcomer = True
        else:
            occupant = existing
            newcomer = False
        occupant.sessions[fullText] = sender
        occupant.presence = presencePayload(stanza)
        occupant.lastSeen = self.service.clock.seconds()
        self.byJID[fullText] = occupant
        self.log.debug("{jid} entered {room} as {nick}", jid=fullText, room=self.jidText, nick=nick)
        extra = []
        if created:
            extra.append(STATUS_CREATED)
        if assigned is not None:
            extra.append(STATUS_NICK_ASSIGNED)
        self.sendRoomState(occupant, fullText, stanza, extra, announce=newcomer)
        if not newcomer:
            # Another device of an occupant: everyone else already knows it,
            # its own devices learn the (possibly new) presence.
            self.sendToSelf(occupant, self.presenceOf(occupant, occupant, statuses=[STATUS_SELF]),
                            exclude=fullText)

    def sendRoomState(self, occupant: Occupant, fullText: str, stanza: domish.Element,
                      extra=(), announce: bool = False) -> None:
        """
        What entering sends one device (§7.2.3-§7.2.15): the others'
        presence first, then (with C{announce}, everyone else learning of the
        newcomer in between) its own with 110 and the room's status codes,
        then the history its C{<history/>} asks for, then the subject.
        """
        for other in list(self.occupants.values()):
            if other is not occupant and self.broadcastsPresenceOf(other):
                self.service.send(self.presenceOf(other, occupant, to=fullText))
        if announce:
            self.broadcastPresence(occupant)
        statuses = [STATUS_SELF]
        if self.config.get("whois") == "anyone":
            statuses.append(STATUS_NON_ANONYMOUS)
        if self.config.get("logging"):
            statuses.append(STATUS_LOGGING)
        statuses.extend(extra)
        self.service.send(self.presenceOf(occupant, occupant, to=fullText, statuses=statuses))
        self.sendHistory(fullText, historyRequest(stanza))
        self.sendSubject(fullText)

    def rejoin(self, occupant: Occupant, stanza: domish.Element, fullText: str) -> None:
        """
        A device already in the room joins again under its nick (a client
        that lost track of the room: a restart, a resumed stream that was
        not resumed): it gets the room state as a fresh join would
        (occupants, its own presence, the history it asks for, the subject).
        Everyone else hears of it only if its presence changed.
        """
        payload = presencePayload(stanza)
        changed = [e.toXml() for e in payload] != [e.toXml() for e in occupant.presence]
        occupant.presence = payload
        occupant.lastSeen = self.service.clock.seconds()
        self.sendRoomState(occupant, fullText, stanza)
        if changed:
            self.broadcastPresence(occupant)
            self.sendToSelf(occupant, self.presenceOf(occupant, occupant, statuses=[STATUS_SELF]),
                            exclude=fullText)

    def updatePresence(self, occupant: Occupant, stanza: domish.Element) -> None:
        """§7.7: a changed show or status goes to everyone."""
        occupant.presence = presencePayload(stanza)
        self.broadcastPresence(occupant)
        self.sendToSelf(occupant, self.presenceOf(occupant, occupant, statuses=[STATUS_SELF]))

    def changeNick(self, occupant: Occupant, stanza: domish.Element, nick: str) -> None:
        """§7.6: unavailable from the old nick with 303, available from the new."""
        existing = self.occupantNamed(nick)
        if existing is not None and existing is not occupant:
            self.refuse(stanza, "conflict", "that nickname is in use")
            return
        owner = self.nickOwner(nick)
        if owner is not None and owner != occupant.bare:
            self.refuse(stanza, "conflict", "that nickname is registered by someone else")
            return
        if self.config.get("reservednick") and occupant.bare in self.registered:
            self.refuse(stanza, "not-acceptable", "members use their registered nickname here")
            return
        refusal = self.hooks.fire("room/nick", MessageEvent(self, occupant, stanza, nick))
        if refusal is not None:
            self.refuse(stanza, refusal.condition, refusal.text, refusal.errorType)
            return
        old = occupant.nick
        self.broadcastPresence(occupant, [STATUS_NICK_CHANGED], presenceType="unavailable",
                               newNick=nick, toSelf=True)
        self.forgetNick(occupant)
        occupant.nick = nick
        occupant.roomJID = self.occupantJID(nick)
        self.rememberNick(occupant)
        occupant.presence = presencePayload(stanza)
        self.broadcastPresence(occupant)
        self.sendToSelf(occupant, self.presenceOf(occupant, occupant, statuses=[STATUS_SELF]))

    def leave(self, occupant: Occupant, fullText: str, stanza: domish.Element | None) -> None:
        """§7.14: one device leaves; the occupant leaves with its last device."""
        del self.byJID[fullText]
        del occupant.sessions[fullText]
        # §7.14: the status text goes with the leave, and the item says role none.
        payload = stanzaChildren(stanza, "status")[-1:] if stanza is not None else []
        goodbye = self.presenceOf(occupant, occupant, to=fullText, statuses=[STATUS_SELF],
                                  presenceType="unavailable", payload=payload, role="none")
        self.service.send(goodbye)
        if occupant.sessions:
            return
        occupant.role = "none"
        self.forgetNick(occupant)
        self.broadcastPresence(occupant, presenceType="unavailable", payload=payload)
        self.emptied()

    def removeOccupant(self, occupant: Occupant, statuses, reason: str | None = None,
                       actor: str | None = None, affiliation: str | None = None,
                       payload=None) -> None:
        """Kick, ban, a lost membership (§§8.2, 9.1, 9.4): every device goes."""
        occupant.role = "none"
        for fullText in list(occupant.sessions):
            del self.byJID[fullText]
        self.broadcastPresence(occupant, statuses, presenceType="unavailable", reason=reason,
                               actor=actor, toSelf=True, affiliation=affiliation,
                               payload=payload)
        occupant.sessions.clear()
        self.forgetNick(occupant)
        self.emptied()

    def emptied(self) -> None:
        if not self.occupants:
            self.service.roomEmpty(self)

    # -- building and sending presence -----------------------------------

    def presenceOf(self, occupant: Occupant, receiver: Occupant, to: str | None = None,
                   statuses=(), presenceType: str | None = None, newNick: str | None = None,
                   reason: str | None = None, actor: str | None = None,
                   affiliation: str | None = None, payload=None,
                   role: str | None = None) -> domish.Element:
        """C{occupant}'s presence as C{receiver} sees it (§7.2.3: the real JID only to those who may)."""
        presence = element("presence", **{"from": occupant.roomJID.full(), "to": to,
                                          "type": presenceType})
        for elem in (occupant.presence if payload is None else payload):
            presence.addChild(elem)
        showJID = receiver is occupant or self.seesJIDs(receiver)
        item = itemElement(affiliation or self.affiliationOf(occupant.bare), role or occupant.role,
                           jid=occupant.jid.full() if showJID and occupant.sessions else None,
                           nick=newNick, reason=reason, actor=actor)
        presence.addChild(userX(statuses, item))
        self.hooks.notify("room/occupant-stanza", StanzaOutEvent(self, occupant, presence))
        return presence

    def broadcastPresence(self, occupant: Occupant, statuses=(), presenceType=None,
                          newNick=None, reason=None, actor=None, toSelf=False,
                          affiliation=None, payload=None) -> None:
        """
        C{occupant}'s presence to every other occupant, built at most twice
        (with and without the real JID) and serialized once each; with
        C{toSelf} its own devices get it too, with status 110.
        """
        if self.broadcastsPresenceOf(occupant) or presenceType == "unavailable":
            variants: dict[bool, Prepared] = {}
            for other in list(self.occupants.values()):
                if other is occupant:
                    continue
                sees = self.seesJIDs(other)
                prepared = variants.get(sees)
                if prepared is None:
                    prepared = variants[sees] = Prepared(self.presenceOf(
                        occupant, other, statuses=statuses, presenceType=presenceType,
                        newNick=newNick, reason=reason, actor=actor,
                        affiliation=affiliation, payload=payload))
                for jid in list(other.sessions.values()):
                    self.service.fanout(prepared, jid)
        if toSelf:
            self.sendToSelf(occupant, self.presenceOf(
                occupant, occupant, statuses=[STATUS_SELF, *statuses],
                presenceType=presenceType, newNick=newNick, reason=reason, actor=actor,
                affiliation=affiliation, payload=payload))

    def sendToSelf(self, occupant: Occupant, stanza: domish.Element, exclude: str | None = None) -> None:
        if not occupant.sessions:
            return
        prepared = Prepared(stanza)
        for fullText, jid in list(occupant.sessions.items()):
            if fullText != exclude:
                self.service.fanout(prepared, jid)

    def sendToAll(self, stanza: domish.Element) -> None:
        """One stanza (no C{to}) to every device of every occupant, serialized once."""
        prepared = Prepared(stanza)
        fanout = self.service.fanout
        for occupant in list(self.occupants.values()):
            for jid in list(occupant.sessions.values()):
                fanout(prepared, jid)

    # -- messages (§7.4, §7.5, §8.1) ---------------------------------------

    def onMessage(self, stanza: domish.Element, sender: JID, nick: str | None) -> None:
        messageType = stanza.getAttribute("type")
        if messageType == "error":
            self.onError(stanza, sender)
            return
        if nick is not None:
            self.onPrivateMessage(stanza, sender, nick)
            return
        if messageType == "groupchat":
            self.onGroupchat(stanza, sender)
            return
        x = child(stanza, NS_MUC_USER, "x")
        if x is not None:
            self.service.onUserX(self, stanza, sender, x)
            return
        if self.service.onRoomMessage(self, stanza, sender):
            return
        self.refuse(stanza, "bad-request",
                    "messages to a room are of type groupchat (XEP-0045 §7.4)")

    def onGroupchat(self, stanza: domish.Element, sender: JID) -> None:
        occupant = self.byJID.get(sender.full())
        if occupant is None:
            self.refuse(stanza, "not-acceptable", "only occupants may send messages to the room")
            return
        body = subject = thread = None
        for elem in stanza.elements():
            if elem.uri not in (stanza.uri, None):
                continue
            if elem.name == "body":
                body = elem
            elif elem.name == "subject":
                subject = elem
            elif elem.name == "thread":
                thread = elem
        if subject is not None and body is None and thread is None:
            # §8.1: a subject with a body or a thread is a message, not a subject change.
            self.changeSubject(occupant, stanza, str(subject))
            return
        refusal = self.hooks.fire("room/message", MessageEvent(self, occupant, stanza))
        if refusal is not None:
            self.refuse(stanza, refusal.condition, refusal.text, refusal.errorType)
            return
        out = element("message", **{"from": occupant.roomJID.full(), "type": "groupchat",
                                    "id": stanza.getAttribute("id")})
        out.children = withoutForgedIds(stanza.children)
        event = StanzaOutEvent(self, occupant, out)
        self.hooks.notify("room/occupant-stanza", event)
        self.hooks.notify("room/groupchat", event)
        prepared = Prepared(out)
        now = self.service.clock.seconds()
        occupant.lastSeen = now
        if body is not None:
            self.history.append(out, now, len(prepared.head) + len(prepared.tail))
        fanout = self.service.fanout
        for other in list(self.occupants.values()):
            for jid in list(other.sessions.values()):
                fanout(prepared, jid)

    def changeSubject(self, occupant: Occupant, stanza: domish.Element, subject: str) -> None:
        """§8.1: moderators, or everyone when the room allows it."""
        if occupant.role != "moderator" and not self.hooks.fire(
                "room/subject", MessageEvent(self, occupant, stanza)):
            self.refuse(stanza, "forbidden", "you may not change the subject of this room")
            return
        self.subject = subject
        self.subjectFrom = occupant.roomJID.full()
        self.sendToAll(self.subjectMessage())
        self.changed()

    def subjectMessage(self, to: str | None = None) -> domish.Element:
        message = element("message", **{"from": self.subjectFrom or self.jidText, "to": to,
                                        "type": "groupchat"})
        message.addElement("subject", content=self.subject)
        return message

    def sendSubject(self, to: str) -> None:
        """§7.2.15: the subject, even an empty one, ends entering a room."""
        self.service.send(self.subjectMessage(to))

    def sendHistory(self, to: str, request: domish.Element | None) -> None:
        for entry in self.history.select(request, self.service.clock.seconds()):
            original = entry.element
            message = domish.Element((original.uri, original.name))
            message.attributes = dict(original.attributes)
            message["to"] = to
            delay = domish.Element((NS_DELAY, "delay"))
            delay["from"] = self.jidText
            delay["stamp"] = stamp(entry.when)
            message.children = [*original.children, delay]
            self.service.send(message)

    def onPrivateMessage(self, stanza: domish.Element, sender: JID, nick: str) -> None:
        """§7.5: between occupants, from the sender's occupant JID."""
        occupant = self.byJID.get(sender.full())
        if occupant is None:
            self.refuse(stanza, "not-acceptable", "only occupants may send private messages")
            return
        if stanza.getAttribute("type") == "groupchat":
            self.refuse(stanza, "bad-request", "private messages are not of type groupchat")
            return
        target = self.occupantNamed(nick)
        if target is None:
            self.refuse(stanza, "item-not-found", "no occupant has that nickname")
            return
        refusal = self.hooks.fire("room/pm", MessageEvent(self, occupant, stanza, target))
        if refusal is not None:
            self.refuse(stanza, refusal.condition, refusal.text, refusal.errorType)
            return
        if child(stanza, NS_MUC_USER, "x") is None:
            stanza.addElement((NS_MUC_USER, "x"))  # §7.5: marks it as a private message.
        children = withoutForgedIds(stanza.children)
        for fullText in list(target.sessions):
            message = copyStanza(stanza)
            message.children = list(children)
            message["from"] = occupant.roomJID.full()
            message["to"] = fullText
            self.service.send(message)

    # -- IQs between occupants (§7.5 for IQs, XEP-0410 self-ping) ---------

    def onOccupantIQ(self, stanza: domish.Element, sender: JID, nick: str) -> None:
        iqType = stanza.getAttribute("type")
        if iqType in ("result", "error"):
            self.onIQResponse(stanza, sender, nick)
            return
        occupant = self.byJID.get(sender.full())
        if occupant is None:
            # XEP-0410 §3: a client not in the room learns so.
            self.refuse(stanza, "not-acceptable", "you are not in this room")
            return
        target = self.occupantNamed(nick)
        if target is None:
            self.refuse(stanza, "item-not-found", "no occupant has that nickname")
            return
        if target is occupant and child(stanza, NS_PING, "ping") is not None:
            # XEP-0410 §3: a self-ping is answered by the room.
            self.service.send(element("iq", **{"type": "result", "id": stanza.getAttribute("id"),
                                               "from": stanza["to"], "to": sender.full()}))
            return
        if iqType != "get" or stanza.getAttribute("id") is None:
            self.refuse(stanza, "not-allowed", "only queries may be sent to occupants")
            return
        destination = target.jid.full()
        if len(self.pendingIQs) >= MAX_PENDING_IQS:
            self.pendingIQs.pop(next(iter(self.pendingIQs)))
        self.forwardedIQs += 1
        forwardedId = "muc%d-%s" % (self.forwardedIQs, stanza["id"])
        self.pendingIQs[(forwardedId, destination)] = (sender.full(), stanza["id"])
        forwarded = copyStanza(stanza)
        forwarded["id"] = forwardedId
        forwarded["from"] = occupant.roomJID.full()
        forwarded["to"] = destination
        self.service.send(forwarded)

    def onIQResponse(self, stanza: domish.Element, sender: JID, nick: str) -> None:
        pending = self.pendingIQs.pop((stanza.getAttribute("id"), sender.full()), None)
        responder = self.byJID.get(sender.full())
        if pending is None or responder is None:
            return
        asker, askerId = pending
        answer = copyStanza(stanza)
        answer["id"] = askerId
        answer["from"] = responder.roomJID.full()
        answer["to"] = asker
        self.service.send(answer)

    # -- errors from devices -----------------------------------------------

    def onError(self, stanza: domish.Element, sender: JID) -> None:
        """
        A device that answers what the room sent it with an error (a
        message or presence of type error from its full JID) cannot be
        reached: it is removed with status 333 and the error as its status
        text (XEP-0045 §11.1 "Service removes user because of error
        response", §18.1 "Ghost Users").  An error of type "wait" only says
        "later" and removes nobody.

        When the account is in the room from other devices too, only the
        bouncing device goes: it gets its unavailable self-presence (110,
        333), the others stay, and the rest of the room sees nothing leave;
        if the real JID others were shown was that device's, they get the
        occupant's presence again with the JID that is left.
        """
        fullText = sender.full()
        occupant = self.byJID.get(fullText)
        if occupant is None:
            return
        errorType, condition, text = errorOf(stanza)
        if errorType == TRANSIENT_ERROR:
            return
        status = element("status")
        status.addContent("removed after an error reply: %s%s" % (
            condition or "undefined-condition", (": " + text) if text else ""))
        if len(occupant.sessions) == 1:
            self.log.debug("{jid} bounced a stanza of {room} ({condition}): removed",
                           jid=fullText, room=self.jidText, condition=condition)
            self.removeOccupant(occupant, [STATUS_ERROR_REMOVED], payload=[status])
            return
        shown = occupant.jid.full()
        del self.byJID[fullText]
        del occupant.sessions[fullText]
        self.service.send(self.presenceOf(
            occupant, occupant, to=fullText, statuses=[STATUS_SELF, STATUS_ERROR_REMOVED],
            presenceType="unavailable", payload=[status], role="none"))
        if shown == fullText:
            self.broadcastPresence(occupant)


def errorOf(stanza: domish.Element) -> tuple[str | None, str | None, str | None]:
    """The type, the defined condition and the text of an error stanza's C{<error/>}."""
    for error in stanzaChildren(stanza, "error"):
        condition = text = None
        for elem in error.elements():
            if elem.name == "text":
                text = str(elem).strip() or None
            elif condition is None:
                condition = elem.name
        return error.getAttribute("type"), condition, text
    return None, None, None


def stanzaChildren(stanza: domish.Element, name: str) -> list[domish.Element]:
    """
    C{stanza}'s children C{name} in the stanza's own namespace: parsed ones
    are C{jabber:client} (or C{jabber:server}), ones built in-process by
    Twisted (a L{StanzaError}'s C{<error/>}) have none.
    """
    return [elem for elem in stanza.elements()
            if elem.name == name and elem.uri in (stanza.uri, None)]


def presencePayload(stanza: domish.Element) -> list[domish.Element]:
    """What of a client's presence the room repeats: all but the MUC extensions and forged ids."""
    return [elem for elem in stanza.elements()
            if elem.uri not in (NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID)]


def withoutForgedIds(children) -> list:
    """A client's children but the ids only the room may assign (L{FORGEABLE})."""
    return [c for c in children
            if not (isinstance(c, domish.Element) and (c.uri, c.name) in FORGEABLE)]


def copyStanza(stanza: domish.Element) -> domish.Element:
    """A new element with the attributes copied and the children shared."""
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri)
    copy.attributes = dict(stanza.attributes)
    copy.children = list(stanza.children)
    return copy


def parseNick(resource: str | None) -> str | None:
    """A nick as the room compares it, or None when there is none or it is invalid."""
    if not resource:
        return None
    try:
        return prepResourcepart(resource)
    except InvalidJID:
        return None
