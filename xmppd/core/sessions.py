# -*- test-case-name: tests.test_sessions -*-
"""
The session directory: which full JIDs are bound, by whom, and whether they
are available (RFC 6120 §7, RFC 6121 §4.7.2.3, §8.5).

L{ISessionDirectory} is the seam a cluster fills (DESIGN §6): this module's
L{SessionManager} keeps the directory in memory for one node; a directory in
Redis shared by several nodes is the second implementation, and the
contract tests in C{tests/test_sessions.py} are written to run against both.
Features see only L{ISessionView}s: a bound resource's full JID, its
availability and priority, whether it enabled message carbons, and a way to
hand it a stanza.  They never change a session; what they remember about
one (the last presence, directed-presence targets, roster interest...) they
keep themselves, keyed by full JID and forgotten on C{session/closed}.
Carbons (XEP-0280) are the exception that the directory keeps: every node
that routes a message for the account must know which of its resources
want copies, wherever they are bound.

The directory knows no storage and no features.  Look-ups are by bare JID
then resource, never by scanning all sessions.  Binding a full JID that is
already bound replaces the old session, which gets a C{conflict} stream
error (RFC 6120 §7.7.2.2, the "override" policy also used by Prosody and
ejabberd): the newer connection is the one the user is looking at.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from zope.interface import Attribute, Interface, implementer

from xmppd.core.stanzas import StanzaText


class IBoundStream(Protocol):
    """What the session directory needs of the stream holding a binding."""

    def send(self, obj) -> None: ...

    def replaceSession(self) -> None:
        """Close this stream because a new bind took its full JID."""

    def streamError(self, condition: str, text: str | None = None) -> None:
        """Close this stream with a stream error (L{ISessionDirectory.terminate})."""


class ISessionView(Interface):
    """
    One bound resource as features see it: small, read-only, cheap to get.

    What a second implementation must guarantee:

      - C{jid} never changes: a view is the view of one binding (one bind
        of one full JID).  Within one process, looking the same binding up
        again gives the same object (C{is}), for as long as the binding
        lasts; features compare bindings with C{is} to tell a session that
        was replaced by a new bind of the same full JID from its successor.
        A directory that builds views from remote data therefore caches
        them per binding (per bind token), not per full JID.
      - C{available} and C{priority} may be cached by the view, but only as
        the directory's last word: after L{ISessionDirectory.setAvailability}
        on this process returns, views read here show the new values; a
        change made on another node shows up here no later than the
        directory's replication delay, and never out of order for one
        binding.
      - L{send} never raises for a holder that went away: the stanza is
        dropped, or handed to the recipient's domain again (offline storage,
        bounce) when the directory knows the holder died; stanzas sent to
        one view reach its holder once each, in the order they were sent.
    """

    jid = Attribute("The full JID (a L{JID}) of the binding; never changes.")
    available = Attribute(
        "Sent available presence and not yet unavailable (RFC 6121 §4.2); "
        "read-only, changed with L{ISessionDirectory.setAvailability}.")
    priority = Attribute(
        "The priority of the last available presence (RFC 6121 §4.7.2.3), "
        "-128..127, 0 when unavailable; read-only.")
    carbons = Attribute(
        "Whether the resource enabled message carbons (XEP-0280 §4); read-only, "
        "changed with L{ISessionDirectory.setCarbons}, replicated like C{available}.")

    def send(stanza):
        """
        Hand C{stanza} (an element, or text serialized once by the core) to
        the holder's stream.  The last step of a delivery the served domain
        decided: only the core (L{xmppd.core.local.LocalDomain}) calls it;
        a feature routes stanzas, or asks the domain to deliver
        (C{LocalDomain.deliverToSession}).
        """

    def sendPrepared(prepared, to):
        """
        Hand the holder's stream the stanza C{prepared} (an
        L{xmppd.core.prepared.Prepared}, serialized once for many) addressed
        to C{to} (this binding's full JID, as text): the same as
        C{send(StanzaText(prepared.textFor(to)))}, but a view whose holder
        is elsewhere may carry the text once for all its node's recipients
        (L{xmppd.cluster.transport}).  Only the core
        (C{LocalDomain.deliverPrepared}) calls it.
        """


class ISessionDirectory(Interface):
    """
    Full JID -> holder, availability and priority, for every bound
    resource (DESIGN §3).  One per node (C{XMPPServer.sessions}); every
    served domain shares it (C{LocalDomain.sessions}).

    What every implementation must guarantee, so that features, c2s and
    stream management behave the same on one node and in a cluster:

      1. B{Bind is atomic and asynchronous.}  L{bind} returns a Deferred.
         At most one holder has a full JID at any time: two binds of the
         same full JID, on one node or on two, are ordered, and the later
         one wins.  Before the Deferred fires with the new view, the
         previous holder (if any) has been told to go (its stream's
         C{replaceSession}: C{session/closed} fires on the previous
         holder's node, then the previous holder's stream is closed with
         the C{conflict} stream error, RFC 6120 §7.7.2.2) and look-ups no
         longer return the previous binding.  A caller whose stream closed
         while its bind was pending must L{unbind} the view it gets.
      2. B{Unbind forgets one binding, never its successor.}  L{unbind} of a
         binding already replaced by a newer bind of the same full JID
         does nothing.  Unbind is synchronous for the caller: once it
         returns, look-ups made by this process do not return the binding.
      3. B{Look-ups are synchronous and never scan.}  L{get},
         L{sessionsOf}, L{availableSessionsOf}, L{isBound}, L{countOf} cost
         one look-up by bare JID and, for L{get}, one by resource.  A
         directory whose truth is remote answers them from a local replica
         kept current by change notifications; the replica may lag behind
         other nodes, never behind this node's own bind, unbind and
         L{setAvailability}.
      4. B{Ordering.}  L{sessionsOf} lists an account's resources in the
         order they were first bound (a rebind of the same full JID keeps
         its place), L{availableSessionsOf} is the available ones among
         them, in the same order.  Both return sequences that the
         directory never changes afterwards (a later bind or unbind makes
         a new one), so callers may iterate them while delivering, which
         can end sessions; callers never change them either.
      5. B{Availability and carbons are the directory's.}  Only
         L{setAvailability} changes C{available} and C{priority} (the
         presence feature calls it), only L{setCarbons} changes C{carbons}
         (the carbons feature); a new binding starts unavailable with
         priority 0 and carbons off.  RFC 6121 §8.5 delivery and carbons
         read them through the views, on every node.
      6. B{When the holder dies.}  A holder that ends normally fires
         C{session/closed} and then unbinds.  A holder whose process or
         node dies without unbinding keeps its bindings only until the
         node's lease (heartbeat) expires; the directory then removes
         them, as a bind replacing them would, so that the full JIDs can
         be bound again and messages for them fall back to the offline and
         bounce rules of RFC 6121 §8.5.  Feature state keyed by full JID
         lives on the holder's node and dies with it.
    """

    def bind(jid, stream):
        """
        Claim the full JID C{jid} for C{stream} (an L{IBoundStream});
        returns a Deferred firing with the new binding's L{ISessionView}
        once the claim is settled (see 1.).
        """

    def unbind(session):
        """Forget the binding C{session}, unless a newer bind replaced it (see 2.)."""

    def get(jid):
        """The L{ISessionView} bound to the full JID C{jid}, or C{None}."""

    def sessionsOf(jid):
        """The views of every resource of C{jid}'s account (its bare JID; see 4.)."""

    def availableSessionsOf(jid):
        """The views of C{jid}'s account's available resources (see 4.)."""

    def setAvailability(jid, available, priority):
        """
        Record that the resource bound to the full JID C{jid} is (not)
        available, with C{priority} (-128..127); nothing when C{jid} is not
        bound.
        """

    def setCarbons(jid, enabled):
        """
        Record that the resource bound to the full JID C{jid} does (not)
        want message carbons (XEP-0280 §4, §5); nothing when C{jid} is not
        bound or not held here.  Returns a Deferred that fires (never
        fails) once the change is published to the directory's other
        readers: at once on one node, when Redis has it in a cluster.
        """

    carbonSessions = Attribute(
        "The bindings known here (held here or elsewhere) that enabled carbons, "
        "a sized collection the caller never changes: empty, it lets the carbons "
        "feature pass a message by at the cost of one attribute read.")

    def terminate(session, condition, text=None):
        """
        End the binding C{session} from outside its stream (an account
        removed, XEP-0077 §3.2): its holder is closed with the stream error
        C{condition} (RFC 6120 §4.9.3), then fires C{session/closed} and
        unbinds as on any close.  A holder on another node is told through
        the directory; one already gone is left alone.
        """

    def isBound(jid):
        """Whether the full JID C{jid} is bound."""

    def countOf(jid):
        """How many resources of C{jid}'s account are bound."""

    def __len__():
        """How many resources are bound on this node (C{xmppctl status})."""

    def bindings():
        """
        Every binding known here, held by this node or (in a cluster) by
        another, as views.  A scan over every account: for an operator's
        listings and announcements (L{xmppd.admin.operations}), never for
        the stanza path.
        """


#: Writes a slot of a L{Session} past its C{__setattr__} guard (the directory's own).
_setSlot = object.__setattr__

#: What only the directory changes on a L{Session} (L{ISessionView}).
_READ_ONLY = frozenset(("jid", "available", "priority", "carbons"))


class SessionView:
    """
    What every directory's views share: C{jid}, C{available}, C{priority}
    and C{carbons} as plain slots (read at the cost of an attribute on the
    per-message path), guarded against writes by anyone but the directory,
    which sets them with C{object.__setattr__}.  L{Session} is this node's
    kind; a cluster's directory has its own for bindings held elsewhere.
    """

    __slots__ = ("jid", "available", "priority", "carbons")

    def __init__(self, jid: JID):
        _setSlot(self, "jid", jid)
        _setSlot(self, "available", False)
        _setSlot(self, "priority", 0)
        _setSlot(self, "carbons", False)

    def __setattr__(self, name: str, value) -> None:
        if name in _READ_ONLY:
            raise AttributeError(
                "%s of a session is read-only: the session directory changes it"
                " (ISessionDirectory.setAvailability, setCarbons)" % (name,))
        _setSlot(self, name, value)

    def sendPrepared(self, prepared, to: str) -> None:
        """L{ISessionView.sendPrepared}: the text for C{to}, through C{send}."""
        self.send(StanzaText(prepared.textFor(to)))


@implementer(ISessionView)
class Session(SessionView):
    """
    One bound resource of the in-memory directory, and its own view.  Kept
    small (C{__slots__}) because a server holds one per connected client.
    C{stream} is the holder: the c2s stream, or stream management's
    stand-in while the client is away (XEP-0198); only they change it.
    """

    __slots__ = ("stream",)

    def __init__(self, jid: JID, stream: IBoundStream):
        SessionView.__init__(self, jid)
        self.stream = stream

    def send(self, stanza) -> None:
        self.stream.send(stanza)

    def sendPrepared(self, prepared, to: str) -> None:
        # Straight to the stream: one call, as send was (the fan-out path).
        self.stream.send(StanzaText(prepared.textFor(to)))


class AccountSessions:
    """
    The bound resources of one account.  C{all} and C{available} are
    replaced, never changed in place, so a caller may keep iterating one
    while sessions come and go; building them on bind, unbind and
    availability changes keeps the per-message path free of list building.
    """

    __slots__ = ("byResource", "all", "available")

    def __init__(self):
        self.byResource: dict[str, Session] = {}
        self.all: list[Session] = []
        self.available: list[Session] = []

    def rebuild(self) -> None:
        self.all = list(self.byResource.values())
        self.rebuildAvailable()

    def rebuildAvailable(self) -> None:
        self.available = [s for s in self.all if s.available]


@implementer(ISessionDirectory)
class SessionManager:
    """The session directory of one node, in memory; see L{ISessionDirectory}."""

    log = Logger()

    def __init__(self):
        # userhost ("user@domain") -> AccountSessions
        self._byBare: dict[str, AccountSessions] = {}
        self._count = 0
        #: The bindings with carbons on (L{ISessionDirectory.carbonSessions}).
        self.carbonSessions: set[Session] = set()

    def bind(self, jid: JID, stream: IBoundStream) -> defer.Deferred:
        """
        Bind C{stream} to the full JID C{jid}; an existing session on the same
        full JID is replaced and its stream closed with C{conflict}.  Settled
        at once: one process has nobody to agree with.
        """
        account = self._byBare.get(jid.userhost())
        if account is None:
            account = self._byBare[jid.userhost()] = AccountSessions()
        resources = account.byResource
        old = resources.get(jid.resource)
        session = Session(jid, stream)
        resources[jid.resource] = session
        account.rebuild()
        if old is None:
            self._count += 1
        else:
            self.carbonSessions.discard(old)
        if old is not None and old.stream is not stream:
            self.log.info("{jid} bound again: replacing the older session", jid=jid.full())
            old.stream.replaceSession()
        return defer.succeed(session)

    def unbind(self, session: Session) -> None:
        """Forget C{session}, unless a newer bind already replaced it."""
        bare = session.jid.userhost()
        account = self._byBare.get(bare)
        if account is None or account.byResource.get(session.jid.resource) is not session:
            return
        del account.byResource[session.jid.resource]
        self._count -= 1
        self.carbonSessions.discard(session)
        if account.byResource:
            account.rebuild()
        else:
            del self._byBare[bare]

    def get(self, jid: JID) -> Session | None:
        """The session bound to the full JID C{jid}, if any."""
        account = self._byBare.get(jid.userhost())
        if account is None:
            return None
        return account.byResource.get(jid.resource)

    def sessionsOf(self, jid: JID) -> list[Session]:
        """Every session of the account of C{jid} (its bare JID); do not change the list."""
        account = self._byBare.get(jid.userhost())
        return account.all if account is not None else []

    def availableSessionsOf(self, jid: JID) -> list[Session]:
        """The sessions of C{jid}'s account that have sent available presence."""
        account = self._byBare.get(jid.userhost())
        return account.available if account is not None else []

    def setAvailability(self, jid: JID, available: bool, priority: int) -> None:
        account = self._byBare.get(jid.userhost())
        session = account.byResource.get(jid.resource) if account is not None else None
        if session is None:
            return
        changed = session.available != available
        _setSlot(session, "available", available)
        _setSlot(session, "priority", priority)
        if changed:
            account.rebuildAvailable()

    def setCarbons(self, jid: JID, enabled: bool) -> defer.Deferred:
        session = self.get(jid)
        if session is not None:
            _setSlot(session, "carbons", enabled)
            if enabled:
                self.carbonSessions.add(session)
            else:
                self.carbonSessions.discard(session)
        return defer.succeed(None)

    def terminate(self, session: Session, condition: str, text: str | None = None) -> None:
        session.stream.streamError(condition, text)

    def isBound(self, jid: JID) -> bool:
        account = self._byBare.get(jid.userhost())
        return account is not None and jid.resource in account.byResource

    def countOf(self, jid: JID) -> int:
        account = self._byBare.get(jid.userhost())
        return len(account.byResource) if account is not None else 0

    def __len__(self) -> int:
        return self._count

    def bindings(self):
        for account in list(self._byBare.values()):
            yield from account.all
