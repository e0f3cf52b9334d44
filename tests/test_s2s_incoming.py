"""
Tests for L{xmppd.s2s.incoming}: the receiving side of server-to-server
streams driven byte by byte over a L{StringTransport}, as another server
would see it, with time from a clock.
"""

from __future__ import annotations

import base64

import pytest

from tests.s2shelpers import (DOMAIN, NS_SASL, NS_SERVER, NS_TLS, OTHER_LOCAL, REMOTE,
                              REMOTE2, Harness, errorOf, header)
from xmppd.s2s.dialback import NS_DIALBACK, NS_DIALBACK_FEATURE, dialbackKey
from xmppd.s2s.outgoing import NegotiationFailed
from xmppd.s2s.streams import NS_BIDI_FEATURE
from xmppd.s2s.verify import CertificateCheck
from xmppd.core.stanzas import NS_CLIENT


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


def assertStreamError(peer, reply, condition: str) -> None:
    """C{reply} ends with a stream error C{condition} and the footer; the connection closes."""
    assert reply.streamError == condition, reply
    assert reply.closed, reply
    assert peer.closed


def message(sender=f"romeo@{REMOTE}/orchard", to=f"juliet@{DOMAIN}", body="hi") -> str:
    attributes = "".join(" %s='%s'" % (k, v) for k, v in (("from", sender), ("to", to)) if v)
    return "<message%s><body>%s</body></message>" % (attributes, body)


# -- the stream header (RFC 6120 §4.7, §4.8) -------------------------------


def test_header(harness):
    """A server opening a stream to our domain gets a jabber:server header with dialback declared and a fresh id."""
    reply = harness.incoming().start()
    assert reply.header["xmlns"] == NS_SERVER
    assert reply.header["xmlns:db"] == NS_DIALBACK
    assert reply.header["version"] == "1.0"
    assert (reply.header["from"], reply.header["to"]) == (DOMAIN, REMOTE)
    assert reply.header["id"]
    assert not reply.closed


def test_featuresBeforeTLS(harness):
    """Before TLS only STARTTLS is offered, and it is required."""
    features = harness.incoming().start().features()
    [starttls] = list(features.elements())
    assert (starttls.uri, starttls.name) == (NS_TLS, "starttls")
    assert [child.name for child in starttls.elements()] == ["required"]


def test_featuresWithoutRequiredEncryption(tmp_path):
    """With encryption not required, STARTTLS is optional and bidi and dialback are offered at once."""
    harness = Harness(tmp_path, s2s={"require_encryption": False})
    features = harness.incoming().start().features()
    assert [(f.uri, f.name) for f in features.elements()] == [
        (NS_TLS, "starttls"), (NS_BIDI_FEATURE, "bidi"), (NS_DIALBACK_FEATURE, "dialback")]
    assert list(features.elements())[0].children == []


def test_streamIdsUnpredictable(harness):
    """Every stream gets its own unpredictable id, since dialback keys depend on it."""
    first, second = (harness.incoming().start().header["id"] for _ in range(2))
    assert first != second
    assert sum(a != b for a, b in zip(first, second)) >= 8


@pytest.mark.parametrize("data, condition", [
    (header(to="unknown.example"), "host-unknown"),
    (header(to="bad..domain"), "host-unknown"),
    (header(ns=NS_CLIENT), "invalid-namespace"),
    (header(version=None), "unsupported-version"),
    (header(version="2.0"), "unsupported-version"),
    (header(sender="romeo@remote.example"), "invalid-from"),
], ids=["unknown-domain", "malformed-to", "jabber:client", "no-version", "version-2",
        "from-not-a-domain"])
def test_badHeader(harness, data, condition):
    """A bad header gets a header, the matching stream error and the footer, then the connection closes."""
    peer = harness.incoming()
    reply = peer.exchange(data)
    assert reply.header is not None
    assertStreamError(peer, reply, condition)


def test_headerWithoutTo(harness):
    """A header without a to is answered without a from, and the stream goes on."""
    reply = harness.incoming().start(to=None)
    assert "from" not in reply.header
    assert not reply.closed


# -- STARTTLS (RFC 6120 §5) -------------------------------------------------


def test_starttls(harness):
    """STARTTLS is answered with proceed, TLS starts, and the restarted stream gets a new id, bidi and dialback."""
    peer = harness.incoming()
    before = peer.start().header["id"]
    reply = peer.exchange("<starttls xmlns='%s'/>" % (NS_TLS,))
    assert reply.names == ["proceed"]
    assert peer.stream.secure
    after = peer.start()
    assert after.header["id"] != before
    assert [(f.uri, f.name) for f in after.features().elements()] == [
        (NS_BIDI_FEATURE, "bidi"), (NS_DIALBACK_FEATURE, "dialback")]


def test_starttlsTwice(harness):
    """A second STARTTLS fails and closes the stream (RFC 6120 §5.4.2.2)."""
    peer = harness.incoming()
    peer.starttls()
    reply = peer.exchange("<starttls xmlns='%s'/>" % (NS_TLS,))
    assert reply.names == ["failure"] and reply.closed


def test_bytesAfterStarttlsDiscarded(harness):
    """What follows <starttls/> in the same read is not taken as part of the new stream."""
    peer = harness.incoming()
    peer.start()
    peer.send("<starttls xmlns='%s'/><db:result from='%s' to='%s'>k</db:result>"
              % (NS_TLS, REMOTE, DOMAIN))
    assert harness.verifications == []


# -- SASL EXTERNAL (XEP-0178) -------------------------------------------------


def test_externalOfferedForValidCertificate(harness):
    """A peer whose certificate is valid for its domain is offered SASL EXTERNAL, and dialback too."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    features = harness.incoming().starttls().features()
    [mechanisms] = list(features.elements(NS_SASL, "mechanisms"))
    assert [str(m) for m in mechanisms.elements()] == ["EXTERNAL"]
    assert list(features.elements(NS_DIALBACK_FEATURE, "dialback"))


@pytest.mark.parametrize("authzid", [REMOTE, None, ""], ids=["domain", "none", "empty"])
def test_external(harness, authzid):
    """SASL EXTERNAL with the peer's domain (or no authorization identity) succeeds and the stream restarts."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = harness.incoming()
    peer.starttls()
    content = "=" if authzid is None else base64.b64encode(authzid.encode()).decode()
    reply = peer.exchange("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (NS_SASL, content))
    assert reply.names == ["success"]
    assert peer.stream.pairs[(DOMAIN, REMOTE)][0] == "EXTERNAL"
    after = peer.start()
    assert not list(after.features().elements(NS_SASL, "mechanisms"))
    peer.send(message())
    [delivered] = harness.stanzasFor(DOMAIN)
    assert delivered.uri == NS_CLIENT


def test_externalWrongAuthzid(harness):
    """SASL EXTERNAL for another domain than the certificate's fails with invalid-authzid."""
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = harness.incoming()
    peer.starttls()
    reply = peer.exchange("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>"
                          % (NS_SASL, base64.b64encode(REMOTE2.encode()).decode()))
    assert reply.names == ["failure"]
    assert [c.name for c in reply.elements[0].elements()] == ["invalid-authzid"]
    assert peer.stream.pairs == {}


def test_externalWithoutValidCertificate(harness):
    """SASL EXTERNAL without a valid certificate fails, and after three failures the stream closes."""
    peer = harness.incoming()
    peer.starttls()
    auth = "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % (NS_SASL,)
    for _ in range(2):
        reply = peer.exchange(auth)
        assert reply.names == ["failure"] and not reply.closed
    assertStreamError(peer, peer.exchange(auth), "policy-violation")


def test_requiredCertificateRefused(tmp_path):
    """With valid certificates required, a peer with an invalid one is refused with not-authorized after TLS."""
    harness = Harness(tmp_path, s2s={"require_valid_certificates": True})
    peer = harness.incoming()
    peer.start()
    peer.exchange("<starttls xmlns='%s'/>" % (NS_TLS,))
    assertStreamError(peer, peer.exchange(header()), "not-authorized")


def test_requiredCertificateNoDialback(tmp_path):
    """With valid certificates required, a peer with a valid one is offered EXTERNAL (and bidi), no dialback."""
    harness = Harness(tmp_path, s2s={"require_valid_certificates": True})
    harness.certificates[REMOTE] = CertificateCheck(True)
    features = harness.incoming().starttls().features()
    assert [f.name for f in features.elements()] == ["mechanisms", "bidi"]


# -- dialback (XEP-0220) --------------------------------------------------------


def test_dialbackValid(harness):
    """A dialback request is checked with the authoritative server for this stream's id; valid authenticates the pair."""
    peer = harness.incoming()
    streamId = peer.starttls().header["id"]
    assert peer.requestDialback(key="the-key").elements == []
    assert harness.answerVerification(True) == (DOMAIN, REMOTE, streamId, "the-key")
    [result] = peer.received().dialback()
    assert (result["from"], result["to"], result["type"]) == (DOMAIN, REMOTE, "valid")
    assert peer.stream.pairs[(DOMAIN, REMOTE)][0] == "dialback"


def test_dialbackInvalid(harness):
    """A key the authoritative server refuses is answered invalid, and stanzas are then not accepted."""
    peer = harness.incoming()
    peer.starttls()
    peer.requestDialback()
    harness.answerVerification(False)
    [result] = peer.received().dialback()
    assert result["type"] == "invalid"
    assertStreamError(peer, peer.exchange(message()), "not-authorized")
    assert harness.stanzasFor(DOMAIN) == []


@pytest.mark.parametrize("condition", ["remote-server-not-found", "remote-server-timeout"])
def test_dialbackError(harness, condition):
    """When the authoritative server cannot be asked, the answer is a dialback error with the reason."""
    peer = harness.incoming()
    peer.starttls()
    peer.requestDialback()
    harness.answerVerification(NegotiationFailed(condition, "test"))
    [result] = peer.received().dialback()
    assert result["type"] == "error"
    assert errorOf(result)[1] == condition


def test_dialbackBeforeTLS(harness):
    """A dialback request before STARTTLS, which is required, is a policy-violation."""
    peer = harness.incoming()
    peer.start()
    assertStreamError(peer, peer.requestDialback(), "policy-violation")
    assert harness.verifications == []


def test_dialbackWithoutTLSWhenAllowed(tmp_path):
    """With encryption not required, dialback works on a plain stream."""
    harness = Harness(tmp_path, s2s={"require_encryption": False})
    peer = harness.incoming()
    peer.start()
    peer.requestDialback()
    harness.answerVerification(True)
    assert peer.received().dialback()[0]["type"] == "valid"


def test_dialbackRefusedWhenCertificatesRequired(tmp_path):
    """With valid certificates required, a dialback request is not-authorized."""
    harness = Harness(tmp_path, s2s={"require_valid_certificates": True})
    harness.certificates[REMOTE] = CertificateCheck(True)
    peer = harness.incoming()
    peer.starttls()
    assertStreamError(peer, peer.requestDialback(), "not-authorized")


@pytest.mark.parametrize("local, remote, condition", [
    ("unknown.example", REMOTE, "host-unknown"),
    (DOMAIN, OTHER_LOCAL, "invalid-from"),
    (DOMAIN, "romeo@remote.example", "invalid-from"),
], ids=["not-ours", "from-our-own-domain", "from-not-a-domain"])
def test_dialbackBadAddresses(harness, local, remote, condition):
    """A dialback request to a domain we do not serve, or from one of ours, closes the stream."""
    peer = harness.incoming()
    peer.starttls()
    assertStreamError(peer, peer.requestDialback(local, remote), condition)


def test_dialbackSeveralPairs(harness):
    """Several pairs of domains can be authenticated on one stream, each carrying its own stanzas."""
    peer = harness.incoming()
    peer.authenticate(DOMAIN, REMOTE)
    peer.authenticate(OTHER_LOCAL, REMOTE2)
    peer.send(message())
    peer.send(message(sender=f"tybalt@{REMOTE2}", to=f"room@{OTHER_LOCAL}"))
    assert len(harness.stanzasFor(DOMAIN)) == 1
    assert len(harness.stanzasFor(OTHER_LOCAL)) == 1


def test_dialbackDuplicateAndBounded(harness):
    """The same request twice is checked once, and too many requests at once are a policy-violation."""
    peer = harness.incoming()
    peer.starttls()
    peer.requestDialback()
    peer.requestDialback()
    assert len(harness.verifications) == 1
    for index in range(15):
        peer.requestDialback(remote="r%d.example" % index)
    assert len(harness.verifications) == 16
    assertStreamError(peer, peer.requestDialback(remote="one-more.example"), "policy-violation")


def test_dialbackAnswerAfterClose(harness):
    """A verification still running when the peer leaves is cancelled, and nothing is written."""
    peer = harness.incoming()
    peer.starttls()
    peer.requestDialback()
    peer.disconnect()
    [(_, verification)] = harness.verifications
    assert verification.called
    assert peer.transport.value() == b""


def test_dialbackVerifyAsAuthoritative(harness):
    """Asked whether a key is ours, we answer valid for our own key and invalid for any other."""
    peer = harness.incoming()
    peer.starttls()
    key = dialbackKey(harness.server.secret, REMOTE, DOMAIN, "their-stream")
    reply = peer.exchange("<db:verify from='%s' to='%s' id='their-stream'>%s</db:verify>"
                          % (REMOTE, DOMAIN, key))
    [answer] = reply.dialback("verify")
    assert (answer["from"], answer["to"], answer["id"], answer["type"]) == (
        DOMAIN, REMOTE, "their-stream", "valid")
    reply = peer.exchange("<db:verify from='%s' to='%s' id='other-stream'>%s</db:verify>"
                          % (REMOTE, DOMAIN, key))
    assert reply.dialback("verify")[0]["type"] == "invalid"


def test_dialbackAnswersPrefixedOnTheWire(harness):
    """Our answers, to a dialback request and to a key check, go out as db:result and db:verify (XEP-0220 §2; ejabberd reads no other form)."""
    peer = harness.incoming()
    peer.starttls()
    peer.requestDialback(key="the-key")
    harness.answerVerification(True)
    text = peer.received().data.decode()
    assert "<db:result from='%s' to='%s' type='valid'/>" % (DOMAIN, REMOTE) in text
    key = dialbackKey(harness.server.secret, REMOTE, DOMAIN, "their-stream")
    reply = peer.exchange("<db:verify from='%s' to='%s' id='their-stream'>%s</db:verify>"
                          % (REMOTE, DOMAIN, key))
    text += reply.data.decode()
    assert "<db:verify from='%s' to='%s' id='their-stream' type='valid'/>" % (
        DOMAIN, REMOTE) in text
    assert "jabber:server:dialback" not in text


def test_dialbackVerifyUnknownDomain(harness):
    """Asked about a domain we do not serve, we answer with an item-not-found error."""
    peer = harness.incoming()
    peer.starttls()
    reply = peer.exchange("<db:verify from='%s' to='nobody.example' id='x'>k</db:verify>"
                          % (REMOTE,))
    [answer] = reply.dialback("verify")
    assert answer["type"] == "error" and errorOf(answer)[1] == "item-not-found"


# -- stanzas (RFC 6120 §8.1.2.2, §4.9.3.9) ---------------------------------


def test_stanzaRouted(harness):
    """A stanza from an authenticated domain reaches the router as jabber:client, payload included."""
    peer = harness.incoming().authenticate()
    peer.send(message())
    [delivered] = harness.stanzasFor(DOMAIN)
    assert delivered.uri == NS_CLIENT and delivered.body.uri == NS_CLIENT
    assert (delivered["from"], delivered["to"], str(delivered.body)) == (
        f"romeo@{REMOTE}/orchard", f"juliet@{DOMAIN}", "hi")


def test_stanzaBeforeAuthentication(harness):
    """A stanza before any domain is authenticated is not-authorized, and is not routed."""
    peer = harness.incoming()
    peer.starttls()
    assertStreamError(peer, peer.exchange(message()), "not-authorized")
    assert harness.stanzasFor(DOMAIN) == []


@pytest.mark.parametrize("sender, to", [
    (f"mallory@{REMOTE2}", f"juliet@{DOMAIN}"),
    (f"romeo@{REMOTE}", f"juliet@{OTHER_LOCAL}"),
    (f"evil@{DOMAIN}", f"juliet@{DOMAIN}"),
], ids=["other-remote-domain", "pair-not-authenticated", "our-own-domain"])
def test_spoofedFrom(harness, sender, to):
    """A stanza from a domain not authenticated on the stream for its recipient's domain is invalid-from."""
    peer = harness.incoming().authenticate()
    assertStreamError(peer, peer.exchange(message(sender=sender, to=to)), "invalid-from")
    assert harness.stanzasFor(DOMAIN) == [] and harness.stanzasFor(OTHER_LOCAL) == []


def test_recipientNotServed(harness):
    """A stanza to a domain we do not serve is host-unknown."""
    peer = harness.incoming().authenticate()
    assertStreamError(peer, peer.exchange(message(to="x@third.example")), "host-unknown")


@pytest.mark.parametrize("sender, to", [(None, f"juliet@{DOMAIN}"), (f"romeo@{REMOTE}", None)],
                         ids=["no-from", "no-to"])
def test_missingAddresses(harness, sender, to):
    """A stanza without from or to between servers is improper-addressing."""
    peer = harness.incoming().authenticate()
    assertStreamError(peer, peer.exchange(message(sender=sender, to=to)), "improper-addressing")


def test_malformedRecipient(harness):
    """A stanza to a malformed JID is answered with jid-malformed, back through the router."""
    peer = harness.incoming().authenticate()
    bounced = []
    harness.router.defaultRoute = type("R", (), {"deliver": lambda self, s: bounced.append(s)})()
    peer.send(message(to="juliet@@%s" % DOMAIN))
    [reply] = bounced
    assert reply["type"] == "error" and errorOf(reply)[1] == "jid-malformed"
    assert (reply["from"], reply["to"]) == (DOMAIN, f"romeo@{REMOTE}/orchard")


def test_stanzaInWrongNamespace(harness):
    """A stanza in jabber:client on a server stream is invalid-namespace."""
    peer = harness.incoming().authenticate()
    reply = peer.exchange("<message xmlns='jabber:client' from='romeo@%s' to='juliet@%s'/>"
                          % (REMOTE, DOMAIN))
    assertStreamError(peer, reply, "invalid-namespace")


def test_iqWithoutId(harness):
    """An IQ get without an id is answered with bad-request instead of being routed."""
    peer = harness.incoming().authenticate()
    bounced = []
    harness.router.defaultRoute = type("R", (), {"deliver": lambda self, s: bounced.append(s)})()
    peer.send("<iq type='get' from='romeo@%s/o' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
              % (REMOTE, DOMAIN))
    assert harness.stanzasFor(DOMAIN) == []
    assert errorOf(bounced[0])[1] == "bad-request"


def test_unknownElement(harness):
    """An element that is neither a stanza nor negotiation is unsupported-stanza-type."""
    peer = harness.incoming().authenticate()
    assertStreamError(peer, peer.exchange("<foo xmlns='urn:x'/>"), "unsupported-stanza-type")


@pytest.mark.parametrize("encoding, condition", [
    ("utf-16", "unsupported-encoding"), ("utf-8", "unsupported-version")])
def test_xmlDeclaration(harness, encoding, condition):
    """A server writing UTF-16, or declaring XML 1.1, gets the stream error (RFC 6120 §11.6, §11.8)."""
    peer = harness.incoming()
    data = header().decode()
    if encoding == "utf-8":
        data = data.replace("version='1.0'?>", "version='1.1'?>", 1)
    reply = peer.exchange(data.encode(encoding))
    assert reply.header is not None
    assertStreamError(peer, reply, condition)


def test_malformedXML(harness):
    """Bad XML is answered with not-well-formed, never a traceback."""
    peer = harness.incoming()
    peer.start()
    assertStreamError(peer, peer.exchange("<a></b>"), "not-well-formed")


# -- time ---------------------------------------------------------------------


def test_negotiationDeadline(harness):
    """A peer that does not authenticate in time is closed with connection-timeout."""
    peer = harness.incoming()
    peer.start()
    harness.clock.advance(harness.config.limits.negotiation_timeout + 0.1)
    assertStreamError(peer, peer.received(), "connection-timeout")


def test_idleStreamClosed(tmp_path):
    """An authenticated stream with no traffic for idle_timeout is closed cleanly, and traffic keeps it open."""
    harness = Harness(tmp_path, s2s={"idle_timeout": 100})
    peer = harness.incoming().authenticate()
    harness.clock.advance(90)
    peer.send(message())
    harness.clock.advance(90)
    assert not peer.received().closed
    harness.clock.advance(11)
    reply = peer.received()
    assert reply.closed and reply.streamError is None
    assert peer.closed


def test_idleTimeoutZeroNeverCloses(tmp_path):
    """With idle_timeout 0 an authenticated stream stays open however long it is quiet."""
    harness = Harness(tmp_path, s2s={"idle_timeout": 0})
    peer = harness.incoming().authenticate()
    harness.clock.advance(10 ** 6)
    assert not peer.received().closed


def test_connectionsListed(harness):
    """The service lists an incoming stream per authenticated pair, with method, peer and encryption."""
    peer = harness.incoming(host="192.0.2.9").authenticate()
    [entry] = harness.service.connections()
    assert entry == {"direction": "in", "local": DOMAIN, "remote": REMOTE,
                     "method": "dialback", "peer": "192.0.2.9:%d" % harness.ports,
                     "since": harness.clock.seconds(), "encrypted": True, "bidi": False}
    peer.disconnect()
    assert harness.service.connections() == []


def test_stopSaysSystemShutdown(harness):
    """Stopping the service closes incoming streams with system-shutdown."""
    peer = harness.incoming().authenticate()
    harness.service.stopService()
    assertStreamError(peer, peer.received(), "system-shutdown")


# -- abuse: floods, a peer that never reads, too many connections ----------------


def test_oversizedStanzaBeforeAuthentication(harness):
    """Before authentication a stanza over limits.max_stanza_size_unauthenticated is a policy-violation."""
    peer = harness.incoming()
    peer.starttls()
    limit = harness.config.limits.max_stanza_size_unauthenticated
    reply = peer.exchange(message(body="x" * 2 * limit))
    assertStreamError(peer, reply, "policy-violation")


def test_oversizedStanzaAfterAuthentication(harness):
    """
    Once authenticated a stanza may be up to limits.max_stanza_size, not
    beyond: a bigger one is a policy-violation and nothing is routed.
    """
    peer = harness.incoming().authenticate()
    limit = harness.config.limits.max_stanza_size
    assert not peer.exchange(message(body="x" * (limit // 2))).closed
    assert len(harness.stanzasFor(DOMAIN)) == 1
    assertStreamError(peer, peer.exchange(message(body="x" * 2 * limit)), "policy-violation")
    assert harness.stanzasFor(DOMAIN) == []


def test_tooDeep(harness):
    """An element nested deeper than limits.max_depth is a policy-violation."""
    peer = harness.incoming().authenticate()
    depth = harness.config.limits.max_depth
    assertStreamError(peer, peer.exchange(message(body="<x>" * depth + "</x>" * depth)),
                      "policy-violation")


def test_peerThatDoesNotReadIsDropped(tmp_path):
    """More than limits.send_queue_limit bytes waiting for a peer that does not read: aborted."""
    harness = Harness(tmp_path, limits={"max_stanza_size": 10240, "send_queue_limit": 10240})
    peer = harness.incoming().authenticate()
    peer.stream.sendQueue.pauseProducing()  # its socket buffer is full
    peer.received()
    verify = ("<db:verify from='%s' to='%s' id='some-stream'>%s</db:verify>"
              % (REMOTE, DOMAIN, "k" * 100))
    for _ in range(200):
        if peer.closed:
            break
        peer.exchange(verify)
    assert peer.transport.aborted


def test_connectionsPerAddress(tmp_path):
    """
    Past limits.connections_per_ip connections from one address the next
    gets a header and policy-violation; another address still connects, and
    a closed connection frees its place.
    """
    harness = Harness(tmp_path, limits={"connections_per_ip": 2})
    first, second = harness.incoming(), harness.incoming()
    third = harness.incoming()
    reply = third.received()
    assert reply.header is not None
    assertStreamError(third, reply, "policy-violation")
    third.disconnect()
    other = harness.incoming(host="198.51.100.1")
    assert other.start().streamError is None
    first.disconnect()
    assert harness.incoming().start().streamError is None
    assert second.start().streamError is None


# -- traffic shaping (s2s.bytes_per_second, s2s.stanzas_per_second) -----------


def test_byteShapingBeforeAuthentication(tmp_path):
    """
    A peer sending more than s2s.bytes_per_second before it authenticates
    (whitespace costs nothing else) has reading paused until its bucket is
    out of debt, then resumed: slowed, not disconnected.
    """
    harness = Harness(tmp_path, s2s={"bytes_per_second": 1024})
    peer = harness.incoming()
    peer.start()
    harness.clock.advance(10)  # a full bucket: 2048 bytes
    peer.send(b" " * 5048)
    assert peer.transport.producerState == "paused"
    assert harness.server.metrics.rejected["traffic_shaping"] == 1
    harness.clock.advance(2.9)
    assert peer.transport.producerState == "paused"
    harness.clock.advance(0.2)
    assert peer.transport.producerState == "producing"
    assert not peer.closed
    assert peer.exchange(message()).streamError == "not-authorized"


def test_stanzaShapingAfterAuthentication(tmp_path):
    """Past s2s.stanzas_per_second an authenticated peer is paused; every stanza it sent is routed."""
    harness = Harness(tmp_path, s2s={"stanzas_per_second": 1})
    peer = harness.incoming().authenticate()
    harness.clock.advance(10)
    peer.send(message(body="1") + message(body="2") + message(body="3") + message(body="4"))
    assert [str(s.body) for s in harness.stanzasFor(DOMAIN)] == ["1", "2", "3", "4"]
    assert peer.transport.producerState == "paused"
    harness.clock.advance(2)
    assert peer.transport.producerState == "producing"
    assert not peer.closed


def test_shapingDefaults(harness):
    """By default a server may send ten times a client's rates before it is slowed."""
    limits, s2s = harness.config.limits, harness.config.s2s
    assert (s2s.bytes_per_second, s2s.stanzas_per_second) == (1048576, 2000)
    assert s2s.bytes_per_second >= 10 * limits.bytes_per_second
    assert s2s.stanzas_per_second == 10 * limits.stanzas_per_second
    peer = harness.incoming().authenticate()
    peer.send(message() * 100)
    assert peer.transport.producerState == "producing"
    assert len(harness.stanzasFor(DOMAIN)) == 100


def test_shapingDisabled(tmp_path):
    """0 switches shaping off: no bucket, nothing counted."""
    harness = Harness(tmp_path, s2s={"bytes_per_second": 0, "stanzas_per_second": 0})
    peer = harness.incoming().authenticate()
    assert peer.stream.byteBucket is None and peer.stream.stanzaBucket is None
    peer.send(message() * 5000)
    assert peer.transport.producerState == "producing"
    assert "traffic_shaping" not in harness.server.metrics.rejected


def test_shapingEndsWhileStanzasWait(tmp_path):
    """
    Reading paused by shaping and by a sender's stanzas still being
    processed resumes only once neither holds it back, whichever ends first.
    """
    harness = Harness(tmp_path, s2s={"stanzas_per_second": 1})
    peer = harness.incoming().authenticate()
    stream = peer.stream
    harness.clock.advance(10)
    stream.pauseInput()  # a sender's stanza is being processed
    peer.send(message() * 4)
    assert stream.readPauses == {"backlog", "shaping"}
    harness.clock.advance(5)
    assert peer.transport.producerState == "paused"
    stream.resumeInput()
    assert peer.transport.producerState == "producing"
    peer.send(message() * 4)
    stream.pauseInput()
    stream.resumeInput()
    assert peer.transport.producerState == "paused"
    harness.clock.advance(5)
    assert peer.transport.producerState == "producing"
