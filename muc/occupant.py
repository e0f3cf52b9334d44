# -*- test-case-name: tests.test_muc_room -*-
"""
One occupant of a room (XEP-0045 §7): a nick, a role, the real JIDs it
joined from (one occupant may be in the room from several of its account's
devices at once, as Prosody allows), and its current presence.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish


class Occupant:
    __slots__ = ("nick", "roomJID", "bare", "sessions", "role", "presence",
                 "occupantId", "tokens", "refilled", "lastSeen", "__weakref__")

    def __init__(self, nick: str, roomJID: JID, bare: str, role: str):
        self.nick = nick
        #: The occupant JID, room@service/nick.
        self.roomJID = roomJID
        #: The real bare JID, the key of affiliations.
        self.bare = bare
        #: Real full JID string -> JID, in join order.
        self.sessions: dict[str, JID] = {}
        self.role = role
        #: The children of the last presence (show, status, caps...), without
        #: the MUC extensions, broadcast on the occupant's behalf.
        self.presence: list[domish.Element] = []
        #: XEP-0421: stable per room and real bare JID.
        self.occupantId: str | None = None
        #: The shaper's bucket (see L{muc.features.shaper}).
        self.tokens: float | None = None
        self.refilled = 0.0
        self.lastSeen = 0.0

    @property
    def jid(self) -> JID:
        """The real JID shown to those who may see it: the first session's."""
        return next(iter(self.sessions.values()))

    def __repr__(self) -> str:
        return "<Occupant %s (%s) %s>" % (self.nick, self.bare, self.role)
