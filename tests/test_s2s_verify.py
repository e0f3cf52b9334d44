"""
Tests for L{xmppd.s2s.verify}: certificate verdicts with real certificates
made by L{xmppd.stream.tls.generateSelfSigned}, and the TLS connection creators.
"""

from __future__ import annotations

import datetime

import pytest
from OpenSSL import SSL

from tests.tlshelpers import handshake
from xmppd.s2s.verify import (ALPN_SERVER, ClientCreator, ServerCreator, TrustStore,
                              peerChain)
from xmppd.stream.tls import TLSConfigError, generateSelfSigned, loadCertificate


@pytest.fixture
def certificates(tmp_path):
    """Self-signed pairs for a.example and b.example: {domain: (cert path, key path)}."""
    made = {}
    for domain in ("a.example", "b.example"):
        paths = (str(tmp_path / f"{domain}.pem"), str(tmp_path / f"{domain}.key"))
        generateSelfSigned([domain], *paths)
        made[domain] = paths
    return made


def chainOf(paths):
    return list(loadCertificate(*paths).chain)


def test_trusted(certificates):
    """A certificate from the trusted bundle that names the domain is valid."""
    store = TrustStore(certificates["a.example"][0])
    check = store.check(chainOf(certificates["a.example"]), "a.example")
    assert check.valid and check.reason == ""


def test_untrusted(certificates):
    """A self-signed certificate that is not in the bundle is not valid, and says why."""
    check = TrustStore(certificates["a.example"][0]).check(
        chainOf(certificates["b.example"]), "b.example")
    assert not check.valid and "self-signed" in check.reason


def test_wrongName(certificates):
    """A trusted certificate for another domain is not valid for this one."""
    check = TrustStore(certificates["a.example"][0]).check(
        chainOf(certificates["a.example"]), "b.example")
    assert not check.valid and "not valid for b.example" in check.reason


def test_expired(tmp_path):
    """An expired certificate is not valid even when trusted."""
    paths = (str(tmp_path / "old.pem"), str(tmp_path / "old.key"))
    generateSelfSigned(["old.example"], *paths,
                       now=datetime.datetime.now(datetime.timezone.utc)
                       - datetime.timedelta(days=4000))
    check = TrustStore(paths[0]).check(chainOf(paths), "old.example")
    assert not check.valid and "expired" in check.reason


def test_noCertificate(certificates):
    """A peer that presented nothing has no valid certificate."""
    assert not TrustStore(certificates["a.example"][0]).check([], "a.example").valid


def test_systemStore(certificates):
    """Without ca_file the system's trust store is used, and a self-signed certificate is not in it."""
    check = TrustStore("").check(chainOf(certificates["a.example"]), "a.example")
    assert not check.valid and "self-signed" in check.reason


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"), (b"not a certificate", "holds no PEM certificate")])
def test_badCAFile(tmp_path, content, message):
    """An unreadable or empty ca_file is a one-line configuration error naming the key."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TLSConfigError) as raised:
        TrustStore(str(path))
    assert str(raised.value).startswith("s2s.ca_file: ") and message in str(raised.value)


def test_peerChainWithoutTLS():
    """A transport without TLS has no peer certificates."""
    assert peerChain(object()) == []


def test_clientCreator(certificates):
    """Outgoing TLS names the destination with SNI, presents our certificate, and asks for xmpp-server ALPN on direct TLS."""
    creator = ClientCreator(*certificates["a.example"])
    connection = creator.forDomain("b.example", "a.example").clientConnectionForTLS(None)
    assert isinstance(connection, SSL.Connection)
    assert connection.get_context().get_verify_mode() == SSL.VERIFY_PEER
    direct = creator.forDomain("b.example", directTLS=True)
    assert direct.directTLS and direct.clientConnectionForTLS(None) is not None
    assert ALPN_SERVER == b"xmpp-server"


def test_clientCreatorPerDomain(certificates):
    """A served domain with a certificate of its own presents it on its outgoing streams."""
    creator = ClientCreator(*certificates["a.example"], {"b.example": certificates["b.example"]})
    assert creator.forDomain("x.example", "b.example").context is creator.contexts["b.example"]
    assert creator.forDomain("x.example", "a.example").context is creator.default


class StartTLSProtocol:
    """What Twisted's C{startTLS} gives a TLS connection: a factory that wraps no factory."""

    class factory:
        wrappedFactory = None


def incoming(creator: ServerCreator) -> SSL.Connection:
    """A server connection as an incoming STARTTLS makes it."""
    connection = creator.serverConnectionForTLS(StartTLSProtocol())
    connection.set_app_data(StartTLSProtocol())
    return connection


def test_serverCreatorAsksForCertificate(certificates):
    """Incoming TLS asks the peer for its certificate without making it a condition."""
    creator = ServerCreator(*certificates["a.example"])

    connection = incoming(creator)
    assert connection.get_verify_mode() == SSL.VERIFY_PEER

    client = ClientCreator(*certificates["b.example"]).forDomain("a.example", "b.example")
    connection = incoming(creator)
    handshake(client.clientConnectionForTLS(None), connection)
    assert peerChain(_Transport(connection))[0] == chainOf(certificates["b.example"])[0]


class _Transport:
    def __init__(self, connection):
        self.connection = connection

    def getHandle(self):
        return self.connection


def test_startTLSWithALPN(certificates):
    """A peer that offers ALPN xmpp-server on STARTTLS, as Prosody does, gets it instead of a failed handshake."""
    creator = ServerCreator(*certificates["a.example"])
    client = ClientCreator(*certificates["b.example"]).forDomain(
        "a.example", "b.example", directTLS=True).clientConnectionForTLS(None)
    server = incoming(creator)

    handshake(client, server)

    assert client.get_alpn_proto_negotiated() == ALPN_SERVER
    assert server.get_alpn_proto_negotiated() == ALPN_SERVER


def test_otherALPN(certificates):
    """A peer that offers only protocols other than xmpp-server still gets TLS, without ALPN."""
    creator = ServerCreator(*certificates["a.example"])
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    client = SSL.Connection(context, None)
    client.set_alpn_protos([b"xmpp-client"])
    server = incoming(creator)

    handshake(client, server)

    assert client.get_alpn_proto_negotiated() == b""


def test_serverCreatorPerDomain(certificates):
    """A served domain with a certificate of its own presents it to peers that name it with SNI."""
    creator = ServerCreator(*certificates["a.example"], {"b.example": certificates["b.example"]})
    peer = ClientCreator(*certificates["a.example"])

    for named, expected in (("b.example", "b.example"), ("other.example", "a.example")):
        client = peer.forDomain(named, "a.example").clientConnectionForTLS(None)
        handshake(client, incoming(creator))
        presented = client.get_peer_certificate(as_cryptography=True)
        assert presented == chainOf(certificates[expected])[0]
