"""
Tests for L{xmppd.s2s.resolver}: where a domain's server is, with a fake
DNS resolver (no network).
"""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer
from twisted.names import dns, error

from xmppd.s2s.resolver import DomainNotFound, ResolutionFailed, Resolver, Target


class FakeDNS:
    """Answers from a table: name -> list of records, or an exception to raise."""

    def __init__(self, records: dict):
        self.records = records
        self.asked: list[str] = []

    def _lookup(self, name, recordType):
        self.asked.append(name)
        answer = self.records.get((name, recordType))
        if isinstance(answer, Exception):
            return defer.fail(answer)
        if answer is None:
            return defer.fail(error.DNSNameError(name))
        rrs = [dns.RRHeader(name=name, type=recordType, payload=payload) for payload in answer]
        return defer.succeed((rrs, [], []))

    def lookupService(self, name):
        return self._lookup(name, dns.SRV)

    def lookupAddress(self, name):
        return self._lookup(name, dns.A)

    def lookupIPV6Address(self, name):
        return self._lookup(name, dns.AAAA)


def srv(priority, weight, port, target):
    return dns.Record_SRV(priority, weight, port, target)


def resolve(resolver, domain):
    results = []
    resolver.resolve(domain).addBoth(results.append)
    [result] = results
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def test_staticOverrideWins():
    """A domain in s2s.hosts is reached at that address and DNS is not asked."""
    fake = FakeDNS({})
    resolver = Resolver({"example.net": "127.0.0.1:5999"}, fake)
    assert resolve(resolver, "example.net") == [Target("127.0.0.1", 5999)]
    assert fake.asked == []


def test_overrideIPv6AndChange():
    """An override may name an IPv6 address, and can be changed or removed at run time."""
    resolver = Resolver({"example.net": "[::1]:5270"}, FakeDNS({}))
    assert resolve(resolver, "example.net") == [Target("::1", 5270)]
    resolver.setHost("example.net", "127.0.0.2:5271")
    assert resolve(resolver, "example.net") == [Target("127.0.0.2", 5271)]
    resolver.setHost("example.net", None)
    with pytest.raises(DomainNotFound):
        resolve(resolver, "example.net")


def test_ipLiteral():
    """An IP address as a domain is its own server, on port 5269."""
    fake = FakeDNS({})
    assert resolve(Resolver({}, fake), "192.0.2.1") == [Target("192.0.2.1", 5269)]
    assert fake.asked == []


def test_srvBothServices():
    """Both SRV services are looked up and merged by priority; direct TLS targets say so."""
    fake = FakeDNS({
        ("_xmpps-server._tcp.example.net", dns.SRV): [srv(5, 0, 5270, "tls.example.net")],
        ("_xmpp-server._tcp.example.net", dns.SRV): [srv(10, 0, 5269, "xmpp.example.net"),
                                                    srv(1, 0, 5269, "first.example.net")],
    })
    assert resolve(Resolver({}, fake), "example.net") == [
        Target("first.example.net", 5269, False),
        Target("tls.example.net", 5270, True),
        Target("xmpp.example.net", 5269, False)]


def test_samePriorityPrefersDirectTLS():
    """At the same priority and weight, direct TLS (XEP-0368) comes first."""
    fake = FakeDNS({
        ("_xmpps-server._tcp.example.net", dns.SRV): [srv(0, 0, 5270, "a.example.net")],
        ("_xmpp-server._tcp.example.net", dns.SRV): [srv(0, 0, 5269, "a.example.net")],
    })
    assert resolve(Resolver({}, fake), "example.net") == [
        Target("a.example.net", 5270, True), Target("a.example.net", 5269, False)]


def test_weightedOrder():
    """Within one priority, heavier records come first more often (RFC 2782)."""
    fake = FakeDNS({
        ("_xmpp-server._tcp.example.net", dns.SRV): [srv(0, 90, 5269, "heavy.example.net"),
                                                    srv(0, 10, 5269, "light.example.net")],
    })
    resolver = Resolver({}, fake, randomness=random.Random(7))
    firsts = [resolve(resolver, "example.net")[0].host for _ in range(200)]
    assert 140 < firsts.count("heavy.example.net") < 200


def test_srvDotMeansNoService():
    """A single SRV record with the target '.' for both services means the domain offers no federation."""
    fake = FakeDNS({
        ("_xmpps-server._tcp.example.net", dns.SRV): [srv(0, 0, 0, "")],
        ("_xmpp-server._tcp.example.net", dns.SRV): [srv(0, 0, 0, "")],
    })
    with pytest.raises(DomainNotFound):
        resolve(Resolver({}, fake), "example.net")


def test_fallbackToAddress():
    """Without SRV records a domain with an address is reached on port 5269."""
    fake = FakeDNS({("example.net", dns.AAAA): [dns.Record_AAAA("::1")]})
    assert resolve(Resolver({}, fake), "example.net") == [Target("example.net", 5269)]


def test_noSuchDomain():
    """A domain with neither SRV records nor addresses is DomainNotFound."""
    with pytest.raises(DomainNotFound):
        resolve(Resolver({}, FakeDNS({})), "nowhere.example")


def test_dnsTimeout():
    """When DNS does not answer, resolution fails with ResolutionFailed (not 'not found')."""
    timeout = error.DNSQueryTimeoutError("x")
    fake = FakeDNS({("_xmpps-server._tcp.example.net", dns.SRV): timeout,
                    ("_xmpp-server._tcp.example.net", dns.SRV): timeout,
                    ("example.net", dns.A): timeout, ("example.net", dns.AAAA): timeout})
    with pytest.raises(ResolutionFailed):
        resolve(Resolver({}, fake), "example.net")


def test_internationalDomain():
    """An internationalized domain is looked up by its A-labels."""
    fake = FakeDNS({("_xmpp-server._tcp.xn--mnchen-3ya.example", dns.SRV):
                    [srv(0, 0, 5269, "xmpp.example")]})
    assert resolve(Resolver({}, fake), "münchen.example") == [Target("xmpp.example", 5269)]
