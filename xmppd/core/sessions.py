# -*- test-case-name: tests.test_sessions -*-
"""
The session manager: which client streams are bound to which full JIDs
(RFC 6120 §7, RFC 6121 §8.5).

It knows no storage and no features.  Lookups are by bare JID then resource,
never by scanning all sessions.  Binding a full JID that is already bound
replaces the old session, which gets a C{conflict} stream error (RFC 6120
§7.7.2.2, the "override" policy also used by Prosody and ejabberd): the newer
connection is the one the user is looking at.
"""

from __future__ import annotations

from typing import Protocol

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID


class IBoundStream(Protocol):
    """What the session manager needs of a client stream."""

    def send(self, obj) -> None: ...

    def replaceSession(self) -> None:
        """Close this stream because a new bind took its full JID."""


class Session:
    """
    One bound resource.  Kept small (C{__slots__}) because a server holds one
    per connected client; presence fields are filled in by the presence
    handler, not here.
    """

    __slots__ = ("jid", "stream", "priority", "available", "presence",
                 "rosterRequested", "directed", "__weakref__")

    def __init__(self, jid: JID, stream: IBoundStream):
        self.jid = jid
        self.stream = stream
        #: From the last available presence (RFC 6121 §4.7.2.3); -128..127.
        self.priority = 0
        #: Sent initial presence and not yet unavailable (RFC 6121 §4.2).
        self.available = False
        #: The last available presence broadcast, re-sent to answer probes.
        self.presence = None
        #: Asked for the roster: an "interested resource" (RFC 6121 §2.1.6).
        self.rosterRequested = False
        #: Full or bare JID strings sent directed presence (§4.6), or None.
        self.directed: set[str] | None = None

    def send(self, stanza) -> None:
        self.stream.send(stanza)


class SessionManager:
    log = Logger()

    def __init__(self):
        # userhost ("user@domain") -> resource -> Session
        self._byBare: dict[str, dict[str, Session]] = {}

    def bind(self, jid: JID, stream: IBoundStream) -> Session:
        """
        Bind C{stream} to the full JID C{jid}; an existing session on the same
        full JID is replaced and its stream closed with C{conflict}.
        """
        resources = self._byBare.setdefault(jid.userhost(), {})
        old = resources.get(jid.resource)
        session = Session(jid, stream)
        resources[jid.resource] = session
        if old is not None and old.stream is not stream:
            self.log.info("{jid} bound again: replacing the older session", jid=jid.full())
            old.stream.replaceSession()
        return session

    def unbind(self, session: Session) -> None:
        """Forget C{session}, unless a newer bind already replaced it."""
        bare = session.jid.userhost()
        resources = self._byBare.get(bare)
        if resources is None or resources.get(session.jid.resource) is not session:
            return
        del resources[session.jid.resource]
        if not resources:
            del self._byBare[bare]

    def get(self, jid: JID) -> Session | None:
        """The session bound to the full JID C{jid}, if any."""
        resources = self._byBare.get(jid.userhost())
        if resources is None:
            return None
        return resources.get(jid.resource)

    def sessionsOf(self, jid: JID) -> list[Session]:
        """Every session of the account of C{jid} (its bare JID)."""
        resources = self._byBare.get(jid.userhost())
        return list(resources.values()) if resources else []

    def availableSessionsOf(self, jid: JID) -> list[Session]:
        """The sessions of C{jid}'s account that have sent available presence."""
        resources = self._byBare.get(jid.userhost())
        return [s for s in resources.values() if s.available] if resources else []

    def isBound(self, jid: JID) -> bool:
        resources = self._byBare.get(jid.userhost())
        return bool(resources) and jid.resource in resources

    def __len__(self) -> int:
        return sum(len(r) for r in self._byBare.values())
