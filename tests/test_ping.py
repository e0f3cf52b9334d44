"""
Tests for L{xmppd.features.ping}: XEP-0199 answers, and the server pinging clients
that went quiet (time from a L{Clock}).
"""

import pytest

from tests.domainhelpers import Domain, errorCondition
from xmppd.features.ping import NS_PING, PingHandler

ROMEO = "romeo@example.org/orchard"


def ping(to=None, sender=ROMEO, id="c2s1"):
    toAttr = " to='%s'" % to if to else ""
    # XEP-0199 Example 4, with our addresses.
    return "<iq from='%s'%s id='%s' type='get'><ping xmlns='urn:xmpp:ping'/></iq>" % (
        sender, toAttr, id)


@pytest.fixture
def domain(tmp_path):
    return Domain(tmp_path, features=("ping",))


def test_pingServer(domain):
    """A client pinging its server gets an empty result (XEP-0199 §4.2)."""
    romeo = domain.bind(ROMEO)

    domain.send(ping("example.org"))

    [pong] = romeo.take()
    assert pong["type"] == "result" and pong["id"] == "c2s1"
    assert pong["from"] == "example.org" and pong["to"] == ROMEO
    assert list(pong.elements()) == []


@pytest.mark.parametrize("to", [None, "romeo@example.org"])
def test_pingOwnAccount(domain, to):
    """A ping to one's own account, with no 'to' or the bare JID, is answered by the server."""
    romeo = domain.bind(ROMEO)

    domain.send(ping(to))

    [pong] = romeo.take()
    assert pong["type"] == "result"


@pytest.mark.parametrize("to", ["juliet@example.org", "nobody@example.org"])
def test_pingOtherAccount(domain, to):
    """A ping to someone else's bare JID gets service-unavailable, whether the account exists or not."""
    romeo = domain.bind(ROMEO)

    domain.send(ping(to))

    [reply] = romeo.take()
    assert errorCondition(reply) == "service-unavailable"


def test_pingFullJIDRouted(domain):
    """A ping to another client's full JID is delivered to that client (XEP-0199 §4.4)."""
    romeo = domain.bind(ROMEO)
    juliet = domain.bind("juliet@example.org/balcony")

    domain.send(ping("juliet@example.org/balcony"))

    [delivered] = juliet.take()
    assert delivered["from"] == ROMEO and delivered.ping.uri == NS_PING
    assert romeo.take() == []


def test_disco(tmp_path):
    """The domain announces urn:xmpp:ping."""
    domain = Domain(tmp_path, features=("disco", "ping"))
    romeo = domain.bind(ROMEO)

    domain.send("<iq type='get' id='d' from='%s' to='example.org'>"
                "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % ROMEO)

    [reply] = romeo.take()
    assert NS_PING in [f["var"] for f in reply.query.elements("http://jabber.org/protocol/disco#info", "feature")]


# -- pinging idle clients ------------------------------------------------------


def pings(stream):
    return [s for s in stream.take() if s.name == "iq" and s.ping is not None]


def test_quietClientIsPinged(domain):
    """A client silent for idle_timeout seconds gets a ping from the domain (XEP-0199 §4.1)."""
    juliet = domain.bind("juliet@example.org/balcony")

    domain.clock.advance(200)
    juliet.receive()
    domain.clock.pump([50] * 4)
    assert pings(juliet) == []

    domain.clock.pump([50] * 4)
    [iq] = pings(juliet)
    assert iq["type"] == "get" and iq["from"] == "example.org"
    assert iq["to"] == "juliet@example.org/balcony" and iq["id"]


def test_silenceAfterPingCloses(domain):
    """A client that sends nothing within timeout seconds of a ping is closed with connection-timeout."""
    juliet = domain.bind("juliet@example.org/balcony")
    domain.clock.pump([30] * 11)
    assert len(pings(juliet)) == 1

    domain.clock.pump([30] * 2)

    assert juliet.error == "connection-timeout"


def test_answerKeepsStream(domain):
    """A client that answers the ping keeps its stream, and is pinged again only after another quiet spell."""
    juliet = domain.bind("juliet@example.org/balcony")
    domain.clock.pump([30] * 11)
    [iq] = pings(juliet)

    domain.clock.advance(1)
    juliet.receive()
    domain.send("<iq type='result' id='%s' from='juliet@example.org/balcony' to='example.org'/>"
                % iq["id"])
    domain.clock.pump([30] * 6)

    assert juliet.error is None and pings(juliet) == []
    domain.clock.pump([30] * 6)
    assert len(pings(juliet)) == 1


def test_onlyThisDomain(tmp_path):
    """Sessions of other domains on the node are not the domain's to ping."""
    from xmppd.core.local import LocalDomain
    domain = Domain(tmp_path, features=("ping",))
    LocalDomain("other.example", domain.server, features=()).startService()
    nurse = domain.bind("nurse@other.example/home")

    domain.clock.pump([60] * 10)

    assert pings(nurse) == []


def test_loopRunsOnlyWithSessions(domain):
    """The idle check runs only while the domain has sessions, so a stopped server leaves no timer."""
    handler = domain.handler(PingHandler)
    assert handler.loop is None
    domain.bind("juliet@example.org/balcony")
    domain.bind("juliet@example.org/chamber")
    assert handler.loop is not None and domain.clock.getDelayedCalls()

    domain.unbind("juliet@example.org/balcony")
    assert handler.loop is not None
    domain.unbind("juliet@example.org/chamber")

    assert handler.loop is None and domain.clock.getDelayedCalls() == []


def test_disabled(tmp_path):
    """With idle_timeout = 0 the server never pings."""
    domain = Domain(tmp_path, features=("ping",), sections={"ping": {"idle_timeout": 0}})
    juliet = domain.bind("juliet@example.org/balcony")

    domain.clock.pump([600] * 5)

    assert pings(juliet) == [] and juliet.error is None


def test_timeoutZeroNeverCloses(tmp_path):
    """With timeout = 0 a silent client is pinged again after each quiet spell but never closed."""
    domain = Domain(tmp_path, features=("ping",),
                    sections={"ping": {"idle_timeout": 100, "timeout": 0}})
    juliet = domain.bind("juliet@example.org/balcony")

    domain.clock.pump([10] * 100)

    assert len(pings(juliet)) >= 8 and juliet.error is None


def test_configuredTimes(tmp_path):
    """idle_timeout and timeout come from [ping]."""
    domain = Domain(tmp_path, features=("ping",),
                    sections={"ping": {"idle_timeout": 20, "timeout": 4}})
    juliet = domain.bind("juliet@example.org/balcony")

    domain.clock.pump([1] * 21)
    assert len(pings(juliet)) == 1
    domain.clock.pump([1] * 6)

    assert juliet.error == "connection-timeout"
