# -*- test-case-name: tests.test_cluster,tests.test_accountcache -*-
"""
Telling other nodes that cached account data changed (issue 14 item 5).

Features cache some of an account's data in memory (rosters, block lists,
privacy lists, archiving preferences: L{xmppd.core.accountcache}).  On one
node the cache is right because every write goes through it.  In a cluster
an account's data can be written on another node (the same user has
sessions on two nodes), so a write says so with L{IInvalidation.changed},
and every node drops (and, for accounts it serves, reloads) what it
cached.  A lone node has L{LocalInvalidation}: nobody else to tell, and
nothing to pay but a call that does nothing.  The cluster replaces it
(C{XMPPServer.invalidation}) with one on Redis pub/sub.

A node may miss changes (its subscription was down): it then calls the
callbacks given to L{IInvalidation.listenMissed}, and each cache drops
everything it holds, as if every account it caches had been changed.
"""

from __future__ import annotations

from typing import Callable

from zope.interface import Attribute, Interface, implementer


class IInvalidation(Interface):
    """Cache invalidation between the nodes of a cluster."""

    shared = Attribute(
        "True when other nodes write the same accounts (a cluster): a cached"
        " value may then be a moment behind storage, so a read-modify-write"
        " whose result another node's reply depends on (a roster item's"
        " subscription state) reads storage instead.")

    def changed(kind, account):
        """
        This node stored a new C{kind} (a name: an account-data key,
        C{"roster"}) for C{account} (a bare JID string): other nodes drop
        theirs.  Fire and forget.
        """

    def listen(kind, callback):
        """Call C{callback(account)} whenever another node says C{kind} of C{account} changed."""

    def listenMissed(callback):
        """
        Call C{callback()} whenever this node may have missed changes (in a
        cluster: its subscription came back after being down): the cache
        drops every value and reads again what it needs, as for a change
        of each account it holds.
        """


@implementer(IInvalidation)
class LocalInvalidation:
    """One node: there is nobody to tell."""

    shared = False

    def changed(self, kind: str, account: str) -> None:
        pass

    def listen(self, kind: str, callback: Callable[[str], None]) -> None:
        pass

    def listenMissed(self, callback: Callable[[], None]) -> None:
        pass
