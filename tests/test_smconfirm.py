"""
Stream management (XEP-0198) and stanzas whose safety is confirmed after
they were processed (L{xmppd.core.stanzas.acknowledgeAfter}, what the
cluster's transport does for a forwarded stanza until Redis answered its
script): the sender's next stanzas are processed at once, but C{h} (in
C{<a/>}, C{<resumed/>}, a drain's final C{<a/>}) stops before the first
unconfirmed stanza, and moves past it once it is confirmed.  In memory,
with a L{Clock}; the cluster itself is in L{tests.test_clusterack}.
"""

from __future__ import annotations

import pytest

from tests.smhelpers import DOMAIN, NS_SM, SMNode, acks, bodies
from tests.test_drain import OTHER, draining, seeOtherHost
from tests.test_sm import resume, sendMessages
from xmppd.c2s.drain import INTERVAL, WAIT
from xmppd.core.hooks import POLICY
from xmppd.core.ordering import unfinished
from xmppd.core.stanzas import Confirmation, acknowledgeAfter

ROMEO = "romeo@%s/orchard" % DOMAIN


@pytest.fixture
def node(tmp_path):
    return SMNode(tmp_path)


class Forwarding:
    """
    Takes nothing, but marks the messages whose body is in C{bodies} as
    passed on and not confirmed yet, one L{Confirmation} for all of them
    (as one Redis script carries a reactor turn's forwards to a node).
    """

    def __init__(self, node, *texts: str):
        self.texts = set(texts)
        self.confirmation = Confirmation()
        node.server.hooks.add("c2s/outgoing", self.onOutgoing, priority=POLICY)

    def onOutgoing(self, event):
        body = event.stanza.body
        if event.stanza.name == "message" and body is not None and str(body) in self.texts:
            acknowledgeAfter(event.stanza, self.confirmation)
        return None

    def confirm(self) -> None:
        self.confirmation.callback(None)


def test_confirmationIsNoHold():
    """In-order processing does not wait for a confirmation; stream management does."""
    from twisted.words.xish import domish
    stanza = domish.Element((None, "message"))
    acknowledgeAfter(stanza, Confirmation())
    assert unfinished(stanza) is None


def test_nextStanzasGoOnWhileUnconfirmed(node):
    """
    The sender's following stanzas are processed (delivered) while the
    first waits for its confirmation; an <r/> is answered only once it
    came, and then counts everything.
    """
    forwarding = Forwarding(node, "far")
    romeo = node.login("romeo", "orchard")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "far", "near one", "near two", to=ROMEO)
    assert bodies(romeo.received()) == ["far", "near one", "near two"]
    assert acks(client.request()) == []
    forwarding.confirm()
    assert acks(client.received()) == [3]
    assert acks(client.request()) == [3]


def test_countStopsAtFirstUnconfirmed(node):
    """Stanzas before the unconfirmed one are counted; it and those after it are not."""
    forwarding = Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "near", "far", "after", to=ROMEO)
    client.request()
    # Answered once the due count is reached: nothing before the confirmation.
    assert acks(client.received()) == []
    forwarding.confirm()
    assert acks(client.received()) == [3]


def test_resumedCountsOnlyConfirmed(node):
    """<resumed/> waits for the confirmation so its 'h' counts the stanza, and not before."""
    forwarding = Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False, sm=True)
    previd = client.stream.sm.id
    sendMessages(client, "far", to=ROMEO)
    client.disconnect()
    new, reply = resume(node, previd, 0)
    assert reply == []
    forwarding.confirm()
    [resumed, *_] = new.received()
    assert (resumed.uri, resumed.name) == (NS_SM, "resumed")
    assert resumed["h"] == "1"


def test_drainWaitsForConfirmation(node):
    """A draining stream's final <a/> comes once its forwards are confirmed, and counts them."""
    forwarding = Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False, sm=True)
    sendMessages(client, "far", to=ROMEO)
    client.received()
    draining(node).start(OTHER)
    node.clock.advance(INTERVAL)
    assert client.reply().data == b""
    forwarding.confirm()
    node.clock.advance(INTERVAL)
    reply = client.reply()
    assert acks(reply.elements) == [1]
    assert seeOtherHost(reply) == OTHER


def test_drainNeverClaimsUnconfirmed(node):
    """A forward never confirmed within the drain's bound is not in its final <a/>."""
    Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False, sm=True)
    sendMessages(client, "near", "far", to=ROMEO)
    client.received()
    draining(node).start(OTHER)
    node.clock.advance(WAIT + INTERVAL)
    reply = client.reply()
    assert acks(reply.elements) == [1]
    assert seeOtherHost(reply) == OTHER


def test_closedStreamGetsNoLateAck(node):
    """A stream closed while a forward is unconfirmed hears nothing when it is confirmed."""
    forwarding = Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False, sm=True)
    sendMessages(client, "far", to=ROMEO)
    client.send("<r xmlns='%s'/>" % (NS_SM,))
    client.close()
    client.received()
    forwarding.confirm()
    assert acks(client.received()) == []


def test_fastSenderWaitsInsteadOfLosingItsStream(tmp_path):
    """
    Past a quarter of max_unacked unconfirmed stanzas the stream stops
    reading, and reads again once they are confirmed: a client faster
    than Redis is slowed down, not closed with resource-constraint.
    """
    node = SMNode(tmp_path, max_unacked=8)
    forwarding = Forwarding(node, "far")
    node.login("romeo", "orchard")
    client = node.login(available=False, sm=True)
    sendMessages(client, "far", to=ROMEO)
    assert client.transport.producerState == "producing"
    sendMessages(client, "far", to=ROMEO)
    assert client.transport.producerState == "paused"
    forwarding.confirm()
    assert client.transport.producerState == "producing"
    assert acks(client.request()) == [2]
    assert client.reply().streamError is None
