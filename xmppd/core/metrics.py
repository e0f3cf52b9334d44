# -*- test-case-name: tests.test_metrics -*-
"""
What a node counts for its operators (issue 17, item 3): L{Metrics}, one
per node (C{server.metrics}), plain integers that the hot paths increment
and the C{/metrics} page (L{xmppd.http.metrics}) reads when it is scraped.

Why plain integers and not C{prometheus_client}'s C{Counter}: its C{inc()}
takes a lock on every call, which measured about ten times the cost of
C{d[key] += 1} (see the README, "Metrics"), and a stanza must pay no more
than one increment.  The reactor thread is the only writer, so no lock is
needed.  Everything that already exists as state (sessions, rooms, s2s
queues) is not counted at all: it is read at scrape time from the services
that hold it (their C{metricSamples()}, L{Sample}).

Nothing here is global: a node owns its L{Metrics}, two nodes in one
process (the tests) count apart.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

#: The stanza kinds counted in and out.
STANZA_KINDS = ("message", "presence", "iq")

#: Seconds; the buckets of storage latency (a write with an fsync on a
#: disk takes milliseconds; a group commit under load tens of them).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: Writes per group commit.
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Sample(NamedTuple):
    """
    One value a service reports at scrape time: C{name} (starting with
    C{xmppd_}), C{kind} (C{"gauge"} or C{"counter"}), C{help}, C{labels}
    (a dict) and C{value}.
    """

    name: str
    kind: str
    help: str
    labels: dict
    value: float


class Histogram:
    """
    Cumulative buckets, a sum and a count, as Prometheus wants them; an
    observation is a bisection and two additions.
    """

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        """(upper bound as text, cumulative count), ending with C{+Inf}."""
        out, total = [], 0
        for bound, n in zip(self.bounds + (float("inf"),), self.counts):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


class Metrics:
    """
    The node's counters (see the module docstring).  Dicts keyed by label
    value; a key first seen is added with C{dict.get}, the fixed ones exist
    from the start so the hot paths index them directly.
    """

    def __init__(self):
        #: Stanzas read from bound clients and written to them, by kind.
        self.stanzasIn = dict.fromkeys(STANZA_KINDS, 0)
        self.stanzasOut = dict.fromkeys(STANZA_KINDS, 0)
        #: Successful and failed logins by SASL mechanism.
        self.logins: dict[str, int] = {}
        self.loginFailures: dict[str, int] = {}
        #: Client streams that bound a session, by transport, since start.
        self.sessionsOpened: dict[str, int] = {}
        #: Stanzas a local domain handed to a bound session, by kind.
        self.deliveries = dict.fromkeys(STANZA_KINDS, 0)
        #: Messages kept for an offline user, and given to one at login.
        self.offlineStored = 0
        self.offlineDelivered = 0
        #: Refused or slowed abuse, by the limit that caught it.
        self.rejected: dict[str, int] = {}
        #: Seconds a storage call took, from the reactor's point of view.
        self.storageLatency = Histogram(LATENCY_BUCKETS)
        #: Writes sharing one group commit (SQLite).
        self.groupCommitSize = Histogram(GROUP_BUCKETS)
        #: The last measured delay of the reactor, and the largest, in seconds.
        self.reactorLag = 0.0
        self.reactorLagMax = 0.0

    def count(self, table: dict, key: str, n: int = 1) -> None:
        """Add C{n} to C{table[key]}, creating it: for the rarer counters."""
        table[key] = table.get(key, 0) + n

    def reject(self, limit: str) -> None:
        """Abuse caught by C{limit} (C{"connections_per_ip"}, C{"max_stanza_size"}...)."""
        self.rejected[limit] = self.rejected.get(limit, 0) + 1
