# -*- test-case-name: tests.test_componentbalance -*-
"""
Several connections of one component domain, balanced by the recipient's
bare JID: the route of a domain listed in C{components.balance} (issue 14,
item 6; Tigase's C{ReceiverBareJidLB}).

A MUC service run as several C{xmppd-muc} processes connects each of them
to every node.  For a room to live in one process, every stanza to the
room's bare JID must reach the same process, from whichever node it
enters.  So the choice is a pure function of the bare JID and of the set
of connected instances, computed alike on every node: rendezvous
(highest-random-weight) hashing (L{xmppd.core.rendezvous}, which the
cluster also uses to spread rooms over nodes).  Each instance gets a
weight for the bare JID, a keyed hash of it with the instance's name; the
heaviest wins.  When
an instance disconnects, only the rooms it won move, each to its runner-up;
when one connects, it wins about 1/N of the rooms and nothing else moves.

An instance is named by the component itself, in its stream header
(L{NS_INSTANCE}, attribute C{instance}), so that its name, and with it its
share of the rooms, is the same on every node.  A component that does not
name itself is named by its connection (peer address and stream id): it
is still balanced, but two nodes may then choose differently.

Stanzas to the component's own domain (disco on C{conference.example.org})
are hashed by that domain like any bare JID, and so go to one instance.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.rendezvous import choose, salt, weight  # noqa: F401  (re-exported)
from xmppd.core.router import IAddressedRoute

#: The namespace of the stream-header attribute C{instance} by which a
#: component instance names itself (an xmppd extension; servers that do not
#: know it ignore a foreign attribute of the header, RFC 6120 §4.7).
NS_INSTANCE = "urn:xmppd:component:instance:0"

#: Longest instance name taken from a header.
MAX_INSTANCE_LENGTH = 200


def instanceSalt(instance: str) -> bytes:
    """The key of an instance's weights (L{xmppd.core.rendezvous.salt})."""
    return salt(instance)


@implementer(IAddressedRoute)
class BalancedRoute:
    """
    The router's route of one balanced component domain while at least one
    of its connections is up: each stanza goes to the connection that
    L{choose} picks for its recipient's bare JID.

    C{add} and C{remove} keep the set of connections; a connection whose
    instance name is taken already (the same process connecting twice, or a
    restart before the old connection timed out) replaces the older one,
    which the caller closes.
    """

    log = Logger()

    def __init__(self, domain: str):
        self.domain = domain
        #: Instance name -> its stream, in connection order.
        self.streams: dict[str, object] = {}
        self.salts: list[tuple[str, bytes]] = []

    def __len__(self) -> int:
        return len(self.streams)

    def add(self, name: str, stream) -> object | None:
        """Balance onto C{stream} too; returns the stream it replaces, if any."""
        old = self.streams.pop(name, None)
        self.streams[name] = stream
        self._resalt()
        return old

    def remove(self, stream) -> bool:
        """Stop balancing onto C{stream}; whether it was one of ours."""
        for name, current in self.streams.items():
            if current is stream:
                del self.streams[name]
                self._resalt()
                return True
        return False

    def _resalt(self) -> None:
        self.salts = [(name, instanceSalt(name)) for name in self.streams]

    def streamFor(self, bareJID: str):
        """The stream that stanzas to C{bareJID} go to (C{None} when none is up)."""
        if len(self.salts) == 1:
            return self.streams[self.salts[0][0]]
        name = choose(bareJID, self.salts)
        return None if name is None else self.streams[name]

    def deliverAddressed(self, stanza: domish.Element, sender: JID | None,
                         recipient: JID | None) -> None:
        if recipient is None:
            try:
                recipient = parseJID(stanza.getAttribute("to") or self.domain)
            except InvalidJID:
                recipient = parseJID(self.domain)
        bare = (recipient.user + "@" + recipient.host if recipient.user is not None
                else recipient.host)
        self.streamFor(bare).deliver(stanza)

    def deliver(self, stanza: domish.Element) -> None:
        self.deliverAddressed(stanza, None, None)
