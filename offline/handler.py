# -*- test-case-name: tests.test_offline -*-
"""
Offline messages (XEP-0160): kept for an account with no available
resource, delivered when one comes online, each exactly once.

Built only on hooks (STYLE example B); message delivery never imports this
package.

Storing (hook C{"message/offline"}, fired by L{xmppd.features.messages} once the
account is known to exist and no resource takes the message, RFC 6121
§8.5.2.2.1): a message L{offline.policy.shouldStore} accepts is serialized
as it arrived (no C{<delay/>} yet) and appended to C{storage.offline}.  The
hook takes it (returns C{True}) at once; the write's outcome is reported
through the issue-5 durability contract: the message is held
(L{xmppd.core.stanzas.hold}) until it is on disk, so
stream management acknowledges it to the sender only then, and fails
(L{NotStored}) after the sender has been answered with an error:

  - C{resource-constraint} when the account already has C{[offline]
    max_messages} messages waiting.  XEP-0160 §2 suggests
    C{service-unavailable} for a full queue; the issue asks for
    C{resource-constraint} (RFC 6120 §8.3.3.18, "lacks the system resources
    necessary"), which tells the sender the message was refused rather than
    that nobody is there;
  - C{service-unavailable} when the account was removed meanwhile (§8.5.1);
  - C{resource-constraint} when the disk or the database is full
    (L{xmppd.storage.StorageFull}), C{internal-server-error} when storage
    failed otherwise (locked, read-only, an I/O error): the storage backend
    has logged the fault for the operator, once, so it is not logged again
    per message (issue 18).

Messages the policy does not keep are left to the core, which answers
C{service-unavailable} (RFC 6121 §8.5.2.2.1: not stored means an error).
With C{max_messages = 0} nothing is stored, as with the feature off
(XEP-0160 §1: C{service-unavailable}).

Replays (issue 5's contract): a message this feature or stream management
re-sends carries the mark C{replayed} (L{xmppd.core.stanzas.StanzaMeta}) and
is never stored again, except one re-routed from a session that ended
without acknowledging it (the mark C{fromUnacked}): it was accepted already, so it is stored, and
not counted against the quota, whose job is to refuse new messages, not to
lose accepted ones.

Delivering (hook C{"presence/self"} at L{PRESENCE_PRIORITY}, before the
presence feature, returning C{None} so presence goes on as usual): when a
resource sends available presence with a non-negative priority and it was
not already available with one (XEP-0160 §2 step 5: "when the recipient
next sends non-negative available presence ... the server delivers the
message to the resource that has sent that presence"), the account's
messages are fetched oldest first, in batches of L{BATCH}, each gets a
C{<delay xmlns='urn:xmpp:delay'/>} from the domain with the time it was
stored (XEP-0160 §2, XEP-0203 §3; one it already has is kept), is marked
C{replayed}, and is sent to that resource's session, its C{to} unchanged
(XEP-0160's example, and RFC 6121 §8.5.2.1.1: the server does not rewrite a
bare JID to a full one).  It does not go through the delivery hooks again:
it was accepted long ago (no policy refuses it now), and it is for that one
session, not for whatever resource delivery would choose.  Only the
messages that reached the session are deleted, after they did: a crash in
between delivers them again (at least once, never lost); a session that
ends during delivery leaves the rest for next time.

Exactly once: one account's deliveries run one at a time (two resources
coming online together: the second finds nothing left), and a delivery
first waits for the account's stores under way, so a message accepted just
before the presence is not left behind.

Imported messages: C{xmppctl import} leaves an account's offline messages
under the account-data key C{"offline-import"} (see
L{xmppd.cli.portability}); the first delivery after that moves them into the
offline store (in order, outside the quota), deletes the key, and delivers
them with the rest.  A message without a C{<delay/>} of its own is stamped
with the time of that move.  A delivery reads the key only for accounts
that may have it (L{offline.imports}: listed once, again after an import).

Disco (XEP-0160 §4): the domain announces C{msgoffline}.

Implements: XEP-0160 1.0.1, XEP-0203 2.0 (delay stamps on offline messages),
XEP-0334 1.0.0 (storage hints, see L{offline.policy})
"""

from __future__ import annotations

import dataclasses
import datetime
import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from offline.imports import OFFLINE_IMPORT_KEY, PendingImports
from offline.policy import NS_DELAY, shouldStore
from xmppd.core.hooks import DELIVER, FIRST
from xmppd.config import integer, option, section
from xmppd.core.events import (ACCOUNT_REMOVED, MESSAGE_OFFLINE, PRESENCE_SELF, AccountEvent,
                               StanzaEvent)
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT, copyStanza, hold, marks, meta, priorityOf
from xmppd.stream.xmlparser import parseStored
from xmppd.storage.interfaces import NoSuchUser, OfflineMessage, StorageFault

#: XEP-0160 §4: the disco feature of a server that stores offline messages.
NS_MSGOFFLINE = "msgoffline"


#: Before the presence feature (delivery), which marks the session
#: available, so the hook can still tell an initial presence; after the
#: last-activity feature (at FIRST), as always.
PRESENCE_PRIORITY = FIRST.then(1)

#: Messages fetched, delivered and deleted at a time.
BATCH = 100

#: The text of the <delay/> (XEP-0160 §2's example).
DELAY_TEXT = "Offline Storage"



@section("offline")
@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    max_messages: int = option(
        1000, integer(minimum=1, zeroDisables=True),
        "messages kept for an account with no available resource (XEP-0160); the "
        "next one gets resource-constraint; 0 keeps none (service-unavailable)")


class NotStored(Exception):
    """A message was not stored; its sender got the error condition given."""


def delayStamp(seconds: float) -> str:
    """C{seconds} since the epoch as an XEP-0082 DateTime in UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def hasDelay(stanza: domish.Element) -> bool:
    return any(child.name == "delay" and child.uri == NS_DELAY
               for child in stanza.elements())


def _ignore(failure: Failure) -> None:
    return None


class Mailbox:
    """
    One account's offline store while something is under way for it: the
    stores in flight, the count the quota is checked against, and the lock
    that runs deliveries one at a time.  Forgotten once idle, so memory
    grows with activity, not with accounts.
    """

    __slots__ = ("stored", "counting", "waiting", "issued", "settled", "lock")

    def __init__(self):
        #: Messages in storage (as counted, plus our stores, minus our
        #: deletes), or None until the count is known.
        self.stored: int | None = None
        self.counting = False
        #: Messages accepted while the count was being read, in order.
        self.waiting: list[tuple] = []
        #: Stores started and not finished.
        self.issued = 0
        #: Deferreds of deliveries waiting for the stores under way.
        self.settled: list[defer.Deferred] = []
        self.lock = defer.DeferredLock()

    @property
    def pending(self) -> int:
        return len(self.waiting) + self.issued

    @property
    def idle(self) -> bool:
        return (not self.pending and not self.counting and not self.settled
                and not self.lock.locked and not self.lock.waiting)

    def whenSettled(self) -> defer.Deferred:
        """Fires once every message accepted so far has been stored (or refused)."""
        if not self.pending:
            return defer.succeed(None)
        d = defer.Deferred()
        self.settled.append(d)
        return d


@implementer(IDisco)
class OfflineHandler(XMPPHandler):
    """XEP-0160 for one served domain; see the module docstring."""

    log = Logger()

    def __init__(self, domain, maxMessages: int = 1000):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.maxMessages = maxMessages
        #: username -> Mailbox, for accounts with storage work under way.
        self.mailboxes: dict[str, Mailbox] = {}
        self._imports: PendingImports | None = None

    @property
    def imports(self) -> PendingImports:
        """Which accounts may have imported messages (L{offline.imports}), once storage is up."""
        if self._imports is None:
            domain = self.domain
            self._imports = PendingImports(domain.storage.accountData, domain.domain,
                                           domain.config.server.data_dir,
                                           domain.invalidation.shared)
        return self._imports

    def register(self) -> None:
        hooks = self.domain.hooks
        if self.maxMessages:
            hooks.add(MESSAGE_OFFLINE, self.onOffline, DELIVER)
        hooks.add(PRESENCE_SELF, self.onPresence, PRESENCE_PRIORITY)
        hooks.add(ACCOUNT_REMOVED, self.onAccountRemoved, DELIVER)

    @property
    def sessions(self):
        return self.domain.sessions

    @property
    def store(self):
        return self.domain.storage.offline

    # -- disco (XEP-0160 §4) ---------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is None and not nodeIdentifier:
            return [DiscoFeature(NS_MSGOFFLINE)]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []

    # -- storing ---------------------------------------------------------------

    def onOffline(self, event: StanzaEvent):
        if event.domain is not self.domain:
            return None
        stanza = event.stanza
        found = marks(stanza)
        fromUnacked = found.fromUnacked
        if found.replayed and not fromUnacked:
            return None
        if not shouldStore(stanza):
            return None
        if stanza.getAttribute("to") is None:
            # Sent with no 'to' (RFC 6120 §10.3.1): stored addressed to the account.
            stored = copyStanza(stanza, to=event.recipient.userhost())
        else:
            stored = stanza
        accepted = hold(stanza)
        entry = (stanza, stored.toXml(), self.domain.clock.seconds(), not fromUnacked,
                 accepted)
        username = event.recipient.user
        mailbox = self.mailboxFor(username)
        if mailbox.stored is None:
            if not fromUnacked and len(mailbox.waiting) >= self.maxMessages:
                # Over the quota whatever the count says (DESIGN §4: bounded).
                self.refuse(entry, "resource-constraint",
                            "the recipient's offline storage is full")
                return True
            mailbox.waiting.append(entry)
            self.startCount(username, mailbox)
        else:
            self.admit(username, mailbox, entry)
        return True

    def mailboxFor(self, username: str) -> Mailbox:
        mailbox = self.mailboxes.get(username)
        if mailbox is None:
            mailbox = self.mailboxes[username] = Mailbox()
        return mailbox

    def release(self, username: str, mailbox: Mailbox) -> None:
        if mailbox.idle and self.mailboxes.get(username) is mailbox:
            del self.mailboxes[username]

    def startCount(self, username: str, mailbox: Mailbox) -> None:
        if mailbox.counting:
            return
        mailbox.counting = True
        d = defer.maybeDeferred(self.store.count, username, self.domain.domain)
        d.addBoth(self.counted, username, mailbox)

    def counted(self, result, username: str, mailbox: Mailbox) -> None:
        mailbox.counting = False
        waiting, mailbox.waiting = mailbox.waiting, []
        if isinstance(result, Failure):
            condition = self.failed(result, "Counting the offline messages of {user} failed",
                                    username)
            for entry in waiting:
                self.refuse(entry, condition)
        else:
            mailbox.stored = result
            for entry in waiting:
                self.admit(username, mailbox, entry)
        self.settle(mailbox)
        self.release(username, mailbox)

    def admit(self, username: str, mailbox: Mailbox, entry: tuple) -> None:
        """Store C{entry} unless the quota forbids it."""
        stanza, xml, stamp, counts, accepted = entry
        if counts and mailbox.stored + mailbox.issued >= self.maxMessages:
            self.refuse(entry, "resource-constraint", "the recipient's offline storage is full")
            self.settle(mailbox)
            self.release(username, mailbox)
            return
        mailbox.issued += 1
        d = defer.maybeDeferred(self.store.store, username, self.domain.domain, xml, stamp)
        d.addBoth(self.stored, username, mailbox, entry)

    def stored(self, result, username: str, mailbox: Mailbox, entry: tuple) -> None:
        mailbox.issued -= 1
        if isinstance(result, Failure):
            if result.check(NoSuchUser):
                # The account was removed meanwhile (RFC 6121 §8.5.1).
                self.refuse(entry, "service-unavailable")
            else:
                self.refuse(entry, self.failed(
                    result, "Storing an offline message for {user} failed", username))
        else:
            if mailbox.stored is not None:
                mailbox.stored += 1
            self.domain.metrics.offlineStored += 1
            entry[-1].callback(result)
        self.settle(mailbox)
        self.release(username, mailbox)

    def failed(self, failure: Failure, message: str, username: str) -> str:
        """
        The condition to answer a storage failure with; logged here unless
        it is a storage fault, which the backend has logged.
        """
        if failure.check(StorageFault):
            return failure.value.stanzaCondition
        self.log.failure(message, failure, user=username)
        return "internal-server-error"

    def refuse(self, entry: tuple, condition: str, text: str | None = None) -> None:
        """Answer the sender with C{condition}, then fail the acceptance."""
        stanza, accepted = entry[0], entry[-1]
        self.domain.bounce(stanza, condition, text)
        accepted.errback(NotStored(condition))
        # Stream management, when it runs, has already attached itself (it
        # looks at the acceptance list right after routing): it saw the
        # failure.  Without it nobody ever will, and an unobserved failure
        # would be logged as an unhandled error; absorb it a turn later.
        self.domain.clock.callLater(0, accepted.addErrback, _ignore)

    def settle(self, mailbox: Mailbox) -> None:
        if not mailbox.pending and mailbox.settled:
            settled, mailbox.settled = mailbox.settled, []
            for d in settled:
                d.callback(None)

    # -- delivering -------------------------------------------------------------

    def onPresence(self, event: StanzaEvent):
        if event.domain is not self.domain or event.sender is None:
            return None
        stanza = event.stanza
        if stanza.getAttribute("type") is not None:
            return None
        session = self.sessions.get(event.sender)
        if session is None:
            return None
        try:
            priority = priorityOf(stanza)
        except ValueError:
            return None  # The presence feature answers bad-request.
        if priority < 0 or (session.available and session.priority >= 0):
            return None
        self.deliver(session)
        return None

    def deliver(self, session) -> defer.Deferred:
        """Deliver the account's offline messages to C{session} (after earlier deliveries)."""
        username = session.jid.user
        mailbox = self.mailboxFor(username)
        d = mailbox.lock.run(self.deliverAll, username, mailbox, session)
        d.addErrback(lambda failure: self.log.failure(
            "Delivering the offline messages of {user} failed", failure, user=username))

        def release(result):
            self.release(username, mailbox)
            return result

        return d.addBoth(release)

    async def deliverAll(self, username: str, mailbox: Mailbox, session) -> int:
        """Deliver every message there is to C{session} while it is bound; how many."""
        await mailbox.whenSettled()
        await self.importMessages(username, mailbox)
        domain = self.domain.domain
        total = 0
        while self.sessions.get(session.jid) is session:
            messages = await self.store.fetch(username, domain, BATCH)
            done = []
            for message in messages:
                if self.sessions.get(session.jid) is not session:
                    break
                stanza = self.load(username, message)
                if stanza is not None and not self.redeliver(stanza, message.stamp, session):
                    break
                done.append(message.id)
            if done:
                await self.store.delete(username, domain, done)
                if mailbox.stored is not None:
                    mailbox.stored = max(0, mailbox.stored - len(done))
                total += len(done)
            if len(done) < len(messages) or len(messages) < BATCH:
                break
        return total

    def load(self, username: str, message: OfflineMessage) -> domish.Element | None:
        """The stored message, or None (logged) when what storage holds is not one."""
        try:
            elements = parseStored(message.xml, NS_CLIENT)
        except domish.ParserError:
            elements = []
        if len(elements) == 1 and elements[0].name == "message":
            return elements[0]
        self.log.error("Offline message {id} of {user} is not a message; dropped",
                       id=message.id, user=username)
        return None

    def redeliver(self, stanza: domish.Element, stamp: float, session) -> bool:
        """Send C{stanza} to C{session} with its delay stamp; whether it got there."""
        if not hasDelay(stanza):
            # XEP-0203 §3; XEP-0160 §2: from the server, when it was stored.
            delay = stanza.addElement((NS_DELAY, "delay"))
            delay["from"] = self.domain.domain
            delay["stamp"] = delayStamp(stamp)
            delay.addContent(DELAY_TEXT)
        account = session.jid.userhost()
        to = stanza.getAttribute("to")
        try:
            ours = to is not None and parseJID(to).userhost() == account
        except InvalidJID:
            ours = False
        if not ours:
            # Only imported data can lack a 'to' of this account.
            stanza["to"] = account
        meta(stanza).replayed = True
        if self.sessions.get(session.jid) is not session:
            return False
        self.domain.metrics.offlineDelivered += 1
        self.domain.deliverToSession(session, stanza)
        return True

    # -- imported messages -------------------------------------------------------

    async def importMessages(self, username: str, mailbox: Mailbox) -> None:
        """Move the messages C{xmppctl import} left for the account into the store."""
        domain = self.domain.domain
        if not self.imports.mayHave(username):
            return
        data = self.domain.storage.accountData
        raw = await data.get(username, domain, OFFLINE_IMPORT_KEY)
        if raw is None:
            return
        try:
            texts = json.loads(raw)
        except ValueError:
            texts = None
        if not isinstance(texts, list):
            self.log.error("Imported offline messages of {user} are not a JSON list; dropped",
                           user=username)
            texts = []
        stamp = self.domain.clock.seconds()
        moved = 0
        for text in texts:
            try:
                elements = parseStored(text, NS_CLIENT) if isinstance(text, str) else []
            except domish.ParserError:
                elements = []
            if len(elements) != 1 or elements[0].name != "message":
                self.log.error("An imported offline message of {user} is not a message; "
                               "dropped", user=username)
                continue
            await self.store.store(username, domain, elements[0].toXml(), stamp)
            moved += 1
            if mailbox.stored is not None:
                mailbox.stored += 1
        # A crash before this line moves them again at the next login (a
        # duplicate, never a loss): storage has no transaction across stores.
        await data.delete(username, domain, OFFLINE_IMPORT_KEY)
        self.imports.moved(username)
        self.log.info("Moved {count} imported offline messages of {user} into storage",
                      count=moved, user=username)

    # -- accounts --------------------------------------------------------------

    def onAccountRemoved(self, event: AccountEvent) -> None:
        # Storage removed the messages with the account; forget its count.
        if event.domain == self.domain.domain:
            mailbox = self.mailboxes.get(event.username)
            if mailbox is not None and mailbox.stored is not None:
                mailbox.stored = 0


def makeHandler(domain) -> OfflineHandler:
    handler = OfflineHandler(domain, domain.config.offline.max_messages)
    handler.register()
    return handler
