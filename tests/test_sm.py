"""
Tests for L{xmppd.features.sm}: stream management (XEP-0198) on client streams in
memory, with time from a L{Clock} and the examples of the XEP as literals.
"""

import pytest
from twisted.internet import defer

from tests.helpers import parse
from tests.smhelpers import DOMAIN, NS_SM, SMNode, acks, bodies
from tests.streamhelpers import PASSWORDS, plain
from xmppd.core.hooks import POLICY
from xmppd.core.stanzas import marks, meta
from xmppd.core.jid import parseJID
from xmppd.features.sm import MODULO, NS_DELAY

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
JULIET = "juliet@%s" % DOMAIN
BALCONY = JULIET + "/balcony"


def acceptanceOf(stanza):
    """The list of Deferreds holding C{stanza} (issue 5), made if there is none yet."""
    found = meta(stanza)
    if found.acceptance is None:
        found.acceptance = []
    return found.acceptance


@pytest.fixture
def node(tmp_path):
    return SMNode(tmp_path)


def failedCondition(elements) -> str:
    [failed] = elements
    assert (failed.uri, failed.name) == (NS_SM, "failed"), failed.toXml()
    [condition] = [c.name for c in failed.elements(NS_STANZAS)]
    return condition


def element(elements, name: str):
    [found] = [e for e in elements if (e.uri, e.name) == (NS_SM, name)]
    return found


def delayOf(message):
    [delay] = [c for c in message.elements() if (c.uri, c.name) == (NS_DELAY, "delay")]
    return delay


class Accepting:
    """
    A feature that takes responsibility for messages whose body is in
    C{bodies} with a write that completes when the test says (as offline
    storage does), and lets routing go on.
    storage).  A body in C{chained} needs a second write once the first is
    done, as a write that must be followed by another.
    """

    def __init__(self, node, *slow: str, chained: tuple[str, ...] = ()):
        self.slow = set(slow) | set(chained)
        self.chained = set(chained)
        self.writes: dict[str, defer.Deferred] = {}
        node.server.hooks.add("c2s/outgoing", self.onOutgoing, priority=POLICY)

    def onOutgoing(self, event):
        body = event.stanza.body
        if event.stanza.name == "message" and body is not None and str(body) in self.slow:
            acceptance = acceptanceOf(event.stanza)
            d = defer.Deferred()
            self.writes[str(body)] = d
            if str(body) in self.chained:
                d.addCallback(self.writeAgain, str(body), acceptance)
            acceptance.append(d)
        return None

    def writeAgain(self, result, body: str, acceptance: list):
        again = self.writes[body + " again"] = defer.Deferred()
        acceptance.append(again)
        return result


def sendMessages(client, *texts: str, to: str = "romeo@%s" % DOMAIN) -> None:
    for text in texts:
        client.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, text))


# -- enabling (§2, §3) ---------------------------------------------------------


def test_offeredOnlyAfterAuthentication(node):
    """Stream management appears in the features once the client has authenticated, not before."""
    client = node.connect()
    before = client.client.start().featureNames()
    assert (NS_SM, "sm") not in before
    client.client.exchange(plain("juliet", PASSWORDS["juliet"]))
    after = client.client.start().featureNames()
    assert (NS_SM, "sm") in after


def test_enableWithResumption(node):
    """A bound client that asks for resumption gets an SM-ID, resume='true' and the server's max."""
    client = node.login(available=False)
    enabled = client.enable()
    assert enabled.getAttribute("resume") == "true"
    assert len(enabled["id"]) >= 16
    assert enabled["max"] == "300"


def test_clientMaxLowerWins(node):
    """A client that wants a shorter resumption time gets it."""
    client = node.login(available=False)
    assert client.enable(extra=" max='60'")["max"] == "60"


def test_enableWithoutResumption(node):
    """Without resume='true' the stream is managed but carries no SM-ID."""
    client = node.login(available=False)
    enabled = client.enable(resume=False)
    assert enabled.getAttribute("id") is None
    assert enabled.getAttribute("resume") is None


def test_noResumptionWhenTimeoutZero(tmp_path):
    """With resume_timeout 0 the server does not offer resumption even when asked."""
    node = SMNode(tmp_path, resume_timeout=0)
    client = node.login(available=False)
    assert client.enable().getAttribute("resume") is None


def test_enableBeforeBind(node):
    """§3: <enable/> before resource binding fails with unexpected-request, and binding still works."""
    client = node.connect()
    client.client.authenticate("juliet")
    reply = client.exchange("<enable xmlns='%s'/>" % NS_SM)
    assert failedCondition(reply) == "unexpected-request"
    client.client.bind("balcony")


def test_enableTwice(node):
    """A second <enable/> on the same stream fails with unexpected-request."""
    client = node.login(available=False)
    client.enable()
    assert failedCondition(client.exchange("<enable xmlns='%s'/>" % NS_SM)) == "unexpected-request"


def test_enableUnauthenticated(node):
    """Before authentication <enable/> closes the stream with not-authorized (RFC 6120 §4.9.3.12)."""
    client = node.connect()
    client.client.start()
    client.send("<enable xmlns='%s'/>" % NS_SM)
    assert client.reply().streamError == "not-authorized"


def test_unmanagedStreamsCarryNoState(node):
    """A stream that never enables stream management keeps no state for it."""
    client = node.login()
    assert "sm" not in client.stream.__dict__


# -- counting (§4) ---------------------------------------------------------------


def test_requestAnsweredWithHandledCount(node):
    """The XEP's simple acking example: each stanza the client sent is counted in 'h'."""
    client = node.login(available=False)
    client.enable()
    assert acks(client.request()) == [0]
    sendMessages(client, "one", "two")
    client.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert acks(client.request()) == [3]


def test_ackWaitsForAcceptance(node):
    """A message whose storage is still under way is not acknowledged until it is durable."""
    accepting = Accepting(node, "slow")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "slow", "fast")
    assert acks(client.request()) == []
    accepting.writes["slow"].callback(None)
    assert acks(client.received()) == [2]


def test_ackCountsCompletedPrefixOnly(node):
    """
    Stanzas complete in order: the second is processed only once the
    first's write is done (RFC 6120 §10.1), and an ack counts only the
    stanzas whose writes are done.
    """
    accepting = Accepting(node, "first", "second")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "first", "second")
    assert acks(client.request()) == []
    assert list(accepting.writes) == ["first"]
    accepting.writes["first"].callback(None)
    assert acks(client.received()) == []
    accepting.writes["second"].callback(None)
    assert acks(client.received()) == [2]


def test_requestWithoutPendingAnsweredAtOnce(node):
    """An <r/> after the writes completed is answered at once with the full count."""
    accepting = Accepting(node, "slow")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "slow")
    accepting.writes["slow"].callback(None)
    assert acks(client.request()) == [1]


def test_acceptanceThatGrowsIsWaitedFor(node):
    """A write that leads to another (added while the first completes) is waited for too."""
    accepting = Accepting(node, chained=("chained",))
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "chained")
    client.request()
    accepting.writes["chained"].callback(None)
    assert acks(client.received()) == []
    accepting.writes["chained again"].callback(None)
    assert acks(client.received()) == [1]


def test_failedAcceptanceCounts(node):
    """A write that failed (its feature bounced the message) still counts as handled."""
    accepting = Accepting(node, "doomed")
    client = node.login(available=False)
    client.enable()
    sendMessages(client, "doomed")
    client.request()
    accepting.writes["doomed"].errback(RuntimeError("disk full"))
    assert acks(client.received()) == [1]


def test_hWrapsAround(node):
    """§4: 'h' goes back to zero after 2^32 - 1."""
    client = node.login(available=False)
    client.enable()
    client.stream.sm.handled = MODULO - 1
    sendMessages(client, "wrap")
    assert acks(client.request()) == [0]


def test_serverRequestsAcks(node):
    """The server asks for an ack after sending stanzas, one request at a time."""
    client = node.login(available=False)
    client.enable()
    node.message(BALCONY, "one")
    node.message(BALCONY, "two")
    received = client.received()
    assert [e.name for e in received] == ["message", "r", "message"]
    # The ack covers only the first: one more request for the second.
    assert [e.name for e in client.ack(1)] == ["r"]
    assert client.ack(2) == []
    assert len(client.stream.sm.unacked) == 0


def test_ackTooHigh(node):
    """§6: an 'h' beyond what was sent closes the stream with handled-count-too-high."""
    client = node.login(available=False)
    client.enable()
    node.message(BALCONY, "one")
    client.received()
    client.send("<a xmlns='%s' h='5'/>" % NS_SM)
    reply = client.reply()
    assert reply.streamError == "undefined-condition"
    [error] = [e for e in reply.elements if e.name == "error"]
    [condition] = [c for c in error.elements(NS_SM, "handled-count-too-high")]
    assert (condition["h"], condition["send-count"]) == ("5", "1")
    assert reply.closed


def test_ackNotANumber(node):
    """An <a/> whose 'h' is no unsigned integer closes the stream with bad-format."""
    client = node.login(available=False)
    client.enable()
    client.send("<a xmlns='%s' h='-1'/>" % NS_SM)
    assert client.reply().streamError == "bad-format"


def test_tooManyUnacked(tmp_path):
    """A client that never acknowledges is cut off with policy-violation past the limit."""
    node = SMNode(tmp_path, max_unacked=3)
    client = node.login(available=False)
    client.enable()
    for n in range(4):
        node.message(BALCONY, "m%d" % n)
    assert client.reply().streamError == "policy-violation"


def test_requestBeforeEnable(node):
    """An <r/> on a stream without stream management is not understood (unsupported-stanza-type)."""
    client = node.login(available=False)
    client.send("<r xmlns='%s'/>" % NS_SM)
    assert client.reply().streamError == "unsupported-stanza-type"


# -- resumption (§5) ----------------------------------------------------------------


def resume(node, previd: str, h: int, user: str = "juliet"):
    """A new connection of C{user} authenticates and resumes C{previd}; what came back."""
    client = node.connect()
    client.client.authenticate(user)
    return client, client.exchange("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))


def test_resumeSendsUnackedAgain(node):
    """After a broken connection the client resumes and gets exactly what it had not acknowledged."""
    client = node.login(sm=True)
    romeo = node.login("romeo", "orchard")
    previd = client.stream.sm.id
    node.message(BALCONY, "one")
    node.message(BALCONY, "two")
    assert bodies(client.received()) == ["one", "two"]
    sendMessages(client, "to romeo")
    assert bodies(romeo.received()) == ["to romeo"]
    client.disconnect()
    node.message(BALCONY, "three")
    # The client saw "one" and the presence echo before it, not "two".
    new, reply = resume(node, previd, 2)
    resumed = reply[0]
    assert (resumed.uri, resumed.name) == (NS_SM, "resumed")
    assert resumed["previd"] == previd
    # The presence and the message it sent were handled.
    assert resumed["h"] == "2"
    assert bodies(reply) == ["two", "three"]
    assert reply[-1].name == "r"
    node.message(BALCONY, "four")
    assert bodies(new.received()) == ["four"]
    session = node.sessions.get(parseJID(BALCONY))
    assert session.stream is new.stream


def test_detachedSessionStaysBoundAndAvailable(node):
    """While detached the session is neither closed nor unavailable, so presence stays as it was."""
    closed = []
    node.server.hooks.add("session/closed", closed.append)
    client = node.login(sm=True)
    romeo = node.login("romeo", "orchard")
    client.disconnect()
    session = node.sessions.get(parseJID(BALCONY))
    assert session is not None and session.available
    assert closed == []
    assert [p for p in romeo.received() if p.name == "presence"] == []


def test_resumeUnknownId(node):
    """§5: an unknown SM-ID fails with item-not-found, and the client can bind instead."""
    client, reply = resume(node, "no-such-id", 0)
    assert failedCondition(reply) == "item-not-found"
    client.client.bind("balcony")


def test_resumeOtherAccount(node):
    """Only the account that had the session may resume it."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.disconnect()
    _, reply = resume(node, previd, 0, user="romeo")
    assert failedCondition(reply) == "item-not-found"


def test_resumeAfterTimeout(node):
    """Once resume_timeout has passed the session is gone: item-not-found."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.disconnect()
    node.clock.advance(300)
    _, reply = resume(node, previd, 0)
    assert failedCondition(reply) == "item-not-found"


def test_resumeJustBeforeTimeout(node):
    """A client that comes back within resume_timeout gets its session back."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.disconnect()
    node.clock.advance(299)
    _, reply = resume(node, previd, 1)
    assert reply[0].name == "resumed"
    node.clock.advance(10)
    assert node.sessions.get(parseJID(BALCONY)) is not None


def test_resumeAfterBind(node):
    """<resume/> on a bound stream fails with unexpected-request."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    other = node.login(resource="chamber")
    assert failedCondition(other.exchange(
        "<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))) == "unexpected-request"


def test_resumeTakesOverOpenStream(node):
    """§5: if the old stream still looks open, it gets a conflict stream error and the new one the session."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    new, reply = resume(node, previd, 1)
    assert reply[0].name == "resumed"
    assert client.reply().streamError == "conflict"
    client.disconnect()
    node.message(BALCONY, "still here")
    assert bodies(new.received()) == ["still here"]


def test_resumeTooHigh(node):
    """A resumption whose 'h' is beyond what was sent gets handled-count-too-high."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.disconnect()
    new, reply = resume(node, previd, 7)
    [error] = reply
    assert error.name == "error"
    assert next(error.elements(NS_SM, "handled-count-too-high"))["send-count"] == "1"


def test_resumeWaitsForPendingWrites(node):
    """<resumed/> waits until the stanzas received before the break are durable, and counts them."""
    accepting = Accepting(node, "slow")
    client = node.login(sm=True)
    previd = client.stream.sm.id
    sendMessages(client, "slow")
    client.disconnect()
    new, reply = resume(node, previd, 1)
    assert reply == []
    accepting.writes["slow"].callback(None)
    reply = new.received()
    assert [e.name for e in reply] == ["resumed", "message", "r"]
    assert reply[0]["h"] == "2"


def test_resumeTwiceAfterBreakingAgain(node):
    """A resumed session that breaks again can be resumed again with the same SM-ID."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.disconnect()
    second, reply = resume(node, previd, 1)
    second.disconnect()
    node.message(BALCONY, "again")
    third, reply = resume(node, previd, 1)
    assert reply[0].name == "resumed"
    assert bodies(reply) == ["again"]


def test_connectionTimeoutLeavesResumable(node):
    """A stream closed because the client went silent (connection-timeout) can still be resumed."""
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.stream.streamError("connection-timeout")
    client.disconnect()
    _, reply = resume(node, previd, 1)
    assert reply[0].name == "resumed"


# -- the end of a session (§4) ---------------------------------------------------------


def test_timeoutReroutesToOtherResource(node):
    """When the timeout expires, unacknowledged messages go to another resource, with a delay."""
    client = node.login(sm=True)
    chamber = node.login(resource="chamber")
    node.message(BALCONY, "one")
    client.disconnect()
    node.message(BALCONY, "two")
    assert chamber.received() == []
    node.clock.advance(300)
    received = chamber.received()
    messages = [e for e in received if e.name == "message"]
    assert bodies(messages) == ["one", "two"]
    for message in messages:
        assert message["to"] == JULIET
        assert delayOf(message)["from"] == DOMAIN
        assert delayOf(message)["stamp"].endswith("Z")
    # The unavailable presence of the lost resource, once it really ended.
    assert [p["from"] for p in received if p.name == "presence"] == [BALCONY]
    node.clock.advance(300)
    assert chamber.received() == []


def test_timeoutReroutesToOffline(node):
    """With no other resource, unacknowledged messages reach offline storage, marked as replays."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    node.message(BALCONY, "one")
    node.message(BALCONY, "two")
    client.disconnect()
    node.clock.advance(300)
    assert bodies(stored) == ["one", "two"]
    for stanza in stored:
        assert marks(stanza).replayed is True
        assert marks(stanza).fromUnacked is True
        assert delayOf(stanza)["from"] == DOMAIN


def test_acknowledgedNotRerouted(node):
    """What the client acknowledged is never sent anywhere again."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    node.message(BALCONY, "seen")
    node.message(BALCONY, "unseen")
    client.ack(2)  # The presence echo and "seen".
    client.disconnect()
    node.clock.advance(300)
    assert bodies(stored) == ["unseen"]


def test_existingDelayKept(node):
    """A message that already carries a delay keeps it and gets no second one."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    node.server.router.route(parse(
        "<message from='romeo@%s/orchard' to='%s' type='chat'><body>old</body>"
        "<delay xmlns='urn:xmpp:delay' from='%s' stamp='2002-09-10T23:08:25Z'/></message>"
        % (DOMAIN, BALCONY, DOMAIN)))
    client.disconnect()
    node.clock.advance(300)
    [message] = stored
    assert delayOf(message)["stamp"] == "2002-09-10T23:08:25Z"


def test_cleanCloseReroutes(node):
    """A client that closes cleanly with messages unacknowledged has them sent to its other resource."""
    client = node.login(sm=True)
    chamber = node.login(resource="chamber")
    node.message(BALCONY, "unacked")
    client.close()
    assert bodies(chamber.received()) == ["unacked"]
    assert node.sessions.get(parseJID(BALCONY)) is None


def test_noResumptionReroutesAtOnce(node):
    """Without resumption, a broken connection ends the session and re-routes at once."""
    client = node.login(available=True)
    client.enable(resume=False)
    chamber = node.login(resource="chamber")
    node.message(BALCONY, "unacked")
    client.disconnect()
    assert bodies(chamber.received()) == ["unacked"]


def test_unackedIQAnsweredWithError(node):
    """An IQ request the client never acknowledged is answered service-unavailable (RFC 6121 §8.5.3.2.1)."""
    client = node.login(sm=True)
    romeo = node.login("romeo", "orchard")
    romeo.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % BALCONY)
    client.disconnect()
    node.clock.advance(300)
    [error] = [e for e in romeo.received() if e.name == "iq"]
    assert error["type"] == "error" and error["id"] == "v1"
    assert error.error.firstChildElement().name == "service-unavailable"


def test_groupchatAndPresenceDropped(node):
    """Unacknowledged presence and groupchat messages go nowhere when the session ends."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    chamber = node.login(resource="chamber")
    node.message(BALCONY, "room", sender="room@conference.%s/nick" % DOMAIN, kind="groupchat")
    client.disconnect()
    chamber.received()
    node.clock.advance(300)
    assert [e for e in chamber.received() if e.name == "message"] == []
    assert stored == []


def test_detachedOverflowEndsSession(tmp_path):
    """A detached session that would keep more than max_unacked stanzas ends, and nothing is lost."""
    node = SMNode(tmp_path, max_unacked=3)
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    client.ack(1)
    client.disconnect()
    for n in range(4):
        node.message(BALCONY, "m%d" % n)
    assert node.sessions.get(parseJID(BALCONY)) is None
    assert bodies(stored) == ["m0", "m1", "m2", "m3"]


def test_newBindEndsDetachedSession(node):
    """Binding the resource of a detached session again ends it; its messages are not lost."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    previd = client.stream.sm.id
    node.message(BALCONY, "unacked")
    client.disconnect()
    node.login(available=False)
    assert bodies(stored) == ["unacked"]
    _, reply = resume(node, previd, 0)
    assert failedCondition(reply) == "item-not-found"


def test_rerouteOnlyOnce(node):
    """A session that ends twice over (closed, then timed out) re-routes its messages once."""
    client = node.login(sm=True)
    chamber = node.login(resource="chamber")
    node.message(BALCONY, "once")
    client.disconnect()
    [sm] = node.handler.resumable.values()
    sm.end()
    sm.end()
    node.clock.advance(300)
    assert bodies(chamber.received()) == ["once"]


def test_shutdownEndsDetachedSessions(node):
    """When the server stops, detached sessions end at once and their messages are not lost."""
    stored = []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    client = node.login(sm=True)
    node.message(BALCONY, "unacked")
    client.disconnect()
    node.server.hooks.notify("c2s/shutdown", None)
    assert node.sessions.get(parseJID(BALCONY)) is None
    assert bodies(stored) == ["unacked"]


def test_streamLostDuringShutdownEndsItsSession(node):
    """
    A stream whose connection goes only after the shutdown notice (it was
    still closing) ends its session at once instead of keeping it for a
    resumption that cannot come: its logout and what it never acknowledged
    are written while storage is still open, not at a timeout after.
    """
    stored, closed = [], []
    node.server.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    node.server.hooks.add("session/closed", closed.append)
    client = node.login(sm=True)
    node.message(BALCONY, "unacked")
    node.server.hooks.notify("c2s/shutdown", None)
    client.disconnect()
    assert node.sessions.get(parseJID(BALCONY)) is None
    assert [session.jid.full() for session in closed] == [BALCONY]
    assert bodies(stored) == ["unacked"]


# -- settling, for a sender that forgets a stanza only then (the cluster's inbox) --


class Waiter:
    """What L{xmppd.features.sm.StreamManagement.settleAfterNext} calls back."""

    def __init__(self):
        self.settled = 0

    def settle(self):
        self.settled += 1


def test_settledWhenAcknowledged(node):
    """A waiter is settled once the client's 'h' covers its stanza; consecutive ones merge."""
    client = node.login(sm=True)  # The presence echo is stanza 1.
    sm = client.stream.sm
    first, second = Waiter(), Waiter()
    assert sm.settleAfterNext(first) is True
    node.message(BALCONY, "one")
    assert sm.settleAfterNext(first) is False  # Waits for "two" now, once.
    node.message(BALCONY, "two")
    assert sm.settleAfterNext(second) is True
    node.message(BALCONY, "three")
    client.ack(2)
    assert (first.settled, second.settled) == (0, 0)
    client.ack(3)
    assert (first.settled, second.settled) == (1, 0)
    client.ack(4)
    assert (first.settled, second.settled) == (1, 1)


def test_settledWhenSessionEndsAndStored(node):
    """
    A session that ends first settles its waiters once what it re-routed is
    accepted (offline storage wrote it), not before.
    """
    writes = []

    def store(event):
        d = defer.Deferred()
        acceptanceOf(event.stanza).append(d)
        writes.append(d)
        return True
    node.server.hooks.add("message/offline", store)
    client = node.login(sm=True)
    waiter = Waiter()
    client.stream.sm.settleAfterNext(waiter)
    node.message(BALCONY, "unacked")
    client.close()
    assert len(writes) == 1 and waiter.settled == 0
    writes[0].callback(None)
    assert waiter.settled == 1


def test_groupchatSettledAtSessionEnd(node):
    """A room's message is not re-routed (§4): its waiter is settled when the session ends."""
    client = node.login(sm=True)
    waiter = Waiter()
    client.stream.sm.settleAfterNext(waiter)
    node.message(BALCONY, "in the room", sender="room@conference.%s/romeo" % DOMAIN,
                 kind="groupchat")
    client.close()
    assert waiter.settled == 1


def test_resumeSendsSharedTextAgainOnce(node):
    """
    A stanza serialized once for many (MUC's fan-out, L{StanzaText}) and
    not acknowledged is sent again once on resumption, like any other, and
    counted once: the soak (issue 18) found the resumption failing there
    ("deque mutated during iteration") and the room's messages dropped.
    """
    from xmppd.core.stanzas import StanzaText
    client = node.login(sm=True)
    previd = client.stream.sm.id
    client.received()
    client.disconnect()
    session = node.sessions.get(parseJID(BALCONY))
    for n in (1, 2):
        session.stream.send(StanzaText(
            "<message from='room@conference.%s/nick' to='%s' type='groupchat'>"
            "<body>room %d</body></message>" % (DOMAIN, BALCONY, n)))
    node.message(BALCONY, "three")
    new, reply = resume(node, previd, 1)
    assert reply[0].name == "resumed"
    assert bodies(reply) == ["room 1", "room 2", "three"]
    assert reply[-1].name == "r"
    # the three are counted once: acknowledging them all is not too high
    assert [e.name for e in new.ack(4)] == []
    assert not new.transport.disconnecting
