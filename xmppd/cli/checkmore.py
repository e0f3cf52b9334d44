# -*- test-case-name: tests.test_checkmore -*-
"""
C{xmppctl check certs} and C{xmppctl check dns DOMAIN}: what clients and
other servers will think of this server's certificates and DNS records,
before they find out (issue 17, like C{prosodyctl check certs} and
C{prosodyctl check dns}).

C{check certs} looks, for each served domain and the domains of its
services (MUC, pubsub, upload), at the certificate that domain is served
with (its C{[hosts."domain"]} certificate, else the node's): how long it
stays valid (a warning under L{EXPIRY_WARNING_DAYS} days, an error once
expired), whether its names cover the domain (RFC 6125: a wildcard covers
one label), its issuer and whether the chain verifies against the system's
trust store (a self-signed certificate is noted), and whether the private
key belongs to it.

C{check dns DOMAIN} asks DNS (the system's resolvers from
C{/etc/resolv.conf}, or C{--resolver HOST:PORT}) for the SRV records of
client and server connections, C{_xmpp-client._tcp}, C{_xmpps-client._tcp}
(XEP-0368), C{_xmpp-server._tcp} and C{_xmpps-server._tcp}, and for the
A/AAAA records of their targets, or of the domain itself when there is no
SRV record; and checks the ports against what the configuration listens
on (C{c2s.endpoint}, C{c2s.direct_tls_endpoint}, C{s2s.listen},
C{s2s.direct_tls_listen}).

Both print one line per thing checked, C{ok}, C{warning} or C{error}, as
C{xmppctl check} does, or with C{--json} one JSON object; any error makes
the exit status 1.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

from xmppd.cli.common import FAILED, OK, CtlError, USAGE, say
from xmppd.config import Config, normalizeDomain, splitEndpoint

#: Days of validity left under which C{check certs} warns.
EXPIRY_WARNING_DAYS = 14
#: Seconds C{check dns} waits for each answer.
DNS_TIMEOUT = (2, 3)


class Findings:
    """What one check found: lines of C{level}, C{what} and C{detail}, and the JSON."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def add(self, level: str, what: str, detail: str) -> None:
        self.lines.append((level, what, detail))

    @property
    def failed(self) -> bool:
        return any(level == "error" for level, _, _ in self.lines)

    def printed(self, asJSON: bool, extra: dict) -> int:
        if asJSON:
            say(json.dumps({"ok": not self.failed, **extra,
                            "findings": [{"level": level, "what": what, "detail": detail}
                                         for level, what, detail in self.lines]},
                           default=str))
        else:
            for level, what, detail in self.lines:
                say(f"{level:<8} {what}: {detail}")
        return FAILED if self.failed else OK


# -- certificates --------------------------------------------------------------


def servedNames(config: Config) -> list[tuple[str, str]]:
    """(domain, served domain it belongs to) for each domain and its services' domains."""
    from xmppd.core.checks import serviceDomain
    names = []
    for domain in config.server.domains:
        names.append((domain, domain))
        for feature in ("muc", "pubsub", "upload"):
            if feature in config.server.modules:
                settings = config.sections.get(feature)
                template = getattr(settings, "domain", None)
                if template:
                    names.append((serviceDomain(template, domain), domain))
    return names


def certificateFor(config: Config, served: str) -> tuple[str, str, str]:
    """(certificate path, key path, key naming them) that serve the name C{served}."""
    from xmppd.stream import tls
    host = config.hosts.get(served)
    if host is not None and host.certificate:
        return host.certificate, host.private_key, f'hosts."{served}".certificate'
    if config.tls.certificate:
        return config.tls.certificate, config.tls.private_key, "tls.certificate"
    certPath, keyPath = tls.selfSignedPaths(config)
    return certPath, keyPath, "tls (self-signed)"


def verifyChain(chain, trustFile: str | None = None) -> str | None:
    """
    C{None} when C{chain} (leaf first) verifies against the trust store
    (C{trustFile}, a PEM bundle, else the system's), else why not.
    """
    from OpenSSL import crypto
    store = crypto.X509Store()
    if trustFile:
        store.load_locations(trustFile)
    else:
        import ssl
        paths = ssl.get_default_verify_paths()
        cafile = paths.cafile or (paths.openssl_cafile
                                  if os.path.exists(paths.openssl_cafile) else None)
        capath = paths.capath or (paths.openssl_capath
                                  if os.path.isdir(paths.openssl_capath) else None)
        if cafile or capath:
            store.load_locations(cafile, capath)
    leaf = crypto.X509.from_cryptography(chain[0])
    intermediates = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    try:
        crypto.X509StoreContext(store, leaf, intermediates).verify_certificate()
    except crypto.X509StoreContextError as e:
        return str(e.args[0] if e.args else e)
    return None


def checkCertificates(config: Config, now: datetime.datetime | None = None,
                      trustFile: str | None = None) -> tuple[Findings, list[dict]]:
    """The findings of C{check certs}, and one JSON object per certificate checked."""
    from xmppd.stream import tls
    now = now or datetime.datetime.now(datetime.timezone.utc)
    findings = Findings()
    report = []
    byCertificate: dict[tuple[str, str], list[str]] = {}
    keys: dict[tuple[str, str], str] = {}
    for name, served in servedNames(config):
        certPath, keyPath, key = certificateFor(config, served)
        byCertificate.setdefault((certPath, keyPath), []).append(name)
        keys[(certPath, keyPath)] = key
    for (certPath, keyPath), names in byCertificate.items():
        key = keys[(certPath, keyPath)]
        what = f"{key} {certPath}"
        entry: dict[str, Any] = {"certificate": certPath, "private_key": keyPath,
                                 "config_key": key, "domains": names}
        report.append(entry)
        if key == "tls (self-signed)" and not os.path.exists(certPath):
            findings.add("ok", what, "will be generated on first start, self-signed, "
                         f"for {', '.join(config.server.domains)}")
            entry["exists"] = False
            continue
        try:
            credentials = tls.loadCertificate(certPath, keyPath,
                                              (key, key.replace("certificate", "private_key")))
        except tls.TLSConfigError as e:
            entry["error"] = str(e)
            findings.add("error", what, str(e))
            continue
        entry["key_matches"] = True
        certificate = credentials.certificate
        expires = certificate.not_valid_after_utc
        left = (expires - now).total_seconds() / 86400
        entry.update(expires=expires.isoformat(), days_left=int(left) if left > 0 else 0,
                     names=tls.namesOf(certificate))
        if left <= 0:
            findings.add("error", what, f"expired on {expires:%Y-%m-%d}")
        elif left < EXPIRY_WARNING_DAYS:
            findings.add("warning", what, f"expires in {int(left)} day"
                         f"{'' if int(left) == 1 else 's'} ({expires:%Y-%m-%d})")
        else:
            findings.add("ok", what, f"valid until {expires:%Y-%m-%d} ({int(left)} days)")
        certNames = entry["names"]
        missing = [n for n in names if not tls._covers(certNames, n)]
        entry["covers"] = {n: n not in missing for n in names}
        if missing:
            findings.add("error", what, f"does not cover {', '.join(missing)} "
                         f"(it names {', '.join(certNames) or 'nothing'})")
        else:
            findings.add("ok", what, f"covers {', '.join(names)} "
                         f"(it names {', '.join(certNames)})")
        issuer = certificate.issuer.rfc4514_string()
        selfSigned = certificate.issuer == certificate.subject
        reason = verifyChain(credentials.chain, trustFile)
        entry.update(issuer=issuer, self_signed=selfSigned, chain_length=len(credentials.chain),
                     trusted=reason is None, trust_error=reason)
        if reason is None:
            findings.add("ok", what, f"issued by {issuer}; the chain verifies against "
                         f"{'the trust store ' + trustFile if trustFile else 'the system trust store'}")
        elif selfSigned:
            findings.add("warning", what, "self-signed: clients that check certificates "
                         "refuse it, and so do servers with s2s.require_valid_certificates")
        else:
            findings.add("warning", what, f"issued by {issuer}; the chain does not verify "
                         f"against the system trust store ({reason}); is the intermediate "
                         f"certificate in {certPath}?")
        findings.add("ok", what, "the private key matches")
    return findings, report


# -- DNS -------------------------------------------------------------------------

#: SRV service -> (what it is for, the listener keys whose port it must point at,
#: the port used when there is no SRV record or None).
SERVICES = (
    ("_xmpp-client._tcp", ("c2s", "endpoint"), 5222),
    ("_xmpps-client._tcp", ("c2s", "direct_tls_endpoint"), None),
    ("_xmpp-server._tcp", ("s2s", "listen"), 5269),
    ("_xmpps-server._tcp", ("s2s", "direct_tls_listen"), None),
)


def listenPort(config: Config, section: str, key: str) -> int | None:
    """The TCP port C{section.key} listens on, or C{None} (off, or not a TCP port)."""
    description = getattr(config.sections.get(section), key, "")
    if not description:
        return None
    args, kwargs = splitEndpoint(description)
    port = kwargs.get("port") or (args[1] if len(args) > 1 else None)
    if args[0].lower() not in ("tcp", "tcp6", "ssl", "tls") or not port:
        return None
    try:
        return int(port)
    except ValueError:
        return None


def makeResolver(address: str | None, reactor: Any):
    """A twisted.names resolver: C{address} (C{HOST:PORT}), else the system's."""
    from twisted.names import client
    if not address:
        return client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)
    host, _, port = address.rpartition(":")
    try:
        return client.Resolver(servers=[(host.strip("[]") or "127.0.0.1", int(port))],
                               reactor=reactor)
    except ValueError:
        raise CtlError(f"--resolver {address}: expected HOST:PORT", USAGE) from None


async def _answers(lookup, name: str) -> tuple[list, str | None]:
    """The payloads of an answer, and None; or [] and why there is none."""
    from twisted.names import error
    try:
        answers, _, _ = await lookup(name, timeout=DNS_TIMEOUT)
    except error.DomainError:
        return [], "no such name"
    except error.DNSNameError:
        return [], "no such name"
    except Exception as e:  # noqa: BLE001 - every DNS failure is a finding
        return [], f"no answer ({type(e).__name__})"
    return [a.payload for a in answers], None


async def checkDNS(config: Config, domain: str, resolver) -> tuple[Findings, dict]:
    """The findings of C{check dns DOMAIN}, and its JSON."""
    from twisted.names import dns
    findings = Findings()
    report: dict[str, Any] = {"domain": domain, "srv": {}, "addresses": {}}
    if domain not in config.server.domains:
        findings.add("warning", "dns", f"{domain} is not in server.domains")
    targets: set[str] = set()
    noSRV = []
    for service, (section, key), defaultPort in SERVICES:
        name = f"{service}.{domain}"
        port = listenPort(config, section, key)
        payloads, why = await _answers(resolver.lookupService, name)
        records = [p for p in payloads if isinstance(p, dns.Record_SRV)]
        report["srv"][service] = [{"priority": r.priority, "weight": r.weight,
                                   "port": r.port, "target": str(r.target)} for r in records]
        listening = f"{section}.{key}"
        if not records:
            if port is None:
                findings.add("ok", name, f"no record ({why or 'empty'}); {listening} is off")
            elif defaultPort is None:
                findings.add("warning", name, f"no record, but {listening} listens on port "
                             f"{port}: clients will not find it (XEP-0368)")
            else:
                noSRV.append((name, listening, port, defaultPort))
            continue
        if len(records) == 1 and str(records[0].target) in ("", "."):
            detail = "\".\": the service is not offered here (RFC 2782)"
            findings.add("warning" if port is not None else "ok", name,
                         detail + (f", but {listening} listens on port {port}" if port else ""))
            continue
        for record in records:
            target = str(record.target).rstrip(".")
            targets.add(target)
            described = f"{target}:{record.port} (priority {record.priority}, weight " \
                        f"{record.weight})"
            if port is None:
                findings.add("warning", name, f"{described}, but {listening} is off")
            elif record.port != port:
                findings.add("error", name, f"{described}, but {listening} listens on "
                             f"port {port}")
            else:
                findings.add("ok", name, described)
    for name, listening, port, defaultPort in noSRV:
        if port == defaultPort:
            findings.add("ok", name, f"no record: connections go to {domain}:{defaultPort} "
                         f"({listening} listens there)")
            targets.add(domain)
        else:
            findings.add("error", name, f"no record, and {listening} listens on port {port}, "
                         f"not {defaultPort}: add an SRV record pointing at port {port}")
            targets.add(domain)
    for target in sorted(targets):
        found = []
        for kind, lookup, recordType in (("A", resolver.lookupAddress, dns.Record_A),
                                         ("AAAA", resolver.lookupIPV6Address,
                                          dns.Record_AAAA)):
            payloads, _ = await _answers(lookup, target)
            found += [(kind, p.dottedQuad() if kind == "A" else _ipv6(p))
                      for p in payloads if isinstance(p, recordType)]
        report["addresses"][target] = [address for _, address in found]
        if found:
            findings.add("ok", target, ", ".join(f"{kind} {address}" for kind, address in found))
        else:
            findings.add("error", target, "no A or AAAA record: nobody can connect")
    return findings, report


def _ipv6(record) -> str:
    import socket
    return socket.inet_ntop(socket.AF_INET6, record.address)


async def run(args, config: Config, reactor: Any) -> int:
    """C{check certs} or C{check dns DOMAIN}."""
    if args.what == "certs":
        if args.domain:
            raise CtlError("check certs takes no domain", USAGE)
        findings, report = checkCertificates(config, trustFile=args.trust_store)
        return findings.printed(args.json, {"certificates": report})
    if not args.domain:
        raise CtlError("check dns needs a DOMAIN", USAGE)
    try:
        domain = normalizeDomain(args.domain)
    except ValueError as e:
        raise CtlError(f"check dns {args.domain}: {e}", USAGE) from None
    resolver = makeResolver(args.resolver, reactor)
    findings, report = await checkDNS(config, domain, resolver)
    return findings.printed(args.json, report)
