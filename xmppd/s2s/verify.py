# -*- test-case-name: tests.test_s2s_verify -*-
"""
Who is on the other end of a server-to-server stream: certificate checks
(RFC 6120 §13.7.2, RFC 6125 via service-identity) and the TLS connection
creators of both directions.

A peer's certificate is valid for a domain when its chain leads to a
certificate authority of C{s2s.ca_file} (the system's trust store when it is
empty), it is within its validity period, and it names the domain
(subjectAltName DNS names, RFC 6125 §6.4).  The check runs after the
handshake, on what the peer presented: the handshake itself accepts any
certificate, since an invalid one is not a reason to refuse the connection
while dialback (XEP-0220) can still authenticate the peer.

Both directions present the node's own certificate, so that the peer can
authenticate us with SASL EXTERNAL (XEP-0178): the receiving side asks for
the initiating side's certificate (a TLS client certificate), and the
initiating side names the domain it wants with SNI.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.internet.interfaces import (IOpenSSLClientConnectionCreator,
                                         IOpenSSLContextFactory,
                                         IOpenSSLServerConnectionCreator)
from zope.interface import implementer

from xmppd.tls import TLSConfigError, loadCertificate

#: ALPN protocol of server-to-server direct TLS (XEP-0368 §3).
ALPN_SERVER = b"xmpp-server"


@dataclass(frozen=True)
class CertificateCheck:
    """The verdict on a peer's certificate: C{valid}, and why not in C{reason}."""

    valid: bool
    reason: str = ""


class TrustStore:
    """
    The certificate authorities peers' certificates are checked against:
    C{caFile} (a PEM bundle), or the system's default locations.

    @raise TLSConfigError: C{caFile} cannot be read or holds no certificate.
    """

    def __init__(self, caFile: str = ""):
        self.caFile = caFile
        store = crypto.X509Store()
        if caFile:
            try:
                with open(caFile, "rb") as f:
                    pem = f.read()
            except OSError as e:
                raise TLSConfigError(f"s2s.ca_file: cannot read {caFile}: "
                                     f"{e.strerror or e}") from None
            if b"-----BEGIN CERTIFICATE-----" not in pem:
                raise TLSConfigError(f"s2s.ca_file: {caFile} holds no PEM certificate")
        try:
            if caFile:
                store.load_locations(caFile)
            else:
                paths = ssl.get_default_verify_paths()
                if paths.cafile or paths.capath:
                    store.load_locations(paths.cafile, paths.capath)
        except (crypto.Error, OSError) as e:
            where = caFile or "the system trust store"
            raise TLSConfigError(f"s2s.ca_file: cannot load {where}: "
                                 f"{_opensslReason(e)}") from None
        self.store = store

    def check(self, chain: list[x509.Certificate], domain: str) -> CertificateCheck:
        """Whether C{chain} (leaf first) is a valid certificate for C{domain}."""
        if not chain:
            return CertificateCheck(False, "no certificate presented")
        leaf = chain[0]
        try:
            context = crypto.X509StoreContext(
                self.store, crypto.X509.from_cryptography(leaf),
                [crypto.X509.from_cryptography(c) for c in chain[1:]])
            context.verify_certificate()
        except crypto.X509StoreContextError as e:
            return CertificateCheck(False, "not trusted: %s" % (_opensslReason(e),))
        try:
            verify_certificate_hostname(leaf, domain)
        except (VerificationError, CertificateError, ValueError) as e:
            return CertificateCheck(False, "not valid for %s (%s)" % (domain, _brief(e)))
        return CertificateCheck(True)


def _opensslReason(error: Exception) -> str:
    """One short line out of an OpenSSL error."""
    args = getattr(error, "args", ())
    if args and isinstance(args[0], list) and args[0]:
        first = args[0][-1]
        return str(first[-1]) if isinstance(first, tuple) else str(first)
    return str(error) or type(error).__name__


def _brief(error: Exception) -> str:
    names = [type(e).__name__ for e in getattr(error, "errors", ())]
    return ", ".join(names) or str(error) or type(error).__name__


def peerChain(transport) -> list[x509.Certificate]:
    """
    The certificates the peer presented on a TLS transport, leaf first
    (empty without TLS or without a certificate).  On the receiving side
    OpenSSL's chain lacks the leaf, on the initiating side it starts with
    it: both come out the same here.
    """
    getHandle = getattr(transport, "getHandle", None)
    connection = getHandle() if getHandle is not None else None
    if not isinstance(connection, SSL.Connection):
        return []
    leaf = connection.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return []
    rest = connection.get_peer_cert_chain(as_cryptography=True) or []
    return [leaf] + [c for c in rest if c != leaf]


def _acceptAny(connection, certificate, errno, depth, ok) -> bool:
    # The verdict comes later, from TrustStore.check: a certificate we do not
    # trust still leaves dialback (XEP-0220) to authenticate the peer.
    return True


@implementer(IOpenSSLClientConnectionCreator)
class ClientCreator:
    """
    TLS for outgoing streams: the certificate of the domain we connect for
    (for the peer's SASL EXTERNAL; C{hosts} gives domains their own, the
    node's serves the others), TLS 1.2 at least (RFC 7590), SNI naming the
    destination domain, and ALPN C{xmpp-server} on direct TLS (XEP-0368).

    @raise TLSConfigError: as L{xmppd.tls.loadCertificate}.
    """

    def __init__(self, certPath: str, keyPath: str,
                 hosts: Mapping[str, tuple[str, str]] | None = None):
        self.default = _clientContext(certPath, keyPath)
        self.contexts = {domain: _clientContext(*paths) for domain, paths in (hosts or {}).items()}

    def forDomain(self, remote: str, local: str | None = None,
                  directTLS: bool = False) -> "_DomainCreator":
        """The creator of connections from C{local} to C{remote}'s server."""
        return _DomainCreator(self.contexts.get(local, self.default), remote, directTLS)


def _clientContext(certPath: str, keyPath: str) -> SSL.Context:
    credentials = loadCertificate(certPath, keyPath)
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate(credentials.certificate)
    for extra in credentials.chain[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(credentials.privateKey)
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER, _acceptAny)
    return context


@implementer(IOpenSSLClientConnectionCreator)
class _DomainCreator:
    def __init__(self, context: SSL.Context, domain: str, directTLS: bool):
        self.context = context
        self.domain = domain
        self.directTLS = directTLS

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        try:
            name = self.domain.encode("idna")
        except UnicodeError:
            name = None
        if name and not self.domain.startswith("[") and not _isAddress(self.domain):
            connection.set_tlsext_host_name(name)
        if self.directTLS:
            connection.set_alpn_protos([ALPN_SERVER])
        return connection


def _isAddress(domain: str) -> bool:
    return domain.replace(".", "").isdigit()


@implementer(IOpenSSLServerConnectionCreator)
class ServerCreator:
    """
    TLS for incoming streams: the node's server context (from
    L{xmppd.tls.serverContextFactory}, which chooses the certificate), and
    a request for the peer's certificate, which any certificate satisfies
    (see L{TrustStore.check}).
    """

    def __init__(self, inner):
        self.inner = inner

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        if IOpenSSLServerConnectionCreator.providedBy(self.inner):
            connection = self.inner.serverConnectionForTLS(tlsProtocol)
        elif IOpenSSLContextFactory.providedBy(self.inner) or hasattr(self.inner, "getContext"):
            connection = SSL.Connection(self.inner.getContext(), None)
        else:
            raise TypeError("%r makes no TLS server connections" % (self.inner,))
        connection.set_verify(SSL.VERIFY_PEER, _acceptAny)
        return connection
