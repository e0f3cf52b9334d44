"""The node's start-up objects are frozen out of the garbage collector's way once it listens."""

from twisted.internet import defer
from twisted.internet.task import Clock

from xmppd.core.collector import FULL_AFTER, FreezeAfterStart


class FakeGC:
    def __init__(self):
        self.calls = []

    def collect(self):
        self.calls.append("collect")

    def freeze(self):
        self.calls.append("freeze")

    def get_freeze_count(self):
        return 1

    def get_threshold(self):
        return (700, 10, 10)

    def set_threshold(self, *thresholds):
        self.calls.append(thresholds)


class FakeServer:
    def __init__(self):
        self.ready = defer.Deferred()

    def whenReady(self):
        d = defer.Deferred()
        self.ready.addBoth(lambda result: d.callback(result) or result)
        return d


def test_freezesOnceReady():
    """Nothing is frozen before the node is ready; a turn later: collect, freeze, rarer fulls."""
    gc, server, clock = FakeGC(), FakeServer(), Clock()
    service = FreezeAfterStart(server, clock, gc)
    service.startService()
    clock.advance(1)
    assert gc.calls == []
    server.ready.callback(None)
    assert gc.calls == []
    clock.advance(0)
    assert gc.calls == ["collect", "freeze", (700, 10, FULL_AFTER)]


def test_stoppedBeforeReady():
    """A node stopped before it was ready freezes nothing."""
    gc, server, clock = FakeGC(), FakeServer(), Clock()
    service = FreezeAfterStart(server, clock, gc)
    service.startService()
    service.stopService()
    server.ready.callback(None)
    clock.advance(0)
    assert gc.calls == []


def test_notReady():
    """A node that cannot start (storage failed) freezes nothing and logs no unhandled error."""
    gc, server, clock = FakeGC(), FakeServer(), Clock()
    service = FreezeAfterStart(server, clock, gc)
    service.startService()
    server.ready.errback(RuntimeError("no storage"))
    server.ready.addErrback(lambda _: None)
    clock.advance(0)
    assert gc.calls == []
