# -*- test-case-name: tests.test_presence -*-
"""
What the presence feature remembers about each bound resource of a domain
beyond availability and priority (which the session directory holds, see
L{xmppd.core.sessions}): the last available presence it broadcast, to
answer probes and to repeat to new subscribers (RFC 6121 §4.3.2, §3.1.5),
and the JIDs it sent directed presence to (§4.6), which hear its
unavailable presence; which resources are invisible (XEP-0186: their
broadcasts reach no contact, probes find them offline); and, per account,
the full JIDs whose available presence its resources were given, so a
feature that cuts a contact off (blocking, XEP-0191 §3.3) can tell the
user's resources that the contact is gone.

The presence feature (L{xmppd.features.presence}) writes it and forgets a
resource on C{session/closed}; blocking (XEP-0191 §3.3, §3.4) and in-band
account removal (XEP-0077 §3.2) read it.  It is this small documented
object, kept by the domain (C{LocalDomain.presence}), so that those
features cooperate without importing each other.  Keyed by full JID
string, never by session object, so a directory whose sessions live
elsewhere (DESIGN §6) changes nothing here.
"""

from __future__ import annotations

from twisted.words.xish import domish

#: Directed presence targets remembered per resource (§4.6); a client
#: sending more is not stopped, but the extra ones get no unavailable.
MAX_DIRECTED = 1000

#: Available senders remembered per account; past it, new ones are not.
MAX_HEARD = 5000


class ResourcePresence:
    """The presence state of one resource."""

    __slots__ = ("presence", "directed")

    def __init__(self):
        #: The last available presence broadcast, without C{to}, or None.
        self.presence: domish.Element | None = None
        #: Full or bare JID strings sent directed presence (§4.6), or None.
        self.directed: set[str] | None = None


class PresenceState:
    """Full JID string -> L{ResourcePresence}, for the resources that have any."""

    __slots__ = ("resources", "maxDirected", "invisible", "heard")

    def __init__(self, maxDirected: int = MAX_DIRECTED):
        self.resources: dict[str, ResourcePresence] = {}
        self.maxDirected = maxDirected
        #: Full JID -> whether the invisible resource still probes (XEP-0186).
        #: Kept apart from L{resources}: invisibility lasts the session, not
        #: one period of availability.
        self.invisible: dict[str, bool] = {}
        #: Bare JID of an account -> full JIDs that last sent it available
        #: presence (and not unavailable since).
        self.heard: dict[str, set[str]] = {}

    def isInvisible(self, full: str) -> bool:
        return full in self.invisible

    def setInvisible(self, full: str, probe: bool = True) -> None:
        self.invisible[full] = probe

    def setVisible(self, full: str) -> None:
        self.invisible.pop(full, None)

    def probes(self, full: str) -> bool:
        """Whether the resource's initial presence probes its contacts (XEP-0186 'probe')."""
        return self.invisible.get(full, True)

    def visiblePresence(self, full: str) -> domish.Element | None:
        """The last presence of C{full} as contacts may see it: none while invisible."""
        if full in self.invisible:
            return None
        return self.lastPresence(full)

    def hear(self, account: str, sender: str, available: bool) -> None:
        """The account's resources were given C{sender}'s presence (available or not)."""
        if available:
            senders = self.heard.get(account)
            if senders is None:
                senders = self.heard[account] = set()
            if len(senders) < MAX_HEARD:
                senders.add(sender)
        else:
            senders = self.heard.get(account)
            if senders:
                senders.discard(sender)
                if not senders:
                    del self.heard[account]

    def heardFrom(self, account: str) -> frozenset[str]:
        """Who the account's resources believe available (see L{hear})."""
        return frozenset(self.heard.get(account, ()))

    def forgetAccount(self, account: str) -> None:
        """The account has no session left: nobody holds what it heard."""
        self.heard.pop(account, None)

    def lastPresence(self, full: str) -> domish.Element | None:
        """The last available presence of the resource C{full}, if any."""
        state = self.resources.get(full)
        return state.presence if state is not None else None

    def directedOf(self, full: str) -> frozenset[str]:
        """Whom the resource C{full} sent directed presence to (§4.6)."""
        state = self.resources.get(full)
        if state is None or not state.directed:
            return frozenset()
        return frozenset(state.directed)

    def setPresence(self, full: str, presence: domish.Element) -> None:
        self._state(full).presence = presence

    def addDirected(self, full: str, target: str) -> None:
        """Remember C{target}, up to L{maxDirected} targets per resource."""
        state = self._state(full)
        if state.directed is None:
            state.directed = set()
        if len(state.directed) < self.maxDirected:
            state.directed.add(target)

    def discardDirected(self, full: str, target: str) -> None:
        state = self.resources.get(full)
        if state is not None and state.directed:
            state.directed.discard(target)

    def forget(self, full: str) -> ResourcePresence | None:
        """Forget everything about C{full} (it went unavailable or away); what it was."""
        return self.resources.pop(full, None)

    def _state(self, full: str) -> ResourcePresence:
        state = self.resources.get(full)
        if state is None:
            state = self.resources[full] = ResourcePresence()
        return state
