"""
In-order processing (RFC 6120 §10.1, L{xmppd.core.ordering}): a stanza
that waits on something asynchronous holds back what its sender sends
next, and only that: other senders go on, nothing waits for ever, and a
flood while waiting is bounded.  Shown on the backlog itself, on client
streams (a hook that waits, fired by hand), on component streams (a route
that waits, per sender), on server-to-server streams, on a MUC room
that loads from storage and on an IQ a domain's handler answers later.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.words.xish import domish
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppd.core.ordering import (MAX_BACKLOG, PROCESSING_TIMEOUT, Backlog, Senders, unfinished,
                                  whenLetGo)
from xmppd.core.stanzas import Confirmation, acknowledgeAfter, hold, holders
from tests.helpers import parse
from tests.muchelpers import MUC, NS_MUC, ROOM
from tests.s2shelpers import REMOTE, Harness as S2SHarness
from tests.streamhelpers import DOMAIN, Node
from tests.test_c2s import message
from tests.test_components import COMPONENT, Harness
from tests.test_muc_service import HeldStorage


def stanza(body: str, sender: str = "a@example.org/r") -> domish.Element:
    element = domish.Element((None, "message"))
    element["from"] = sender
    element.addElement("body", content=body)
    return element


class Holding:
    """A step that holds the stanzas whose body says "wait" until released by hand."""

    def __init__(self):
        self.seen: list[str] = []
        self.holds: list[defer.Deferred] = []

    def __call__(self, element: domish.Element) -> None:
        body = str(element.body)
        self.seen.append(body)
        if body.startswith("wait"):
            self.holds.append(hold(element))

    def release(self) -> None:
        self.holds.pop(0).callback(None)


# -- the backlog ------------------------------------------------------------------------


def test_unfinishedWhileHeld():
    """A stanza nobody holds is finished; a held one is unfinished until let go."""
    element = stanza("x")
    assert unfinished(element) is None
    held = hold(element)
    assert unfinished(element) == [held]
    held.callback(None)
    assert unfinished(element) is None


def test_sendersWaitOnlyForTheirOwn():
    """A sender's stanza waits behind that sender's held one; another sender's does not."""
    step, clock = Holding(), Clock()
    paused = []
    senders = Senders(step, clock, lambda: paused.append(True), lambda: paused.append(False),
                      lambda: paused.append("overflow"))
    senders.receive("a", stanza("wait 1", "a"))
    senders.receive("a", stanza("a 2", "a"))
    senders.receive("b", stanza("b 1", "b"))
    assert step.seen == ["wait 1", "b 1"]
    assert paused == [True]
    step.release()
    assert step.seen == ["wait 1", "b 1", "a 2"]
    assert paused == [True, False]
    assert senders.backlogs == {}


def test_newHolderKeepsTheWait():
    """A stanza held again by its next step (the route after the hook) still holds its sender back."""
    clock = Clock()
    handled = []
    first, second = stanza("1"), stanza("2")
    backlog = Backlog(lambda e: handled.append(e), lambda: handled.append("drained"), clock)
    held = hold(first)
    backlog.wait(first, unfinished(first))
    backlog.add(second)
    later = hold(first)
    held.callback(None)
    assert handled == []
    later.callback(None)
    assert handled == [second, "drained"]


def test_timeoutGoesOn():
    """A stanza whose processing never ends holds its sender back for PROCESSING_TIMEOUT, then not."""
    clock = Clock()
    handled = []
    first, second = stanza("1"), stanza("2")
    backlog = Backlog(lambda e: handled.append(e), lambda: handled.append("drained"), clock)
    hold(first)
    backlog.wait(first, unfinished(first))
    backlog.add(second)
    clock.advance(PROCESSING_TIMEOUT - 1)
    assert handled == []
    clock.advance(1)
    assert handled == [second, "drained"]


def test_backlogBounded():
    """Past MAX_BACKLOG waiting elements the owner hears of the overflow and the element is dropped."""
    overflow = []
    backlog = Backlog(lambda e: None, lambda: None, Clock(), lambda: overflow.append(True))
    for _ in range(MAX_BACKLOG):
        assert backlog.add(stanza("x"))
    assert not backlog.add(stanza("x"))
    assert overflow == [True] and len(backlog) == MAX_BACKLOG


# -- client streams -----------------------------------------------------------------------


def waitingHook(node):
    """A c2s/outgoing callback that makes messages saying "wait..." wait for a Deferred fired by hand."""
    waits: list[defer.Deferred] = []

    def onOutgoing(event):
        if event.stanza.name == "message" and str(event.stanza.body).startswith("wait"):
            d = defer.Deferred()
            waits.append(d)
            return d
        return None
    node.server.hooks.add("c2s/outgoing", onOutgoing)
    return waits


def bodies(client) -> list[str]:
    return [str(e.body) for e in client.received().elements if e.name == "message"]


def test_clientStanzaWaitsBehindAWaitingOne(tmp_path):
    """A client's message sent while its previous one waits on a hook is delivered after it, not before."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait for me") + message(juliet.jid, "then me"))
    assert bodies(juliet) == []
    assert romeo.transport.producerState == "paused"
    waits.pop().callback(None)
    assert bodies(juliet) == ["wait for me", "then me"]
    assert romeo.transport.producerState == "producing"


def test_otherClientsDoNotWait(tmp_path):
    """While one client's stanza waits, another client's stanzas are delivered at once."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    nurse = node.connect("10.0.0.3").login("romeo", resource="kitchen")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait for me"))
    nurse.send(message(juliet.jid, "no waiting"))
    assert bodies(juliet) == ["no waiting"]
    waits.pop().callback(None)
    assert bodies(juliet) == ["wait for me"]


def test_errorDoesNotBlockTheNext(tmp_path):
    """A waiting stanza that ends in a stanza error lets the next one through."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(DOMAIN.join(["nobody@", "/x"]), "wait, to nobody", id="m1")
               + message(juliet.jid, "then me"))
    waits.pop().callback(None)
    assert [e.getAttribute("type") for e in romeo.received().elements] == ["error"]
    assert bodies(juliet) == ["then me"]


def test_hookFailureDoesNotBlockTheNext(tmp_path):
    """A waiting hook that fails is skipped and the client's next stanza goes on."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait, then fail") + message(juliet.jid, "then me"))
    waits.pop().errback(RuntimeError("storage is down"))
    assert bodies(juliet) == ["wait, then fail", "then me"]


def test_stuckStanzaTimesOut(tmp_path):
    """A stanza whose hook never answers holds the client back for PROCESSING_TIMEOUT only."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waitingHook(node)

    romeo.send(message(juliet.jid, "wait for ever") + message(juliet.jid, "then me"))
    node.clock.advance(PROCESSING_TIMEOUT)
    assert bodies(juliet) == ["then me"]


def test_footerWaitsForWhatCameBefore(tmp_path):
    """A client that sends a stanza and closes at once has the stanza processed before its stream closes."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait, last words") + message(juliet.jid, "bye")
               + b"</stream:stream>")
    assert not romeo.received().closed
    waits.pop().callback(None)
    assert bodies(juliet) == ["wait, last words", "bye"]
    assert romeo.received().closed


def test_connectionLostAfterPipelining(tmp_path):
    """Stanzas a client sent just before its connection broke are still delivered, then its session ends."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait, then") + message(juliet.jid, "gone"))
    romeo.disconnect()
    assert romeo.stream.session is not None
    waits.pop().callback(None)
    assert bodies(juliet) == ["wait, then", "gone"]
    assert romeo.stream.session is None


def test_floodWhileWaitingIsAStreamError(tmp_path):
    """A client that floods past the backlog bound while a stanza waits gets policy-violation."""
    node = Node(tmp_path)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    waits = waitingHook(node)

    romeo.send(message(juliet.jid, "wait") + message(juliet.jid, "more") * (MAX_BACKLOG + 1))
    assert romeo.received().streamError == "policy-violation"
    waits.pop().callback(None)
    assert bodies(juliet) == ["wait"]


# -- component streams (one stream, many senders) ---------------------------------------


def test_componentSendersOrderedEach(tmp_path):
    """On a component stream, a sender's stanza waits behind that sender's held one, others do not."""
    harness = Harness(tmp_path)
    step = Holding()
    harness.local.deliver = step
    component = harness.connect().login()
    room = "room@%s/" % (COMPONENT,)
    component.send("<message from='%sa' to='juliet@example.org'><body>wait a1</body></message>"
                   "<message from='%sa' to='juliet@example.org'><body>a2</body></message>"
                   "<message from='%sb' to='juliet@example.org'><body>b1</body></message>"
                   % (room, room, room))
    assert step.seen == ["wait a1", "b1"]
    step.release()
    assert step.seen == ["wait a1", "b1", "a2"]


# -- a MUC room read from storage -------------------------------------------------------


def test_roomLoadHoldsTheStanza():
    """A stanza waiting for its room to be read from storage is held, so its sender's next one waits."""
    storage = HeldStorage()
    storage.rooms.holding = True
    m = MUC(storage=storage)
    join = parse("<presence from='bob@example.org/phone' to='%s/bob'><x xmlns='%s'/></presence>"
                 % (ROOM, NS_MUC))
    m.router.route(join)
    assert unfinished(join) is not None
    storage.rooms.release()
    assert unfinished(join) is None
    assert m.take("bob@example.org/phone")


# -- IQs a domain's handler answers later -------------------------------------------------


class SlowQuery(XMPPHandler, IQHandlerMixin):
    """A domain handler whose answers to urn:test:slow wait for the test."""

    iqHandlers = {"/iq[@type='get']/query[@xmlns='urn:test:slow']": "onQuery"}

    def __init__(self):
        XMPPHandler.__init__(self)
        self.waits: list[defer.Deferred] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']/query[@xmlns='urn:test:slow']",
                                   self.handleRequest)

    def onQuery(self, iq):
        d = defer.Deferred()
        self.waits.append(d)
        return d


def test_iqAnsweredLaterHoldsTheNextStanza(tmp_path):
    """A client's stanza sent after an IQ the server answers later is processed after the answer."""
    node = Node(tmp_path)
    handler = SlowQuery()
    node.server.router.routes[DOMAIN].addHandler(handler)
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")

    romeo.send("<iq type='get' id='q1' to='%s'><query xmlns='urn:test:slow'/></iq>" % DOMAIN
               + message(juliet.jid, "after the answer").decode())
    assert bodies(juliet) == []
    handler.waits.pop().callback(None)
    [answer] = romeo.received().elements
    assert (answer["type"], answer["id"]) == ("result", "q1")
    assert bodies(juliet) == ["after the answer"]
    assert node.server.router.routes[DOMAIN].stream.answering.pending == {}


# -- server-to-server streams (one stream, many senders) ---------------------------------


def test_s2sSendersOrderedEach(tmp_path):
    """On an s2s stream, a remote user's stanza waits behind that user's held one; others' do not."""
    harness = S2SHarness(tmp_path)
    step = Holding()
    harness.local[DOMAIN].deliver = step
    peer = harness.incoming().authenticate()
    template = ("<message xmlns='jabber:server' from='%s@" + REMOTE + "/r' to='juliet@"
                + DOMAIN + "'><body>%s</body></message>")
    peer.send(template % ("romeo", "wait r1") + template % ("romeo", "r2")
              + template % ("mercutio", "m1"))
    assert step.seen == ["wait r1", "m1"]
    assert peer.transport.producerState == "paused"
    step.release()
    assert step.seen == ["wait r1", "m1", "r2"]
    assert peer.transport.producerState == "producing"


def test_pepRequestAnsweredLaterHoldsTheNextStanza(tmp_path):
    """A PEP publish that waits on storage is answered before its sender's next stanza is processed."""
    node = Node(tmp_path, features=("disco", "clientcaps", "pep"))
    domain = node.server.router.routes[DOMAIN]
    store = domain.storage.pubsub
    waits = []
    publish = store.publish

    def slowPublish(*args, **kwargs):
        d = defer.Deferred()
        waits.append(d)
        d.addCallback(lambda _: publish(*args, **kwargs))
        return d
    store.publish = slowPublish
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")

    juliet.send("<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                "<publish node='urn:xmpp:test:order'><item id='current'>"
                "<entry xmlns='urn:xmpp:test:order'/></item></publish></pubsub></iq>"
                + message(romeo.jid, "after the publish").decode())
    assert waits, "the publish did not wait on the store"
    assert bodies(romeo) == []
    waits.pop().callback(None)
    answers = [e for e in juliet.received().elements if e.name == "iq"]
    assert [(a["type"], a["id"]) for a in answers] == [("result", "p1")]
    assert bodies(romeo) == ["after the publish"]
    assert domain.stream.answering.pending == {}


def test_whenLetGoAtOnce():
    """Elements nobody holds (or none at all) are processed: the callback runs at once."""
    called = []
    whenLetGo([stanza("a"), stanza("b")], lambda: called.append(1))
    whenLetGo([], lambda: called.append(2))
    assert called == [1, 2]


def test_whenLetGoWaitsForEveryHolder():
    """
    The callback waits for every holder of every element, including one
    added while an earlier holder let go, and a holder's failure passes on.
    """
    first, second = stanza("a"), stanza("b")
    one, two = hold(first), hold(second)
    # A taker of the first one holds it again as it lets go.
    one.addCallback(lambda _: hold(first) and None)
    called = []
    whenLetGo([first, second], lambda: called.append(True))
    one.callback(None)
    assert len(holders(first)) == 2
    assert called == []
    late = holders(first)[-1]
    late.callback(None)
    assert called == []
    failures = []
    two.addErrback(failures.append)
    two.errback(RuntimeError("refused"))
    assert called == [True]
    assert len(failures) == 1


def test_whenLetGoWaitsForConfirmations():
    """
    Unlike in-order processing (L{unfinished}), letting go waits for stream
    management's confirmations too: a stanza handed on to another node is
    kept until that node's inbox has it.
    """
    element = stanza("a")
    confirmation = Confirmation()
    acknowledgeAfter(element, confirmation)
    assert unfinished(element) is None
    called = []
    whenLetGo([element], lambda: called.append(True))
    assert called == []
    confirmation.callback(None)
    assert called == [True]
