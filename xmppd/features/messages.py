# -*- test-case-name: tests.test_messages -*-
"""
Message delivery to local accounts (RFC 6121 §8.5, RFC 6120 §10.3.1).

Hooks C{"message/bare"} and C{"message/full"} in the band C{DELIVER}, so features that
must see a message first (blocking, carbons, archive) hook in earlier bands and return
C{True} to stop it.  A message whose type is missing or unknown is of type
"normal" (RFC 6121 §5.2.2).  Delivery never rewrites the C{to} of a message
sent to a bare JID (§8.5.2.1.1), and never answers an error with an error.

To a bare JID (and a message with no C{to}, which is addressed to the
sender's own bare JID, RFC 6120 §10.3.1):

  - "normal" and "chat": to the available resource(s) with the highest
    non-negative priority.  When several share that priority, B{every one of
    them gets the message}: §8.5.2.1.1 lets the server choose one of them or
    all, and a message that reaches every device the user is looking at is
    never lost in one left on a desk.  A resource with a negative priority,
    or one that has not sent initial presence, never gets a message sent to
    the bare JID (§4.7.2.3).
  - "headline": every available resource with a non-negative priority.
  - "groupchat": never delivered; C{service-unavailable} (§8.5.2.1.1).
  - "error": silently dropped.

When no resource qualifies (§8.5.2.2.1, and §8.5.2.1.1 when every available
resource has a negative priority), "normal" and "chat" fire the hook
C{"message/offline"} (a L{xmppd.core.events.StanzaEvent}; offline storage takes it
by returning C{True}), and if nobody takes it the sender gets
C{service-unavailable}; "headline" is dropped.

To a full JID: a bound resource gets every message, of any type, whether or
not it has sent presence (§8.5.3.1).  When no resource matches (§8.5.3.2.1),
"chat" follows the bare-JID rules above, "error" is dropped, and "normal",
"groupchat" and "headline" get C{service-unavailable} (the RFC allows
dropping them or answering with an error; an error tells the sender the
message went nowhere).

To an account that does not exist (§8.5.1): C{service-unavailable}, except
errors and headlines, which are dropped.  Whether an account exists is asked
of storage only when it matters: when the account has no session at all and
a C{"message/offline"} callback could store the message.  Otherwise the answer
is the same either way, so the sender cannot tell a missing account from an
offline one and delivery to online users never touches storage.  While one
such lookup runs the message's hook chain waits (a Deferred, see
L{xmppd.core.hooks}, which holds the message for stream management), and
later messages for the same account share the lookup and go on after it, in
order (at most L{MAX_WAITING}, then C{resource-constraint}), so offline
storage keeps them in the order they were sent.

Implements: RFC 6121 §8.5 (message delivery), RFC 6120 §10.3.1
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import XMPPHandler

from xmppd.core.hooks import DELIVER
from xmppd.core.events import MESSAGE_BARE, MESSAGE_FULL, MESSAGE_OFFLINE, StanzaEvent
from xmppd.core.delivery import mostAvailable
from xmppd.core.stanzas import messageType

#: Messages that may wait behind one account lookup; past this the sender
#: gets C{resource-constraint} (DESIGN §4: every queue bounded).
MAX_WAITING = 1000


class MessageHandler(XMPPHandler):
    """
    RFC 6121 §8.5 for one served domain; see the module docstring.  Hooks
    are shared by every domain of the node, so each callback leaves alone
    the stanzas of other domains.
    """

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.sessions = domain.sessions
        self.hooks = domain.hooks
        #: bare JID string -> the answers waiting for the account lookup under way.
        self.waiting: dict[str, list[defer.Deferred]] = {}

    def register(self) -> None:
        self.hooks.add(MESSAGE_BARE, self.onBareMessage, DELIVER)
        self.hooks.add(MESSAGE_FULL, self.onFullMessage, DELIVER)

    # -- hooks -------------------------------------------------------------

    def onBareMessage(self, event: StanzaEvent):
        if event.domain is not self.domain:
            return None
        waiting = self.toBare(event, messageType(event.stanza), accountKnown=False)
        return True if waiting is None else waiting

    def onFullMessage(self, event: StanzaEvent):
        if event.domain is not self.domain:
            return None
        session = self.sessions.get(event.recipient)
        if session is not None:
            # §8.5.3.1: an available or connected resource gets it, whatever its type.
            self.domain.deliverToSession(session, event.stanza)
            return True
        kind = messageType(event.stanza)
        if kind == "chat":
            # §8.5.3.2.1: chat to a resource that is gone follows the bare-JID rules.
            waiting = self.toBare(event, kind, accountKnown=False)
            if waiting is not None:
                return waiting
        elif kind != "error":
            # §8.5.3.2.1: normal, groupchat, headline: ignore or error; we answer.
            self.domain.bounce(event.stanza, "service-unavailable")
        return True

    # -- delivery ------------------------------------------------------------

    def toBare(self, event: StanzaEvent, kind: str, accountKnown: bool):
        """
        Apply §8.5.2 to C{event}; C{accountKnown}: storage said the account
        exists.  C{None} once done, or a Deferred (firing C{True}) while the
        account is looked up or offline storage waits.
        """
        if kind == "error":
            return None
        if kind == "groupchat":
            self.domain.bounce(event.stanza, "service-unavailable")
            return None
        sessions = self.sessions.sessionsOf(event.recipient)
        if sessions:
            targets = mostAvailable(sessions, everyone=kind == "headline")
            if targets:
                deliver, stanza = self.domain.deliverToSession, event.stanza
                for session in targets:
                    deliver(session, stanza)
                return None
        elif not accountKnown:
            if kind == "headline":
                # Dropped whether the account exists (§8.5.2.2.1) or not
                # (§8.5.1 allows it): no need to ask.
                return None
            if not self.hooks.has(MESSAGE_OFFLINE):
                # Nobody could store it: the answer is service-unavailable
                # for a missing account (§8.5.1) and an offline one alike.
                self.domain.bounce(event.stanza, "service-unavailable")
                return None
            return self.checkAccount(event)
        return self.offline(event, kind)

    def offline(self, event: StanzaEvent, kind: str):
        """The account exists and no resource takes the message (§8.5.2.2.1)."""
        if kind == "headline":
            return None
        taken = self.hooks.fire(MESSAGE_OFFLINE, event)
        if taken:
            if isinstance(taken, defer.Deferred):
                return taken.addCallback(self.offlineDone, event)
            return None
        self.domain.bounce(event.stanza, "service-unavailable")
        return None

    def offlineDone(self, taken, event: StanzaEvent) -> bool:
        if not taken:
            self.domain.bounce(event.stanza, "service-unavailable")
        return True

    # -- account lookups -------------------------------------------------------

    def checkAccount(self, event: StanzaEvent) -> defer.Deferred | None:
        """
        Ask storage whether the recipient's account exists.  The hook chain
        waits for the answer (and so holds the message, issue 5); messages
        for an account being looked up share the lookup and go on in the
        order they came, so offline storage keeps them in that order.
        """
        key = event.recipient.userhost()
        waiting = self.waiting.get(key)
        if waiting is not None and len(waiting) >= MAX_WAITING:
            self.domain.bounce(event.stanza, "resource-constraint")
            return None
        answer = defer.Deferred()
        answer.addCallback(self.accountAnswered, event)
        if waiting is not None:
            waiting.append(answer)
            return answer
        self.waiting[key] = [answer]
        d = defer.maybeDeferred(self.domain.storage.users.userExists,
                                event.recipient.user, event.recipient.host)
        d.addCallbacks(self.accountChecked, self.accountCheckFailed,
                       callbackArgs=(key,), errbackArgs=(key,))
        return answer

    def accountChecked(self, exists: bool, key: str) -> None:
        for answer in self.waiting.pop(key, ()):
            answer.callback(bool(exists))

    def accountCheckFailed(self, failure, key: str) -> None:
        self.log.failure("Looking up account {jid} failed", failure, jid=key)
        for answer in self.waiting.pop(key, ()):
            answer.callback(None)

    def accountAnswered(self, exists: bool | None, event: StanzaEvent):
        """Deliver, store or bounce once storage answered (C{None}: it failed)."""
        if exists is None:
            self.domain.bounce(event.stanza, "internal-server-error")
        elif not exists:
            self.domain.bounce(event.stanza, "service-unavailable")
        else:
            try:
                # Sessions may have come up meanwhile: decide again.
                waiting = self.toBare(event, messageType(event.stanza), accountKnown=True)
            except Exception:
                self.log.failure("Delivering a message to {jid} failed",
                                 jid=event.recipient.userhost())
            else:
                if waiting is not None:
                    return waiting
        return True


def makeHandler(domain) -> MessageHandler:
    handler = MessageHandler(domain)
    handler.register()
    return handler
