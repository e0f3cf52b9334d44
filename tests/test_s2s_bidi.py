"""
Tests for bidirectional server-to-server streams (XEP-0288) in
L{xmppd.s2s}: both sides driven byte by byte over a L{StringTransport}
(L{tests.s2shelpers}), as the other server would see them.
"""

from __future__ import annotations

import base64

import pytest

from tests.s2shelpers import (DIALBACK_FEATURE, DOMAIN, EXTERNAL_FEATURE, NS_SASL, NS_TLS,
                              OTHER_LOCAL, REMOTE, REMOTE2, Harness, stanza)
from xmppd.s2s.dialback import dialbackKey
from xmppd.s2s.streams import NS_BIDI, NS_BIDI_FEATURE
from xmppd.s2s.verify import CertificateCheck
from xmppd.core.stanzas import NS_CLIENT

BIDI_FEATURE = "<bidi xmlns='%s'/>" % (NS_BIDI_FEATURE,)
BIDI = "<bidi xmlns='%s'/>" % (NS_BIDI,)


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path, s2s={"hosts": {REMOTE: "192.0.2.50:5269",
                                            REMOTE2: "192.0.2.51:5269"}})


def ours(body="hi", sender=f"juliet@{DOMAIN}/balcony", to=f"romeo@{REMOTE}"):
    """A message from one of our users to another server's."""
    return stanza("<message from='%s' to='%s'><body>%s</body></message>" % (sender, to, body))


def theirs(sender=f"romeo@{REMOTE}/orchard", to=f"juliet@{DOMAIN}", body="hi") -> str:
    """A message as the other server writes it on the wire."""
    return "<message from='%s' to='%s'><body>%s</body></message>" % (sender, to, body)


def bidiIncoming(harness, local=DOMAIN, remote=REMOTE):
    """An incoming stream that asked for bidi after TLS and authenticated (local, remote) by dialback."""
    peer = harness.incoming()
    features = peer.starttls(to=local, sender=remote).features()
    assert list(features.elements(NS_BIDI_FEATURE, "bidi"))
    assert peer.exchange(BIDI).elements == []
    peer.authenticate(local, remote)
    return peer


def bidiOutgoing(harness, features=BIDI_FEATURE + DIALBACK_FEATURE):
    """A route to REMOTE whose stream was offered bidi; the peer and what the stream said after TLS."""
    harness.router.route(ours())
    peer = harness.outgoing[-1]
    return peer, peer.negotiateTLS(features)


# -- the receiving side -------------------------------------------------------


def test_notOfferedBeforeTLS(harness):
    """While STARTTLS is required, bidi is not offered before it, as XEP-0288 asks TLS first."""
    features = harness.incoming().start().features()
    assert not list(features.elements(NS_BIDI_FEATURE, "bidi"))


def test_notOfferedWhenOff(tmp_path):
    """With s2s.bidi off, bidi is never offered, and a peer asking anyway is unsupported-stanza-type."""
    harness = Harness(tmp_path, s2s={"bidi": False})
    peer = harness.incoming()
    features = peer.starttls().features()
    assert not list(features.elements(NS_BIDI_FEATURE, "bidi"))
    assert peer.exchange(BIDI).streamError == "unsupported-stanza-type"


def test_bidiBeforeTLSRefused(harness):
    """Asking for bidi before the required STARTTLS is a policy-violation."""
    peer = harness.incoming()
    peer.start()
    reply = peer.exchange(BIDI)
    assert reply.streamError == "policy-violation" and reply.closed


def test_notOfferedOnceAuthenticated(harness):
    """After SASL EXTERNAL the restarted stream no longer offers bidi."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = harness.incoming()
    peer.starttls()
    peer.exchange("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % (NS_SASL,))
    assert not list(peer.start().features().elements(NS_BIDI_FEATURE, "bidi"))


def test_reverseDirectionUsesIncomingStream(harness):
    """Our stanza for a peer that asked for bidi and authenticated goes back on its stream, no connection of ours."""
    peer = bidiIncoming(harness)
    harness.router.route(ours(body="back"))
    reply = peer.received()
    [message] = reply.elements
    assert (message.uri, message.name, str(message.body)) == ("jabber:server", "message", "back")
    assert (message["from"], message["to"]) == (f"juliet@{DOMAIN}/balcony", f"romeo@{REMOTE}")
    assert "xmlns=" not in reply.data.decode()
    assert harness.attempts == [] and harness.outgoing == []
    peer.send(theirs())
    assert len(harness.stanzasFor(DOMAIN)) == 1


def test_nothingSentBeforeAuthentication(harness):
    """Before the peer's dialback is verified, our stanzas wait for a connection of ours, never its stream."""
    peer = harness.incoming()
    peer.starttls()
    peer.send(BIDI)
    peer.requestDialback()
    harness.router.route(ours())
    assert peer.received().elements == []
    assert len(harness.outgoing) == 1


def test_queuedStanzasTakeBidiStream(harness):
    """Stanzas waiting for our own connection leave on the peer's bidi stream as soon as it is authenticated."""
    harness.router.route(ours(body="waiting"))
    [ownConnection] = harness.outgoing
    peer = harness.incoming()
    peer.starttls()
    peer.send(BIDI)
    peer.requestDialback()
    harness.answerVerification(True)
    reply = peer.received()
    # The peer learns it is authenticated before our first stanza arrives.
    assert [(e.name, e.getAttribute("type")) for e in reply.elements] == [
        ("result", "valid"), ("message", None)]
    assert str(reply.elements[1].body) == "waiting"
    # Our own attempt is left to end by itself (see OutgoingRoute.useStream).
    assert not ownConnection.closed
    harness.router.route(ours(body="next"))
    assert [str(e.body) for e in peer.received().elements] == ["next"]


def test_withoutBidiRequestOwnConnection(harness):
    """A peer that does not ask for bidi gets our stanzas over a connection of ours, as before."""
    peer = harness.incoming().authenticate()
    harness.router.route(ours())
    assert peer.received().elements == []
    assert len(harness.outgoing) == 1
    assert harness.outgoing[0].stream.remoteDomain == REMOTE


def test_bidiAfterAuthentication(harness):
    """A peer asking for bidi after authenticating gets the reverse direction from then on."""
    peer = harness.incoming().authenticate()
    peer.send(BIDI)
    harness.router.route(ours())
    assert len(peer.received().elements) == 1
    assert harness.outgoing == []


def test_onlyTheAuthenticatedPair(harness):
    """The bidi stream carries only the inverse of the authenticated pair; another of our domains connects itself."""
    peer = bidiIncoming(harness)
    harness.router.route(ours(sender=f"room@{OTHER_LOCAL}/x"))
    harness.router.route(ours(to=f"tybalt@{REMOTE2}"))
    assert peer.received().elements == []
    assert [(p.stream.localDomain, p.stream.remoteDomain) for p in harness.outgoing] == [
        (OTHER_LOCAL, REMOTE), (DOMAIN, REMOTE2)]


def test_externalImpliesReverse(harness):
    """After SASL EXTERNAL on a bidi stream, our stanzas from its 'to' to its 'from' go back on it once it restarts."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = harness.incoming()
    peer.starttls()
    peer.send(BIDI)
    reply = peer.exchange("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>"
                          % (NS_SASL, base64.b64encode(REMOTE.encode()).decode()))
    assert reply.names == ["success"]
    # Nothing may follow <success/> before the restarted stream's header.
    harness.router.route(ours(body="early"))
    assert peer.received().elements == []
    [own] = harness.outgoing  # meanwhile, a connection of ours is under way
    harness.router.route(ours(body="later"))
    reply = peer.start()
    assert not own.stream.closing
    assert [e.name for e in reply.elements] == ["features", "message", "message"]
    assert [str(e.body) for e in reply.elements[1:]] == ["early", "later"]


@pytest.mark.parametrize("sender, to, condition", [
    (f"mallory@{REMOTE2}", f"juliet@{DOMAIN}", "invalid-from"),
    (f"romeo@{REMOTE}", f"juliet@{OTHER_LOCAL}", "invalid-from"),
    (f"evil@{DOMAIN}", f"juliet@{DOMAIN}", "invalid-from"),
    (f"romeo@{REMOTE}", "x@third.example", "host-unknown"),
], ids=["other-remote-domain", "pair-not-authenticated", "our-own-domain", "not-ours"])
def test_incomingFromChecked(harness, sender, to, condition):
    """On a bidi incoming stream the peer's stanzas are still checked against what it authenticated."""
    peer = bidiIncoming(harness)
    reply = peer.exchange(theirs(sender=sender, to=to))
    assert reply.streamError == condition and reply.closed
    assert harness.stanzasFor(DOMAIN) == [] and harness.stanzasFor(OTHER_LOCAL) == []


def test_closedBidiStreamForgotten(harness):
    """When the peer's bidi stream goes, our next stanza opens a connection of ours."""
    peer = bidiIncoming(harness)
    peer.disconnect()
    assert harness.service.routes == {}
    harness.router.route(ours())
    assert len(harness.outgoing) == 1


def test_incomingListedOnce(harness):
    """Operators see a bidi stream once, in the direction it was opened, marked bidi."""
    bidiIncoming(harness)
    harness.router.route(ours())
    [entry] = harness.service.connections()
    assert (entry["direction"], entry["local"], entry["remote"], entry["method"],
            entry["bidi"]) == ("in", DOMAIN, REMOTE, "dialback", True)


# -- the initiating side ------------------------------------------------------


def test_requestedBeforeDialback(harness):
    """Offered bidi after TLS, the stream asks for it, with no answer awaited, before its dialback key."""
    peer, reply = bidiOutgoing(harness)
    assert [(e.uri, e.name) for e in reply.elements] == [
        (NS_BIDI, "bidi"), ("jabber:server:dialback", "result")]
    assert peer.stream.bidi


def test_requestedBeforeExternal(harness):
    """With a valid certificate the request comes before SASL EXTERNAL, and only once."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer, reply = bidiOutgoing(harness, BIDI_FEATURE + EXTERNAL_FEATURE)
    assert [(e.uri, e.name) for e in reply.elements] == [(NS_BIDI, "bidi"), (NS_SASL, "auth")]
    peer.exchange("<success xmlns='%s'/>" % (NS_SASL,))
    reply = peer.accept(BIDI_FEATURE, streamId="after-sasl")
    assert reply.names == ["message"]
    peer.send(theirs())
    assert len(harness.stanzasFor(DOMAIN)) == 1


def test_notRequestedUnlessOffered(harness):
    """A peer that does not offer bidi is not asked, and a stanza from it on our stream is unsupported-stanza-type."""
    peer, reply = bidiOutgoing(harness, DIALBACK_FEATURE)
    assert reply.names == ["result"] and not peer.stream.bidi
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    assert peer.exchange(theirs()).streamError == "unsupported-stanza-type"


def test_notRequestedWhenOff(tmp_path):
    """With s2s.bidi off, an offer of bidi is ignored."""
    harness = Harness(tmp_path, s2s={"bidi": False, "hosts": {REMOTE: "192.0.2.50:5269"}})
    peer, reply = bidiOutgoing(harness)
    assert reply.names == ["result"] and not peer.stream.bidi


def test_notRequestedBeforeTLS(harness):
    """Bidi offered before STARTTLS is not taken up: TLS comes first (XEP-0288 §2.1)."""
    harness.router.route(ours())
    peer = harness.outgoing[-1]
    peer.received()
    reply = peer.accept("<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)
                        + BIDI_FEATURE)
    assert reply.names == ["starttls"]


def test_peerStanzasAccepted(harness):
    """Once authenticated, the peer's stanzas on our bidi stream reach our users as jabber:client."""
    peer, _ = bidiOutgoing(harness)
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    assert peer.received().names == ["message"]
    peer.send(theirs(body="answer"))
    [delivered] = harness.stanzasFor(DOMAIN)
    assert delivered.uri == NS_CLIENT and str(delivered.body) == "answer"
    assert (delivered["from"], delivered["to"]) == (f"romeo@{REMOTE}/orchard", f"juliet@{DOMAIN}")


def test_peerStanzaBeforeAuthentication(harness):
    """A stanza from the peer before our dialback is confirmed is not-authorized."""
    peer, _ = bidiOutgoing(harness)
    assert peer.exchange(theirs()).streamError == "not-authorized"
    assert [s.getAttribute("type") for s in harness.stanzasFor(DOMAIN)] == ["error"]


@pytest.mark.parametrize("sender, to, condition", [
    (f"mallory@{REMOTE2}", f"juliet@{DOMAIN}", "invalid-from"),
    (f"romeo@{REMOTE}", f"juliet@{OTHER_LOCAL}", "invalid-from"),
    (f"evil@{DOMAIN}", f"juliet@{DOMAIN}", "invalid-from"),
    (f"romeo@{REMOTE}", "x@third.example", "host-unknown"),
    (None, f"juliet@{DOMAIN}", "improper-addressing"),
], ids=["other-remote-domain", "other-local-domain", "our-own-domain", "not-ours", "no-from"])
def test_outgoingFromChecked(harness, sender, to, condition):
    """On our bidi stream the peer may only send from its domain to the domain we authenticated as."""
    peer, _ = bidiOutgoing(harness)
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    peer.received()
    message = theirs(to=to) if sender is None else theirs(sender=sender, to=to)
    if sender is None:
        message = message.replace("from='romeo@%s/orchard' " % (REMOTE,), "")
    reply = peer.exchange(message)
    assert reply.streamError == condition and reply.closed
    assert harness.stanzasFor(DOMAIN) == [] and harness.stanzasFor(OTHER_LOCAL) == []


def test_verifyQuestionAnswered(harness):
    """The peer may ask on our bidi stream whether a dialback key is ours, and gets the answer."""
    peer, _ = bidiOutgoing(harness)
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    peer.received()
    key = dialbackKey(harness.server.secret, REMOTE, DOMAIN, "their-stream")
    reply = peer.exchange("<db:verify from='%s' to='%s' id='their-stream'>%s</db:verify>"
                          % (REMOTE, DOMAIN, key))
    [answer] = reply.dialback("verify")
    assert (answer["from"], answer["to"], answer["type"]) == (DOMAIN, REMOTE, "valid")


def test_verifyStreamNeverBidi(tmp_path):
    """A connection made only to check a dialback key does not ask for bidi."""
    harness = Harness(tmp_path, s2s={"hosts": {REMOTE: "192.0.2.50:5269"}},
                      answerVerifications=False)
    harness.service.verifyDialback(DOMAIN, REMOTE, "s", "k")
    [peer] = harness.outgoing
    reply = peer.negotiateTLS(BIDI_FEATURE + DIALBACK_FEATURE)
    assert reply.names == ["verify"] and not peer.stream.bidi


def test_outgoingListedOnce(harness):
    """Operators see our bidi stream once, as outgoing, marked bidi."""
    peer, _ = bidiOutgoing(harness)
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    [entry] = harness.service.connections()
    assert (entry["direction"], entry["remote"], entry["method"], entry["bidi"]) == (
        "out", REMOTE, "dialback", True)


# -- both servers connecting at once ---------------------------------------------


def ownStream(harness):
    """A route to REMOTE over a dialback-authenticated stream of ours, not bidi; its peer comes back."""
    harness.router.route(ours(body="own"))
    peer = harness.outgoing[-1]
    peer.negotiateTLS()
    peer.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    assert [str(e.body) for e in peer.received().elements] == ["own"]
    return peer


def test_ownStreamKeptWhenBidiArrives(harness):
    """A route that has its own stream keeps it when the peer's bidi stream authenticates too."""
    own = ownStream(harness)
    peer = bidiIncoming(harness)
    harness.router.route(ours(body="next"))
    assert [str(e.body) for e in own.received().elements] == ["next"]
    assert peer.received().elements == []


def test_bidiStreamTakesOverWhenOwnCloses(harness):
    """When our own stream closes, the peer's bidi stream for the pair carries on, with no new connection."""
    own = ownStream(harness)
    peer = bidiIncoming(harness)
    own.disconnect()
    harness.router.route(ours(body="after"))
    assert [str(e.body) for e in peer.received().elements] == ["after"]
    assert len(harness.outgoing) == 1


def test_ownStreamTakesOverWhenBidiCloses(harness):
    """A stream of ours finishing after the peer's bidi stream took the route carries on when that one closes."""
    harness.router.route(ours(body="waiting"))
    [own] = harness.outgoing
    peer = bidiIncoming(harness)
    own.negotiateTLS()
    own.send("<db:result from='%s' to='%s' type='valid'/>" % (REMOTE, DOMAIN))
    assert own.received().elements == []
    peer.disconnect()
    harness.router.route(ours(body="after"))
    assert [str(e.body) for e in own.received().elements] == ["after"]
    assert len(harness.outgoing) == 1
