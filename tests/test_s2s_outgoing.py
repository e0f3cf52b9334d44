"""
Tests for L{xmppd.s2s.outgoing} and the routing side of
L{xmppd.s2s.service}: stanzas for another domain leave through a
per-destination route, over a stream the test plays the other server on
(L{StringTransport}), with time from a clock.
"""

from __future__ import annotations

import base64

import pytest
from twisted.internet import defer

from tests.s2shelpers import (DIALBACK_FEATURE, DOMAIN, EXTERNAL_FEATURE, NS_SASL, NS_TLS,
                              OTHER_LOCAL, REMOTE, REMOTE2, Harness, errorOf, stanza)
from xmppd.s2s.dialback import dialbackKey
from xmppd.s2s.outgoing import NegotiationFailed
from xmppd.s2s.resolver import DomainNotFound, ResolutionFailed, Target
from xmppd.s2s.verify import CertificateCheck


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path, s2s={"hosts": {REMOTE: "192.0.2.50:5269"}})


def message(body="hi", sender=f"juliet@{DOMAIN}/balcony", to=f"romeo@{REMOTE}", type=None):
    typed = " type='%s'" % type if type else ""
    return stanza("<message from='%s' to='%s'%s><body>%s</body></message>"
                  % (sender, to, typed, body))


def connected(harness, **kwargs):
    """Send a message for REMOTE: the route connects; the peer of that connection comes back."""
    harness.router.route(message(**kwargs))
    return harness.outgoing[-1]


def authenticated(harness):
    """A route to REMOTE authenticated with dialback; the peer comes back."""
    peer = connected(harness)
    reply = peer.negotiateTLS()
    [result] = reply.dialback()
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    return peer


def bounces(harness, domain=DOMAIN) -> list[tuple[str, str]]:
    """(condition, to) of the errors the router delivered to a local domain."""
    return [(errorOf(s)[1], s["to"]) for s in harness.stanzasFor(domain)
            if s.getAttribute("type") == "error"]


# -- negotiation ------------------------------------------------------------


def test_header(harness):
    """A stanza for another domain opens a jabber:server stream from our domain to its server's address."""
    peer = connected(harness)
    [(target, local, remote, verify)] = harness.attempts
    assert (target, local, remote, verify) == (Target("192.0.2.50", 5269), DOMAIN, REMOTE, None)
    data = peer.transport.value().decode()
    assert "xmlns='jabber:server'" in data and "xmlns:db='jabber:server:dialback'" in data
    assert "from='%s' to='%s'" % (DOMAIN, REMOTE) in data and "version='1.0'" in data


def test_starttls(harness):
    """Offered STARTTLS is taken: TLS starts for the destination domain and the stream restarts."""
    peer = connected(harness)
    peer.received()
    reply = peer.accept()
    assert [(e.uri, e.name) for e in reply.elements] == [(NS_TLS, "starttls")]
    reply = peer.proceed()
    assert peer.transport.tlsStarted == [("client-tls", REMOTE, DOMAIN)]
    assert reply.header["to"] == REMOTE and peer.stream.secure


def test_dialbackKey(harness):
    """After TLS, dialback sends the XEP-0185 key for the peer's latest stream id."""
    peer = connected(harness)
    reply = peer.negotiateTLS(streamId="after-tls")
    [result] = reply.dialback()
    assert (result["from"], result["to"]) == (DOMAIN, REMOTE)
    assert str(result) == dialbackKey(harness.server.secret, REMOTE, DOMAIN, "after-tls")


def test_dialbackPrefixedOnTheWire(harness):
    """The dialback request goes out as db:result, the prefix the header declares (XEP-0220 §2; ejabberd reads no other form)."""
    peer = connected(harness)
    reply = peer.negotiateTLS(streamId="after-tls")
    text = reply.data.decode()
    assert "<db:result from='%s' to='%s'>" % (DOMAIN, REMOTE) in text
    assert "jabber:server:dialback" not in text


def test_dialbackValidFlushesQueue(harness):
    """Once the peer says valid, queued stanzas go out in order, serialized for jabber:server."""
    peer = connected(harness, body="first")
    harness.router.route(message(body="second"))
    assert len(peer.negotiateTLS().dialback()) == 1
    reply = peer.exchange("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    assert [str(e.body) for e in reply.elements] == ["first", "second"]
    assert "<message from=" in reply.data.decode() and "xmlns=" not in reply.data.decode()
    harness.router.route(message(body="third"))
    assert [str(e.body) for e in peer.received().elements] == ["third"]
    assert len(harness.outgoing) == 1


def test_dialbackInvalidBounces(harness):
    """A refused dialback key bounces what waits with remote-server-timeout and closes the stream."""
    peer = connected(harness)
    peer.negotiateTLS()
    reply = peer.exchange("<db:result from='%s' to='%s' type='invalid'/>" % (REMOTE, DOMAIN))
    assert reply.closed
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]
    assert harness.service.routes == {}


def test_dialbackErrorBounces(harness):
    """A dialback error answer bounces what waits too."""
    peer = connected(harness)
    peer.negotiateTLS()
    peer.send("<db:result from='%s' to='%s' type='error'><error type='cancel'>"
              "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
              "</error></db:result>" % (REMOTE, DOMAIN))
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]


def test_noStarttlsWhenRequired(harness):
    """A peer that offers no STARTTLS is given up on when encryption is required."""
    peer = connected(harness)
    reply = peer.accept(DIALBACK_FEATURE)
    assert reply.closed and reply.dialback() == []
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]


def test_noStarttlsAllowed(tmp_path):
    """With encryption not required, dialback goes on over the plain stream."""
    harness = Harness(tmp_path, s2s={"require_encryption": False,
                                     "hosts": {REMOTE: "192.0.2.50:5269"}})
    peer = connected(harness)
    reply = peer.accept(DIALBACK_FEATURE)
    assert len(reply.dialback()) == 1


def test_headerWithoutId(harness):
    """A peer header without a stream id cannot be used for dialback: the attempt fails."""
    peer = connected(harness)
    peer.received()
    peer.send(b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/"
              b"streams' xmlns='jabber:server' version='1.0' from='remote.example'>")
    assert peer.received().closed
    assert bounces(harness)[0][0] == "remote-server-timeout"


def test_external(harness):
    """A peer with a valid certificate offering EXTERNAL gets our domain as authzid, then the stream restarts."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = connected(harness)
    reply = peer.negotiateTLS(EXTERNAL_FEATURE + DIALBACK_FEATURE)
    [auth] = reply.elements
    assert (auth.uri, auth.name, auth["mechanism"]) == (NS_SASL, "auth", "EXTERNAL")
    assert base64.b64decode(str(auth)).decode() == DOMAIN
    reply = peer.exchange("<success xmlns='%s'/>" % (NS_SASL,))
    assert reply.header["from"] == DOMAIN
    reply = peer.accept("", streamId="after-sasl")
    assert [str(e.body) for e in reply.elements] == ["hi"]
    assert peer.stream.method == "EXTERNAL"


def test_externalFailureFallsBackToDialback(harness):
    """When EXTERNAL fails, dialback is tried on the same stream."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = connected(harness)
    peer.negotiateTLS(EXTERNAL_FEATURE + DIALBACK_FEATURE)
    reply = peer.exchange("<failure xmlns='%s'><not-authorized/></failure>" % (NS_SASL,))
    assert len(reply.dialback()) == 1


def test_invalidCertificateRefusedWhenRequired(tmp_path):
    """With valid certificates required, a peer whose certificate is not valid is given up on."""
    harness = Harness(tmp_path, s2s={"require_valid_certificates": True,
                                     "hosts": {REMOTE: "192.0.2.50:5269"}})
    peer = connected(harness)
    reply = peer.negotiateTLS(EXTERNAL_FEATURE + DIALBACK_FEATURE)
    assert reply.closed and reply.dialback() == []
    assert bounces(harness)[0][0] == "remote-server-timeout"


def test_stanzaOnOutgoingStream(harness):
    """A stanza coming back on a stream we opened is unsupported-stanza-type."""
    peer = authenticated(harness)
    reply = peer.exchange("<message from='romeo@%s' to='juliet@%s'/>" % (REMOTE, DOMAIN))
    assert reply.streamError == "unsupported-stanza-type"


# -- the route: queue, timeout, failures --------------------------------------


def test_queueBounded(tmp_path):
    """Beyond max_queue stanzas waiting for one domain, more bounce with resource-constraint."""
    harness = Harness(tmp_path, s2s={"max_queue": 2, "hosts": {REMOTE: "192.0.2.50:5269"}})
    for body in ("1", "2", "3"):
        harness.router.route(message(body=body))
    [bounced] = harness.stanzasFor(DOMAIN)
    assert errorOf(bounced) == ("wait", "resource-constraint") and str(bounced.body) == "3"
    assert len(harness.outgoing) == 1


def test_timeoutBounces(tmp_path):
    """Stanzas waiting when connect_timeout passes without authentication bounce with remote-server-timeout."""
    harness = Harness(tmp_path, s2s={"connect_timeout": 5,
                                     "hosts": {REMOTE: "192.0.2.50:5269"}})
    peer = connected(harness)
    harness.router.route(message(body="second", sender=f"nurse@{DOMAIN}"))
    peer.accept()
    harness.clock.advance(4.9)
    assert harness.stanzasFor(DOMAIN) == []
    harness.clock.advance(0.2)
    assert sorted(bounces(harness)) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony"),
                                        ("remote-server-timeout", f"nurse@{DOMAIN}")]
    assert peer.received().closed
    assert harness.service.routes == {}


def test_timeoutWhileResolving(tmp_path):
    """A resolution that never ends is bounded by connect_timeout too."""
    harness = Harness(tmp_path, s2s={"connect_timeout": 3})
    harness.service.resolver.resolve = lambda domain: defer.Deferred()
    harness.router.route(message())
    harness.clock.advance(3)
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]


def test_errorsNeverAnswered(tmp_path):
    """An error stanza that cannot be delivered is dropped, never answered with another error."""
    harness = Harness(tmp_path, s2s={"connect_timeout": 1,
                                     "hosts": {REMOTE: "192.0.2.50:5269"}})
    harness.router.route(message(type="error"))
    harness.clock.advance(1)
    assert harness.stanzasFor(DOMAIN) == []


def test_domainNotFound(harness):
    """A domain that does not resolve bounces at once with remote-server-not-found."""
    harness.service.resolver.resolve = lambda domain: defer.fail(DomainNotFound(domain))
    harness.router.route(message(to=f"romeo@{REMOTE2}"))
    assert bounces(harness) == [("remote-server-not-found", f"juliet@{DOMAIN}/balcony")]


def test_resolutionFailed(harness):
    """DNS that does not answer bounces with remote-server-timeout."""
    harness.service.resolver.resolve = lambda domain: defer.fail(ResolutionFailed(domain))
    harness.router.route(message(to=f"romeo@{REMOTE2}"))
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]


def test_unreachable(harness):
    """A server that refuses the connection bounces what waits with remote-server-timeout."""
    harness.refused.add(("192.0.2.50", 5269))
    harness.router.route(message())
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]
    assert harness.service.routes == {}


def test_nextAddressTried(harness):
    """When the first address refuses, the next one is tried."""
    harness.service.resolver.resolve = lambda domain: defer.succeed(
        [Target("192.0.2.1", 5269), Target("192.0.2.2", 5270)])
    harness.refused.add(("192.0.2.1", 5269))
    harness.router.route(message())
    assert [a[0] for a in harness.attempts] == [Target("192.0.2.1", 5269),
                                                Target("192.0.2.2", 5270)]
    assert len(harness.outgoing) == 1


def test_connectionLostDuringNegotiation(harness):
    """A connection that breaks during negotiation bounces what waits."""
    peer = connected(harness)
    peer.accept()
    peer.disconnect()
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]


def test_onePairOneRoute(harness):
    """Each pair of domains has its own route and stream."""
    harness.service.setHostOverride(REMOTE2, "192.0.2.51:5269")
    harness.router.route(message())
    harness.router.route(message(sender=f"room@{OTHER_LOCAL}"))
    harness.router.route(message(to=f"x@{REMOTE2}"))
    assert sorted(harness.service.routes) == sorted([(DOMAIN, REMOTE), (DOMAIN, REMOTE2),
                                                     (OTHER_LOCAL, REMOTE)])
    assert len(harness.outgoing) == 3


def test_foreignSenderDropped(harness):
    """A stanza for another server from a domain that is not ours is dropped, not relayed."""
    harness.router.route(message(sender=f"mallory@{REMOTE2}"))
    assert harness.outgoing == [] and harness.service.routes == {}


def test_idleStreamClosedAndReopened(tmp_path):
    """An idle outgoing stream is closed cleanly; the next stanza opens a new one."""
    harness = Harness(tmp_path, s2s={"idle_timeout": 60, "hosts": {REMOTE: "192.0.2.50:5269"}})
    peer = authenticated(harness)
    peer.received()
    harness.clock.advance(61)
    reply = peer.received()
    assert reply.closed and reply.streamError is None
    peer.disconnect()
    assert harness.service.routes == {}
    harness.router.route(message(body="again"))
    assert len(harness.outgoing) == 2


def test_connectionsListed(harness):
    """The service lists an authenticated outgoing stream with its method."""
    authenticated(harness)
    [entry] = harness.service.connections()
    assert (entry["direction"], entry["local"], entry["remote"], entry["method"],
            entry["encrypted"], entry["peer"]) == ("out", DOMAIN, REMOTE, "dialback", True,
                                                   "192.0.2.50:5269")


def test_stopBouncesAndRestoresDefaultRoute(harness):
    """Stopping the service bounces what waits and gives the router its unroutable default back."""
    previous = harness.service.previousDefault
    assert harness.router.defaultRoute is harness.service
    harness.router.route(message())
    harness.service.stopService()
    assert bounces(harness) == [("remote-server-timeout", f"juliet@{DOMAIN}/balcony")]
    assert harness.router.defaultRoute is previous


# -- dialback verification connections (XEP-0220 §2.3) ----------------------


@pytest.fixture
def verifier(tmp_path):
    return Harness(tmp_path, s2s={"hosts": {REMOTE: "192.0.2.50:5269"}},
                   answerVerifications=False)


def test_verifyConnection(verifier):
    """Checking a key opens a connection to the authoritative server and asks with db:verify after TLS."""
    verdicts = []
    verifier.service.verifyDialback(DOMAIN, REMOTE, "stream-1", "key-1").addCallback(
        verdicts.append)
    [peer] = verifier.outgoing
    reply = peer.negotiateTLS()
    [question] = reply.dialback("verify")
    assert (question["from"], question["to"], question["id"], str(question)) == (
        DOMAIN, REMOTE, "stream-1", "key-1")
    reply = peer.exchange("<db:verify from='%s' to='%s' id='stream-1' type='valid'/>"
                          % (REMOTE, DOMAIN))
    assert verdicts == [True]
    assert reply.closed
    # A verification authenticates nothing.
    assert all(c["method"] is None for c in verifier.service.connections())


def test_verifyPrefixedOnTheWire(verifier):
    """The key check sent to the authoritative server goes out as db:verify (XEP-0220 §2; ejabberd reads no other form)."""
    verifier.service.verifyDialback(DOMAIN, REMOTE, "stream-1", "key-1")
    [peer] = verifier.outgoing
    text = peer.negotiateTLS().data.decode()
    assert "<db:verify from='%s' to='%s' id='stream-1'>key-1</db:verify>" % (DOMAIN, REMOTE) in text
    assert "jabber:server:dialback" not in text


def test_verifyInvalid(verifier):
    """An invalid answer is a False verdict."""
    verdicts = []
    verifier.service.verifyDialback(DOMAIN, REMOTE, "s", "k").addCallback(verdicts.append)
    peer = verifier.outgoing[0]
    peer.negotiateTLS()
    peer.send("<db:verify from='%s' to='%s' id='s' type='invalid'/>" % (REMOTE, DOMAIN))
    assert verdicts == [False]


def test_verifyTimeout(verifier):
    """An authoritative server that never answers fails the check with remote-server-timeout in time."""
    failures = []
    verifier.service.verifyDialback(DOMAIN, REMOTE, "s", "k").addErrback(failures.append)
    verifier.clock.advance(verifier.config.s2s.connect_timeout)
    [failure] = failures
    assert failure.check(NegotiationFailed)
    assert failure.value.condition == "remote-server-timeout"


def test_verifyDomainNotFound(verifier):
    """An authoritative domain that does not exist fails the check with remote-server-not-found."""
    failures = []
    verifier.service.resolver.resolve = lambda domain: defer.fail(DomainNotFound(domain))
    verifier.service.verifyDialback(DOMAIN, REMOTE2, "s", "k").addErrback(failures.append)
    assert failures[0].value.condition == "remote-server-not-found"
