# -*- test-case-name: tests.test_cluster -*-
"""
L{xmppd.core.invalidation.IInvalidation} for a cluster: a write on one
node is published on C{xmppd:c:invalidate} as C{"NODE KIND ACCOUNT"}, and
every other node calls the listeners of KIND (they drop their cached
value of ACCOUNT, and read it again if they need it).

Pub/sub, not a stream: a message published while this node's
subscription is down (Redis restarted, the connection lost) is lost for
this node.  So whenever the subscription comes back (L{subscribed}, once
Redis confirmed it: a change published after that reaches this node), the
node calls the C{listenMissed} callbacks, which drop every cached value
(and read again what their sessions here need, pushing what changed, as
after one invalidation); what is read then is at least as new as any
change whose message was lost.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from zope.interface import implementer

from xmppd.cluster import keys
from xmppd.core.invalidation import IInvalidation
from xmppd.storage.redisclient import logFailure


@implementer(IInvalidation)
class ClusterInvalidation:
    """See the module docstring; C{publish(channel, message)} is Redis's."""

    log = Logger()
    shared = True

    def __init__(self, node: str):
        self.node = node
        self.redis = None
        self.listeners: dict[str, list[Callable[[str], None]]] = {}
        self.missed: list[Callable[[], None]] = []
        #: How many times the subscription came up (the first: at start).
        self.subscriptions = 0

    def changed(self, kind: str, account: str) -> None:
        if self.redis is None:
            return
        self.redis.publish(keys.INVALIDATE_CHANNEL,
                           "%s %s %s" % (self.node, kind, account)).addErrback(
            lambda f: logFailure(self.log, f, "Publishing a change of {kind} failed", kind=kind))

    def listen(self, kind: str, callback: Callable[[str], None]) -> None:
        self.listeners.setdefault(kind, []).append(callback)

    def listenMissed(self, callback: Callable[[], None]) -> None:
        self.missed.append(callback)

    def subscribed(self) -> None:
        """
        The subscription to C{xmppd:c:invalidate} is (again) in place:
        every cache drops what it holds (see the module docstring).  At
        start too, quietly: whatever was cached before the first
        subscription had nobody to tell it of changes either.
        """
        self.subscriptions += 1
        if self.subscriptions > 1:
            self.log.info("Subscribed to {channel} again: changes made meanwhile may be "
                          "lost, dropping every cached roster and account data value",
                          channel=keys.INVALIDATE_CHANNEL)
        for callback in self.missed:
            try:
                callback()
            except Exception:
                self.log.failure("Dropping cached values failed")

    def received(self, message: str) -> None:
        """One message of C{xmppd:c:invalidate}."""
        try:
            node, kind, account = message.split(" ", 2)
        except ValueError:
            return
        if node == self.node:
            return
        for callback in self.listeners.get(kind, ()):
            try:
                callback(account)
            except Exception:
                self.log.failure("Dropping cached {kind} of {account} failed",
                                 kind=kind, account=account)
