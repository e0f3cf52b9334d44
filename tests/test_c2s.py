"""
Tests for L{xmppd.c2s.stream} and L{xmppd.c2s.negotiation}: client streams driven byte by
byte over a L{StringTransport}, as a client would see them (RFC 6120 §4-§8).
"""

import base64
import hashlib

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.test.iosim import FakeTransport, connectedServerAndClient

from tests.streamhelpers import (DOMAIN, NS_BIND, NS_SASL, NS_SESSION, NS_TLS, PASSWORDS,
                                 Reply, TLS_CONTEXT, Node, header, plain)
from tests.test_sasl import clientProof
from xmppd.core.jid import parseJID
from xmppd.core.scram import checkPassword, deriveCredential, makeCredentials
from xmppd.stream import tls
from xmppd.stream.xmlparser import PARSE_SLICE

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sasl(name: str, content: str = "", **attrs) -> bytes:
    """A top-level SASL element (auth, response, abort)."""
    attributes = "".join(" %s='%s'" % item for item in attrs.items())
    return ("<%s xmlns='%s'%s>%s</%s>" % (name, NS_SASL, attributes, content, name)).encode()


def saslFailure(reply) -> str:
    """The condition of the single SASL failure in C{reply}."""
    [failure] = reply.elements
    assert (failure.uri, failure.name) == (NS_SASL, "failure"), reply
    return [child.name for child in failure.elements() if child.name != "text"][0]


def stanzaError(reply) -> str:
    """The condition of the single stanza error in C{reply}."""
    [stanza] = reply.elements
    assert stanza.getAttribute("type") == "error", reply
    [error] = [child for child in stanza.elements() if child.name == "error"]
    return [child.name for child in error.elements(NS_STANZAS) if child.name != "text"][0]


def assertStreamError(client, reply, condition: str, withHeader: bool = False) -> None:
    """
    C{reply} is a stream error with C{condition} then the footer, and the
    connection closes.  C{withHeader}: the server had not sent its header
    yet, so the reply must begin with one (RFC 6120 §4.9.1.2); otherwise it
    must not repeat it.
    """
    assert reply.streamError == condition, reply
    assert reply.elements[-1].name == "error", reply
    assert (reply.header is not None) == withHeader, reply
    assert reply.closed, reply
    assertClosing(client)


def assertClosing(client) -> None:
    """
    The server closed the connection, and nothing holds it open: a transport
    with a producer registered does not close (TLS does not even start to).
    """
    assert client.transport.disconnecting
    assert client.transport.producer is None


def message(to: str, body: str = "hi", **attrs) -> bytes:
    attributes = "".join(" %s='%s'" % item for item in attrs.items())
    return ("<message to='%s'%s><body>%s</body></message>" % (to, attributes, body)).encode()


# -- the stream header (RFC 6120 §4.7, §4.8) -------------------------------


def test_headerAndFeatures(node):
    """The server answers a good header with its own header (id, from, 1.0) and features."""
    client = node.connect()
    reply = client.exchange(header())
    assert reply.header["from"] == DOMAIN
    assert reply.header["version"] == "1.0"
    assert reply.header["id"]
    assert reply.header["xmlns"] == "jabber:client"
    assert reply.names == ["features"]
    assert not reply.closed and not client.transport.disconnecting


def test_featuresKeptPerState(node):
    """Streams in one state get the same features, built once; a hook may refuse the keeping."""
    calls = []

    def offer(event):
        calls.append(event.stream)
        event.features.addElement(("urn:example:test", "extra"))

    node.server.hooks.add("c2s/features", offer, scope=DOMAIN)
    first, second = node.connect(), node.connect()
    assert first.exchange(header()).data.split(b">", 2)[2] == \
        second.exchange(header()).data.split(b">", 2)[2]
    assert len(calls) == 1
    # Authenticated: another state, built again once, and kept.
    node.connect().authenticate()
    node.connect().authenticate()
    assert len(calls) == 2

    def dynamic(event):
        event.cacheable = False

    node.server.hooks.add("c2s/features", dynamic, scope=DOMAIN)
    reply = node.connect().exchange(header())
    assert "extra" in reply.elements[0].toXml()
    node.connect().exchange(header())
    assert len(calls) == 4


def test_featuresRebuiltAfterReconfiguring(node):
    """A listener configured again (a reload) builds its features anew."""
    calls = []
    node.server.hooks.add("c2s/features", calls.append, scope=DOMAIN)
    node.connect().exchange(header())
    node.factory.configure(node.config)
    node.connect().exchange(header())
    assert len(calls) == 2


def test_streamIdsUnpredictable(node):
    """Stream ids never repeat and cannot be guessed from an earlier one (RFC 6120 §4.7.3)."""
    first, second = (node.connect().start().header["id"] for _ in range(2))
    assert len(first) == len(second)
    # Far more differs than the last digits of a counter (by chance fewer
    # than 8 of 16 random hex digits differ about once in 10**8 runs).
    assert sum(a != b for a, b in zip(first, second)) >= 8


@pytest.mark.parametrize("data,condition", [
    (header(streamNS="urn:example:not-streams"), "invalid-namespace"),
    (header(ns="jabber:server"), "invalid-namespace"),
    (header(ns=None), "invalid-namespace"),
    (header(to=None), "host-unknown"),
    (header(to="example.net"), "host-unknown"),
    (header(version=None), "unsupported-version"),
    (header(version="2.0"), "unsupported-version"),
    (header(root="features"), "bad-format"),
], ids=["stream-namespace", "jabber:server", "no-content-namespace", "no-to",
        "unserved-domain", "no-version", "version-2.0", "root-not-stream"])
def test_badHeader(node, data, condition):
    """A bad header gets a server header, the matching stream error, the footer and a close."""
    client = node.connect()
    reply = client.exchange(data)
    assertStreamError(client, reply, condition, withHeader=True)


def test_minorVersionAccepted(node):
    """A client speaking 1.x gets a 1.0 stream (RFC 6120 §4.7.5)."""
    reply = node.connect().exchange(header(version="1.1"))
    assert reply.header["version"] == "1.0"
    assert reply.streamError is None


def test_headerInPieces(node):
    """A header that arrives a few bytes at a time is answered once it is complete."""
    client = node.connect()
    data = header()
    for i in range(0, len(data), 7):
        client.send(data[i:i + 7])
    assert client.received().names == ["features"]


# -- features and STARTTLS (RFC 6120 §5) ------------------------------------


def test_startTLSRequired(tmp_path):
    """With require_tls, a plaintext stream is offered STARTTLS as required and no SASL."""
    node = Node(tmp_path, c2s={"require_tls": True, "plain_without_tls": False})
    reply = node.connect().start()
    assert reply.featureNames() == [(NS_TLS, "starttls")]
    starttls = next(reply.features().elements(NS_TLS, "starttls"))
    assert [c.name for c in starttls.elements()] == ["required"]


def test_startTLSThenMechanisms(tmp_path):
    """After STARTTLS and a restart, SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN are offered."""
    node = Node(tmp_path, c2s={"require_tls": True, "plain_without_tls": False})
    client = node.connect()
    client.start()
    reply = client.exchange(b"<starttls xmlns='%s'/>" % NS_TLS.encode())
    assert [(e.uri, e.name) for e in reply.elements] == [(NS_TLS, "proceed")]
    assert client.transport.tlsStarted == [TLS_CONTEXT]
    reply = client.start()
    assert reply.mechanisms() == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert (NS_TLS, "starttls") not in reply.featureNames()


def test_noPlainOnPlaintext(tmp_path):
    """Without TLS and without plain_without_tls, SCRAM is offered but PLAIN is not."""
    node = Node(tmp_path, c2s={"require_tls": False, "plain_without_tls": False})
    reply = node.connect().start()
    assert reply.mechanisms() == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_directTLSOffersPlain(tmp_path):
    """A stream that is encrypted from the start offers PLAIN and no STARTTLS."""
    node = Node(tmp_path, secure=True, c2s={"require_tls": True, "plain_without_tls": False})
    reply = node.connect().start()
    assert reply.featureNames() == [(NS_SASL, "mechanisms"), ("urn:xmpp:sasl:2", "authentication")]
    assert reply.mechanisms() == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_startTLSOnSecureStream(tmp_path):
    """STARTTLS on a stream that is already encrypted gets <failure/> and the stream closes."""
    node = Node(tmp_path, secure=True)
    client = node.connect()
    client.start()
    reply = client.exchange(b"<starttls xmlns='%s'/>" % NS_TLS.encode())
    assert [(e.uri, e.name) for e in reply.elements] == [(NS_TLS, "failure")]
    assert reply.closed
    assertClosing(client)
    assert client.transport.tlsStarted == []


def test_dataAfterStartTLSDiscarded(tmp_path):
    """Plaintext that follows <starttls/> in the same read is discarded, not a new stream."""
    node = Node(tmp_path, c2s={"require_tls": True})
    client = node.connect()
    client.start()
    reply = client.exchange(b"<starttls xmlns='%s'/>" % NS_TLS.encode()
                            + header() + plain("juliet", PASSWORDS["juliet"]))
    assert reply.header is None
    assert reply.names == ["proceed"]
    reply = client.start()
    assert reply.names == ["features"]
    assert "PLAIN" in reply.mechanisms()


# -- SASL (RFC 6120 §6) -----------------------------------------------------


def test_plainSuccess(node):
    """PLAIN with the right password succeeds; the restarted stream offers bind and session."""
    client = node.connect()
    client.start()
    reply = client.exchange(plain("juliet", PASSWORDS["juliet"]))
    assert [(e.uri, e.name) for e in reply.elements] == [(NS_SASL, "success")]
    reply = client.start()
    assert reply.featureNames() == [(NS_BIND, "bind"), (NS_SESSION, "session")]
    session = next(reply.features().elements(NS_SESSION, "session"))
    assert [c.name for c in session.elements()] == ["optional"]


def test_stanzaLimitRisesAfterAuth(node):
    """Once authenticated, the stream accepts stanzas up to max_stanza_size."""
    client = node.connect()
    client.start()
    assert client.stream.parser.maxStanzaSize == node.limits.max_stanza_size_unauthenticated
    assert client.exchange(plain("juliet", PASSWORDS["juliet"])).names == ["success"]
    assert client.stream.parser.maxStanzaSize == node.limits.max_stanza_size


@pytest.mark.parametrize("mechanism,hashName", [("SCRAM-SHA-256", "sha256"),
                                                ("SCRAM-SHA-1", "sha1")])
def test_scramSuccess(node, mechanism, hashName):
    """SCRAM logs the client in and the server proves it knows the password too."""
    client = node.connect()
    client.start()
    first = "n=juliet,r=fyko+d2lbbFgONRv9qkxdawL"
    reply = client.exchange(sasl("auth", b64(b"n,," + first.encode()), mechanism=mechanism))
    [challenge] = reply.elements
    assert challenge.name == "challenge"
    serverFirst = base64.b64decode(str(challenge)).decode()
    attrs = dict(part.split("=", 1) for part in serverFirst.split(","))
    assert attrs["r"].startswith("fyko+d2lbbFgONRv9qkxdawL")
    final = "c=biws,r=" + attrs["r"]
    authMessage = ",".join((first, serverFirst, final)).encode()
    proof, serverSignature = clientProof(hashName, PASSWORDS["juliet"],
                                         base64.b64decode(attrs["s"]), int(attrs["i"]),
                                         authMessage)
    reply = client.exchange(sasl("response", b64((final + ",p=" + b64(proof)).encode())))
    [success] = reply.elements
    assert (success.uri, success.name) == (NS_SASL, "success")
    assert base64.b64decode(str(success)) == b"v=" + base64.b64encode(serverSignature)
    assert client.start().featureNames()[0] == (NS_BIND, "bind")


def test_scramDowngradeProtection(node):
    """
    SCRAM's server-first message carries h=, the hash of the mechanisms
    the features offered (XEP-0474), which a client recomputes from what it
    saw to detect a stripped list.
    """
    client = node.connect()
    offered = client.start().mechanisms()
    reply = scramFirst(client, "SCRAM-SHA-256", "juliet")
    serverFirst = base64.b64decode(str(reply.elements[0])).decode()
    attrs = dict(part.split("=", 1) for part in serverFirst.split(","))
    text = "\x1e".join(sorted(offered)).encode()
    assert attrs["h"] == base64.b64encode(hashlib.sha256(text).digest()).decode()


def test_wrongPasswordAndUnknownUserLookAlike(node):
    """A wrong password and an unknown user get the same not-authorized failure."""
    wrong, unknown = node.connect("10.0.0.1"), node.connect("10.0.0.2")
    wrong.start()
    unknown.start()
    wrong.send(plain("juliet", "not-her-password"))
    unknown.send(plain("nobody", "not-her-password"))
    node.clock.advance(node.limits.auth_failure_delay)
    first, second = wrong.received(), unknown.received()
    assert saslFailure(first) == "not-authorized"
    assert first.data == second.data


def scramFirst(client, mechanism: str, username: str):
    """Send a SCRAM client-first message; what came back."""
    first = b"n,,n=%s,r=fyko+d2lbbFgONRv9qkxdawL" % username.encode()
    return client.exchange(sasl("auth", b64(first), mechanism=mechanism))


def addSHA1OnlyAccount(node, username="nurse", password="old secret"):
    """An account as ejabberd exports it: SCRAM-SHA-1 keys only."""
    credentials = {"SCRAM-SHA-1": deriveCredential("sha1", password)}
    node.server.storage.users.addUser(username, DOMAIN, credentials)
    return credentials


def storedCredentials(node, username="nurse"):
    result = []
    node.server.storage.users.getCredentials(username, DOMAIN).addCallback(result.append)
    return result[0]


def test_sha256OnSHA1OnlyAccountFallsBack(node):
    """SCRAM-SHA-256 on an account with SCRAM-SHA-1 keys only fails at once with invalid-mechanism and no penalty delay; PLAIN then logs in on the same stream."""
    addSHA1OnlyAccount(node)
    client = node.connect()
    client.start()
    reply = scramFirst(client, "SCRAM-SHA-256", "nurse")
    assert saslFailure(reply) == "invalid-mechanism"
    assert node.authFailures.delayFor(client.stream.peerAddress) == 0
    assert client.exchange(plain("nurse", "old secret")).names == ["success"]


def test_plainLoginAddsSHA256Keys(node):
    """A PLAIN login of a SCRAM-SHA-1-only account stores SCRAM-SHA-256 keys, so the next login with SCRAM-SHA-256 gets a challenge."""
    sha1 = addSHA1OnlyAccount(node)
    client = node.connect()
    client.start()
    assert client.exchange(plain("nurse", "old secret")).names == ["success"]

    stored = storedCredentials(node)
    assert stored["SCRAM-SHA-1"] == sha1["SCRAM-SHA-1"]
    assert checkPassword("SCRAM-SHA-256", stored["SCRAM-SHA-256"], "old secret")
    other = node.connect("5.6.7.8")
    other.start()
    assert scramFirst(other, "SCRAM-SHA-256", "nurse").names == ["challenge"]


def test_plainLoginKeepsNewerPassword(node):
    """Keys derived at login are not stored over credentials changed meanwhile (a password change wins)."""
    addSHA1OnlyAccount(node)
    changed = makeCredentials("new secret")
    users = node.server.storage.users
    original = users.getCredentials
    calls = []

    def getCredentials(username, domain):
        calls.append(username)
        if len(calls) == 2:
            # The password changes between the login's read and the save.
            users.setCredentials(username, domain, changed)
        return original(username, domain)

    users.getCredentials = getCredentials
    client = node.connect()
    client.start()
    assert client.exchange(plain("nurse", "old secret")).names == ["success"]
    assert storedCredentials(node) == changed


def test_configuredMechanisms(tmp_path):
    """[sasl] mechanisms chooses what is offered, in its order; a mechanism left out is refused with invalid-mechanism."""
    node = Node(tmp_path, secure=True, sasl={"mechanisms": ["PLAIN", "SCRAM-SHA-1"]})
    client = node.connect()
    assert client.start().mechanisms() == ["PLAIN", "SCRAM-SHA-1"]
    assert saslFailure(scramFirst(client, "SCRAM-SHA-256", "juliet")) == "invalid-mechanism"
    assert client.exchange(plain("juliet", PASSWORDS["juliet"])).names == ["success"]


@pytest.mark.parametrize("data,condition", [
    (sasl("auth", mechanism="DIGEST-MD5"), "invalid-mechanism"),
    (sasl("auth", "!!not base64!!", mechanism="PLAIN"), "incorrect-encoding"),
], ids=["invalid-mechanism", "incorrect-encoding"])
def test_malformedAuth(node, data, condition):
    """An unknown mechanism or bad base64 fails with the matching condition."""
    client = node.connect()
    client.start()
    assert saslFailure(client.exchange(data)) == condition
    assert not client.transport.disconnecting


@pytest.mark.parametrize("requireTLS", [True, False])
def test_plainNeedsEncryption(tmp_path, requireTLS):
    """PLAIN before TLS fails with encryption-required, whether TLS is required or only PLAIN needs it."""
    node = Node(tmp_path, c2s={"require_tls": requireTLS, "plain_without_tls": False})
    client = node.connect()
    client.start()
    reply = client.exchange(plain("juliet", PASSWORDS["juliet"]))
    assert saslFailure(reply) == "encryption-required"


def test_invalidAuthzid(node):
    """Asking to act as another user fails with invalid-authzid, even with the right password."""
    client = node.connect()
    client.start()
    client.send(plain("juliet", PASSWORDS["juliet"], authzid="romeo@" + DOMAIN))
    node.clock.advance(node.limits.auth_failure_delay)
    assert saslFailure(client.received()) == "invalid-authzid"


def test_abort(node):
    """A client that aborts after the first challenge gets <failure><aborted/></failure>."""
    client = node.connect()
    client.start()
    reply = client.exchange(sasl("auth", mechanism="PLAIN"))
    assert reply.names == ["challenge"]
    assert saslFailure(client.exchange(sasl("abort"))) == "aborted"


def test_retryAfterFailure(node):
    """After a failed attempt the client may try again on the same stream and succeed."""
    client = node.connect()
    client.start()
    client.send(plain("juliet", "wrong"))
    node.clock.advance(node.limits.auth_failure_delay)
    assert saslFailure(client.received()) == "not-authorized"
    assert client.exchange(plain("juliet", PASSWORDS["juliet"])).names == ["success"]


def test_failureDelayed(tmp_path):
    """A failed login is answered only after the delay, not before."""
    node = Node(tmp_path, limits={"auth_failure_delay": 1.0, "auth_failure_delay_max": 8.0})
    client = node.connect()
    client.start()
    assert client.exchange(plain("juliet", "wrong")).data == b""
    node.clock.advance(0.5)
    assert client.received().data == b""
    node.clock.advance(0.5)
    assert saslFailure(client.received()) == "not-authorized"


def test_failureDelayGrowsPerAddress(tmp_path):
    """Each failure from one address doubles its delay, across connections, and no one else's."""
    node = Node(tmp_path, limits={"auth_failure_delay": 1.0, "auth_failure_delay_max": 8.0,
                                  "sasl_max_attempts": 5})

    def delayOf(client):
        client.send(plain("juliet", "wrong"))
        waited = 0.0
        while True:
            reply = client.received()
            if reply.elements:
                assert saslFailure(reply) == "not-authorized"
                return waited
            node.clock.advance(0.5)
            waited += 0.5

    first = node.connect("10.0.0.1")
    first.start()
    assert [delayOf(first), delayOf(first)] == [1.0, 2.0]
    again = node.connect("10.0.0.1")
    again.start()
    assert delayOf(again) == 4.0
    other = node.connect("10.0.0.2")
    other.start()
    assert delayOf(other) == 1.0


def test_tooManyFailures(tmp_path):
    """After sasl_max_attempts failures the stream closes with policy-violation."""
    node = Node(tmp_path, limits={"sasl_max_attempts": 3, "auth_failure_delay": 0})
    client = node.connect()
    client.start()
    assert saslFailure(client.exchange(plain("juliet", "wrong"))) == "not-authorized"
    assert saslFailure(client.exchange(plain("juliet", "wrong 2"))) == "not-authorized"
    reply = client.exchange(plain("juliet", "wrong again"))
    assert reply.names == ["failure", "error"]
    assertStreamError(client, reply, "policy-violation")


def test_authWhileFailurePending(tmp_path):
    """A new <auth/> sent before the previous failure arrived closes the stream."""
    node = Node(tmp_path, limits={"auth_failure_delay": 1.0})
    client = node.connect()
    client.start()
    client.send(plain("juliet", "wrong"))
    reply = client.exchange(plain("juliet", PASSWORDS["juliet"]))
    assertStreamError(client, reply, "policy-violation")


def test_authAfterSuccess(node):
    """Authenticating again on an authenticated stream is refused."""
    client = node.connect()
    client.authenticate()
    reply = client.exchange(plain("juliet", PASSWORDS["juliet"]))
    assertStreamError(client, reply, "policy-violation")


# -- resource binding and session (RFC 6120 §7, RFC 3921 §3) ---------------


def test_messageBeforeAuth(node):
    """A stanza before authentication gets the not-authorized stream error."""
    client = node.connect()
    client.start()
    reply = client.exchange(message("romeo@" + DOMAIN))
    assertStreamError(client, reply, "not-authorized")


def test_messageBeforeBind(node):
    """A stanza after authentication but before bind gets the not-authorized stream error."""
    client = node.connect()
    client.authenticate()
    reply = client.exchange(message("romeo@" + DOMAIN))
    assertStreamError(client, reply, "not-authorized")


def test_bindBeforeAuth(node):
    """A bind request before authentication gets the not-authorized stream error."""
    client = node.connect()
    client.start()
    reply = client.exchange("<iq type='set' id='b'><bind xmlns='%s'/></iq>" % NS_BIND)
    assertStreamError(client, reply, "not-authorized")


def test_bindGeneratesResource(node):
    """Binding without a resource gets a full JID with a resource the server made up."""
    client = node.connect()
    client.authenticate()
    reply = client.bind()
    assert reply.elements[0]["id"] == "bind1"
    bare, _, resource = client.jid.partition("/")
    assert bare == "juliet@" + DOMAIN
    assert resource


def test_bindRequestedResource(node):
    """Binding a resource gets exactly that full JID."""
    client = node.connect()
    client.authenticate()
    client.bind("balcony")
    assert client.jid == "juliet@%s/balcony" % DOMAIN


def test_bindInvalidResource(node):
    """A resource that is not a valid resourcepart gets bad-request."""
    client = node.connect()
    client.authenticate()
    reply = client.exchange("<iq type='set' id='b'><bind xmlns='%s'><resource>%s</resource>"
                            "</bind></iq>" % (NS_BIND, "x" * 1024))
    assert stanzaError(reply) == "bad-request"
    assert reply.elements[0]["id"] == "b"


def test_bindGet(node):
    """A bind request of type get gets bad-request."""
    client = node.connect()
    client.authenticate()
    reply = client.exchange("<iq type='get' id='b'><bind xmlns='%s'/></iq>" % NS_BIND)
    assert stanzaError(reply) == "bad-request"


def test_bindWithoutId(node):
    """A bind request without an id gets bad-request, not an unmatchable result."""
    client = node.connect()
    client.authenticate()
    reply = client.exchange("<iq type='set'><bind xmlns='%s'/></iq>" % NS_BIND)
    assert stanzaError(reply) == "bad-request"
    assert client.exchange(message("romeo@" + DOMAIN)).streamError == "not-authorized"


def test_secondBind(node):
    """A second bind on the same stream gets not-allowed."""
    client = node.connect()
    client.login(resource="balcony")
    reply = client.exchange("<iq type='set' id='b2'><bind xmlns='%s'><resource>garden"
                            "</resource></bind></iq>" % NS_BIND)
    assert stanzaError(reply) == "not-allowed"


def test_legacySession(node):
    """The legacy session request gets an empty result."""
    client = node.connect()
    client.login()
    reply = client.exchange("<iq type='set' id='s1'><session xmlns='%s'/></iq>" % NS_SESSION)
    [result] = reply.elements
    assert result["type"] == "result" and result["id"] == "s1"
    assert list(result.elements()) == []


def test_legacySessionToDomain(node):
    """The legacy session request addressed to the domain, as in RFC 3921 §3, gets a result."""
    client = node.connect()
    client.login()
    reply = client.exchange("<iq type='set' id='s1' to='%s'><session xmlns='%s'/></iq>"
                            % (DOMAIN, NS_SESSION))
    [result] = reply.elements
    assert result["type"] == "result" and result["id"] == "s1"


def test_resourceConflict(node):
    """Binding a full JID in use closes the older stream with conflict; the newer one works."""
    older = node.connect("10.0.0.1").login(resource="balcony")
    newer = node.connect("10.0.0.2")
    newer.authenticate()
    newer.bind("balcony")
    assertStreamError(older, older.received(), "conflict")
    older.disconnect()
    romeo = node.connect("10.0.0.3").login("romeo")
    romeo.send(message("juliet@%s/balcony" % DOMAIN, "still there?"))
    [delivered] = newer.received().elements
    assert str(delivered.body) == "still there?"
    assert older.received().data == b""


class SlowDirectory:
    """
    The node's session directory, except that binds settle only when the
    test calls L{settle}, as a directory shared by a cluster's nodes would.
    """

    def __init__(self, directory):
        self.directory = directory
        self.pending = []

    def bind(self, jid, stream):
        from twisted.internet import defer
        d = defer.Deferred()
        self.pending.append((jid, stream, d))
        return d

    def settle(self):
        pending, self.pending = self.pending, []
        for jid, stream, d in pending:
            self.directory.bind(jid, stream).chainDeferred(d)

    def __getattr__(self, name):
        return getattr(self.directory, name)


def slowBinds(node) -> SlowDirectory:
    slow = node.factory.sessions = SlowDirectory(node.server.sessions)
    return slow


def bindRequest(resource: str, id: str = "bind1") -> str:
    return ("<iq type='set' id='%s'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
            % (id, NS_BIND, resource))


def test_bindAnswersWhenTheDirectorySettles(node):
    """A client's bind result comes once the session directory has settled the claim."""
    romeo = node.connect("10.0.0.2").login("romeo")
    directory = slowBinds(node)
    juliet = node.connect("10.0.0.1")
    juliet.authenticate()
    assert juliet.exchange(bindRequest("balcony")).elements == []
    directory.settle()
    [result] = juliet.received().elements
    assert result["type"] == "result" and result["id"] == "bind1"
    romeo.send(message("juliet@%s/balcony" % DOMAIN, "settled"))
    [delivered] = juliet.received().elements
    assert str(delivered.body) == "settled"


def test_secondBindWhileBinding(node):
    """
    A second bind sent while the first is still being settled gets
    not-allowed, after the first one's result (RFC 6120 §10.1: in order).
    """
    directory = slowBinds(node)
    juliet = node.connect()
    juliet.authenticate()
    juliet.exchange(bindRequest("balcony"))
    assert juliet.exchange(bindRequest("garden", id="bind2")).elements == []
    directory.settle()
    result, refused = juliet.received().elements
    assert result["type"] == "result" and result["id"] == "bind1"
    assert refused["id"] == "bind2"
    assert stanzaError(Reply(refused.toXml().encode())) == "not-allowed"
    assert node.server.sessions.countOf(parseJID("juliet@" + DOMAIN)) == 1


def test_disconnectWhileBinding(node):
    """A client gone before its bind settled leaves no session behind: messages to it bounce."""
    romeo = node.connect("10.0.0.2").login("romeo")
    directory = slowBinds(node)
    juliet = node.connect("10.0.0.1")
    juliet.authenticate()
    juliet.exchange(bindRequest("balcony"))
    juliet.disconnect()
    directory.settle()
    assert node.server.sessions.get(parseJID("juliet@%s/balcony" % DOMAIN)) is None
    reply = romeo.exchange(message("juliet@%s/balcony" % DOMAIN, id="m1"))
    assert stanzaError(reply) == "service-unavailable"


# -- stanzas on a bound stream (RFC 6120 §8) ----------------------------------


def test_fromIsStamped(node):
    """A spoofed from is replaced by the sender's full JID before delivery."""
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    romeo.send(message(juliet.jid, "it is the east", **{"from": "mallory@evil.example/x"}))
    [delivered] = juliet.received().elements
    assert delivered["from"] == "romeo@%s/orchard" % DOMAIN
    assert str(delivered.body) == "it is the east"


def test_messageWithoutFromIsStamped(node):
    """A message without from reaches the recipient from the sender's full JID."""
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    romeo.send(message(juliet.jid))
    [delivered] = juliet.received().elements
    assert delivered["from"] == romeo.jid


def test_readdressedStanzaGoesToTheNewAddress(node):
    """A stanza a c2s/outgoing hook readdresses reaches the new recipient, not the one the client named."""
    balcony = node.connect("10.0.0.1").login(resource="balcony")
    garden = node.connect("10.0.0.3").login(resource="garden")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")

    def readdress(event):
        event.stanza["to"] = garden.jid
    node.server.hooks.add("c2s/outgoing", readdress)
    romeo.send(message(balcony.jid, "give her this"))
    assert balcony.received().data == b""
    [delivered] = garden.received().elements
    assert delivered["from"] == romeo.jid and str(delivered.body) == "give her this"


def test_stanzaReachesTheDomainWithTheStreamsJIDs(node):
    """A client's message reaches the domain's hooks with the sender's bound JID and the parsed recipient."""
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo", resource="orchard")
    seen = []
    node.server.hooks.add("message/full", lambda event: seen.append(event))
    romeo.send(message(juliet.jid, "hello"))
    [event] = seen
    assert event.sender is romeo.stream.jid
    assert event.recipient.full() == juliet.jid
    assert len(juliet.received().elements) == 1


def test_jidMalformed(node):
    """A stanza to an invalid JID gets jid-malformed."""
    client = node.connect().login()
    reply = client.exchange(message("juliet@@" + DOMAIN, id="m1"))
    assert stanzaError(reply) == "jid-malformed"
    assert reply.elements[0]["id"] == "m1"


def test_remoteServerNotFound(node):
    """A message to a domain nobody serves comes back with remote-server-not-found."""
    client = node.connect().login()
    reply = client.exchange(message("someone@elsewhere.example", id="m1"))
    assert stanzaError(reply) == "remote-server-not-found"
    assert reply.elements[0]["to"] == client.jid


def test_iqToServerUnknownPayload(node):
    """An IQ get to the server with a payload it does not know gets service-unavailable."""
    client = node.connect().login()
    reply = client.exchange("<iq type='get' id='q1' to='%s'><query xmlns='urn:example:what'/>"
                            "</iq>" % DOMAIN)
    assert stanzaError(reply) == "service-unavailable"
    assert reply.elements[0]["from"] == DOMAIN
    assert reply.elements[0]["id"] == "q1"


@pytest.mark.parametrize("iq", [
    "<iq type='get' to='%s'><query xmlns='urn:example:what'/></iq>" % DOMAIN,
    "<iq type='get' id='q1' to='%s'><a xmlns='urn:example:a'/><b xmlns='urn:example:b'/></iq>"
    % DOMAIN,
    "<iq type='get' id='q1' to='%s'/>" % DOMAIN,
    "<iq id='q1' to='%s'><query xmlns='urn:example:what'/></iq>" % DOMAIN,
], ids=["no-id", "two-payloads", "no-payload", "no-type"])
def test_badIQ(node, iq):
    """An IQ without id or type, or a get without exactly one payload, gets bad-request."""
    client = node.connect().login()
    assert stanzaError(client.exchange(iq)) == "bad-request"


def test_noErrorForError(node):
    """An error stanza that cannot be delivered is dropped, never answered."""
    client = node.connect().login()
    reply = client.exchange(message("someone@elsewhere.example", type="error"))
    assert reply.data == b""
    assert not client.transport.disconnecting


def test_noErrorForResult(node):
    """An IQ result that cannot be delivered is dropped, never answered."""
    client = node.connect().login()
    reply = client.exchange("<iq type='result' id='r1' to='someone@elsewhere.example'/>")
    assert reply.data == b""


def test_whitespaceKeepalive(node):
    """Whitespace between stanzas (RFC 6120 §4.6.1) is ignored and the stream goes on."""
    client = node.connect().login(resource="balcony")
    assert client.exchange(b" \n ").data == b""
    assert client.exchange(message(client.jid)).names == ["message"]


def test_unknownTopLevelElement(node):
    """An unknown top-level element gets unsupported-stanza-type."""
    client = node.connect().login()
    reply = client.exchange(b"<frobnicate xmlns='urn:example:frob'/>")
    assertStreamError(client, reply, "unsupported-stanza-type")


def test_stanzaInServerNamespace(node):
    """A stanza qualified by jabber:server on a client stream gets invalid-namespace."""
    client = node.connect().login()
    reply = client.exchange(b"<message xmlns='jabber:server' to='romeo@example.org'/>")
    assertStreamError(client, reply, "invalid-namespace")


def test_streamErrorFromClient(node):
    """A client that sends a stream error gets our footer and a close."""
    client = node.connect().login()
    reply = client.exchange(b"<stream:error><undefined-condition "
                            b"xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
    assert reply.data == b"</stream:stream>"
    assertClosing(client)


# -- hardened parsing (RFC 6120 §11, DESIGN §4) -----------------------------

BILLION_LAUGHS = (b"<?xml version='1.0'?><!DOCTYPE lolz ["
                  + b'<!ENTITY lol0 "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10)
                             for i in range(1, 10))
                  + b"]>" + header().split(b"?>", 1)[1]
                  + b"<message><body>&lol9;</body></message>")


def test_doctype(node):
    """A DOCTYPE gets restricted-xml."""
    client = node.connect()
    reply = client.exchange(b"<?xml version='1.0'?><!DOCTYPE stream>"
                            + header().split(b"?>", 1)[1])
    assertStreamError(client, reply, "restricted-xml", withHeader=True)


def test_billionLaughs(node):
    """A billion-laughs document gets restricted-xml and nothing in it is parsed."""
    client = node.connect()
    reply = client.exchange(BILLION_LAUGHS)
    assertStreamError(client, reply, "restricted-xml", withHeader=True)
    assert reply.names == ["error"]


@pytest.mark.parametrize("data", [b"<!-- a comment -->", b"<?xmpp-hint please?>"],
                         ids=["comment", "processing-instruction"])
def test_restrictedXML(node, data):
    """A comment or a processing instruction gets restricted-xml."""
    client = node.connect()
    client.start()
    reply = client.exchange(data)
    assertStreamError(client, reply, "restricted-xml")


@pytest.mark.parametrize("data, condition", [
    (header().replace(b"?>", b" encoding='UTF-16'?>", 1), "unsupported-encoding"),
    (header().replace(b"?>", b" encoding='ISO-8859-1'?>", 1), "unsupported-encoding"),
    (header().decode().encode("utf-16"), "unsupported-encoding"),
    (header().decode().encode("utf-16-be"), "unsupported-encoding"),
    (header().replace(b"version='1.0'?>", b"version='1.1'?>", 1), "unsupported-version"),
], ids=["declared-utf-16", "declared-latin-1", "utf-16-bom", "utf-16-no-bom", "xml-1.1"])
def test_xmlDeclaration(node, data, condition):
    """A stream declared or written in another encoding than UTF-8, or declaring XML 1.1, gets the stream error after our UTF-8 header."""
    client = node.connect()
    reply = client.exchange(data)
    assertStreamError(client, reply, condition, withHeader=True)
    assert reply.data.startswith(b"<?xml version='1.0'?><stream:stream ")
    reply.data.decode("utf-8")


@pytest.mark.parametrize("data", [b"<a></b>", b"<message><body>&undefined;</body></message>"],
                         ids=["mismatched-tags", "undefined-entity"])
def test_notWellFormed(node, data):
    """Malformed XML or an undefined entity gets not-well-formed."""
    client = node.connect()
    client.start()
    reply = client.exchange(data)
    assertStreamError(client, reply, "not-well-formed")


def test_largeStanzaBeforeAuth(node):
    """A 20 KB stanza before authentication gets policy-violation."""
    client = node.connect()
    client.start()
    reply = client.exchange(message("romeo@" + DOMAIN, "x" * 20000))
    assertStreamError(client, reply, "policy-violation")


def test_hugeTextNode(node):
    """A 10 MB text node in one read gets policy-violation after parsing only a little of it."""
    client = node.connect()
    client.start()
    parser = client.stream.parser
    fedBefore = parser.bytesFed
    reply = client.exchange(b"<message><body>" + b"x" * (10 * 1024 * 1024))
    assertStreamError(client, reply, "policy-violation")
    assert (parser.bytesFed - fedBefore
            <= node.limits.max_stanza_size_unauthenticated + PARSE_SLICE)


def test_largeStanzaAfterAuth(node):
    """A 200 KB stanza after authentication is delivered."""
    client = node.connect().login(resource="balcony")
    body = "x" * (200 * 1024)
    reply = client.exchange(message(client.jid, body))
    [delivered] = reply.elements
    assert str(delivered.body) == body


def test_tooDeep(node):
    """Nesting deeper than max_depth gets policy-violation."""
    client = node.connect().login()
    depth = node.limits.max_depth
    nested = b"<x>" * depth + b"</x>" * depth
    reply = client.exchange(b"<message to='romeo@example.org'>" + nested + b"</message>")
    assertStreamError(client, reply, "policy-violation")


def test_deepestNestingAllowed(node):
    """A stanza exactly max_depth levels deep, itself included, is delivered."""
    client = node.connect().login(resource="balcony")
    depth = node.limits.max_depth - 1
    nested = b"<x xmlns='urn:example:x'>" + b"<x>" * (depth - 1) + b"</x>" * depth
    reply = client.exchange(b"<message to='%s'>%s</message>" % (client.jid.encode(), nested))
    assert reply.names == ["message"]


def test_streamErrorStopsParsing(node):
    """After a stream error, the rest of the same read is not parsed."""
    client = node.connect()
    client.start()
    parser = client.stream.parser
    fedBefore = parser.bytesFed
    reply = client.exchange(message("romeo@" + DOMAIN) * 2000)
    assertStreamError(client, reply, "not-authorized")
    assert parser.bytesFed - fedBefore <= PARSE_SLICE


def test_errorLeavesOthersAlone(node):
    """A stream error on one connection leaves another connection working."""
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo")
    mallory = node.connect("10.0.0.3")
    mallory.start()
    assert mallory.exchange(b"<a></b>").streamError == "not-well-formed"
    romeo.send(message(juliet.jid, "still here"))
    [delivered] = juliet.received().elements
    assert str(delivered.body) == "still here"


# -- deadlines and limits (DESIGN §4) -------------------------------------


def test_negotiationTimeout(tmp_path):
    """A client not bound within negotiation_timeout gets connection-timeout."""
    node = Node(tmp_path, limits={"negotiation_timeout": 30})
    client = node.connect()
    client.authenticate()
    node.clock.advance(29.5)
    assert client.received().data == b""
    node.clock.advance(0.5)
    assertStreamError(client, client.received(), "connection-timeout")


def test_negotiationTimeoutSilentClient(tmp_path):
    """A client that never sends a header gets a header, connection-timeout and a close."""
    node = Node(tmp_path, limits={"negotiation_timeout": 30})
    client = node.connect()
    node.clock.advance(30)
    assertStreamError(client, client.received(), "connection-timeout", withHeader=True)


def test_boundStreamOutlivesNegotiationTimeout(tmp_path):
    """A bound stream is not closed by the negotiation deadline."""
    node = Node(tmp_path, limits={"negotiation_timeout": 30})
    client = node.connect().login(resource="balcony")
    node.clock.advance(300)
    assert client.received().data == b""
    assert not client.transport.disconnecting
    assert client.exchange(message(client.jid)).names == ["message"]


def test_connectionsPerAddress(tmp_path):
    """Connections from one address over the limit get policy-violation until one closes."""
    node = Node(tmp_path, limits={"connections_per_ip": 2})
    first, second = node.connect(), node.connect()
    assert second.start().streamError is None
    refused = node.connect()
    reply = refused.received()
    assertStreamError(refused, reply, "policy-violation", withHeader=True)
    assert reply.header["id"]
    assert node.connect("10.9.9.9").start().streamError is None
    first.disconnect()
    assert node.connect().start().streamError is None


def test_newConnectionsPerSecond(tmp_path):
    """New connections over the per-second rate are refused until time passes."""
    node = Node(tmp_path, limits={"new_connections_per_second": 1})
    accepted = [node.connect("10.0.0.%d" % i) for i in (1, 2)]
    assert all(c.start().streamError is None for c in accepted)
    refused = node.connect("10.0.0.3")
    assertStreamError(refused, refused.received(), "policy-violation", withHeader=True)
    node.clock.advance(1)
    assert node.connect("10.0.0.4").start().streamError is None


def test_refusedConnectionsCostNoRate(tmp_path):
    """Connections refused for their address, or for the rate, leave the rate to others."""
    node = Node(tmp_path, limits={"new_connections_per_second": 1, "connections_per_ip": 1})
    assert node.connect("10.0.0.1").start().streamError is None
    for _ in range(5):
        assert node.connect("10.0.0.1").received().streamError == "policy-violation"
    assert node.connect("10.0.0.2").start().streamError is None
    for _ in range(5):
        assert node.connect("10.0.0.3").received().streamError == "policy-violation"
    assert node.peers.count("10.0.0.3") == 0
    node.clock.advance(1)
    assert node.connect("10.0.0.4").start().streamError is None


def test_byteShaping(tmp_path):
    """A client reading faster than bytes_per_second is paused, then resumed; nothing is lost."""
    node = Node(tmp_path, limits={"bytes_per_second": 1024})
    client = node.connect().login(resource="balcony")
    node.clock.advance(10)  # refill the bucket after the login
    reply = client.exchange(message(client.jid, "x" * 4000))
    assert str(reply.elements[0].body) == "x" * 4000
    assert client.transport.producerState == "paused"
    node.clock.advance(2)
    assert client.transport.producerState == "producing"
    assert client.exchange(message(client.jid, "again")).names == ["message"]


def test_stanzaShaping(tmp_path):
    """A client sending more than stanzas_per_second is paused, then resumed."""
    node = Node(tmp_path, limits={"stanzas_per_second": 1})
    client = node.connect().login(resource="balcony")
    node.clock.advance(10)
    reply = client.exchange(message(client.jid) * 3)
    assert reply.names == ["message"] * 3
    assert client.transport.producerState == "paused"
    node.clock.advance(1)
    assert client.transport.producerState == "producing"


def test_sendQueueLimit(tmp_path):
    """A client that does not read is dropped once more than send_queue_limit is queued for it."""
    node = Node(tmp_path, limits={"max_stanza_size": 10240, "send_queue_limit": 10240})
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo")
    juliet.stream.sendQueue.pauseProducing()
    romeo.send(message(juliet.jid, "x" * 6000))
    assert not juliet.transport.aborted
    romeo.send(message(juliet.jid, "x" * 6000))
    assert juliet.transport.aborted
    assert not romeo.transport.disconnecting


def test_sendQueueDrained(tmp_path):
    """A client that catches up on reading is not dropped."""
    node = Node(tmp_path, limits={"max_stanza_size": 10240, "send_queue_limit": 10240})
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo")
    juliet.stream.sendQueue.pauseProducing()
    romeo.send(message(juliet.jid, "x" * 6000))
    juliet.stream.sendQueue.resumeProducing()
    juliet.stream.sendQueue.pauseProducing()
    romeo.send(message(juliet.jid, "x" * 6000))
    assert not juliet.transport.aborted


# -- closing (RFC 6120 §4.4) ----------------------------------------------------


def test_clientCloses(node):
    """A client closing its stream gets our footer and the connection is closed."""
    client = node.connect().login()
    reply = client.exchange(b"</stream:stream>")
    assert reply.data == b"</stream:stream>"
    assertClosing(client)


def test_closedStreamUnbinds(node):
    """Once a client's connection is gone, messages to its full JID bounce."""
    juliet = node.connect("10.0.0.1").login(resource="balcony")
    romeo = node.connect("10.0.0.2").login("romeo")
    juliet.disconnect()
    reply = romeo.exchange(message(juliet.jid, id="m1"))
    assert stanzaError(reply) == "service-unavailable"
    assert juliet.received().data == b""


def test_unreadFooterAborts(node):
    """A closing stream whose peer never reads the footer is aborted after a while."""
    client = node.connect().login()
    client.send(b"</stream:stream>")
    assert not client.transport.aborted
    node.clock.advance(10)
    assert client.transport.aborted


class RecordingClient(Protocol):
    """Sends C{greeting} once connected and keeps what comes back."""

    def __init__(self, greeting: bytes):
        self.greeting = greeting
        self.data = b""
        self.lost = False

    def connectionMade(self):
        self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.lost = True


def connectOverTLS(tmp_path, clientOptions, greeting=None):
    """
    A real in-memory TLS connection to a direct-TLS stream, the client
    sending C{greeting} (a stream header by default); (node, client TLS
    connection, recorder), once everything in flight has been delivered.
    """
    certPath, keyPath = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    tls.generateSelfSigned([DOMAIN], certPath, keyPath)
    node = Node(tmp_path, secure=True)
    serverFactory = TLSMemoryBIOFactory(tls.serverContextFactory(certPath, keyPath),
                                        False, node.factory)
    recorder = RecordingClient(header() if greeting is None else greeting)
    clientFactory = TLSMemoryBIOFactory(clientOptions, True,
                                        ClientFactory.forProtocol(lambda: recorder))
    # The unbuffered TLS protocol writes at once instead of on the next
    # reactor turn, so pumping the memory connection is enough.
    serverFactory.protocol = clientFactory.protocol = TLSMemoryBIOProtocol
    address = IPv4Address("TCP", "1.2.3.4", 1234)
    _, _, pump = connectedServerAndClient(
        lambda: serverFactory.buildProtocol(address),
        lambda: clientFactory.buildProtocol(address),
        serverTransportFactory=lambda p: FakeTransport(p, isServer=True, peerAddress=address))
    pump.flush()
    return node, recorder.transport.getHandle(), recorder


def test_streamErrorClosesTLS(tmp_path):
    """Over direct TLS, a stream error is followed by a real close at once, not at the abort."""
    node, _, recorder = connectOverTLS(tmp_path, CertificateOptions(),
                                       header() + message("romeo@" + DOMAIN))
    assert recorder.data.endswith(b"</stream:error></stream:stream>")
    assert b"<not-authorized " in recorder.data
    assert recorder.lost
    assert node.peers.size() == 0


def test_tls13OffersExporterBinding(tmp_path):
    """On TLS 1.3 the features offer SCRAM-PLUS with tls-exporter, bound to what the client derives too."""
    node, clientTLS, recorder = connectOverTLS(tmp_path, CertificateOptions())
    [stream] = node.factory.streams
    assert clientTLS.get_protocol_version_name() == "TLSv1.3"
    assert b"<mechanism>SCRAM-SHA-256-PLUS</mechanism>" in recorder.data
    assert b"<channel-binding type='tls-exporter'/>" in recorder.data
    bindings = stream.channelBindings()
    assert bindings["tls-exporter"] == clientTLS.export_keying_material(
        b"EXPORTER-Channel-Binding", 32)
    assert set(bindings) == {"tls-exporter", "tls-server-end-point"}


def test_tls12OffersUniqueBinding(tmp_path):
    """On TLS 1.2 the binding is tls-unique: the client's Finished message."""
    from twisted.internet.ssl import TLSVersion
    options = CertificateOptions(lowerMaximumSecurityTo=TLSVersion.TLSv1_2)
    node, clientTLS, recorder = connectOverTLS(tmp_path, options)
    [stream] = node.factory.streams
    assert clientTLS.get_protocol_version_name() == "TLSv1.2"
    assert b"<channel-binding type='tls-unique'/>" in recorder.data
    bindings = stream.channelBindings()
    assert bindings["tls-unique"] == clientTLS.get_finished()
    assert set(bindings) == {"tls-unique", "tls-server-end-point"}


def test_serverEndPointBinding(tmp_path):
    """
    tls-server-end-point (RFC 5929 §4.1) is offered on TLS and is the
    SHA-256 of the certificate the client received (signed with SHA-256).
    """
    import hashlib
    from OpenSSL import crypto
    node, clientTLS, recorder = connectOverTLS(tmp_path, CertificateOptions())
    [stream] = node.factory.streams
    assert b"<channel-binding type='tls-server-end-point'/>" in recorder.data
    peer = clientTLS.get_peer_certificate()
    assert b"sha256" in peer.get_signature_algorithm().lower()
    assert stream.channelBindings()["tls-server-end-point"] == hashlib.sha256(
        crypto.dump_certificate(crypto.FILETYPE_ASN1, peer)).digest()


def test_serverEndPointHashes():
    """MD5 and SHA-1 signed certificates bind with SHA-256; Ed25519 ones, with no hash, not at all."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID
    from OpenSSL import crypto
    from xmppd.c2s.stream import serverEndPoint

    def certificate(key, algorithm):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
        now = datetime.datetime(2026, 1, 1)
        built = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(key.public_key()).serial_number(1)
                 .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                 .sign(key, algorithm))
        return crypto.X509.from_cryptography(built), built

    import hashlib
    from cryptography.hazmat.primitives import serialization
    wrapped, built = certificate(ec.generate_private_key(ec.SECP256R1()), hashes.SHA384())
    der = built.public_bytes(serialization.Encoding.DER)
    assert serverEndPoint(wrapped) == hashlib.sha384(der).digest()

    # This cryptography no longer signs with SHA-1: a certificate that says it was.
    class SHA1Signed:
        signature_hash_algorithm = hashes.SHA1()

        def public_bytes(self, encoding):
            return der

    class Wrapped:
        def to_cryptography(self):
            return SHA1Signed()

    assert serverEndPoint(Wrapped()) == hashlib.sha256(der).digest()
    wrapped, _ = certificate(ed25519.Ed25519PrivateKey.generate(), None)
    assert serverEndPoint(wrapped) is None
    assert serverEndPoint(None) is None


def test_noBindingWithoutTLS(node):
    """An unencrypted stream offers no -PLUS mechanism and no binding types."""
    reply = node.connect().start()
    assert not any(name.endswith("-PLUS") for name in reply.mechanisms())
    assert ("urn:xmpp:sasl-cb:0", "sasl-channel-binding") not in reply.featureNames()


def test_verboseTrafficLog(tmp_path):
    """With log.verbose, every element in and out is logged with the stream's serial, passwords never."""
    from twisted.logger import formatEvent

    from xmppd.stream.traffic import TrafficLog
    events = []
    node = Node(tmp_path, verbose=True)
    node.server.traffic.log = Logger(observer=events.append, namespace="traffic")
    client = node.connect().login("juliet", "balcony")
    client.exchange(message("juliet@" + DOMAIN + "/balcony", "hello there"))
    lines = [formatEvent(event) for event in events]
    assert isinstance(node.server.traffic, TrafficLog)
    assert all(line.startswith("C2S#1 1.2.3.4 ") for line in lines)
    assert any(">> stream header to='%s'" % DOMAIN in line for line in lines)
    assert any(">> <message" in line and "hello there" in line for line in lines)
    assert any("<< <message" in line and "hello there" in line for line in lines)
    assert any("<auth mechanism='PLAIN'>[" in line for line in lines)
    assert not any(PASSWORDS["juliet"] in line or b64(PASSWORDS["juliet"].encode()) in line
                   or b64(("\0juliet\0" + PASSWORDS["juliet"]).encode()) in line
                   for line in lines)


def test_quietByDefault(node):
    """Without log.verbose no stream keeps a traffic log."""
    client = node.connect()
    assert client.stream.traffic is None


def test_trafficLogShowsWhatWasWritten(tmp_path):
    """With log.verbose, a stanza sent to a client is logged as the very text written to its connection."""
    from twisted.logger import formatEvent
    events = []
    node = Node(tmp_path, verbose=True)
    node.server.traffic.log = Logger(observer=events.append, namespace="traffic")
    client = node.connect().login("juliet", "balcony")
    del events[:]
    reply = client.exchange(message("juliet@" + DOMAIN + "/balcony", "hello there"))
    [line] = [formatEvent(event) for event in events if " << " in formatEvent(event)]
    assert line.split(" << ", 1)[1].encode("utf-8") == reply.data


def test_trafficLogHidesRegistrationPasswords():
    """The traffic log never shows the password of an in-band registration or password change."""
    from xmppd.stream.traffic import redacted
    from tests.test_router import parse
    element = parse("<iq type='set' id='r1'><query xmlns='jabber:iq:register'>"
                           "<username>bill</username><password>Calliope</password></query></iq>")
    line = redacted(element)
    assert "Calliope" not in line and "bill" in line and "[redacted]" in line
    assert str(element.query.password) == "Calliope"
