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
                                         IOpenSSLServerConnectionCreator)
from zope.interface import implementer

from xmppd.stream.tls import TLSConfigError, loadCertificate, serverNameOf

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

    @raise TLSConfigError: as L{xmppd.stream.tls.loadCertificate}.
    """

    def __init__(self, certPath: str, keyPath: str,
                 hosts: Mapping[str, tuple[str, str]] | None = None):
        self.default = _context(certPath, keyPath)
        self.contexts = {domain: _context(*paths) for domain, paths in (hosts or {}).items()}

    def adopt(self, other: "ClientCreator") -> None:
        """Present C{other}'s certificates on new connections (a live reload)."""
        self.default, self.contexts = other.default, other.contexts

    def forDomain(self, remote: str, local: str | None = None,
                  directTLS: bool = False) -> "_DomainCreator":
        """The creator of connections from C{local} to C{remote}'s server."""
        return _DomainCreator(self.contexts.get(local, self.default), remote, directTLS)


def _context(certPath: str, keyPath: str) -> SSL.Context:
    """A context presenting the certificate of C{certPath} and accepting any of the peer's."""
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
    TLS for incoming streams, STARTTLS and direct TLS alike: the node's
    certificate (C{hosts} gives domains their own, chosen by the name the
    peer asks for with SNI), TLS 1.2 at least (RFC 7590), a request for the
    peer's certificate which any certificate satisfies (see
    L{TrustStore.check}), and ALPN answered by L{selectProtocol}.

    Its contexts are its own, not the c2s ones, because the ALPN answer is
    a property of a context.  Twisted's own answer (on every
    C{CertificateOptions} context in recent Twisted; on older releases,
    put on the shared context by C{TLSMemoryBIOFactory} for a factory
    providing C{IProtocolNegotiationFactory}) chooses among the protocols
    of the connection's wrapped factory, which a STARTTLS connection does
    not have, and with no match it answers an empty protocol, which
    OpenSSL turns into an C{internal_error} alert.  Prosody offers ALPN
    C{xmpp-server} on STARTTLS too: no Prosody could connect to us.

    @raise TLSConfigError: as L{xmppd.stream.tls.loadCertificate}.
    """

    def __init__(self, certPath: str, keyPath: str,
                 hosts: Mapping[str, tuple[str, str]] | None = None):
        self.default = _serverContext(certPath, keyPath)
        self.byServerName = {serverNameOf(domain): _serverContext(*paths)
                             for domain, paths in (hosts or {}).items()}
        if self.byServerName:
            self.default.set_tlsext_servername_callback(self.onServerName)

    def onServerName(self, connection: SSL.Connection) -> None:
        """Switch to the named domain's context; an unknown name keeps the node's."""
        name = connection.get_servername()
        context = self.byServerName.get(name.lower().rstrip(b".")) if name else None
        if context is not None:
            connection.set_context(context)

    def adopt(self, other: "ServerCreator") -> None:
        """Present C{other}'s certificates on new connections (a live reload)."""
        self.default, self.byServerName = other.default, other.byServerName

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        return SSL.Connection(self.default, None)


def selectProtocol(connection: SSL.Connection, offered: list[bytes]):
    """
    The ALPN answer of incoming streams: C{xmpp-server} when the peer
    offers it (XEP-0368 §3; Prosody offers it on STARTTLS as well), else
    none, and the handshake goes on without ALPN (the stream's own header
    then says what the peer speaks).
    """
    if ALPN_SERVER in offered:
        return ALPN_SERVER
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _serverContext(certPath: str, keyPath: str) -> SSL.Context:
    context = _context(certPath, keyPath)
    # Asking for the peer's certificate makes OpenSSL refuse to resume a
    # session without a session id context (RFC 5246 §7.4.1.2 resumption).
    context.set_session_id(b"xmppd-s2s")
    context.set_alpn_select_callback(selectProtocol)
    return context
