# -*- test-case-name: tests.test_muc_broadcast,tests.test_pubsub_fanout -*-
"""
A stanza serialized once for many recipients (DESIGN §5, "serialize once"):
a room's broadcast (XEP-0045) and a publish-subscribe notification
(XEP-0060, XEP-0163) are the same stanza to every recipient but for its
C{to}.  L{Prepared} serializes it once and splices each recipient's C{to}
into the text; L{xmppd.core.local.LocalDomain.deliverPrepared} hands that
text to a bound session as it is, and takes the element form
(L{Prepared.elementFor}) the full way when a hook asks for it.
"""

from __future__ import annotations

from twisted.words.xish import domish
from twisted.words.xish.domish import escapeToXml

from xmppd.core.jid import parseJID
from xmppd.stream.elements import serialize

__all__ = ["Prepared"]


class Prepared:
    """A stanza (with C{from}, without C{to}) ready to go to many recipients."""

    __slots__ = ("element", "head", "tail", "sender")

    def __init__(self, element: domish.Element):
        if "to" in element.attributes:
            # textFor adds the recipient's 'to': a second one would be malformed XML.
            copy = domish.Element((element.uri, element.name), element.defaultUri)
            copy.attributes = {k: v for k, v in element.attributes.items() if k != "to"}
            copy.children = element.children
            element = copy
        self.element = element
        #: The parsed C{from}, once for every recipient (blocking asks for it).
        self.sender = parseJID(element["from"])
        text = serialize(element)
        cut = len(element.name) + 1
        self.head = text[:cut]
        self.tail = text[cut:]

    @classmethod
    def fromText(cls, head: str, tail: str) -> "Prepared":
        """
        A prepared stanza known only as text, C{head} and C{tail} as
        L{textFor} joins them (a room's fan-out carried to another node of
        a cluster, L{xmppd.cluster.transport}): L{textFor} only, no element.
        """
        prepared = cls.__new__(cls)
        prepared.element = prepared.sender = None
        prepared.head = head
        prepared.tail = tail
        return prepared

    def textFor(self, to: str) -> str:
        """The stanza as a client stream writes it, addressed to C{to}."""
        return "%s to='%s'%s" % (self.head, escapeToXml(to, 1), self.tail)

    def elementFor(self, to: str) -> domish.Element:
        """
        The stanza as an element addressed to C{to}: a new element with its
        own attributes and its own list of the original's children (the
        child elements are shared, not copied).  A recipient's domain may
        add a child to its copy (an archive's stanza-id) without the next
        recipient, or the room's history, getting it too.
        """
        original = self.element
        copy = domish.Element((original.uri, original.name), original.defaultUri)
        copy.attributes = dict(original.attributes)
        copy.attributes["to"] = to
        copy.children = list(original.children)
        return copy
