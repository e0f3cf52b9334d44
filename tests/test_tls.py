"""
Tests for L{xmppd.stream.tls}: the self-signed certificate made on first start,
loading an operator's certificate with readable errors, and a context that
refuses old TLS versions.
"""

import datetime
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from tests.tlshelpers import handshake as memoryHandshake
from xmppd.stream import tls
from xmppd.config import loadConfig
from xmppd.stream.tls import TLSConfigError


def makeConfig(tmp_path, domains=("example.org", "chat.example.org"), tlsSection=""):
    path = tmp_path / "xmppd.toml"
    path.write_text(f"[server]\ndomains = {list(domains)!r}\n"
                    f"data_dir = {str(tmp_path / 'data')!r}\n{tlsSection}".replace("'", '"'))
    return loadConfig(str(path))


def selfSigned(tmp_path, domains=("example.org",), name="server", now=None):
    certPath, keyPath = str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")
    tls.generateSelfSigned(list(domains), certPath, keyPath, now)
    return certPath, keyPath


def readCertificate(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_selfSignedCoversEveryDomain(tmp_path):
    """The generated certificate names every served domain, the first as common name."""
    config = makeConfig(tmp_path, ("example.org", "chat.example.org", "bücher.de",
                                   "127.0.0.1", "[::1]"))
    certPath, keyPath = tls.ensureCertificate(config)
    assert os.path.dirname(certPath) == str(tmp_path / "data" / "tls")
    certificate = readCertificate(certPath)
    assert tls.certificateDomains(certPath) == [
        "example.org", "chat.example.org", "xn--bcher-kva.de", "127.0.0.1", "::1"]
    [commonName] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert commonName.value == "example.org"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3650)
    assert tls.certificateProblems(tls.loadCertificate(certPath, keyPath),
                                   config.server.domains) == []


def test_selfSignedKeyPrivate(tmp_path):
    """Only the server's user can read the generated private key."""
    _, keyPath = tls.ensureCertificate(makeConfig(tmp_path))
    assert stat.S_IMODE(os.stat(keyPath).st_mode) == 0o600


def test_selfSignedReused(tmp_path):
    """A restart keeps the certificate clients were asked to trust."""
    config = makeConfig(tmp_path)
    certPath, keyPath = tls.ensureCertificate(config)
    with open(certPath, "rb") as f:
        first = f.read()
    assert tls.ensureCertificate(config) == (certPath, keyPath)
    with open(certPath, "rb") as f:
        assert f.read() == first


def test_selfSignedRenewedForNewDomain(tmp_path):
    """Adding a served domain gets a self-signed certificate that names it too."""
    tls.ensureCertificate(makeConfig(tmp_path, ("example.org",)))
    certPath, _ = tls.ensureCertificate(makeConfig(tmp_path, ("example.org", "example.net")))
    assert tls.certificateDomains(certPath) == ["example.org", "example.net"]


def test_selfSignedRenewedBeforeExpiry(tmp_path):
    """A self-signed certificate about to expire is replaced at start."""
    config = makeConfig(tmp_path)
    certPath, _ = tls.ensureCertificate(config)
    later = readCertificate(certPath).not_valid_after_utc - datetime.timedelta(days=1)
    tls.ensureCertificate(config, now=later)
    assert readCertificate(certPath).not_valid_after_utc > later + datetime.timedelta(days=3000)


def test_selfSignedUnwritable(tmp_path):
    """A data directory that cannot hold the certificate is named in the error."""
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(TLSConfigError) as raised:
        tls.ensureCertificate(makeConfig(tmp_path))
    assert str(raised.value).startswith("server.data_dir: cannot write the self-signed "
                                        "certificate to ")


def test_configuredCertificateUsedAsIs(tmp_path):
    """A configured certificate is used, and no self-signed one is made."""
    certPath, keyPath = selfSigned(tmp_path)
    config = makeConfig(tmp_path, tlsSection=f'[tls]\ncertificate = "{certPath}"\n'
                                             f'private_key = "{keyPath}"\n')
    assert tls.ensureCertificate(config) == (certPath, keyPath)
    assert not (tmp_path / "data").exists()


def test_configuredCertificateMissing(tmp_path):
    """A configured certificate that cannot be read is named with the reason."""
    missing = str(tmp_path / "missing.pem")
    _, keyPath = selfSigned(tmp_path)
    config = makeConfig(tmp_path, tlsSection=f'[tls]\ncertificate = "{missing}"\n'
                                             f'private_key = "{keyPath}"\n')
    with pytest.raises(TLSConfigError) as raised:
        tls.ensureCertificate(config)
    assert str(raised.value) == (
        f"tls.certificate: cannot read {missing}: No such file or directory")


def test_mismatchedKey(tmp_path):
    """A key that belongs to another certificate is refused in plain words."""
    certPath, _ = selfSigned(tmp_path, name="one")
    _, otherKey = selfSigned(tmp_path, name="two")
    with pytest.raises(TLSConfigError) as raised:
        tls.loadCertificate(certPath, otherKey)
    assert str(raised.value).startswith("tls.private_key does not match tls.certificate")


def test_notPEM(tmp_path):
    """A file that is not a PEM certificate or key is named as such."""
    certPath, keyPath = selfSigned(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(TLSConfigError) as raised:
        tls.loadCertificate(str(junk), keyPath)
    assert str(raised.value) == f"tls.certificate: {junk} is not a PEM certificate"
    with pytest.raises(TLSConfigError) as raised:
        tls.loadCertificate(certPath, str(junk))
    assert str(raised.value) == f"tls.private_key: {junk} is not a PEM private key"
    with pytest.raises(TLSConfigError) as raised:
        tls.loadCertificate(keyPath, keyPath)
    assert str(raised.value) == f"tls.certificate: {keyPath} is not a PEM certificate"


def test_encryptedKey(tmp_path):
    """A key protected by a passphrase is refused with the reason."""
    certPath, keyPath = selfSigned(tmp_path)
    with open(keyPath, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(TLSConfigError) as raised:
        tls.loadCertificate(certPath, str(encrypted))
    assert "is protected by a passphrase" in str(raised.value)


def test_combinedFile(tmp_path):
    """A single file holding the key and the certificate serves as both."""
    certPath, keyPath = selfSigned(tmp_path)
    combined = tmp_path / "combined.pem"
    with open(keyPath, "rb") as k, open(certPath, "rb") as c:
        combined.write_bytes(k.read() + c.read())
    credentials = tls.loadCertificate(str(combined), str(combined))
    assert credentials.domains == ["example.org"]


def test_chainKept(tmp_path):
    """Intermediate certificates after the leaf are sent to clients too."""
    certPath, keyPath = selfSigned(tmp_path)
    intermediate, _ = selfSigned(tmp_path, ("intermediate.example",), name="ca")
    chain = tmp_path / "chain.pem"
    with open(certPath, "rb") as leaf, open(intermediate, "rb") as other:
        chain.write_bytes(leaf.read() + other.read())
    credentials = tls.loadCertificate(str(chain), keyPath)
    assert len(credentials.chain) == 2
    assert tls.serverContextFactory(str(chain), keyPath).extraCertChain == [
        credentials.chain[1]]


def test_problemsAreWarnings(tmp_path):
    """An expired certificate for other names still loads, and each problem is reported."""
    longAgo = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=8000)
    certPath, keyPath = selfSigned(tmp_path, ("*.example.org",), now=longAgo)
    credentials = tls.loadCertificate(certPath, keyPath)
    problems = tls.certificateProblems(credentials, ("chat.example.org", "example.org"))
    assert problems == [
        f"tls.certificate: expired on {credentials.notValidAfter:%Y-%m-%d}",
        "tls.certificate: does not cover example.org (it names *.example.org)",
    ]


# The context, exercised by in-memory handshakes with pyOpenSSL clients.


def handshake(serverContext, clientContext):
    """Run a TLS handshake over memory buffers; return the version agreed on."""
    client = SSL.Connection(clientContext, None)
    memoryHandshake(client, SSL.Connection(serverContext, None))
    return client.get_protocol_version_name()


def clientContext(maximumVersion):
    """A client willing to speak anything up to C{maximumVersion}, even TLS 1.1."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.set_min_proto_version(0)
    context.set_max_proto_version(maximumVersion)
    return context


@pytest.fixture
def serverFiles(tmp_path):
    return selfSigned(tmp_path)


def test_contextSpeaksModernTLS(serverFiles):
    """Clients get TLS 1.3, or TLS 1.2 when that is their best."""
    context = tls.serverContextFactory(*serverFiles).getContext()
    assert handshake(context, clientContext(SSL.TLS1_3_VERSION)) == "TLSv1.3"
    assert handshake(context, clientContext(SSL.TLS1_2_VERSION)) == "TLSv1.2"


def test_contextRefusesTLS11(serverFiles):
    """A client that cannot do better than TLS 1.1 is refused (RFC 7525)."""
    credentials = tls.loadCertificate(*serverFiles)
    # The same client succeeds against a server without our minimum, so the
    # refusal below is the context's doing, not the client's or OpenSSL's.
    permissive = SSL.Context(SSL.TLS_METHOD)
    permissive.use_certificate(credentials.certificate)
    permissive.use_privatekey(credentials.privateKey)
    permissive.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    permissive.set_min_proto_version(0)
    try:
        assert handshake(permissive, clientContext(SSL.TLS1_1_VERSION)) == "TLSv1.1"
    except SSL.Error:
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all")
    context = tls.serverContextFactory(*serverFiles).getContext()
    with pytest.raises(SSL.Error):
        handshake(context, clientContext(SSL.TLS1_1_VERSION))


def test_contextRefusesBadFiles(tmp_path):
    """The context factory gives the same readable error as loading the files."""
    certPath, _ = selfSigned(tmp_path, name="one")
    _, otherKey = selfSigned(tmp_path, name="two")
    with pytest.raises(TLSConfigError):
        tls.serverContextFactory(certPath, otherKey)
