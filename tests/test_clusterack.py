"""
Stream management (XEP-0198) and stanzas forwarded to another node of a
cluster (issue 14, items 4 and 9): a forwarded stanza is counted in the
sender's C{h} only once Redis answered the script that carried it, while
the sender's next stanzas are processed meanwhile; a Redis failure gives
the sender an error and no acknowledgement that claims more.  Two nodes in
this process on the test's own redis-server; the script's answer is held
back by the test where it says so (the script itself runs in Redis).
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.words.xish import domish

from xmppd.core.jid import parseJID
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_cluster import TIMEOUT, Nodes, chat, collect, waitFor

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
FAR = "juliet@localhost/balcony"
NEAR = "juliet@localhost/garden"


class Answers:
    """
    Stands between a node's transport and Redis: each script's answer (or a
    failure the test makes instead) reaches the transport only when the
    test releases it.
    """

    def __init__(self, transport, run: bool = True):
        self.redis = transport.redis
        self.real = self.redis.eval
        self.run = run
        #: (what Redis answered, or None when not run; what the transport waits on)
        self.waiting: list[tuple[defer.Deferred | None, defer.Deferred]] = []
        self.redis.eval = self.eval

    def eval(self, *args, **kwargs):
        answer = self.real(*args, **kwargs) if self.run else None
        out = defer.Deferred()
        self.waiting.append((answer, out))
        return out

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for answer, out in waiting:
            answer.chainDeferred(out)

    def fail(self, error: Exception) -> None:
        waiting, self.waiting = self.waiting, []
        for _, out in waiting:
            out.errback(error)

    def restore(self) -> None:
        self.redis.eval = self.real


class Client:
    """A client stream of the fixture, with stream management and everything it got, in order."""

    def __init__(self, stream):
        self.stream = stream
        self.got: list[domish.Element] = []
        stream.addObserver("/*", self.got.append)

    async def enable(self) -> None:
        self.stream.send(domish.Element((NS_SM, "enable")))
        await waitFor(lambda: any(e.name == "enabled" for e in self.got))

    def request(self) -> None:
        self.stream.send(domish.Element((NS_SM, "r")))

    def acks(self) -> list[int]:
        return [int(e["h"]) for e in self.got if (e.uri, e.name) == (NS_SM, "a")]

    async def roundTrip(self, n: int) -> None:
        """A ping answered: everything sent before it was processed."""
        iq = domish.Element((None, "iq"))
        iq["type"], iq["id"], iq["to"] = "get", "ping%d" % n, "localhost"
        iq.addElement(("urn:xmpp:ping", "ping"))
        self.stream.send(iq)
        await waitFor(lambda: any(e.name == "iq" and e.getAttribute("id") == "ping%d" % n
                                  for e in self.got))


async def setUp(nodes, url):
    """Romeo on node a under stream management, Juliet on b (far) and on a (near)."""
    a, b = await nodes.start(url, "a", "b")
    romeo = Client(await a.login("romeo", resource="orchard"))
    far = await b.login("juliet", resource="balcony")
    near = await a.login("juliet", resource="garden")
    await waitFor(lambda: a.service.sessions.get(parseJID(FAR)) is not None)
    await romeo.enable()
    return a, b, romeo, collect(far), collect(near)


@pytest_twisted.ensureDeferred
async def test_ackAfterScriptAnswered(redisServer):
    """
    A forwarded message is not in the <a/>'s count while its script's answer
    is out, though it reached the far node and the sender's next message was
    delivered meanwhile; once the answer is in, it counts.
    """
    nodes = Nodes()
    try:
        a, b, romeo, far, near = await setUp(nodes, redisServer.url)
        answers = Answers(a.service.cluster.transport)
        romeo.stream.send(chat(FAR, "over the wall", "m1"))
        romeo.stream.send(chat(NEAR, "in the garden", "m2"))
        romeo.request()
        # The next stanza is processed while the forward is pending.
        await waitFor(lambda: near)
        assert str(near[0].body) == "in the garden"
        await romeo.roundTrip(1)
        await waitFor(lambda: len(answers.waiting) == 1)
        # The script ran (Redis has the entry, node b delivered it)...
        await waitFor(lambda: far)
        # ...but node a has not heard its answer: no acknowledgement yet.
        assert romeo.acks() == []
        answers.release()
        await waitFor(lambda: romeo.acks())
        # Both messages, and the ping processed meanwhile.
        assert romeo.acks() == [3]
        answers.restore()
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_failedForwardAnsweredNotAcknowledged(redisServer):
    """
    Redis fails the script: the sender gets internal-server-error for the
    message, and only then an <a/> counting it (it was answered); the
    message is nowhere, and no acknowledgement before the error claimed it.
    """
    nodes = Nodes()
    try:
        a, b, romeo, far, near = await setUp(nodes, redisServer.url)
        answers = Answers(a.service.cluster.transport, run=False)
        romeo.stream.send(chat(FAR, "lost in Redis", "m1"))
        romeo.stream.send(chat(NEAR, "in the garden", "m2"))
        romeo.request()
        await waitFor(lambda: near)
        await romeo.roundTrip(1)
        await waitFor(lambda: len(answers.waiting) == 1)
        assert romeo.acks() == []
        from txredisapi import ConnectionError
        answers.fail(ConnectionError("Redis went away"))
        await waitFor(lambda: romeo.acks())
        kinds = [(e.name, e.getAttribute("type"), e.getAttribute("id")) for e in romeo.got
                 if e.name in ("message", "a")]
        assert kinds == [("message", "error", "m1"), ("a", None, None)]
        [error] = [e for e in romeo.got if e.name == "message"]
        assert error.error.firstChildElement().name == "internal-server-error"
        # Both messages (one answered with the error), and the ping.
        assert romeo.acks() == [3]
        assert far == []
        answers.restore()
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_manyForwardsOneScriptPerTurn(redisServer):
    """
    A burst of forwarded messages mixed with local ones takes one script per
    reactor turn, not one per stanza: in-order processing never waits for
    Redis, and the count covers them all once the scripts answered.
    """
    nodes = Nodes()
    try:
        a, b, romeo, far, near = await setUp(nodes, redisServer.url)
        transport = a.service.cluster.transport
        scripts = []
        real = transport.redis.eval
        transport.redis.eval = lambda *args, **kwargs: scripts.append(1) or real(*args, **kwargs)
        try:
            for i in range(50):
                romeo.stream.send(chat(FAR, "far %d" % i, "f%d" % i))
                romeo.stream.send(chat(NEAR, "near %d" % i, "n%d" % i))
            romeo.request()
            await waitFor(lambda: len(far) == 50 and len(near) == 50)
            await waitFor(lambda: romeo.acks())
            assert romeo.acks() == [100]
            assert [str(m.body) for m in far] == ["far %d" % i for i in range(50)]
            # Fewer scripts than forwarded stanzas: they went in batches.
            assert 1 <= len(scripts) < 50
        finally:
            transport.redis.eval = real
    finally:
        await nodes.close()


@pytest_twisted.ensureDeferred
async def test_refusedForwardCountsOnceStoredOffline(redisServer):
    """
    The far node is dead: the refused forward is routed again (offline
    storage, RFC 6121 §8.5.2.2.1), and the sender's count covers it once
    that is done, with the message stored.
    """
    from tests.test_cluster import kill
    nodes = Nodes()
    try:
        a, b, romeo, far, near = await setUp(nodes, redisServer.url)
        clusterA = a.service.getServiceNamed("cluster")
        await waitFor(clusterA.mayReap)
        clusterA.checkNodes = lambda: None
        kill(b)
        redisServer.command("DEL", "xmppd:c:node:b")
        romeo.stream.send(chat(FAR, "are you there?", "m1"))
        romeo.request()
        await waitFor(lambda: romeo.acks(), TIMEOUT)
        assert romeo.acks() == [1]
        offline = a.service.storage.offline
        assert await offline.count("juliet", "localhost") == 1
    finally:
        await nodes.close()
