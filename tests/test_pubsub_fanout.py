"""
Tests for L{xmppd.features.pubsub.fanout}: a notification is serialized
once for all its subscribers (issue 12 item 6), local full JIDs get the
text through their domain's C{deliverPrepared}, and a large fan-out is sent
in bounded batches over several reactor turns (item 5).
"""

from unittest import mock

from twisted.internet.task import Clock

from tests.pubsubhelpers import MERCUTIO, PreparedRoute, PubSub, events
from xmppd.core import prepared as preparedModule
from xmppd.features.pubsub.fanout import Fanout, Prepared
from tests.helpers import parse
from xmppd.core.router import Router

SUBSCRIBERS = ["user%d@example.org/r" % n for n in range(20)]


def test_notificationSerializedOnce():
    """A publish to twenty local subscribers and a remote one serializes the notification once."""
    p = PubSub(users=PreparedRoute())
    p.create()
    for who in SUBSCRIBERS + [MERCUTIO]:
        p.subscribe(who)
    with mock.patch.object(preparedModule, "serialize",
                           wraps=preparedModule.serialize) as serialize:
        p.publish()
    assert serialize.call_count == 1
    assert len({id(prepared) for prepared in p.users.prepared}) == 1
    for who in SUBSCRIBERS + [MERCUTIO]:
        [event] = events(p.take(who))
        assert event.items.item["id"] == "i1"


def test_bareSubscriberThroughRouter():
    """A subscription of a bare JID gets its notification through the router (the domain's delivery rules)."""
    p = PubSub(users=PreparedRoute())
    p.create()
    p.subscribe("bob@example.org", jid="bob@example.org")
    p.publish()
    assert p.users.prepared == []
    [event] = events(p.take("bob@example.org"))
    assert event.items.item["id"] == "i1"


class Turns:
    """A reactor whose turns a test runs one at a time."""

    def __init__(self):
        self.calls = []

    def callLater(self, delay, f, *args):
        call = Clock().callLater(delay, f, *args)  # active()/cancel() for the caller
        self.calls.append(call)
        return call

    def turn(self):
        calls, self.calls = self.calls, []
        for call in calls:
            if call.active():
                call.func(*call.args)


def test_fanoutInBatches():
    """A fan-out larger than the batch continues on the next reactor turns, in order."""
    clock = Turns()
    router = Router()
    route = PreparedRoute()
    router.addRoute("example.org", route)
    out = Fanout(router, clock, batch=7)
    message = parse("<message from='pubsub.example.org'><event xmlns='urn:x'/></message>")
    out.send(Prepared(message), SUBSCRIBERS)
    assert len(route.prepared) == 7
    clock.turn()
    assert len(route.prepared) == 14
    clock.turn()
    assert len(route.prepared) == 20 and not out.queue
    assert list(route.received) == SUBSCRIBERS


def test_stopDropsQueue():
    """Stopping the service drops what it had not sent yet."""
    clock = Clock()
    router = Router()
    router.addRoute("example.org", PreparedRoute())
    out = Fanout(router, clock, batch=5)
    out.send(Prepared(parse("<message from='pubsub.example.org'/>")), SUBSCRIBERS)
    out.stop()
    assert not clock.getDelayedCalls() and not out.queue


def test_preparedTextHasRecipient():
    """The text a session gets is the notification addressed to it, escaped."""
    prepared = Prepared(parse("<message from='pubsub.example.org' to='x@y'><b/></message>"))
    text = prepared.textFor("a'b@example.org/r")
    assert parse(text)["to"] == "a'b@example.org/r"
    assert text.count(" to=") == 1


def test_notificationFromService():
    """Notifications come from the service's address, as headlines by default."""
    p = PubSub(users=PreparedRoute())
    p.create()
    p.subscribe("bob@example.org/phone")
    p.publish()
    [message] = [s for s in p.take("bob@example.org/phone") if s.name == "message"]
    assert message["from"] == "pubsub.example.org" and message["type"] == "headline"


def test_backlogRefusesPublishing():
    """While too many notifications wait, a publish gets resource-constraint and nothing is stored."""
    from tests.pubsubhelpers import condition
    p = PubSub(users=PreparedRoute(), fanout_batch=2, max_backlog=3)
    p.create()
    for who in SUBSCRIBERS[:5]:
        p.subscribe(who)
    p.publish(itemId="first")  # Two sent now, three wait.
    assert p.service.fanout.backlog == 3
    assert condition(p.publish(itemId="second")) == ("resource-constraint", None)
    p.clock.advance(0)
    assert p.service.fanout.backlog == 0
    assert p.publish(itemId="third")["type"] == "result"
