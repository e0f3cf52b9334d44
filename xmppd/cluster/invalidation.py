# -*- test-case-name: tests.test_cluster -*-
"""
L{xmppd.core.invalidation.IInvalidation} for a cluster: a write on one
node is published on C{xmppd:c:invalidate} as C{"NODE KIND ACCOUNT"}, and
every other node calls the listeners of KIND (they drop their cached
value of ACCOUNT, and read it again if they need it).

Pub/sub, not a stream: a message published while this node's
subscription is down is lost, and the value cached here stays stale until
the account's last session here ends (dropping every cache when the
subscription comes back is not done yet).
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from zope.interface import implementer

from xmppd.cluster import keys
from xmppd.core.invalidation import IInvalidation


@implementer(IInvalidation)
class ClusterInvalidation:
    """See the module docstring; C{publish(channel, message)} is Redis's."""

    log = Logger()

    def __init__(self, node: str):
        self.node = node
        self.redis = None
        self.listeners: dict[str, list[Callable[[str], None]]] = {}

    def changed(self, kind: str, account: str) -> None:
        if self.redis is None:
            return
        self.redis.publish(keys.INVALIDATE_CHANNEL,
                           "%s %s %s" % (self.node, kind, account)).addErrback(
            lambda f: self.log.failure("Publishing a change of {kind} failed", f, kind=kind))

    def listen(self, kind: str, callback: Callable[[str], None]) -> None:
        self.listeners.setdefault(kind, []).append(callback)

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
