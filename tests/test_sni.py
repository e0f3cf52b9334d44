"""
Tests for server name indication (RFC 6066 §3) in L{xmppd.stream.tls}: a served
domain with a certificate of its own gets it when the client names that
domain, and every other client the node's certificate; with real TLS
handshakes in memory, on bare pyOpenSSL connections and through the
direct-TLS client listener.
"""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ClientFactory
from twisted.internet.ssl import Certificate, CertificateOptions, optionsForClientTLS
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.test.iosim import FakeTransport, connectedServerAndClient

from tests.streamhelpers import header
from tests.test_c2s import RecordingClient
from tests.test_vhosts import CLOSED, OPEN, VHostNode, writeConfig
from tests.tlshelpers import handshake as memoryHandshake
from xmppd.stream import tls
from xmppd.config import loadConfig
from xmppd.tap import makeService
from xmppd.stream.tls import TLSConfigError

IDN = "bücher.example"


def fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


class Files:
    """The node's certificate (naming both domains) and one of OPEN's own."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.default = self.make("node", [OPEN, CLOSED])
        self.open = self.make("open", [OPEN])

    def make(self, name, domains):
        certPath = str(self.tmp_path / f"{name}.crt")
        keyPath = str(self.tmp_path / f"{name}.key")
        tls.generateSelfSigned(domains, certPath, keyPath)
        return certPath, keyPath

    def leaf(self, files) -> x509.Certificate:
        return tls.loadCertificate(*files).certificate


@pytest.fixture
def files(tmp_path):
    return Files(tmp_path)


def handshake(serverContext: SSL.Context, serverName: bytes | None) -> x509.Certificate:
    """Handshake in memory with a client sending C{serverName}; the leaf it was shown."""
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    if serverName is not None:
        client.set_tlsext_host_name(serverName)
    memoryHandshake(client, SSL.Connection(serverContext, None))
    return client.get_peer_certificate(as_cryptography=True)


@pytest.mark.parametrize("serverName,owner", [
    (b"open.example", "open"),
    (b"OPEN.Example", "open"),
    (b"open.example.", "open"),
    (b"closed.example", "default"),
    (b"elsewhere.example", "default"),
    (None, "default"),
], ids=["own", "case", "trailing-dot", "other-domain", "unserved", "no-sni"])
def test_serverNameChoosesCertificate(files, serverName, owner):
    """The name a client sends picks its domain's certificate; any other name, or none, the node's."""
    context = tls.serverContextFactory(*files.default, {OPEN: files.open}).getContext()
    expected = files.leaf(files.open if owner == "open" else files.default)
    assert fingerprint(handshake(context, serverName)) == fingerprint(expected)


def test_internationalDomain(tmp_path):
    """A domain with non-ASCII letters is matched by the A-label clients send (RFC 6066 §3)."""
    files = Files(tmp_path)
    own = files.make("idn", [IDN])
    context = tls.serverContextFactory(*files.default, {IDN: own}).getContext()
    assert fingerprint(handshake(context, b"xn--bcher-kva.example")) == fingerprint(
        files.leaf(own))


def test_withoutHostsUnchanged(files):
    """Without domain certificates every client gets the node's, whatever name it sends."""
    options = tls.serverContextFactory(*files.default)
    assert isinstance(options, CertificateOptions)
    context = options.getContext()
    assert context is options.getContext()
    for serverName in (b"open.example", None):
        assert fingerprint(handshake(context, serverName)) == fingerprint(
            files.leaf(files.default))


def test_hostContextsKeepModernTLS(files):
    """A domain's own certificate comes with the same TLS 1.2 minimum as the node's."""
    context = tls.serverContextFactory(*files.default, {OPEN: files.open}).getContext()
    oldClient = SSL.Context(SSL.TLS_CLIENT_METHOD)
    oldClient.set_max_proto_version(SSL.TLS1_1_VERSION)
    server = SSL.Connection(context, None)
    server.set_accept_state()
    client = SSL.Connection(oldClient, None)
    client.set_tlsext_host_name(b"open.example")
    client.set_connect_state()
    with pytest.raises(SSL.Error):
        for _ in range(10):
            for connection in (client, server):
                try:
                    connection.do_handshake()
                except SSL.WantReadError:
                    pass
            for source, sink in ((client, server), (server, client)):
                try:
                    sink.bio_write(source.bio_read(65536))
                except SSL.WantReadError:
                    pass


# -- through the client listener ------------------------------------------------------


def connectDirectTLS(node, contextFactory, clientOptions, to: str):
    """
    A direct-TLS client connection to C{node} in memory, the client opening
    a stream to C{to}; (client TLS connection, recorder) once all is delivered.
    """
    serverFactory = TLSMemoryBIOFactory(contextFactory, False, node.factory)
    recorder = RecordingClient(header(to=to))
    clientFactory = TLSMemoryBIOFactory(clientOptions, True,
                                        ClientFactory.forProtocol(lambda: recorder))
    serverFactory.protocol = clientFactory.protocol = TLSMemoryBIOProtocol
    address = IPv4Address("TCP", "1.2.3.4", 1234)
    _, _, pump = connectedServerAndClient(
        lambda: serverFactory.buildProtocol(address),
        lambda: clientFactory.buildProtocol(address),
        serverTransportFactory=lambda p: FakeTransport(p, isServer=True, peerAddress=address))
    pump.flush()
    return recorder.transport.getHandle(), recorder


def trusting(which) -> Certificate:
    """The certificate of the pair C{which}, as the only one a client trusts."""
    with open(which[0], "rb") as f:
        return Certificate.loadPEM(f.read())


@pytest.mark.parametrize("domain,owner", [(OPEN, "open"), (CLOSED, "default")])
def test_listenerVerifiedPerDomain(tmp_path, files, domain, owner):
    """
    A client that checks the certificate for the domain it asks for (and
    trusts only that certificate) gets through the direct-TLS listener and
    is offered the stream features of that domain.
    """
    node = VHostNode(tmp_path, {OPEN: {"certificate": files.open[0],
                                       "private_key": files.open[1],
                                       "anonymous": True}}, secure=True)
    contextFactory = tls.serverContextFactory(*files.default, tls.hostCertificates(node.config))
    expected = files.open if owner == "open" else files.default
    clientOptions = optionsForClientTLS(domain, trustRoot=trusting(expected))
    clientTLS, recorder = connectDirectTLS(node, contextFactory, clientOptions, domain)
    assert fingerprint(clientTLS.get_peer_certificate(as_cryptography=True)) == fingerprint(
        files.leaf(expected))
    assert b"<stream:features>" in recorder.data and not recorder.lost
    assert (b"<mechanism>ANONYMOUS</mechanism>" in recorder.data) == (domain == OPEN)


def test_listenerWrongCertificateRefusedByClient(tmp_path, files):
    """A client asking for the other domain while trusting only OPEN's certificate gets no stream."""
    node = VHostNode(tmp_path, {OPEN: {"certificate": files.open[0],
                                       "private_key": files.open[1]}}, secure=True)
    contextFactory = tls.serverContextFactory(*files.default, tls.hostCertificates(node.config))
    clientOptions = optionsForClientTLS(CLOSED, trustRoot=trusting(files.open))
    _, recorder = connectDirectTLS(node, contextFactory, clientOptions, CLOSED)
    assert b"<stream:features>" not in recorder.data
    assert recorder.lost


# -- configuration and wiring ---------------------------------------------------------


def hostConfig(tmp_path, certificate, privateKey):
    return loadConfig(writeConfig(tmp_path, {OPEN: {"certificate": certificate,
                                                    "private_key": privateKey}}))


def test_hostCertificatesFromConfig(tmp_path, files):
    """Only the domains whose table names a certificate have credentials of their own."""
    config = hostConfig(tmp_path, *files.open)
    assert tls.hostCertificates(config) == {OPEN: files.open}


def test_unreadableHostCertificate(tmp_path, files):
    """A domain's certificate that cannot be read stops the node with the domain's key named."""
    missing = str(tmp_path / "missing.crt")
    config = hostConfig(tmp_path, missing, files.open[1])
    with pytest.raises(TLSConfigError) as raised:
        tls.hostCertificates(config)
    assert str(raised.value) == (f'hosts."{OPEN}".certificate: cannot read {missing}: '
                                 f'No such file or directory')


def test_mismatchedHostKey(tmp_path, files):
    """A domain's key that belongs to another certificate is refused naming the domain's keys."""
    config = hostConfig(tmp_path, files.open[0], files.default[1])
    with pytest.raises(TLSConfigError) as raised:
        tls.serverContextFactory(*files.default, tls.hostCertificates(config))
    assert str(raised.value).startswith(
        f'hosts."{OPEN}".private_key does not match hosts."{OPEN}".certificate')


def test_hostCertificateNotNamingDomain(tmp_path, files, monkeypatch):
    """A domain's certificate that does not name the domain is used, with a warning naming its key."""
    events = []
    monkeypatch.setattr(tls, "log", Logger(observer=events.append))
    other = files.make("other", ["elsewhere.example"])
    tls.serverContextFactory(*files.default, {OPEN: other})
    [warning] = events
    assert warning["log_level"].name == "warn"
    assert warning["problem"] == (f'hosts."{OPEN}".certificate: does not cover {OPEN} '
                                  f'(it names elsewhere.example)')


def test_nodeWiresHostCertificates(tmp_path, files):
    """The node's client listeners get a context that knows the domains' own certificates."""
    config = hostConfig(tmp_path, *files.open)
    service = makeService(config)
    options = service.getServiceNamed("c2s").tlsOptions
    context = options.getContext()
    assert fingerprint(handshake(context, OPEN.encode())) == fingerprint(files.leaf(files.open))
    assert fingerprint(handshake(context, CLOSED.encode())) != fingerprint(
        files.leaf(files.open))
