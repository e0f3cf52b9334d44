# -*- test-case-name: tests.test_presence -*-
"""
Presence subscriptions and presence (RFC 6121 §3, §4).

Subscriptions follow the state tables of RFC 6121 Appendix A literally
(L{OUTBOUND}, L{INBOUND}): a subscription stanza a local user sends is
processed on the user's side when the client sends it (the C{c2s/outgoing}
hook: the recipient may be on another server), stamped with the user's bare
JID (§3.1.2) and routed when the table says so; one arriving for a local user
is processed on the recipient's side (the C{presence/bare} and
C{presence/full} hooks).  Pre-approvals (§3.4) are supported.  Inbound
requests are kept on the roster item ("pending in") until answered and
delivered again at each initial presence (§3.1.3).

Presence: initial presence (§4.2) is broadcast to the subscribers and the
user's own available resources, and probes (§4.3) go to the contacts the user
is subscribed to; probes are answered from the last presence of each
available resource.  Later presence (§4.4) goes to the same audience;
unavailable presence (§4.5), whether sent or caused by a closed connection,
also reaches every entity that got directed presence (§4.6).  Presence to a
bare JID reaches every available resource; to a full JID, that resource
(RFC 6121 §8.5).

A resource in invisible mode (XEP-0186, L{xmppd.features.invisible}) is
available to the user's own resources but not to contacts: its broadcasts
go to no subscriber and probes find it offline; directed presence still
goes where it is sent.

Each presence notification delivered to an account is noted in the
presence state (who its resources believe available), so blocking can
make a blocked contact appear offline.

Everything that reads or changes a roster goes through the domain's
L{xmppd.features.roster.RosterManager}, which runs one account's operations in order.

A resource's availability and priority are the session directory's
(L{xmppd.core.sessions.ISessionDirectory.setAvailability}, which RFC 6121
§8.5 delivery reads); its last presence and directed-presence targets are
kept in the domain's L{xmppd.core.presencestate.PresenceState}, keyed by
full JID and forgotten when the resource goes unavailable or away.

Implements: RFC 6121 §3, §4
"""

from __future__ import annotations

from dataclasses import replace

from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppd.core.hooks import DELIVER
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.features.roster import rosterManager
from xmppd.core.stanzas import (NS_CLIENT, NS_SERVER, copyStanza, errorReply, hold, marks, meta,
                                priorityOf, subscriptionStanza, unavailableFrom)
from xmppd.storage.interfaces import NoSuchUser, RosterItem
from xmppd.stream.xmlparser import parseStored

#: RFC 6121 §3.4.1: the stream feature announcing pre-approvals.
NS_PRE_APPROVAL = "urn:xmpp:features:pre-approval"

SUBSCRIPTION_TYPES = frozenset(("subscribe", "subscribed", "unsubscribe", "unsubscribed"))


# The subscription states of RFC 6121 Appendix A.1, named as there.
NONE = "None"
NONE_OUT = "None + Pending Out"
NONE_IN = "None + Pending In"
NONE_OUT_IN = "None + Pending Out/In"
TO = "To"
TO_IN = "To + Pending In"
FROM = "From"
FROM_OUT = "From + Pending Out"
BOTH = "Both"

#: state -> (subscription, ask, pendingIn)
STATE_FLAGS = {
    NONE: ("none", False, False),
    NONE_OUT: ("none", True, False),
    NONE_IN: ("none", False, True),
    NONE_OUT_IN: ("none", True, True),
    TO: ("to", False, False),
    TO_IN: ("to", False, True),
    FROM: ("from", False, False),
    FROM_OUT: ("from", True, False),
    BOTH: ("both", False, False),
}

#: RFC 6121 Appendix A.2, the user's server on a subscription stanza the
#: user sends: type -> state -> (route it?, new state or None for "no state
#: change").  The "no" rows of "subscribed" marked * are pre-approvals (§3.4).
OUTBOUND = {
    "subscribe": {          # A.2.1
        NONE: (True, NONE_OUT),
        NONE_OUT: (True, None),
        NONE_IN: (True, NONE_OUT_IN),
        NONE_OUT_IN: (True, None),
        TO: (True, None),
        TO_IN: (True, None),
        FROM: (True, FROM_OUT),
        FROM_OUT: (True, None),
        BOTH: (True, None),
    },
    "subscribed": {         # A.2.2
        NONE: (False, None),          # *
        NONE_OUT: (False, None),      # *
        NONE_IN: (True, FROM),
        NONE_OUT_IN: (True, FROM_OUT),
        TO: (False, None),            # *
        TO_IN: (True, BOTH),
        FROM: (False, None),
        FROM_OUT: (False, None),
        BOTH: (False, None),
    },
    "unsubscribe": {        # A.2.3
        NONE: (True, None),
        NONE_OUT: (True, NONE),
        NONE_IN: (True, None),
        NONE_OUT_IN: (True, NONE_IN),
        TO: (True, NONE),
        TO_IN: (True, NONE_IN),
        FROM: (True, None),
        FROM_OUT: (True, FROM),
        BOTH: (True, FROM),
    },
    "unsubscribed": {       # A.2.4
        NONE: (False, None),
        NONE_OUT: (False, None),
        NONE_IN: (True, NONE),
        NONE_OUT_IN: (True, NONE_OUT),
        TO: (False, None),
        TO_IN: (True, TO),
        FROM: (True, NONE),
        FROM_OUT: (True, NONE_OUT),
        BOTH: (True, TO),
    },
}

#: RFC 6121 Appendix A.3, the contact's server on a subscription stanza for
#: the contact: type -> state -> (deliver it?, new state or None).  The "no"
#: rows of "subscribe" in From, From + Pending Out and Both are answered with
#: an automatic "subscribed" (§3.1.3).
INBOUND = {
    "subscribe": {          # A.3.1
        NONE: (True, NONE_IN),
        NONE_OUT: (True, NONE_OUT_IN),
        NONE_IN: (False, None),
        NONE_OUT_IN: (False, None),
        TO: (True, TO_IN),
        TO_IN: (False, None),
        FROM: (False, None),
        FROM_OUT: (False, None),
        BOTH: (False, None),
    },
    "subscribed": {         # A.3.2
        NONE: (False, None),
        NONE_OUT: (True, TO),
        NONE_IN: (False, None),
        NONE_OUT_IN: (True, TO_IN),
        TO: (False, None),
        TO_IN: (False, None),
        FROM: (False, None),
        FROM_OUT: (True, BOTH),
        BOTH: (False, None),
    },
    "unsubscribe": {        # A.3.3
        NONE: (False, None),
        NONE_OUT: (False, None),
        NONE_IN: (True, NONE),
        NONE_OUT_IN: (True, NONE_OUT),
        TO: (False, None),
        TO_IN: (True, TO),
        FROM: (True, NONE),
        FROM_OUT: (True, NONE_OUT),
        BOTH: (True, TO),
    },
    "unsubscribed": {       # A.3.4
        NONE: (False, None),
        NONE_OUT: (True, NONE),
        NONE_IN: (False, None),
        NONE_OUT_IN: (True, NONE_IN),
        TO: (True, NONE),
        TO_IN: (True, NONE_IN),
        FROM: (False, None),
        FROM_OUT: (True, FROM),
        BOTH: (True, FROM),
    },
}

#: States in which the contact may pre-approve (§3.4): no subscription from
#: the other party and no request from it pending.
PRE_APPROVABLE = frozenset((NONE, NONE_OUT, TO))


def stateOf(item: RosterItem | None) -> str:
    """The Appendix A state of a roster item (no item: "None")."""
    if item is None:
        return NONE
    subscription = item.subscription
    if subscription == "both":
        return BOTH
    if subscription == "from":
        return FROM_OUT if item.ask else FROM
    if subscription == "to":
        return TO_IN if item.pendingIn else TO
    if item.ask:
        return NONE_OUT_IN if item.pendingIn else NONE_OUT
    return NONE_IN if item.pendingIn else NONE


def withState(item: RosterItem, state: str) -> RosterItem:
    """C{item} moved to C{state}; a subscription from the contact ends any pre-approval."""
    subscription, ask, pendingIn = STATE_FLAGS[state]
    return replace(item, subscription=subscription, ask=ask, pendingIn=pendingIn,
                   pendingInStatus=item.pendingInStatus if pendingIn else None,
                   pendingInExtensions=item.pendingInExtensions if pendingIn else None,
                   approved=item.approved and subscription in ("none", "to"))


def isBareItemOnly(item: RosterItem) -> bool:
    """An item in state None that says nothing the user gave it."""
    return (stateOf(item) == NONE and not item.approved and item.name is None
            and not item.groups)


def statusOf(stanza: domish.Element) -> str | None:
    for child in stanza.elements():
        if child.name == "status":
            return str(child)
    return None


#: Largest extension payload of a subscription request kept for redelivery,
#: in characters of XML (a nick and a pre-authentication token are far
#: smaller); a larger request is still delivered at once, and later without.
MAX_REQUEST_EXTENSIONS = 8192


def extensionsOf(stanza: domish.Element) -> str | None:
    """
    The children of a subscription request that are not presence's own
    (extensions in a namespace of their own: an XEP-0172 nick, an XEP-0379
    token), as XML text, so the request can be redelivered whole (RFC 6121
    §3.1.3); C{None} when there are none, or too many to keep.
    """
    text = "".join(child.toXml() for child in stanza.elements()
                   if child.uri not in (None, NS_CLIENT, NS_SERVER))
    return text if text and len(text) <= MAX_REQUEST_EXTENSIONS else None


def withExtensions(request: domish.Element, extensions: str | None) -> domish.Element:
    """C{request} with the extension children kept from the original."""
    if extensions:
        try:
            children = parseStored(extensions, NS_CLIENT)
        except Exception:  # noqa: BLE001 - stored text we wrote; never fail a login on it
            return request
        for child in children:
            request.addChild(child)
    return request


class PresenceHandler(XMPPHandler):
    """Presence and subscriptions for the accounts of one domain."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.rosters = rosterManager(domain)

    def connectionInitialized(self) -> None:
        hooks = self.domain.hooks
        hooks.add("presence/self", self.onSelf, DELIVER)
        hooks.add("presence/bare", self.onBare, DELIVER)
        hooks.add("presence/full", self.onFull, DELIVER)
        # Below policy features (blocking, limits) that may stop a stanza.
        hooks.add("c2s/outgoing", self.onOutgoing, DELIVER)
        hooks.add("session/closed", self.onSessionClosed, DELIVER)
        hooks.add("c2s/features", self.onFeatures, DELIVER)

    @property
    def sessions(self):
        return self.domain.sessions

    @property
    def state(self):
        """Last presence and directed targets per resource (L{xmppd.core.presencestate})."""
        return self.domain.presence

    def route(self, stanza: domish.Element) -> None:
        self.domain.router.route(stanza)

    def runHolding(self, stanza: domish.Element | None, username: str, f, *args) -> None:
        """
        Run C{f(*args)} in turn on C{username}'s roster (the roster
        manager's C{runLogged}), holding C{stanza}, the sender's stanza it
        processes, until it is over: what that sender sends next waits
        behind it (RFC 6120 §10.1, L{xmppd.core.ordering}), whatever it is
        and wherever it goes.
        """
        d = self.rosters.runLogged(username, f, *args)
        if stanza is not None and not d.called:
            held = hold(stanza)
            d.addBoth(lambda _: held.callback(None))

    # -- stream features ---------------------------------------------------

    def onFeatures(self, event) -> None:
        stream = event.stream
        if stream.username is not None and stream.domain == self.domain.domain:
            event.features.addElement((NS_PRE_APPROVAL, "sub"))

    # -- what local clients send -------------------------------------------

    def onOutgoing(self, event):
        """
        Subscription stanzas from a local user are processed on the user's
        side before routing (Appendix A.2); directed presence is remembered
        (§4.6) and routed as it is, after any subscription stanza of the
        user still being processed.
        """
        stanza, session, recipient = event.stanza, event.session, event.recipient
        if (stanza.name != "presence" or session is None or recipient is None
                or session.jid.host != self.domain.domain):
            return None
        stanzaType = stanza.getAttribute("type")
        if stanzaType in SUBSCRIPTION_TYPES:
            contact = recipient.userhostJID()
            if contact != session.jid.userhostJID():
                self.runHolding(stanza, session.jid.user, self.outbound, session.jid,
                                contact.full(), stanzaType, stanza)
            return True
        if stanzaType is None:
            if recipient.userhostJID() != session.jid.userhostJID():
                self.state.addDirected(session.jid.full(), recipient.full())
        elif stanzaType == "unavailable":
            self.state.discardDirected(session.jid.full(), recipient.full())
        if self.rosters.busy(session.jid.user):
            # RFC 6120 §10.1: a subscription stanza the user sent before this
            # one is still being processed; this one must not overtake it.
            self.runHolding(stanza, session.jid.user, self.route, stanza)
            return True
        return None

    async def outbound(self, user, contact: str, stanzaType: str,
                       stanza: domish.Element) -> None:
        """Appendix A.2 for C{user} sending C{stanzaType} to C{contact} (bare JIDs)."""
        username = user.user
        bare = user.userhostJID().full()
        # §3.1.2, §3.1.5, §3.2.2, §3.3.2: the server stamps the bare JIDs.
        stanza["from"] = bare
        stanza["to"] = contact
        old = await self.rosters.getItem(username, contact, fresh=True)
        state = stateOf(old)
        route, newState = OUTBOUND[stanzaType][state]
        new = old
        if newState is not None:
            new = withState(old or RosterItem(contact), newState)
        elif stanzaType == "subscribed" and state in PRE_APPROVABLE:
            # §3.4.2: a pre-approval, remembered and not routed.
            new = replace(old or RosterItem(contact), approved=True)
        elif stanzaType == "unsubscribed" and state in PRE_APPROVABLE and old is not None:
            # Cancelling a pre-approval (§3.4).
            new = replace(old, approved=False)
        if new is not old and new != old:
            if old is None and not await self.hasRoom(username):
                reply = errorReply(stanza, "policy-violation", "the roster is full", "modify")
                if reply is not None:
                    reply["to"] = user.full()
                    self.route(reply)
                return
            if old is not None and not old.visible and isBareItemOnly(new):
                # A request the user declined leaves nothing behind.
                new = None
            await self.rosters.update(username, old, new)
        if route:
            self.route(stanza)
        if newState is not None:
            gainedFrom = STATE_FLAGS[newState][0] in ("from", "both")
            hadFrom = old is not None and old.subscription in ("from", "both")
            if gainedFrom and not hadFrom:
                # §3.1.5: the new subscriber learns the user's presence.
                self.sendPresenceOf(user.userhostJID(), contact)
            elif hadFrom and not gainedFrom:
                # §3.2.2: a cancelled subscriber sees the user go.
                self.sendUnavailableOf(user.userhostJID(), contact)

    async def hasRoom(self, username: str) -> bool:
        roster = await self.rosters.getRoster(username)
        return len(roster.items) < self.domain.config.roster.max_items

    def sendPresenceOf(self, user, to: str) -> None:
        """The last presence of each of C{user}'s available (and visible) resources, to C{to}."""
        lastPresence = self.state.visiblePresence
        presences = [lastPresence(session.jid.full())
                     for session in self.sessions.availableSessionsOf(user)]
        self.rosters.routeAfter(to, [copyStanza(presence, to=to)
                                     for presence in presences if presence is not None])

    def sendUnavailableOf(self, user, to: str) -> None:
        """Unavailable presence from each of C{user}'s available resources, to C{to}."""
        self.rosters.routeAfter(to, [unavailableFrom(session, to)
                                     for session in self.sessions.availableSessionsOf(user)])

    # -- the user's own availability (§4.2, §4.4, §4.5) ----------------------

    def onSelf(self, event):
        if event.domain is not self.domain:
            return None
        stanza = event.stanza
        session = self.sessions.get(event.sender) if event.sender is not None else None
        if session is None:
            return True
        stanzaType = stanza.getAttribute("type")
        if stanzaType is None:
            try:
                priority = priorityOf(stanza)
            except ValueError:
                reply = errorReply(stanza, "bad-request", "priority is -128 to 127")
                if reply is not None:
                    reply["to"] = session.jid.full()
                    self.route(reply)
                return True
            initial = not session.available
            presence = copyStanza(stanza)
            presence.attributes.pop("to", None)
            self.sessions.setAvailability(session.jid, True, priority)
            self.state.setPresence(session.jid.full(), presence)
            self.runHolding(stanza, session.jid.user, self.broadcastAvailable,
                            session, presence, initial)
        elif stanzaType == "unavailable":
            self.goUnavailable(session, copyStanza(stanza), reflect=True, held=stanza)
        # Other types need a 'to' (§3, §4.3): nothing to do without one.
        return True

    def goUnavailable(self, session, presence: domish.Element, reflect: bool,
                      held: domish.Element | None = None) -> None:
        wasAvailable = session.available
        state = self.state.forget(session.jid.full())
        directed = state.directed if state is not None else None
        if self.sessions.get(session.jid) is session:
            # Not for a session a new bind replaced: the JID is its successor's.
            self.sessions.setAvailability(session.jid, False, 0)
        if wasAvailable or directed:
            self.runHolding(held, session.jid.user, self.broadcastUnavailable,
                            session, presence, wasAvailable, directed, reflect)

    def onSessionClosed(self, session) -> None:
        # §4.5.2: a lost connection is an unavailable presence too.
        if session.jid.host == self.domain.domain:
            self.goUnavailable(session, unavailableFrom(session), reflect=False)
            if all(other is session for other in self.sessions.sessionsOf(session.jid)):
                self.state.forgetAccount(session.jid.userhost())

    async def broadcastAvailable(self, session, presence: domish.Element,
                                 initial: bool) -> None:
        user = session.jid.userhostJID()
        roster = await self.rosters.getRoster(session.jid.user)
        full = session.jid.full()
        if not self.state.isInvisible(full):
            for jid, item in roster.items.items():
                if item.subscription in ("from", "both"):
                    self.route(copyStanza(presence, to=jid))
        # §4.2.2, §4.4.2: every available resource of the user, the sender
        # included.
        others = self.sessions.availableSessionsOf(user)
        for other in others:
            self.route(copyStanza(presence, to=other.jid.full()))
        if not initial or self.sessions.get(session.jid) is not session:
            return
        for other in others:
            if other is not session:
                otherPresence = self.state.lastPresence(other.jid.full())
                if otherPresence is not None:
                    self.route(copyStanza(otherPresence, to=full))
        bare = user.full()
        probes = self.state.probes(full)
        for jid, item in roster.items.items():
            if probes and item.subscription in ("to", "both"):
                # §4.3.1: probes go out from the bare JID, on the user's behalf.
                probe = domish.Element((None, "presence"))
                probe["type"] = "probe"
                probe["from"] = bare
                probe["to"] = jid
                self.route(probe)
        for jid, item in roster.items.items():
            if item.pendingIn:
                # §3.1.3: requests that waited for the user come now.
                request = withExtensions(
                    subscriptionStanza("subscribe", jid, full, item.pendingInStatus),
                    item.pendingInExtensions)
                meta(request).presenceRedelivery = True
                self.route(request)

    async def broadcastUnavailable(self, session, presence: domish.Element,
                                   wasAvailable: bool, directed, reflect: bool) -> None:
        user = session.jid.userhostJID()
        covered = {user.full()}
        if wasAvailable:
            roster = await self.rosters.getRoster(session.jid.user)
            # An invisible resource's contacts already saw it go (XEP-0186).
            invisible = self.state.isInvisible(session.jid.full())
            for jid, item in roster.items.items():
                if item.subscription in ("from", "both"):
                    covered.add(jid)
                    if not invisible:
                        self.route(copyStanza(presence, to=jid))
            for other in self.sessions.availableSessionsOf(user):
                if other is not session:
                    self.route(copyStanza(presence, to=other.jid.full()))
            if reflect and self.sessions.get(session.jid) is session:
                self.route(copyStanza(presence, to=session.jid.full()))
        # §4.6.3: whoever got directed presence hears the end of it, once.
        for target in directed or ():
            try:
                bare = parseJID(target).userhost()
            except InvalidJID:
                continue
            if bare not in covered:
                self.route(copyStanza(presence, to=target))

    # -- stanzas for local users ---------------------------------------------

    def onBare(self, event):
        if event.domain is not self.domain:
            return None
        return self.inbound(event, None)

    def onFull(self, event):
        if event.domain is not self.domain:
            return None
        session = self.sessions.get(event.recipient)
        return self.inbound(event, session)

    def inbound(self, event, session):
        stanza = event.stanza
        stanzaType = stanza.getAttribute("type")
        recipient = event.recipient
        if stanzaType in SUBSCRIPTION_TYPES:
            if marks(stanza).presenceRedelivery:
                if session is not None:
                    self.domain.deliverToSession(session, stanza)
            elif event.sender is not None:
                # §3 concerns accounts: to a full JID means to the account.
                self.runHolding(stanza, recipient.user, self.inboundSubscription,
                                event.sender.userhostJID(), recipient.userhostJID(),
                                stanzaType, stanza)
        elif stanzaType == "probe":
            if event.sender is not None:
                # Only answered: nothing the prober sends next depends on it.
                self.rosters.runLogged(recipient.user, self.answerProbe,
                                       event.sender, recipient.userhostJID())
        elif session is not None:
            self.hear(event, recipient, stanzaType)
            # §8.5.3.1: to a full JID, that resource, available or not.
            self.domain.deliverToSession(session, stanza)
        elif recipient.resource is None:
            # §8.5.2.1: to a bare JID, every available resource; none, none.
            deliver = self.domain.deliverToSession
            resources = self.sessions.availableSessionsOf(recipient)
            if resources:
                self.hear(event, recipient, stanzaType)
            for available in resources:
                deliver(available, stanza)
        return True

    def hear(self, event, recipient, stanzaType: str | None) -> None:
        """Note a presence notification the account is given (see the module docstring)."""
        sender = event.sender
        if (sender is not None and stanzaType in (None, "unavailable")
                and (sender.user != recipient.user or sender.host != recipient.host)):
            self.state.hear(recipient.userhost(), sender.full(), stanzaType is None)

    async def inboundSubscription(self, contact, user, stanzaType: str,
                                  stanza: domish.Element) -> None:
        """Appendix A.3 for C{contact} sending C{stanzaType} to local C{user}."""
        if contact == user:
            return
        username = user.user
        contactText = contact.full()
        old = await self.rosters.getItem(username, contactText, fresh=True)
        state = stateOf(old)
        deliver, newState = INBOUND[stanzaType][state]
        if stanzaType == "subscribe":
            if state in (FROM, FROM_OUT, BOTH):
                # §3.1.3: already subscribed; the user's approval stands.
                self.route(subscriptionStanza("subscribed", user.full(), contactText))
                self.sendPresenceOf(user, contactText)
                return
            if old is not None and old.approved:
                # §3.4.2: pre-approved, so approved now without asking.
                newState = {NONE: FROM, NONE_OUT: FROM_OUT, TO: BOTH}[state]
                await self.rosters.update(username, old, withState(old, newState))
                self.route(subscriptionStanza("subscribed", user.full(), contactText))
                self.sendPresenceOf(user, contactText)
                return
        if newState is not None:
            new = withState(old or RosterItem(contactText), newState)
            if stanzaType == "subscribe":
                new = replace(new, pendingInStatus=statusOf(stanza),
                              pendingInExtensions=extensionsOf(stanza))
            elif not old.visible and isBareItemOnly(new):
                new = None  # the request was withdrawn: forget it
            if old is None and not await self.hasRoom(username):
                new = None  # still shown to online resources, not kept
            if new is not None or old is not None:
                try:
                    await self.rosters.update(username, old, new)
                except NoSuchUser:
                    # RFC 6121 §8.5.1: no such user; a request is refused.
                    if stanzaType == "subscribe":
                        self.route(subscriptionStanza("unsubscribed", user.full(),
                                                      contactText))
                    return
        if deliver:
            stanza["from"] = contactText
            stanza["to"] = user.full()
            deliver = self.domain.deliverToSession
            for session in self.sessions.availableSessionsOf(user):
                deliver(session, stanza)
        if newState is not None and stanzaType == "unsubscribe" and \
                old.subscription in ("from", "both"):
            # The contact no longer receives the user's presence: the
            # user's resources are gone as far as the contact knows.
            self.sendUnavailableOf(user, contactText)

    async def answerProbe(self, prober, user) -> None:
        """RFC 6121 §4.3.2, for a probe from C{prober} to local C{user}."""
        proberBare = prober.userhostJID()
        if proberBare != user:
            item = await self.rosters.getItem(user.user, proberBare.full())
            if item is None or item.subscription not in ("from", "both"):
                # Not a subscriber (or no such account): say so, which also
                # repairs the prober's roster if it believes otherwise; but
                # not while its request waits for an answer, which this
                # would cancel.
                if item is None or not item.pendingIn:
                    self.route(subscriptionStanza("unsubscribed", user.full(),
                                                  proberBare.full()))
                return
        # With no available resource we do not answer (§4.3.2 allows it).
        self.sendPresenceOf(user, prober.full())


def makeHandler(domain) -> PresenceHandler:
    return PresenceHandler(domain)
