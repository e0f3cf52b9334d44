# -*- test-case-name: tests.test_limits -*-
"""
Building blocks for connection and traffic limits (DESIGN §4).

  - L{TokenBucket} shapes traffic: a stream that reads faster than its rate is
    told how long to pause reading, as ejabberd's shapers and Tigase's
    C{--cm-traffic-throttling} do;
  - L{PeerCounter} caps simultaneous connections per peer address;
  - L{SendQueueWatch} bounds what is queued for a peer that does not read;
  - L{AuthFailureTracker} slows down password guessing per peer address with an
    exponential delay (RFC 6120 §6.4.5 allows a server to limit retries; the
    delay outlives the connection, so reconnecting does not reset it).

Time comes from an injected L{IReactorTime} (a L{twisted.internet.task.Clock} in
tests).  Every table is bounded: nothing is kept for a peer that has no
connection, and failure records expire and are evicted oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer


def _defaultClock() -> IReactorTime:
    from twisted.internet import reactor

    return reactor


class TokenBucket:
    """
    A token bucket that shapes rather than drops: L{consume} always takes the
    tokens and says how long the caller should wait before the debt is paid.

    @ivar rate: tokens added per second; 0 means unlimited.
    @ivar burst: the most tokens the bucket holds, and holds at first.
    """

    def __init__(self, rate: float, burst: float, clock: Optional[IReactorTime] = None) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock if clock is not None else _defaultClock()
        self._tokens = float(burst)
        self._updated = self._clock.seconds()

    def consume(self, amount: float) -> float:
        """
        Take C{amount} tokens.

        @return: 0.0 if they were available, else the seconds until the bucket
            is back to zero, during which the caller should stop reading.
        """
        if not self.rate:
            return 0.0
        now = self._clock.seconds()
        tokens = self._tokens + (now - self._updated) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        tokens -= amount
        self._tokens = tokens
        self._updated = now
        if tokens >= 0:
            return 0.0
        return -tokens / self.rate

    def tryConsume(self, amount: float = 1) -> bool:
        """
        Take C{amount} tokens only if they are there (admission, not
        shaping): a refusal costs nothing, so a flood of refused attempts
        does not keep the bucket in debt after it stops.
        """
        if not self.rate:
            return True
        if self.consume(amount) > 0:
            self._tokens += amount
            return False
        return True


def rateBucket(rate: float, clock: Optional[IReactorTime] = None) -> TokenBucket | None:
    """
    The L{TokenBucket} that shapes a stream to C{rate} a second, with a
    burst of two seconds' worth; C{None} for 0 (no limit), so that an
    unlimited stream pays nothing.
    """
    return TokenBucket(rate, 2 * rate, clock) if rate else None


class PeerCounter:
    """
    Count open connections per peer and refuse those beyond C{maxPerPeer}.

    A peer's entry disappears with its last connection, so memory is bounded by
    the number of open connections.

    @ivar maxPerPeer: connections allowed per peer; 0 means unlimited.
    """

    def __init__(self, maxPerPeer: int) -> None:
        self.maxPerPeer = maxPerPeer
        self._counts: dict[Hashable, int] = {}

    def acquire(self, peer: Hashable) -> bool:
        """
        Count a new connection from C{peer}, unless it already has the maximum.

        @return: whether the connection may proceed; only then must the caller
            L{release} it when it closes.
        """
        count = self._counts.get(peer, 0)
        if self.maxPerPeer and count >= self.maxPerPeer:
            return False
        self._counts[peer] = count + 1
        return True

    def release(self, peer: Hashable) -> None:
        """
        Forget one connection from C{peer}; releasing a peer with no counted
        connection does nothing.
        """
        count = self._counts.get(peer, 0)
        if count > 1:
            self._counts[peer] = count - 1
        elif count:
            del self._counts[peer]

    def count(self, peer: Hashable) -> int:
        """The number of counted connections from C{peer}."""
        return self._counts.get(peer, 0)

    def size(self) -> int:
        """The number of peers with at least one counted connection."""
        return len(self._counts)


class AuthFailureTracker:
    """
    Remember recent authentication failures per peer address and say how long
    to delay its next attempt: C{baseDelay * 2 ** (n - 1)} seconds after C{n}
    failures, at most C{maxDelay}.

    A peer is forgotten C{forgetAfter} seconds after its last failure, or on
    success; when more than C{maxEntries} peers are remembered the one whose
    last failure is oldest is forgotten first.
    """

    def __init__(
        self,
        baseDelay: float,
        maxDelay: float,
        clock: Optional[IReactorTime] = None,
        maxEntries: int = 10000,
        forgetAfter: float = 600,
    ) -> None:
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxEntries = maxEntries
        self.forgetAfter = forgetAfter
        self._clock = clock if clock is not None else _defaultClock()
        # peer -> (failures, time of the last one), oldest last failure first.
        self._failures: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def delayFor(self, peer: Hashable) -> float:
        """Seconds to wait before handling C{peer}'s next attempt; 0.0 if none."""
        self._expire(self._clock.seconds())
        entry = self._failures.get(peer)
        if entry is None:
            return 0.0
        # The exponent is capped so that a long run of failures cannot
        # overflow a float; 2 ** 64 base delays exceed any sensible maximum.
        return min(self.maxDelay, self.baseDelay * 2.0 ** min(entry[0] - 1, 64))

    def recordFailure(self, peer: Hashable) -> None:
        """Count a failed attempt by C{peer}."""
        now = self._clock.seconds()
        self._expire(now)
        entry = self._failures.pop(peer, None)
        self._failures[peer] = (entry[0] + 1 if entry else 1, now)
        while len(self._failures) > self.maxEntries:
            self._failures.popitem(last=False)

    def recordSuccess(self, peer: Hashable) -> None:
        """Forget C{peer}'s failures."""
        self._failures.pop(peer, None)

    def size(self) -> int:
        """The number of peers whose failures are still remembered."""
        self._expire(self._clock.seconds())
        return len(self._failures)

    def _expire(self, now: float) -> None:
        failures = self._failures
        horizon = now - self.forgetAfter
        while failures:
            peer, (_, last) = next(iter(failures.items()))
            if last > horizon:
                break
            del failures[peer]


@implementer(IPushProducer)
class SendQueueWatch:
    """
    Registered as the transport's producer so the transport tells us when
    its write buffer is full (C{pauseProducing}).  Whatever the stream writes
    while paused is queued for a peer that does not read; over
    C{limit} bytes the connection is dropped instead of growing memory.
    """

    def __init__(self, limit: int, onOverflow: Callable[[], None]):
        self.limit = limit
        self.onOverflow = onOverflow
        self.paused = False
        self.queued = 0

    def written(self, size: int) -> None:
        if self.paused:
            self.queued += size
            if self.limit and self.queued > self.limit:
                self.onOverflow()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.queued = 0

    def stopProducing(self) -> None:
        self.paused = False
