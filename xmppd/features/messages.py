# -*- test-case-name: tests.test_messages -*-
"""
Message delivery to local accounts (RFC 6121 §8.5, RFC 6120 §10.3.1).

Hooks C{"message/bare"} and C{"message/full"} at priority 0, so features that
must see a message first (blocking, carbons, archive) hook higher and return
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
such lookup runs, later messages for the same account wait behind it, so
offline storage keeps them in the order they were sent.

Implements: RFC 6121 §8.5 (message delivery), RFC 6120 §10.3.1
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import XMPPHandler

from xmppd.core.events import StanzaEvent
from xmppd.core.delivery import mostAvailable
from xmppd.core.stanzas import hold, messageType

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
        #: bare JID string -> events waiting for the account lookup under way.
        self.waiting: dict[str, list[StanzaEvent]] = {}

    def register(self) -> None:
        self.hooks.add("message/bare", self.onBareMessage)
        self.hooks.add("message/full", self.onFullMessage)

    # -- hooks -------------------------------------------------------------

    def onBareMessage(self, event: StanzaEvent):
        if event.domain is not self.domain:
            return None
        self.toBare(event, messageType(event.stanza), accountKnown=False)
        return True

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
            self.toBare(event, kind, accountKnown=False)
        elif kind != "error":
            # §8.5.3.2.1: normal, groupchat, headline: ignore or error; we answer.
            self.domain.bounce(event.stanza, "service-unavailable")
        return True

    # -- delivery ------------------------------------------------------------

    def toBare(self, event: StanzaEvent, kind: str, accountKnown: bool) -> None:
        """Apply §8.5.2 to C{event}; C{accountKnown}: storage said the account exists."""
        if kind == "error":
            return
        if kind == "groupchat":
            self.domain.bounce(event.stanza, "service-unavailable")
            return
        sessions = self.sessions.sessionsOf(event.recipient)
        if sessions:
            targets = mostAvailable(sessions, everyone=kind == "headline")
            if targets:
                deliver, stanza = self.domain.deliverToSession, event.stanza
                for session in targets:
                    deliver(session, stanza)
                return
        elif not accountKnown:
            if kind == "headline":
                # Dropped whether the account exists (§8.5.2.2.1) or not
                # (§8.5.1 allows it): no need to ask.
                return
            if not self.hooks.has("message/offline"):
                # Nobody could store it: the answer is service-unavailable
                # for a missing account (§8.5.1) and an offline one alike.
                self.domain.bounce(event.stanza, "service-unavailable")
                return
            self.checkAccount(event)
            return
        self.offline(event, kind)

    def offline(self, event: StanzaEvent, kind: str) -> None:
        """The account exists and no resource takes the message (§8.5.2.2.1)."""
        if kind == "headline":
            return
        if self.hooks.fire("message/offline", event):
            return
        self.domain.bounce(event.stanza, "service-unavailable")

    # -- account lookups -------------------------------------------------------

    def checkAccount(self, event: StanzaEvent) -> None:
        """Ask storage whether the recipient's account exists, keeping order per account."""
        key = event.recipient.userhost()
        waiting = self.waiting.get(key)
        if waiting is not None and len(waiting) >= MAX_WAITING:
            self.domain.bounce(event.stanza, "resource-constraint")
            return
        # Issue 5's durability contract: until the lookup is answered nobody
        # has taken the message, so stream management must not acknowledge
        # it yet; what its taker then adds to the list is waited for too.
        decided = hold(event.stanza)
        if waiting is not None:
            waiting.append((event, decided))
            return
        self.waiting[key] = [(event, decided)]
        d = defer.maybeDeferred(self.domain.storage.users.userExists,
                                event.recipient.user, event.recipient.host)
        d.addCallbacks(self.accountChecked, self.accountCheckFailed,
                       callbackArgs=(key,), errbackArgs=(key,))

    def accountChecked(self, exists: bool, key: str) -> None:
        for event, decided in self.waiting.pop(key, ()):
            try:
                if exists:
                    # Sessions may have come up meanwhile: decide again.
                    self.toBare(event, messageType(event.stanza), accountKnown=True)
                else:
                    self.domain.bounce(event.stanza, "service-unavailable")
            except Exception:
                self.log.failure("Delivering a message to {jid} failed", jid=key)
            decided.callback(None)

    def accountCheckFailed(self, failure, key: str) -> None:
        self.log.failure("Looking up account {jid} failed", failure, jid=key)
        for event, decided in self.waiting.pop(key, ()):
            self.domain.bounce(event.stanza, "internal-server-error")
            decided.callback(None)


def makeHandler(domain) -> MessageHandler:
    handler = MessageHandler(domain)
    handler.register()
    return handler
