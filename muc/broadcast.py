# -*- test-case-name: tests.test_muc_broadcast -*-
"""
Fan-out that serializes once (DESIGN §5: "MUC fan-out should not rebuild
the whole stanza per occupant").

A room message to N occupants differs per recipient only in its C{to}.
L{Prepared} (L{xmppd.core.prepared}) serializes the stanza once without C{to} and splices each
recipient's address in as text.  Recipients with a session on a served
domain of this node get that text straight from the domain
(L{xmppd.core.local.LocalDomain.deliverPrepared}, which still lets blocking
object); everyone else (remote occupants, or every occupant when the service
runs as an external component) gets an element through the router like any
other stanza: a shallow copy sharing the children, never a deep one.
"""

from __future__ import annotations


from xmppd.core.prepared import Prepared  # noqa: F401  (the room's fan-out; re-exported)


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
