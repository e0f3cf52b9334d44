# -*- test-case-name: tests.test_s2s_config -*-
"""
The C{[s2s]} section: federation with other servers (RFC 6120 §13.7 asks
for TLS and authentication on every server-to-server stream).

C{listen = ""} switches federation off: the node then keeps the router's
unroutable default route and answers stanzas for other domains with
C{remote-server-not-found}, as before federation existed.  C{hosts} are
static overrides of DNS (tests, private networks): a domain listed there is
reached at that address and its SRV records are never looked up.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping

from xmppd.config import (ConfigError, Table, boolean, describe, endpointString, filePath,
                          integer, normalizeDomain, number, option, section, splitEndpoint,
                          stringTable)

#: The port of a domain's server when DNS has no SRV record (RFC 6120 §3.2.2).
DEFAULT_PORT = 5269


def parseHostPort(text: str, defaultPort: int | None = None) -> tuple[str, int]:
    """
    C{"host:port"}, C{"[v6]:port"} (or just the host when C{defaultPort} is
    given) as C{(host, port)}.

    @raise ValueError: with the reason, when C{text} is not such an address.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("an IPv6 address needs its closing bracket")
        ipaddress.IPv6Address(host)
        if rest and not rest.startswith(":"):
            raise ValueError("expected :port after the IPv6 address")
        portText = rest[1:] if rest else None
    else:
        host, colon, portText = text.rpartition(":")
        if not colon:
            host, portText = text, None
        if ":" in host:
            raise ValueError("write an IPv6 address in brackets, like [::1]:5269")
    if not host or any(c.isspace() for c in host):
        raise ValueError("the host is empty or contains spaces")
    if portText is None:
        if defaultPort is None:
            raise ValueError("expected host:port")
        return host, defaultPort
    if not portText.isdigit() or not 0 < int(portText) < 65536:
        raise ValueError("the port must be a number from 1 to 65535")
    return host, int(portText)


def _hostKey(name: str) -> str:
    return normalizeDomain(name)


@section("s2s")
@dataclasses.dataclass(frozen=True)
class S2SConfig:
    listen: str = option(
        "tcp:5269", endpointString(allowEmpty=True),
        "listener for other servers (STARTTLS), a Twisted endpoint string; "
        "\"\" switches federation off")
    direct_tls_listen: str = option(
        "", endpointString(allowEmpty=True),
        "listener for other servers with TLS from the first byte (XEP-0368, "
        "_xmpps-server SRV records point at it); \"\" disables it")
    require_encryption: bool = option(
        True, boolean(),
        "refuse server-to-server streams without TLS, in and out")
    require_valid_certificates: bool = option(
        False, boolean(),
        "accept only peers whose certificate is valid for their domain; false "
        "falls back to dialback (XEP-0220) for the others")
    ca_file: str = option(
        "", filePath(allowEmpty=True),
        "PEM bundle of the certificate authorities trusted for peers' "
        "certificates; \"\" uses the system's trust store")
    hosts: Mapping[str, str] = option(
        Table(), stringTable('{"example.net" = "127.0.0.1:5269"}', _hostKey,
                             keyName="domain name"),
        "domain -> \"host:port\" of its server, instead of DNS")
    max_queue: int = option(
        1000, integer(minimum=1),
        "stanzas queued for one remote domain while its connection is made; "
        "more bounce with resource-constraint")
    connect_timeout: float = option(
        30.0, number(minimum=0, minimumExclusive=True),
        "seconds to connect to and authenticate with a remote server before "
        "the queued stanzas bounce with remote-server-timeout")
    idle_timeout: float = option(
        600.0, number(minimum=0),
        "seconds without traffic after which a stream is closed; 0 never closes one")
    # A server speaks for all its users who talk to ours: ten times a
    # client's rates (limits.bytes_per_second, limits.stanzas_per_second).
    bytes_per_second: int = option(
        1048576, integer(minimum=1024, zeroDisables=True),
        "bytes read per second on one server-to-server stream (reading pauses, "
        "nothing is dropped); 0 disables")
    stanzas_per_second: int = option(
        2000, integer(minimum=1, zeroDisables=True),
        "stanzas read per second on one server-to-server stream (reading "
        "pauses); 0 disables")
    bidi: bool = option(
        True, boolean(),
        "bidirectional streams (XEP-0288): offer them to other servers and ask "
        "for them, so that one connection carries stanzas both ways when both "
        "servers support them; false always uses a connection per direction")

    def validate(self) -> None:
        for domain, address in self.hosts.items():
            try:
                parseHostPort(address)
            except ValueError as e:
                raise ConfigError(f"s2s.hosts: the value for {describe(domain)} "
                                  f"({describe(address)}) is not host:port: {e}")
        args, _ = splitEndpoint(self.listen)
        ephemeral = len(args) > 1 and args[0] in ("tcp", "tcp6") and args[1] == "0"
        if self.listen and self.listen == self.direct_tls_listen and not ephemeral:
            raise ConfigError("s2s.direct_tls_listen: must differ from s2s.listen")
