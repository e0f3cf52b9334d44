# -*- test-case-name: tests.test_muc_affiliations -*-
"""
Telling the room of an affiliation change for someone who is not in it
(XEP-0045 §9.3-9.8, §10.3-10.7; 1.35 "Notifications of Changes").

Someone present learns of a change through their occupant's new presence
(L{muc.admin.setAffiliation}); for an account with no occupant in the room
there is no presence to send, so the room sends its occupants a
C{<message/>} from the room's own JID carrying the C{muc#user} item:
the account's bare JID, its new affiliation, role C{none} (it is not in the
room), and the reason and actor when there are some.  Clients show it in the
room ("juliet@example.org is now a member") and keep their member lists
current without asking again.

The item names a real JID, so only occupants who may see real JIDs get it
(§5.2.1, whois): everyone in a non-anonymous room, the moderators of a
semi-anonymous one, as ejabberd and Prosody do.  One stanza, serialized
once, goes to every session of those occupants.
"""

from __future__ import annotations

from muc.broadcast import Prepared
from muc.protocol import element, itemElement, userX


def announceAffiliation(room, bare: str, affiliation: str, reason: str | None = None,
                        actor: str | None = None) -> None:
    """Send C{bare}'s new C{affiliation} to the occupants of C{room} who may see real JIDs."""
    notice = element("message", **{"from": room.jidText})
    notice.addChild(userX((), itemElement(affiliation, "none", jid=bare, reason=reason,
                                          actor=actor)))
    prepared = None
    fanout = room.service.fanout
    for occupant in list(room.occupants.values()):
        if not room.seesJIDs(occupant):
            continue
        if prepared is None:
            prepared = Prepared(notice)
        for jid in list(occupant.sessions.values()):
            fanout(prepared, jid)
