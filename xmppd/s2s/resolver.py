# -*- test-case-name: tests.test_s2s_resolver -*-
"""
Where a domain's server is (RFC 6120 §3.2, XEP-0368 §3).

  1. A static override from C{s2s.hosts} wins, and DNS is not asked.
  2. An IP literal domain is its own address, on port 5269.
  3. Otherwise the SRV records C{_xmpps-server._tcp.<domain>} (TLS from the
     first byte, XEP-0368) and C{_xmpp-server._tcp.<domain>} (STARTTLS) are
     looked up together and merged: lower priority first, and within one
     priority a weighted random order (RFC 2782).  A set that is a single
     record with the target "." says the service is decidedly not offered
     (RFC 6120 §3.2.1).
  4. Without any SRV record, the domain itself on port 5269, if it has an
     address (A or AAAA) at all (RFC 6120 §3.2.2).

A domain that does not exist, or offers no service, is L{DomainNotFound}
(the caller answers C{remote-server-not-found}); DNS that does not answer
is L{ResolutionFailed} (C{remote-server-timeout}).  The DNS resolver is any
object with C{twisted.names}' C{lookupService}, C{lookupAddress} and
C{lookupIPV6Address}; by default C{twisted.names.client.createResolver()},
made on first use (it reads C{/etc/resolv.conf} and C{/etc/hosts}).

Implements: XEP-0368 1.1.0
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import NamedTuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns, error

from xmppd.s2s.config import DEFAULT_PORT, parseHostPort


class Target(NamedTuple):
    """One address to try: a host name or IP address, a port, and whether TLS starts at once."""

    host: str
    port: int
    directTLS: bool = False


class DomainNotFound(Exception):
    """The domain does not exist or offers no server-to-server service."""


class ResolutionFailed(Exception):
    """DNS did not answer (a timeout, a server failure)."""


#: Errors meaning "no such name or no such record", as opposed to no answer.
_NOT_FOUND = (error.DNSNameError, error.AuthoritativeDomainError, error.DomainError)


def _isIPLiteral(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        return True
    parts = domain.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


class Resolver:
    """See the module docstring; C{hosts} is domain -> C{"host:port"}."""

    log = Logger()

    def __init__(self, hosts: Mapping[str, str] | None = None, dnsResolver=None,
                 randomness: random.Random | None = None):
        self.hosts: dict[str, tuple[str, int]] = {
            domain: parseHostPort(address) for domain, address in (hosts or {}).items()}
        self._dns = dnsResolver
        self.random = randomness or random.Random()

    @property
    def dns(self):
        if self._dns is None:
            from twisted.names import client
            self._dns = client.createResolver()
        return self._dns

    def setHost(self, domain: str, address: str | None) -> None:
        """Override (or with C{None} forget) where C{domain}'s server is; tests use it."""
        if address is None:
            self.hosts.pop(domain, None)
        else:
            self.hosts[domain] = parseHostPort(address)

    def resolve(self, domain: str) -> defer.Deferred:
        """A Deferred list of L{Target}s to try in order; see the module docstring."""
        override = self.hosts.get(domain)
        if override is not None:
            return defer.succeed([Target(override[0], override[1])])
        if _isIPLiteral(domain):
            return defer.succeed([Target(domain.strip("[]"), DEFAULT_PORT)])
        return defer.ensureDeferred(self._resolve(domain))

    async def _resolve(self, domain: str) -> list[Target]:
        name = domain.encode("idna").decode("ascii")
        direct, starttls = await defer.gatherResults([
            defer.ensureDeferred(self._srv("_xmpps-server._tcp." + name)),
            defer.ensureDeferred(self._srv("_xmpp-server._tcp." + name)),
        ])
        if direct is not None or starttls is not None:
            records = [(r, True) for r in direct or ()] + [(r, False) for r in starttls or ()]
            if not records:
                raise DomainNotFound("%s offers no server-to-server service (SRV '.')"
                                     % (domain,))
            return self.order(records)
        if not await self._hasAddress(name):
            raise DomainNotFound("%s does not exist" % (domain,))
        return [Target(domain, DEFAULT_PORT)]

    async def _srv(self, name: str) -> list | None:
        """
        The SRV records at C{name} as (priority, weight, port, target);
        C{[]} when the one record is "."; C{None} when there are none.
        """
        try:
            answers, _, _ = await self.dns.lookupService(name)
        except _NOT_FOUND:
            return None
        except Exception as e:  # noqa: BLE001 - a timeout, a server failure
            self.log.info("No answer looking up {name}: {error}", name=name, error=e)
            return None
        records = [(a.payload.priority, a.payload.weight, a.payload.port,
                    str(a.payload.target).rstrip("."))
                   for a in answers if a.type == dns.SRV]
        if not records:
            return None
        if len(records) == 1 and records[0][3] in ("", "."):
            return []
        return records

    async def _hasAddress(self, name: str) -> bool:
        failures = []
        for lookup in (self.dns.lookupAddress, self.dns.lookupIPV6Address):
            try:
                answers, _, _ = await lookup(name)
            except _NOT_FOUND:
                continue
            except Exception as e:  # noqa: BLE001 - timeouts, server failures
                failures.append(e)
                continue
            if any(a.type in (dns.A, dns.AAAA, dns.CNAME) for a in answers):
                return True
        if failures:
            raise ResolutionFailed("no answer resolving %s: %s" % (name, failures[0]))
        return False

    def order(self, records: list[tuple[tuple, bool]]) -> list[Target]:
        """
        SRV records of both services, by priority, then weighted random within
        one priority (RFC 2782); at the same priority and weight, direct TLS
        comes first (XEP-0368 §3 prefers it).
        """
        byPriority: dict[int, list] = {}
        for (priority, weight, port, target), directTLS in records:
            byPriority.setdefault(priority, []).append((weight, directTLS, port, target))
        ordered = []
        for priority in sorted(byPriority):
            group = sorted(byPriority[priority], key=lambda r: (-r[0], not r[1]))
            while group:
                total = sum(r[0] for r in group)
                if total == 0:
                    chosen = group[0]
                else:
                    point = self.random.uniform(0, total)
                    running = 0
                    chosen = group[-1]
                    for record in group:
                        running += record[0]
                        if running >= point:
                            chosen = record
                            break
                group.remove(chosen)
                ordered.append(Target(chosen[3], chosen[2], chosen[1]))
        return ordered
