"""
Tests for L{xmppd.core.hooks}: declared hooks, priority bands, first result
wins, failures skipped, callbacks that wait, and the stanza held while a
chain waits.
"""

import pytest
from twisted.internet import defer
from twisted.logger import Logger

from tests.helpers import parse
from tests.smhelpers import SMNode, acks
from xmppd.core.events import CATALOGUE, StanzaEvent
from xmppd.core.hooks import (COPY, DELIVER, FIRST, OBSERVE, POLICY, STAMP, Catalogue, Hooks,
                              UnknownHook, describe, whenDone)
from xmppd.core.stanzas import holders


def catalogue():
    known = Catalogue()
    known.declare("e", None, results=True)
    known.declare("n", None, results=False)
    return known


def makeHooks():
    return Hooks(catalogue())


class Event:
    """A payload with a stanza, as the core's events have."""

    def __init__(self):
        self.stanza = parse("<message to='juliet@example.org' type='chat'><body>x</body></message>")


# -- order, results, failures ------------------------------------------------


def test_bandsOrder():
    """Callbacks run band by band, FIRST to OBSERVE; equal ones in the order added."""
    hooks, order = makeHooks(), []
    for band in (OBSERVE, DELIVER, COPY, STAMP, POLICY, FIRST):
        hooks.add("n", lambda ev, band=band: order.append(band.name), band)
    hooks.add("n", lambda ev: order.append("DELIVER again"), DELIVER)
    hooks.notify("n")
    assert order == ["FIRST", "POLICY", "STAMP", "COPY", "DELIVER", "DELIVER again", "OBSERVE"]


def test_stepWithinBand():
    """A step after a band runs after the band's own callbacks and before the next band."""
    hooks, order = makeHooks(), []
    hooks.add("n", lambda ev: order.append("stamp"), STAMP)
    hooks.add("n", lambda ev: order.append("policy+2"), POLICY.then(2))
    hooks.add("n", lambda ev: order.append("policy+1"), POLICY.then(1))
    hooks.add("n", lambda ev: order.append("policy"), POLICY)
    hooks.notify("n")
    assert order == ["policy", "policy+1", "policy+2", "stamp"]
    with pytest.raises(ValueError):
        POLICY.then(50)


def test_firstResultWins():
    """fire() stops at the first callback that returns something and returns it."""
    hooks, called = makeHooks(), []
    hooks.add("e", lambda ev: called.append(1))
    hooks.add("e", lambda ev: "stored")
    hooks.add("e", lambda ev: called.append(3) or "never")
    assert hooks.fire("e") == "stored"
    assert called == [1]


def test_failingCallbackSkipped():
    """A callback that raises is skipped and the next one still decides."""
    hooks = makeHooks()
    hooks.add("e", lambda ev: 1 / 0, POLICY)
    hooks.add("e", lambda ev: ev * 2)
    assert hooks.fire("e", 21) == 42


def test_noCallbacks():
    """Firing a hook nobody listens to returns None."""
    assert makeHooks().fire("e", object()) is None


def test_remove():
    """A removed callback is no longer called."""
    hooks = makeHooks()
    callback = lambda ev: "x"  # noqa: E731
    hooks.add("e", callback)
    hooks.remove("e", callback)
    assert hooks.fire("e") is None and not hooks.has("e")


# -- the catalogue -------------------------------------------------------------


def test_unknownNameRefused():
    """Registering for a hook nobody declared fails at once, so a misspelt name cannot go unnoticed."""
    with pytest.raises(UnknownHook):
        makeHooks().add("message/bear", lambda ev: None)
    with pytest.raises(UnknownHook):
        Hooks().add("message/bear", lambda ev: None)
    with pytest.raises(UnknownHook):
        makeHooks().fire("message/bear")


def test_bareIntegerPriorityRefused():
    """A priority is a named band, not a number."""
    with pytest.raises(TypeError):
        makeHooks().add("e", lambda ev: None, 100)


def test_declaredHooks():
    """The node's catalogue knows the core's hooks with their payload and kind."""
    bare = CATALOGUE["message/bare"]
    assert bare == "message/bare" and bare.payload is StanzaEvent and bare.results
    assert not CATALOGUE["session/closed"].results
    assert CATALOGUE.declare("message/bare", StanzaEvent, True) is bare
    with pytest.raises(ValueError):
        CATALOGUE.declare("message/bare", StanzaEvent, False)


# -- scopes --------------------------------------------------------------------


def test_scopedCallbacksHearOnlyTheirScope():
    """A domain's feature hears its own domain's events and node-wide ones, never another domain's."""
    hooks, heard = makeHooks(), []
    hooks.scoped("a.example").add("n", lambda ev: heard.append(("a", ev)))
    hooks.scoped("b.example").add("n", lambda ev: heard.append(("b", ev)))
    hooks.add("n", lambda ev: heard.append(("node", ev)), POLICY)
    hooks.scoped("a.example").notify("n", 1)
    assert heard == [("node", 1), ("a", 1)]
    heard.clear()
    hooks.notify("n", 2)
    assert sorted(heard) == [("a", 2), ("b", 2), ("node", 2)]


def test_scopedPrioritiesMerge():
    """Scoped and unscoped callbacks run together by priority."""
    hooks, order = makeHooks(), []
    scoped = hooks.scoped("a.example")
    scoped.add("n", lambda ev: order.append("scoped-low"), OBSERVE)
    hooks.add("n", lambda ev: order.append("node"))
    scoped.add("n", lambda ev: order.append("scoped-high"), POLICY)
    scoped.notify("n")
    assert order == ["scoped-high", "node", "scoped-low"]


def test_scopedRemove():
    """A callback removed from its scope is no longer called, and the cached order follows."""
    hooks = makeHooks()
    scoped = hooks.scoped("a.example")
    callback = lambda ev: "x"  # noqa: E731
    scoped.add("e", callback)
    assert scoped.fire("e") == "x"
    scoped.remove("e", callback)
    assert scoped.fire("e") is None and not scoped.has("e")


# -- callbacks that wait -------------------------------------------------------


def test_syncChainReturnsPlainValues():
    """A chain where nobody waits answers at once with plain values, never a Deferred."""
    hooks = makeHooks()
    hooks.add("e", lambda ev: defer.succeed(None), POLICY)
    hooks.add("e", lambda ev: True)
    hooks.add("n", lambda ev: defer.succeed("ignored"))
    assert hooks.fire("e") is True
    assert hooks.notify("n") is None


def test_waitingCallbackResumesChain():
    """A callback that returns a Deferred holds the chain; the next callback runs once it fires."""
    hooks, order = makeHooks(), []
    waiting = defer.Deferred()
    hooks.add("e", lambda ev: order.append("first") or waiting, POLICY)
    hooks.add("e", lambda ev: order.append("second") or "done")
    result = hooks.fire("e")
    assert isinstance(result, defer.Deferred) and order == ["first"]
    got = []
    result.addCallback(got.append)
    waiting.callback(None)
    assert order == ["first", "second"] and got == ["done"]


def test_resultFromDeferredStopsChain():
    """A Deferred that fires with a result decides, as a plain result does."""
    hooks, called = makeHooks(), []
    waiting = defer.Deferred()
    hooks.add("e", lambda ev: waiting, POLICY)
    hooks.add("e", lambda ev: called.append("later"))
    got = []
    hooks.fire("e").addCallback(got.append)
    waiting.callback("refused")
    assert got == ["refused"] and called == []


def test_failingDeferredLoggedAndSkipped():
    """A Deferred that fails is logged and the chain goes on as after a raising callback."""
    hooks, logged = makeHooks(), []
    hooks.log = Logger(observer=logged.append)
    waiting = defer.Deferred()
    hooks.add("e", lambda ev: waiting, POLICY)
    hooks.add("e", lambda ev: "next decides")
    got = []
    hooks.fire("e").addCallback(got.append)
    waiting.errback(RuntimeError("storage is down"))
    assert got == ["next decides"]
    assert [e["log_failure"].value.args for e in logged] == [("storage is down",)]


def test_notifyWaits():
    """notify() waits for a callback's Deferred too, and then fires with None."""
    hooks, order = makeHooks(), []
    waiting = defer.Deferred()
    hooks.add("n", lambda ev: waiting, POLICY)
    hooks.add("n", lambda ev: order.append("after"))
    result = hooks.notify("n")
    assert order == []
    waiting.callback("ignored")
    assert order == ["after"] and result.result is None


def test_whenDone():
    """whenDone() continues at once after a plain result and later after a chain that waited."""
    seen = []
    assert whenDone(True, lambda taken: seen.append(taken) or "now") == "now"
    waiting = defer.Deferred()
    whenDone(waiting, seen.append)
    waiting.callback(None)
    assert seen == [True, None]


def test_stanzaHeldUntilChainDone():
    """While a chain waits its stanza is held, and let go only after the caller acted on the result."""
    hooks, order = makeHooks(), []
    waiting = defer.Deferred()
    hooks.add("e", lambda ev: waiting, POLICY)
    hooks.add("e", lambda ev: order.append("next") or True)
    event = Event()
    assert holders(event.stanza) is None
    result = hooks.fire("e", event)
    [held] = holders(event.stanza)
    held.addCallback(lambda _: order.append("let go"))
    result.addCallback(lambda taken: order.append("caller"))
    assert not held.called
    waiting.callback(None)
    assert order == ["next", "caller", "let go"]


def test_syncChainHoldsNothing():
    """A chain that does not wait leaves the stanza unheld (no allocation on the hot path)."""
    hooks = makeHooks()
    hooks.add("e", lambda ev: True)
    event = Event()
    assert hooks.fire("e", event) is True
    assert holders(event.stanza) is None


def test_acknowledgedOnlyAfterWaitingChain(tmp_path):
    """Under stream management a client's message is acknowledged only once a waiting hook chain is over."""
    node = SMNode(tmp_path)
    waiting = defer.Deferred()

    def slow(event):
        if event.stanza.name == "message":
            return waiting
        return None

    node.server.hooks.add("c2s/outgoing", slow, POLICY)
    client = node.login(available=False)
    client.enable()
    client.send("<message to='romeo@example.org' type='chat'><body>hi</body></message>")
    assert acks(client.request()) == []
    waiting.callback(None)
    assert acks(client.received()) == [1]


# -- who listens -----------------------------------------------------------------


def test_table():
    """The table lists each hook with its listeners in the order they run."""
    hooks = makeHooks()

    def late(ev):
        return None

    def early(ev):
        return None

    hooks.add("e", late, OBSERVE)
    hooks.scoped("a.example").add("e", early, POLICY)
    hooks.add("n", late)
    assert hooks.table("a.example") == [("e", (describe(early), describe(late))),
                                        ("n", (describe(late),))]
    assert hooks.table("b.example") == [("e", (describe(late),)), ("n", (describe(late),))]
    assert describe(early) == "tests.test_hooks.test_table.<locals>.early"


def test_listenersWithBands():
    """The listeners of a scope come in run order with their bands; own ones leave the node-wide out."""
    hooks = makeHooks()

    def nodeWide(ev):
        return None

    def local(ev):
        return None

    hooks.add("e", nodeWide, OBSERVE)
    hooks.scoped("a.example").add("e", local, POLICY.then(2))
    assert hooks.listeners("a.example") == [("e", ((local, POLICY.then(2)),
                                                   (nodeWide, OBSERVE)))]
    assert hooks.listeners("a.example", own=True) == [("e", ((local, POLICY.then(2)),))]
    assert hooks.listeners(None, own=True) == [("e", ((nodeWide, OBSERVE),))]
    assert hooks.listeners("b.example", own=True) == []
    assert [str(band) for _, band in hooks.listeners("a.example")[0][1]] == [
        "POLICY.then(2)", "OBSERVE"]


def test_domainTableShowsFeatures(tmp_path):
    """A served domain's table shows blocking, archive, carbons and delivery on message/bare, in that order."""
    from tests.domainhelpers import Domain
    domain = Domain(tmp_path, features=("messages", "roster", "carbons", "mam", "blocking"))
    table = dict(domain.hooks.table())
    listening = [name.split(".")[2] for name in table["message/bare"]]
    assert listening == ["privacy", "mam", "carbons", "messages"]


def test_domainLogsTableAtStart(tmp_path):
    """A served domain logs, when it starts, one line per hook naming its listeners in order."""
    from twisted.logger import globalLogPublisher

    from tests.domainhelpers import Domain
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        Domain(tmp_path, features=("messages", "blocking"))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    lines = {event["name"]: event["listening"] for event in logged
             if event.get("log_format", "").startswith("Hook {name}")}
    assert lines["message/bare"] == (
        "xmppd.features.privacy.policy.Policy.onStanza, "
        "xmppd.features.messages.MessageHandler.onBareMessage")
