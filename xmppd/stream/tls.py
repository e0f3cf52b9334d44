# -*- test-case-name: tests.test_tls -*-
"""
The server's TLS certificates and context (RFC 6120 §5, RFC 7590, XEP-0368,
RFC 6066 §3 server name indication).

One L{serverContextFactory} serves both ways clients get TLS:

  - STARTTLS on C{c2s.endpoint}: C{transport.startTLS(contextFactory)};
  - direct TLS on C{c2s.direct_tls_endpoint} (XEP-0368): the listener is a
    plain endpoint whose protocol factory is wrapped in
    C{twisted.protocols.tls.TLSMemoryBIOFactory(contextFactory, False,
    factory)}.  We do not use C{ssl:} endpoints, so the certificate comes
    from C{[tls]} alone and both listeners share one context.

Virtual hosts may have certificates of their own (C{certificate} and
C{private_key} in C{[hosts."example.org"]}, gathered by
L{hostCertificates}).  The client's server name (SNI, RFC 6066 §3) then
picks the certificate during the handshake: the name of a domain with its
own certificate gets that one, any other name (or none) the node's.  SNI
decides on STARTTLS too, although the stream header already named the
domain: clients send SNI there as well (RFC 7590 §3.1 expects it), and one
rule for both ways in is easier to reason about.

When the operator names no certificate, L{ensureCertificate} makes a
self-signed one for every served domain under C{<data_dir>/tls/} and reuses
it on later starts; clients will ask their users to trust it, which is fine
for C{localhost} and tests, and the reason to configure a real one.

Every problem with the files raises L{TLSConfigError} with one line that
names the configuration key, never an OpenSSL traceback.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger

from xmppd.config.hosts import hostKey

log = Logger()

SELF_SIGNED_DIR = "tls"
SELF_SIGNED_CERT = "selfsigned-cert.pem"
SELF_SIGNED_KEY = "selfsigned-key.pem"
SELF_SIGNED_DAYS = 3650
#: A self-signed certificate this close to expiry is replaced at start.
RENEW_BEFORE = datetime.timedelta(days=30)

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)
_PEM_PRIVATE_KEY = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----\r?\n.*?-----END \1-----",
    re.DOTALL)


class TLSConfigError(Exception):
    """The certificate or key cannot be used; C{str()} is one line for operators."""


@dataclass(frozen=True)
class TLSCredentials:
    """A certificate chain (leaf first) and the private key of its leaf."""

    chain: tuple[x509.Certificate, ...]
    privateKey: object

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def notValidAfter(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def domains(self) -> list[str]:
        return namesOf(self.certificate)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"{key}: cannot read {path}: {e.strerror or e}") from None


def _subjectAltName(domain: str) -> x509.GeneralName:
    """The SAN entry for a served domain, as normalized by L{xmppd.config}."""
    if domain.startswith("["):
        return x509.IPAddress(ipaddress.ip_address(domain[1:-1]))
    try:
        return x509.IPAddress(ipaddress.IPv4Address(domain))
    except ValueError:
        # Certificates carry A-labels (RFC 6125 §6.4.2).
        if not domain.isascii():
            domain = idna.encode(domain).decode("ascii")
        return x509.DNSName(domain)


def _referenceName(domain: str) -> str:
    """A served domain in the form certificates use, for comparisons."""
    name = _subjectAltName(domain)
    return str(name.value).lower()


def namesOf(certificate: x509.Certificate) -> list[str]:
    """
    The names a certificate is valid for: its subjectAltName DNS names and
    IP addresses, or its common name when it has no subjectAltName.
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [str(attr.value) for attr in
                certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return ([str(n) for n in san.value.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.value.get_values_for_type(x509.IPAddress)])


def _covers(patterns: list[str], domain: str) -> bool:
    """Whether any name (RFC 6125 §6.4.3: a wildcard matches one label) covers C{domain}."""
    reference = _referenceName(domain)
    for pattern in (p.lower() for p in patterns):
        if pattern == reference:
            return True
        if pattern.startswith("*.") and "." in reference:
            if reference.split(".", 1)[1] == pattern[2:]:
                return True
    return False


def certificateDomains(certPath: str) -> list[str]:
    """The names the leaf certificate in C{certPath} is valid for."""
    return namesOf(_loadChain("tls.certificate", certPath)[0])


def _loadChain(key: str, certPath: str) -> tuple[x509.Certificate, ...]:
    data = _read(key, certPath)
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise TLSConfigError(f"{key}: {certPath} is not a PEM certificate")
    try:
        return tuple(x509.load_pem_x509_certificate(block) for block in blocks)
    except ValueError:
        raise TLSConfigError(f"{key}: {certPath} holds a damaged PEM certificate") from None


def _loadKey(keyPath: str, key: str = "tls.private_key") -> object:
    data = _read(key, keyPath)
    match = _PEM_PRIVATE_KEY.search(data)
    if match is None:
        raise TLSConfigError(f"{key}: {keyPath} is not a PEM private key")
    if match.group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in match.group(0):
        raise TLSConfigError(f"{key}: {keyPath} is protected by a passphrase; "
                             f"xmppd needs it unencrypted (and readable only by xmppd)")
    try:
        return serialization.load_pem_private_key(match.group(0), password=None)
    except (ValueError, TypeError, NotImplementedError):
        raise TLSConfigError(f"{key}: {keyPath} holds a damaged or "
                             f"unsupported private key") from None


def _publicBytes(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def loadCertificate(certPath: str, keyPath: str,
                    keys: tuple[str, str] = ("tls.certificate", "tls.private_key")
                    ) -> TLSCredentials:
    """
    Load a PEM chain (leaf first; the key may sit in the same file) and the
    leaf's private key.  An expired certificate still loads: see
    L{certificateProblems}, whose findings are warnings.  C{keys} are the
    configuration keys that named the two files, for messages.

    @raise TLSConfigError: a file is unreadable or not PEM, the key is
        encrypted, or the key does not belong to the certificate.
    """
    certificateKey, privateKeyKey = keys
    chain = _loadChain(certificateKey, certPath)
    privateKey = _loadKey(keyPath, privateKeyKey)
    if _publicBytes(chain[0].public_key()) != _publicBytes(privateKey.public_key()):
        raise TLSConfigError(f"{privateKeyKey} does not match {certificateKey} "
                             f"({keyPath} is the key of another certificate)")
    return TLSCredentials(chain, privateKey)


def certificateProblems(credentials: TLSCredentials, domains: tuple[str, ...] | list[str],
                        now: datetime.datetime | None = None,
                        key: str = "tls.certificate") -> list[str]:
    """
    What clients will dislike about a loaded certificate: it has expired,
    is not valid yet, or does not name a served domain.  One line each; the
    server logs them as warnings and starts anyway, since refusing to start
    would not get the operator a better certificate any sooner.
    """
    now = now or _now()
    certificate = credentials.certificate
    problems = []
    if certificate.not_valid_after_utc < now:
        problems.append(f"{key}: expired on "
                        f"{certificate.not_valid_after_utc:%Y-%m-%d}")
    if certificate.not_valid_before_utc > now:
        problems.append(f"{key}: not valid before "
                        f"{certificate.not_valid_before_utc:%Y-%m-%d}")
    names = namesOf(certificate)
    missing = [d for d in domains if not _covers(names, d)]
    if missing:
        problems.append(f"{key}: does not cover {', '.join(missing)} "
                        f"(it names {', '.join(names) or 'nothing'})")
    return problems


def generateSelfSigned(domains: tuple[str, ...] | list[str], certPath: str,
                       keyPath: str, now: datetime.datetime | None = None) -> None:
    """
    Write a new EC P-256 key (mode 0600) and a self-signed certificate valid
    for C{SELF_SIGNED_DAYS} days, naming every domain as a subjectAltName and
    the first one as common name.  Each file is replaced atomically.
    """
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    names = [_subjectAltName(d) for d in domains]
    firstName = str(names[0].value)
    # A CN is limited to 64 characters; with an empty subject the SAN must be
    # critical (RFC 5280 §4.2.1.6).
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, firstName)]
                        if len(firstName) <= 64 else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # clock skew
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=not len(subject))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    certificate = builder.sign(key, hashes.SHA256())
    _writeAtomically(keyPath, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    _writeAtomically(certPath, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _writeAtomically(path: str, data: bytes, mode: int) -> None:
    temporary = path + ".new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away, never added
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def selfSignedRenewalReason(config, now: datetime.datetime | None = None) -> str | None:
    """
    Why L{ensureCertificate} would (re)generate the self-signed pair now
    (C{"none yet"} when there is none), or C{None} when it would reuse it.
    """
    now = now or _now()
    certPath, keyPath = selfSignedPaths(config)
    if not (os.path.exists(certPath) and os.path.exists(keyPath)):
        return "none yet"
    try:
        credentials = loadCertificate(certPath, keyPath)
    except TLSConfigError as e:
        return str(e)
    if credentials.notValidAfter - RENEW_BEFORE < now:
        return "it expires soon"
    missing = [d for d in config.server.domains if not _covers(credentials.domains, d)]
    if missing:
        return f"it does not name {', '.join(missing)}"
    return None


def selfSignedPaths(config) -> tuple[str, str]:
    """Where L{ensureCertificate} keeps the self-signed certificate and key."""
    directory = os.path.join(config.server.data_dir, SELF_SIGNED_DIR)
    return os.path.join(directory, SELF_SIGNED_CERT), os.path.join(directory, SELF_SIGNED_KEY)


def ensureCertificate(config, now: datetime.datetime | None = None) -> tuple[str, str]:
    """
    The certificate and key files the server should use.

    With C{tls.certificate} and C{tls.private_key} set, both must be
    readable, and they are returned as they are.  Otherwise the self-signed
    pair in C{<data_dir>/tls/} is returned, generated first if it is
    missing, damaged, close to expiry or no longer covers C{server.domains}.

    @raise TLSConfigError: a configured file is unreadable, or the
        self-signed pair cannot be written.
    """
    if config.tls.certificate or config.tls.private_key:
        for key, path in (("tls.certificate", config.tls.certificate),
                          ("tls.private_key", config.tls.private_key)):
            if not path:
                raise TLSConfigError(f"{key}: must be set as well")
            _read(key, path)
        return config.tls.certificate, config.tls.private_key
    now = now or _now()
    certPath, keyPath = selfSignedPaths(config)
    reason = selfSignedRenewalReason(config, now)
    if reason is not None:
        directory = os.path.dirname(certPath)
        log.info("Generating a self-signed certificate for {domains} in "
                 "{directory} ({reason})", domains=", ".join(config.server.domains),
                 directory=directory, reason=reason)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            generateSelfSigned(config.server.domains, certPath, keyPath, now)
        except OSError as e:
            raise TLSConfigError(f"server.data_dir: cannot write the self-signed "
                                 f"certificate to {directory}: {e.strerror or e}") from None
    return certPath, keyPath


def hostCertificates(config) -> dict[str, tuple[str, str]]:
    """
    Served domain -> (certificate, private key) paths, for the domains
    whose C{[hosts]} table names a certificate of their own; the others use
    the node's.  Each file must be readable.

    @raise TLSConfigError: naming the C{hosts."domain"} key at fault.
    """
    credentials = {}
    for domain, host in config.hosts.items():
        if not host.certificate:
            continue
        for key, path in (("certificate", host.certificate),
                          ("private_key", host.private_key)):
            _read(hostKey(domain, key), path)
        credentials[domain] = (host.certificate, host.private_key)
    return credentials


def serverNameOf(domain: str) -> bytes:
    """
    How a client names C{domain} in SNI: the A-label form in lower case
    (RFC 6066 §3: "HostName" is the ASCII-compatible DNS name).
    """
    return _referenceName(domain).encode("ascii")


class SNICertificateOptions(CertificateOptions):
    """
    A L{CertificateOptions} whose context hands the handshake over to the
    context of the domain the client names (SNI), when that domain has a
    certificate of its own.  Older Twisted releases (which we support) have
    no C{contextForServerName}, so the callback is installed here.
    """

    def __init__(self, byServerName: dict[bytes, SSL.Context], **kwargs):
        CertificateOptions.__init__(self, **kwargs)
        self.byServerName = byServerName
        self.callbackInstalled = False
        #: What presents which certificate (C{"tls"}, C{'hosts."d".certificate'})
        #: -> its SHA-256 fingerprint, so a reload tells which ones changed.
        self.fingerprints: dict[str, bytes] = {}

    def getContext(self) -> SSL.Context:
        context = CertificateOptions.getContext(self)
        if not self.callbackInstalled:
            if self.byServerName:
                context.set_tlsext_servername_callback(self.onServerName)
            for each in (context, *self.byServerName.values()):
                each.set_alpn_select_callback(selectClientProtocol)
            self.callbackInstalled = True
        return context

    def adopt(self, other: "SNICertificateOptions") -> None:
        """
        Serve C{other}'s certificates from now on (a live reload): the
        listeners and STARTTLS ask L{getContext} for every new connection,
        while connections already made keep the context they were made with.
        """
        self._context = other.getContext()
        self.byServerName = other.byServerName
        self.fingerprints = other.fingerprints
        self.callbackInstalled = True

    def onServerName(self, connection: SSL.Connection) -> None:
        """Switch to the named domain's context; an unknown name keeps the node's."""
        name = connection.get_servername()
        if not name:
            return
        context = self.byServerName.get(name.lower().rstrip(b"."))
        if context is not None:
            connection.set_context(context)


#: ALPN protocol of client-to-server TLS (XEP-0368 §3).
ALPN_CLIENT = b"xmpp-client"


def selectClientProtocol(connection: SSL.Connection, offered: list[bytes]):
    """
    The ALPN answer of client streams, direct TLS and STARTTLS alike:
    C{xmpp-client} when the client offers it (XEP-0368 §3: Conversations
    and other clients do), else none, and the handshake goes on without
    ALPN.  Twisted's own answer, with nothing to choose from, is an empty
    protocol, which OpenSSL turns into an C{internal_error} alert that no
    such client gets past.
    """
    if ALPN_CLIENT in offered:
        return ALPN_CLIENT
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _options(credentials: TLSCredentials, optionsClass=CertificateOptions, **kwargs):
    # pyOpenSSL takes cryptography's objects directly (its own X509 and PKey
    # wrappers are deprecated), and Twisted hands them through unchanged.
    return optionsClass(
        privateKey=credentials.privateKey,
        certificate=credentials.certificate,
        extraCertChain=list(credentials.chain[1:]),
        raiseMinimumTo=TLSVersion.TLSv1_2,
        **kwargs,
    )


def serverContextFactory(certPath: str, keyPath: str,
                         hosts: Mapping[str, tuple[str, str]] | None = None
                         ) -> CertificateOptions:
    """
    A TLS server context for STARTTLS and direct TLS alike, with the whole
    chain and TLS 1.2 as the oldest version (RFC 7525 §3.1.1: TLS 1.0 and
    1.1 must not be negotiated; RFC 7590 applies it to XMPP).

    C{hosts} (served domain -> certificate and key paths, as from
    L{hostCertificates}) gives domains certificates of their own, chosen by
    SNI; the certificate of C{certPath} serves every other name.  A domain's
    certificate that does not name it, or has expired, is logged as a
    warning (see L{certificateProblems}).

    @raise TLSConfigError: as L{loadCertificate}, naming the C{hosts} key
        for a domain's files.
    """
    credentials = loadCertificate(certPath, keyPath)
    byServerName: dict[bytes, SSL.Context] = {}
    fingerprints = {"tls": credentials.certificate.fingerprint(hashes.SHA256())}
    for domain, (hostCert, hostKeyPath) in (hosts or {}).items():
        keys = (hostKey(domain, "certificate"), hostKey(domain, "private_key"))
        hostCredentials = loadCertificate(hostCert, hostKeyPath, keys)
        for problem in certificateProblems(hostCredentials, [domain], key=keys[0]):
            log.warn("{problem}", problem=problem)
        byServerName[serverNameOf(domain)] = _options(hostCredentials).getContext()
        fingerprints[keys[0]] = hostCredentials.certificate.fingerprint(hashes.SHA256())
    options = _options(credentials, SNICertificateOptions, byServerName=byServerName)
    options.fingerprints = fingerprints
    return options
