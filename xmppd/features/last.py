# -*- test-case-name: tests.test_last -*-
"""
Last activity (XEP-0012): how long ago a user logged out, and how long the
server has been up.

  - §5: a query to the domain answers the seconds since this domain started
    serving (with the node, within milliseconds), without text.
  - §3: a query to a user's bare JID is answered by the server.  Only the
    user and entities allowed to see the user's presence may ask (§3, §8):
    a roster item of the user for the requester with subscription C{from}
    or C{both} (RFC 6121 §3).  Anyone else gets C{forbidden}; an account
    that does not exist, C{service-unavailable} (RFC 6121 §8.5.1).  The
    answer is 0 seconds while the user has an available resource (§3
    SHOULD); else the seconds since the user went offline, with the status
    text of the unavailable presence that ended the last session, if it had
    one.  A user who never logged out gets C{item-not-found} (RFC 6120
    §8.3.3.7: there is no such record).
  - §4: a query to a full JID is for the client; the core delivers it.

What "went offline" means: the last session of the account ended (§7: for
a bare JID, the time since it was last connected), seen on the hook
"session/closed" (C{notify}).  The time and status are stored then, under
the account-data key C{"last"} as JSON C{{"time": epoch seconds, "status":
text or null}}: one write per logout.  Between a user's unavailable
presence and the end of the connection (a client that stays connected but
unavailable) the answer comes from memory: the time of that presence.  The
status and that time are noted by a callback on "presence/self" at priority
L{PRESENCE_PRIORITY}, above the presence feature's, which only looks and
lets the presence through (it returns C{None}).

Implements: XEP-0012 v2.0 (Last Activity)
"""

from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import DELIVER, FIRST
from xmppd.core.events import StanzaEvent
from xmppd.core.stanzas import addresses
from xmppd.storage.interfaces import NoSuchUser

NS_LAST = "jabber:iq:last"

LAST_GET = "/iq[@type='get']/query[@xmlns='%s']" % NS_LAST

#: The account-data key of the last logout.
KEY = "last"

#: Our "presence/self" callback runs before the presence feature handles
#: the broadcast (it only looks, and returns None).
PRESENCE_PRIORITY = FIRST

#: RFC 6121 §3: the subscription states that let the contact see presence.
SEES_PRESENCE = frozenset(("from", "both"))


def makeHandler(domain) -> "LastHandler":
    return LastHandler(domain)


def statusOf(presence: domish.Element) -> str | None:
    """The text of a presence's C{<status/>} (the first one), or C{None}."""
    for child in presence.elements(presence.uri, "status"):
        return str(child) or None
    return None


@implementer(IDisco)
class LastHandler(XMPPHandler, IQHandlerMixin):
    """Answers jabber:iq:last and records logouts; see the module docstring."""

    log = Logger()

    iqHandlers = {LAST_GET: "onGet"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.startedAt = domain.clock.seconds()
        #: Full JID string -> status text of the unavailable presence that
        #: resource sent; forgotten when its session closes.
        self.statuses: dict[str, str | None] = {}
        #: Bare JID -> (time, status) for accounts connected but unavailable;
        #: only believed while the account has a session.
        self.unavailableSince: dict[str, tuple[float, str | None]] = {}

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(LAST_GET, self.handleRequest)
        # The hooks are the node's, shared by its domains: each callback
        # checks that the event is for this domain.
        self.domain.hooks.add("presence/self", self.onPresence, PRESENCE_PRIORITY)
        self.domain.hooks.add("session/closed", self.onSessionClosed, DELIVER)


    # -- recording ---------------------------------------------------------

    def onPresence(self, event: StanzaEvent) -> None:
        if event.domain is not self.domain or event.sender is None:
            return None
        sessions = self.domain.sessions
        session = sessions.get(event.sender)
        if session is None:
            return None
        presenceType = event.stanza.getAttribute("type")
        bare = event.sender.userhost()
        if presenceType == "unavailable":
            status = statusOf(event.stanza)
            self.statuses[session.jid.full()] = status
            others = [s for s in sessions.availableSessionsOf(event.sender) if s is not session]
            if session.available and not others:
                self.unavailableSince[bare] = (self.domain.clock.seconds(), status)
        elif presenceType is None:
            self.statuses.pop(session.jid.full(), None)
            self.unavailableSince.pop(bare, None)
        return None

    def onSessionClosed(self, session) -> None:
        jid = session.jid
        if jid.host != self.domain.domain:
            return
        status = self.statuses.pop(jid.full(), None)
        if any(other is not session for other in self.domain.sessions.sessionsOf(jid)):
            return
        self.unavailableSince.pop(jid.userhost(), None)
        value = json.dumps({"time": self.domain.clock.seconds(), "status": status})
        d = self.domain.storage.accountData.set(jid.user, jid.host, KEY, value)
        def failed(failure):
            if failure.check(NoSuchUser):
                return None  # An anonymous session (XEP-0175), or a removed account.
            self.log.failure("Could not record the logout of {jid}", failure,
                             jid=jid.userhost())

        d.addErrback(failed)

    # -- queries -----------------------------------------------------------

    async def onGet(self, iq: domish.Element) -> domish.Element:
        sender, owner = addresses(iq)
        now = self.domain.clock.seconds()
        if owner.user is None:
            return self.answer(now - self.startedAt)
        if sender.userhostJID() != owner:
            await self.checkAllowed(sender, owner)
        if self.domain.sessions.availableSessionsOf(owner):
            return self.answer(0)
        since = self.unavailableSince.get(owner.userhost())
        if since is not None:
            if self.domain.sessions.sessionsOf(owner):
                return self.answer(now - since[0], since[1])
            del self.unavailableSince[owner.userhost()]  # outlived its sessions
        stored = await self.domain.storage.accountData.get(owner.user, owner.host, KEY)
        if stored is None:
            raise StanzaError("item-not-found")
        record = json.loads(stored)
        return self.answer(now - record["time"], record.get("status"))

    async def checkAllowed(self, requester: JID, owner: JID) -> None:
        """Raise unless C{requester} may see C{owner}'s presence (XEP-0012 §3, §8)."""
        storage = self.domain.storage
        if not await storage.users.userExists(owner.user, owner.host):
            raise StanzaError("service-unavailable")
        item = await storage.rosters.getItem(owner.user, owner.host, requester.userhost())
        if item is None or item.subscription not in SEES_PRESENCE:
            raise StanzaError("forbidden")

    @staticmethod
    def answer(seconds: float, status: str | None = None) -> domish.Element:
        query = domish.Element((NS_LAST, "query"))
        query["seconds"] = str(max(0, int(seconds)))
        if status:
            query.addContent(status)
        return query

    # -- IDisco ------------------------------------------------------------

    def getDiscoInfo(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        # XEP-0012 §6 shows the feature on the server.
        if nodeIdentifier or target.user is not None:
            return []
        return [DiscoFeature(NS_LAST)]

    def getDiscoItems(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        return []
