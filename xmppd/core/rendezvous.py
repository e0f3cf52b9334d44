# -*- test-case-name: tests.test_componentbalance,tests.test_muc_ownership -*-
"""
Rendezvous (highest-random-weight) hashing: which of several named
candidates a key belongs to, as a pure function of the key and of the set
of candidates, so that every node computes the same answer without asking
anyone.  Each candidate gets a weight for the key, a keyed hash of the key
with the candidate's name; the heaviest wins.  When a candidate goes away,
only the keys it won move, each to its runner-up; when one comes, it wins
about 1/N of the keys and nothing else moves.

Two users: the external MUC components balanced per room
(L{xmppd.components.balance}, Tigase's C{ReceiverBareJidLB}), and the node
of a cluster that should own a room (L{xmppd.cluster.lease.RoomOwnership}).
"""

from __future__ import annotations

import hashlib
from typing import Iterable

__all__ = ["salt", "weight", "choose"]


def salt(name: str) -> bytes:
    """The key of a candidate's weights (at most 64 bytes, as BLAKE2b takes)."""
    return hashlib.blake2b(name.encode("utf-8"), digest_size=32).digest()


def weight(salt: bytes, key: bytes) -> int:
    """The weight of C{key} (UTF-8) for the candidate of C{salt}."""
    return int.from_bytes(hashlib.blake2b(key, key=salt, digest_size=8).digest(), "big")


def choose(key: str, candidates: Iterable[tuple[str, bytes]]) -> str | None:
    """
    The candidate (of C{(name, salt)} pairs) that C{key} belongs to: the
    highest weight, ties (vanishingly rare) to the smallest name; C{None}
    when there is none.
    """
    data = key.encode("utf-8")
    best = None
    bestWeight = -1
    for name, candidateSalt in candidates:
        w = weight(candidateSalt, data)
        if w > bestWeight or (w == bestWeight and name < best):
            best, bestWeight = name, w
    return best
