# -*- test-case-name: tests.test_pubsub_access -*-
"""
Who may subscribe to a node and retrieve its items: the access models of
XEP-0060 §4.5 (C{open}, C{presence}, C{roster}, C{whitelist},
C{authorize}) decided by a pluggable object, so that PEP (XEP-0163) can
answer the roster questions for an account's own nodes the same way or its
own way.

The engine asks L{Access.check} only for entities that are neither owner
nor publisher of the node and not outcast (§4.1: those are decided by
affiliation alone).  An access object needs one question answered by the
server: the roster item an owner has for a contact
(L{RosterLookup}), which L{storageRosterLookup} answers from the roster
store for accounts served here.

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from xmppd.features.pubsub.errors import error
from xmppd.storage.interfaces import NoSuchUser

__all__ = ["Access", "RosterLookup", "storageRosterLookup"]

#: (owner bare JID text, contact bare JID text) -> Deferred firing the owner's
#: roster item for the contact (with C{subscription} and C{groups}), or C{None}.
RosterLookup = Callable[[str, str], defer.Deferred]


def storageRosterLookup(rosters, localDomains) -> RosterLookup:
    """A L{RosterLookup} reading the roster store of accounts served here."""
    localDomains = frozenset(localDomains)

    def lookup(owner: str, contact: str) -> defer.Deferred:
        user, _, host = owner.partition("@")
        if not host or host not in localDomains:
            return defer.succeed(None)
        store = rosters() if callable(rosters) else rosters
        d = store.getItem(user, host, contact)
        # An owner whose account is gone has no contacts.
        d.addErrback(lambda failure: failure.trap(NoSuchUser) and None)
        return d

    return lookup


class Access:
    """
    The access models of §4.5.  C{rosterItem} answers for the C{presence}
    and C{roster} models; without one, both refuse everyone but owners and
    members.
    """

    def __init__(self, rosterItem: RosterLookup | None = None):
        self.rosterItem = rosterItem

    async def check(self, config, owners: list[str], requester: str, affiliation: str,
                    subscribed: bool, subscribing: bool = False) -> str:
        """
        Decide for the bare JID C{requester}: C{"allow"}, or C{"pending"}
        (a subscription to an C{authorize} node waits for an owner, §6.1.4).

        @param subscribed: whether the requester has a subscription
            (state C{subscribed}) to the node already.
        @param subscribing: whether this is a subscription request (else
            retrieving items, §6.5).
        @raise StanzaError: the condition of §6.1.3 / §6.5.2-§6.5.9.
        """
        model = config.accessModel
        if model == "open" or affiliation in ("member", "publish-only"):
            # §4.5: a member is on the whitelist of whitelist nodes and has
            # been approved for authorize nodes; the other models include
            # whoever an owner affiliated with the node.
            return "allow"
        if model == "whitelist":
            raise error("not-allowed", "closed-node", "this node is open to its members only")
        if model == "authorize":
            if subscribed:
                return "allow"
            if subscribing:
                return "pending"
            raise error("not-authorized", "not-subscribed",
                        "this node's items are for approved subscribers")
        if model == "presence":
            for owner in owners:
                item = await self._item(owner, requester)
                if item is not None and item.subscription in ("from", "both"):
                    return "allow"
            raise error("not-authorized", "presence-subscription-required",
                        "this node is for contacts with a presence subscription")
        if model == "roster":
            allowed = set(config.rosterGroups)
            for owner in owners:
                item = await self._item(owner, requester)
                if item is not None and allowed.intersection(item.groups or ()):
                    return "allow"
            raise error("not-authorized", "not-in-roster-group",
                        "this node is for contacts in the owner's allowed roster groups")
        raise error("internal-server-error", text=f"unknown access model {model!r}")

    async def _item(self, owner: str, contact: str):
        if self.rosterItem is None:
            return None
        return await self.rosterItem(owner, contact)
