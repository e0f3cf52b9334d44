"""
Tests for L{xmppd.core.hooks}: priorities, first result wins, failures skipped.
"""

from xmppd.core.hooks import Hooks


def test_highestPriorityFirst():
    """Callbacks run from the highest priority down; equal ones in the order added."""
    hooks, order = Hooks(), []
    hooks.add("e", lambda ev: order.append("low"), priority=-5)
    hooks.add("e", lambda ev: order.append("high"), priority=10)
    hooks.add("e", lambda ev: order.append("mid1"))
    hooks.add("e", lambda ev: order.append("mid2"))
    hooks.notify("e")
    assert order == ["high", "mid1", "mid2", "low"]


def test_firstResultWins():
    """fire() stops at the first callback that returns something and returns it."""
    hooks, called = Hooks(), []
    hooks.add("e", lambda ev: called.append(1))
    hooks.add("e", lambda ev: "stored")
    hooks.add("e", lambda ev: called.append(3) or "never")
    assert hooks.fire("e") == "stored"
    assert called == [1]


def test_failingCallbackSkipped():
    """A callback that raises is skipped and the next one still decides."""
    hooks = Hooks()
    hooks.add("e", lambda ev: 1 / 0, priority=1)
    hooks.add("e", lambda ev: ev * 2)
    assert hooks.fire("e", 21) == 42


def test_noCallbacks():
    """Firing a hook nobody listens to returns None."""
    assert Hooks().fire("nothing", object()) is None


def test_remove():
    """A removed callback is no longer called."""
    hooks = Hooks()
    callback = lambda ev: "x"  # noqa: E731
    hooks.add("e", callback)
    hooks.remove("e", callback)
    assert hooks.fire("e") is None and not hooks.has("e")


def test_scopedCallbacksHearOnlyTheirScope():
    """A domain's feature hears its own domain's events and node-wide ones, never another domain's."""
    hooks, heard = Hooks(), []
    hooks.scoped("a.example").add("e", lambda ev: heard.append(("a", ev)))
    hooks.scoped("b.example").add("e", lambda ev: heard.append(("b", ev)))
    hooks.add("e", lambda ev: heard.append(("node", ev)), priority=5)
    hooks.scoped("a.example").notify("e", 1)
    assert heard == [("node", 1), ("a", 1)]
    heard.clear()
    hooks.notify("e", 2)
    assert sorted(heard) == [("a", 2), ("b", 2), ("node", 2)]


def test_scopedPrioritiesMerge():
    """Scoped and unscoped callbacks run together by priority."""
    hooks, order = Hooks(), []
    scoped = hooks.scoped("a.example")
    scoped.add("e", lambda ev: order.append("scoped-low"), priority=-1)
    hooks.add("e", lambda ev: order.append("node"))
    scoped.add("e", lambda ev: order.append("scoped-high"), priority=1)
    scoped.notify("e")
    assert order == ["scoped-high", "node", "scoped-low"]


def test_scopedRemove():
    """A callback removed from its scope is no longer called, and the cached order follows."""
    hooks = Hooks()
    scoped = hooks.scoped("a.example")
    callback = lambda ev: "x"  # noqa: E731
    scoped.add("e", callback)
    assert scoped.fire("e") == "x"
    scoped.remove("e", callback)
    assert scoped.fire("e") is None and not scoped.has("e")
