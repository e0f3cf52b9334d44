"""
Tests for L{xmppd.stream.limits}: traffic shaping, per-peer connection caps and the
authentication failure delay.
"""

from twisted.internet.task import Clock

from xmppd.stream.limits import AuthFailureTracker, PeerCounter, TokenBucket


def test_bucketAllowsBurst():
    """Traffic up to the burst size passes without delay."""
    bucket = TokenBucket(rate=100, burst=1000, clock=Clock())
    assert bucket.consume(600) == 0.0
    assert bucket.consume(400) == 0.0


def test_bucketDelaysOverBurst():
    """Traffic beyond the burst is told to wait until the debt is paid at the given rate."""
    bucket = TokenBucket(rate=100, burst=1000, clock=Clock())
    assert bucket.consume(1250) == 2.5


def test_bucketKeepsDebt():
    """Tokens are taken even when the caller must wait, so repeated reads wait longer."""
    bucket = TokenBucket(rate=100, burst=100, clock=Clock())
    assert bucket.consume(200) == 1.0
    assert bucket.consume(100) == 2.0


def test_bucketRefillsWithTime():
    """After waiting the advised time, the same amount passes again."""
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=100, clock=clock)
    delay = bucket.consume(300)
    clock.advance(delay + 1)
    assert bucket.consume(100) == 0.0


def test_bucketRefillCappedAtBurst():
    """A long idle period only saves up the burst, not more."""
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=100, clock=clock)
    clock.advance(3600)
    assert bucket.consume(300) == 2.0


def test_bucketZeroRateUnlimited():
    """A rate of 0 never delays anything."""
    bucket = TokenBucket(rate=0, burst=0, clock=Clock())
    assert bucket.consume(10**9) == 0.0


def test_peerCounterRefusesOverLimit():
    """A peer may open up to the maximum number of connections, not one more."""
    counter = PeerCounter(2)
    assert counter.acquire("192.0.2.1")
    assert counter.acquire("192.0.2.1")
    assert not counter.acquire("192.0.2.1")
    assert counter.acquire("192.0.2.2")


def test_peerCounterReleaseFreesSlot():
    """Closing a connection lets the peer open another."""
    counter = PeerCounter(1)
    counter.acquire("192.0.2.1")
    counter.release("192.0.2.1")
    assert counter.acquire("192.0.2.1")


def test_peerCounterForgetsIdlePeers():
    """A peer whose connections have all closed takes no memory."""
    counter = PeerCounter(5)
    for i in range(100):
        counter.acquire(i)
        counter.release(i)
    assert counter.size() == 0
    assert counter.count(7) == 0


def test_peerCounterIgnoresExtraRelease():
    """Releasing more than was acquired never drives a count negative."""
    counter = PeerCounter(1)
    counter.release("192.0.2.1")
    assert counter.acquire("192.0.2.1")
    assert not counter.acquire("192.0.2.1")


def test_peerCounterZeroUnlimited():
    """A maximum of 0 never refuses, yet still counts."""
    counter = PeerCounter(0)
    assert all(counter.acquire("192.0.2.1") for _ in range(1000))
    assert counter.count("192.0.2.1") == 1000


def test_noDelayWithoutFailures():
    """A peer that never failed is not delayed."""
    tracker = AuthFailureTracker(1, 60, Clock())
    assert tracker.delayFor("192.0.2.1") == 0.0


def test_delayDoublesPerFailure():
    """Each failure doubles the delay, starting from the base delay."""
    tracker = AuthFailureTracker(0.5, 60, Clock())
    delays = []
    for _ in range(4):
        tracker.recordFailure("192.0.2.1")
        delays.append(tracker.delayFor("192.0.2.1"))
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_delayCapped():
    """The delay never exceeds the maximum, however many failures."""
    tracker = AuthFailureTracker(1, 30, Clock())
    for _ in range(5000):
        tracker.recordFailure("192.0.2.1")
    assert tracker.delayFor("192.0.2.1") == 30


def test_delayIsPerPeer():
    """One peer's failures do not delay another peer."""
    tracker = AuthFailureTracker(1, 30, Clock())
    tracker.recordFailure("192.0.2.1")
    assert tracker.delayFor("192.0.2.2") == 0.0


def test_successClearsDelay():
    """A successful authentication forgets the peer's failures."""
    tracker = AuthFailureTracker(1, 30, Clock())
    tracker.recordFailure("192.0.2.1")
    tracker.recordSuccess("192.0.2.1")
    assert tracker.delayFor("192.0.2.1") == 0.0
    assert tracker.size() == 0


def test_failuresForgottenAfterQuietPeriod():
    """Failures are forgotten once the peer has not failed for forgetAfter seconds."""
    clock = Clock()
    tracker = AuthFailureTracker(1, 30, clock, forgetAfter=600)
    tracker.recordFailure("192.0.2.1")
    clock.advance(599)
    assert tracker.delayFor("192.0.2.1") == 1.0
    clock.advance(1)
    assert tracker.delayFor("192.0.2.1") == 0.0
    assert tracker.size() == 0


def test_newFailureRestartsQuietPeriod():
    """A failure during the quiet period keeps the earlier ones counted."""
    clock = Clock()
    tracker = AuthFailureTracker(1, 30, clock, forgetAfter=600)
    tracker.recordFailure("192.0.2.1")
    clock.advance(500)
    tracker.recordFailure("192.0.2.1")
    clock.advance(500)
    assert tracker.delayFor("192.0.2.1") == 2.0


def test_tableBoundedEvictsOldest():
    """Beyond maxEntries peers, the peer whose last failure is oldest is forgotten first."""
    clock = Clock()
    tracker = AuthFailureTracker(1, 30, clock, maxEntries=3)
    for peer in ["a", "b", "c"]:
        tracker.recordFailure(peer)
        clock.advance(1)
    tracker.recordFailure("a")
    tracker.recordFailure("d")
    assert tracker.size() == 3
    assert tracker.delayFor("b") == 0.0
    assert tracker.delayFor("a") == 2.0
