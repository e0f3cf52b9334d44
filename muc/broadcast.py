# -*- test-case-name: tests.test_muc_broadcast -*-
"""
Fan-out that serializes once (DESIGN §5: "MUC fan-out should not rebuild
the whole stanza per occupant").

A room message to N occupants differs per recipient only in its C{to}.
L{Prepared} serializes the stanza once without C{to} and splices each
recipient's address in as text.  Recipients with a session on a served
domain of this node get that text straight from the domain
(L{xmppd.core.local.LocalDomain.deliverPrepared}, which still lets blocking
object); everyone else (remote occupants, or every occupant when the service
runs as an external component) gets an element through the router like any
other stanza: a shallow copy sharing the children, never a deep one.
"""

from __future__ import annotations

from twisted.words.xish import domish
from twisted.words.xish.domish import escapeToXml

from xmppd.stream.elements import serialize
from xmppd.core.jid import parseJID


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


def sendPrepared(router, prepared: Prepared, recipient) -> None:
    """
    Send C{prepared} to C{recipient} (a full L{JID}): as text straight to a
    local session when the recipient's domain is served here, else as an
    element through the router.
    """
    route = router.routes.get(recipient.host)
    deliver = getattr(route, "deliverPrepared", None)
    if deliver is not None:
        deliver(recipient, prepared)
    else:
        router.route(prepared.elementFor(recipient.full()))
