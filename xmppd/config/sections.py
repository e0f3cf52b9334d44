# -*- test-case-name: tests.test_config -*-
"""
The node's own configuration sections: C{[server]}, C{[c2s]}, C{[sasl]},
C{[tls]}, C{[storage]}, C{[limits]}, C{[log]} and C{[cluster]}, declared with
L{xmppd.config.schema}.
Features and services declare theirs in their own modules.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from typing import Any

from xmppd.config.redisurl import RedisAddress, redisURL
from xmppd.config.registry import DEFAULT_FEATURES, FEATURES, isInstalled
from xmppd.config.schema import (Check, ConfigError, bareJIDList, boolean, choice, describe, domainList,
                                 endpointString, filePath, integer, number, option, section, string,
                                 splitEndpoint)


# The core sections.  Names are part of the operators' interface: renaming a
# key breaks their files.


def featureList() -> Check:
    """A list of known feature names, without repeats."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of feature names, got {describe(value)}")
        for name in value:
            if name not in FEATURES:
                close = difflib.get_close_matches(name, list(FEATURES), n=1)
                hint = f" (did you mean {describe(close[0])}?)" if close else ""
                raise ConfigError(f"{key}: unknown feature {describe(name)}{hint}; "
                                  f"known: {', '.join(FEATURES)}")
            if not isInstalled(name):
                raise ConfigError(f"{key}: feature {describe(name)} is not installed")
        if len(set(value)) != len(value):
            raise ConfigError(f"{key}: a feature is listed twice")
        return tuple(value)

    return check


@section("server")
@dataclasses.dataclass(frozen=True)
class ServerConfig:
    domains: tuple[str, ...] = option(
        ("localhost",), domainList(),
        "the domains this server hosts, e.g. [\"example.org\"]; "
        "the first one names the self-signed certificate")
    data_dir: str = option(
        "./data", filePath(),
        "where the database and generated files live; relative to the "
        "current directory")
    modules: tuple[str, ...] = option(
        DEFAULT_FEATURES, featureList(),
        "the features this node runs, by name (see xmppd/config/registry.py); "
        "leave one out to switch it off")
    admins: tuple[str, ...] = option(
        (), bareJIDList(),
        "the server's administrators, as bare JIDs like [\"admin@example.org\"]; "
        "published as the XEP-0157 admin addresses unless contact.admin says otherwise")


@section("c2s")
@dataclasses.dataclass(frozen=True)
class C2SConfig:
    endpoint: str = option(
        "tcp:5222", endpointString(),
        "client listener (STARTTLS), a Twisted endpoint string")
    direct_tls_endpoint: str = option(
        "tcp:5223", endpointString(allowEmpty=True),
        "client listener with TLS from the first byte (XEP-0368); \"\" disables it")
    require_tls: bool = option(
        True, boolean(),
        "refuse authentication before STARTTLS; keep it true outside tests")
    plain_without_tls: bool = option(
        False, boolean(),
        "offer SASL PLAIN on unencrypted streams (benchmarks on loopback only: "
        "the password crosses the wire in clear)")

    def validate(self) -> None:
        # Two "tcp:0" listeners are fine: each gets its own ephemeral port.
        args, _ = splitEndpoint(self.endpoint)
        ephemeral = len(args) > 1 and args[0] in ("tcp", "tcp6") and args[1] == "0"
        if self.endpoint == self.direct_tls_endpoint and not ephemeral:
            raise ConfigError("c2s.direct_tls_endpoint: must differ from c2s.endpoint")


#: The SASL password mechanisms the server implements, strongest first: the
#: names L{xmppd.c2s.sasl.MECHANISMS} implements (a test keeps them equal).
SASL_MECHANISMS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                   "SCRAM-SHA-1", "PLAIN")


def mechanismList() -> Check:
    """A non-empty list of known SASL password mechanisms, without repeats."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of SASL mechanism names, got "
                              f"{describe(value)}")
        for name in value:
            if name == "ANONYMOUS":
                raise ConfigError(f"{key}: ANONYMOUS is switched on per domain, with "
                                  f"anonymous = true in its [hosts] table")
            if name not in SASL_MECHANISMS:
                close = difflib.get_close_matches(name.upper(), SASL_MECHANISMS, n=1)
                hint = f" (did you mean {describe(close[0])}?)" if close else ""
                raise ConfigError(f"{key}: unknown mechanism {describe(name)}{hint}; "
                                  f"known: {', '.join(SASL_MECHANISMS)}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{key}: a mechanism is listed twice")
        if not value:
            raise ConfigError(f"{key}: at least one mechanism is needed, or nobody "
                              f"can log in")
        if all(name.endswith("-PLUS") for name in value):
            raise ConfigError(f"{key}: only -PLUS mechanisms leaves clients without "
                              f"channel binding (and connections without TLS 1.2 or "
                              f"1.3) no way to log in; add SCRAM-SHA-256 or SCRAM-SHA-1")
        return tuple(value)

    return check


@section("sasl")
@dataclasses.dataclass(frozen=True)
class SASLConfig:
    mechanisms: tuple[str, ...] = option(
        SASL_MECHANISMS, mechanismList(),
        "the SASL mechanisms offered to clients, in this order (they pick the "
        "strongest they know); leave SCRAM-SHA-256 and SCRAM-SHA-256-PLUS out while "
        "accounts imported with SCRAM-SHA-1 keys only remain (xmppctl check counts "
        "them), for clients that never retry another mechanism")
    fast_token_lifetime: int = option(
        21 * 86400, integer(minimum=60, maximum=366 * 86400),
        "seconds a FAST token (XEP-0484) stays valid after it is issued: how long "
        "a client may stay away and still log in without its password")
    fast_rotate_after: int = option(
        86400, integer(minimum=0),
        "seconds after which a FAST login gets a fresh token in its success (the "
        "old one stays valid until the new one is used); 0 rotates at every FAST "
        "login")

    def validate(self) -> None:
        if self.fast_rotate_after >= self.fast_token_lifetime:
            raise ConfigError("sasl.fast_rotate_after: must be less than "
                              "sasl.fast_token_lifetime, or tokens expire before "
                              "they are rotated")


@section("tls")
@dataclasses.dataclass(frozen=True)
class TLSConfig:
    certificate: str = option(
        "", filePath(allowEmpty=True),
        "PEM certificate chain, leaf first; \"\" generates a self-signed one "
        "in <data_dir>/tls on first start")
    private_key: str = option(
        "", filePath(allowEmpty=True),
        "PEM private key (unencrypted) of the certificate; \"\" with certificate \"\"")

    def validate(self) -> None:
        if self.certificate and not self.private_key:
            raise ConfigError("tls.private_key: must be set when tls.certificate is")
        if self.private_key and not self.certificate:
            raise ConfigError("tls.certificate: must be set when tls.private_key is")


def originList() -> Check:
    """
    Web origins (RFC 6454) allowed to open a WebSocket, like
    C{"https://chat.example.org"}: scheme, host and optional port, nothing
    else, so that a typo cannot silently let every page in.
    """

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of origins like "
                              f"[\"https://chat.example.org\"], got {describe(value)}")
        origins = []
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if (not sep or scheme.lower() not in ("http", "https") or not rest
                    or any(c in rest for c in "/?#@ ")):
                raise ConfigError(f"{key}: {describe(origin)} is not an origin: "
                                  f"scheme://host[:port], no path")
            origins.append(origin.lower())
        return tuple(origins)

    return check


def addressList() -> Check:
    """IP addresses or networks (C{"127.0.0.1"}, C{"10.0.0.0/8"}, C{"::1"})."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of IP addresses or networks, "
                              f"got {describe(value)}")
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(f"{key}: {describe(item)} is not an IP address or "
                                  f"network") from None
        return tuple(value)

    return check


@section("http")
@dataclasses.dataclass(frozen=True)
class HTTPConfig:
    """
    The web listeners (L{xmppd.http}): WebSocket (RFC 7395), BOSH
    (XEP-0124, XEP-0206) and connection discovery (XEP-0156).  The defaults are Prosody's and ejabberd's: plain
    HTTP on loopback only (Prosody 0.12's C{http_interfaces}), for a reverse
    proxy on the same machine that terminates TLS; HTTPS on every interface
    at ejabberd's port 5443, with the certificates of C{[tls]} and
    C{[hosts]}, for browsers that connect directly.
    """

    endpoint: str = option(
        "tcp:5280:interface=127.0.0.1", endpointString(allowEmpty=True),
        "plain HTTP listener, for a reverse proxy (loopback by default); \"\" disables it")
    tls_endpoint: str = option(
        "tcp:5443", endpointString(allowEmpty=True),
        "HTTPS listener, with the c2s certificates and SNI; \"\" disables it")
    max_request_size: int = option(
        65536, integer(minimum=1024),
        "largest request body in bytes (larger ones get 413)")
    max_header_size: int = option(
        16384, integer(minimum=1024, maximum=1048576),
        "largest request line plus headers in bytes (larger ones get 431 or 400)")
    max_headers: int = option(
        64, integer(minimum=8, maximum=1000),
        "most header fields in one request")
    header_timeout: float = option(
        10.0, number(minimum=0, minimumExclusive=True),
        "seconds a connection has to send a whole request head (slow clients are "
        "closed); also how long an idle keep-alive connection stays open")
    request_timeout: float = option(
        60.0, number(minimum=0, minimumExclusive=True),
        "seconds of silence after which a connection with a request being read is closed")
    websocket_origins: tuple[str, ...] = option(
        (), originList(),
        "origins (\"https://chat.example.org\") whose pages may open a WebSocket; "
        "[] allows any")
    bosh_max_wait: int = option(
        60, integer(minimum=1, maximum=3600),
        "longest a BOSH request is held waiting for something to carry, in seconds "
        "(a client asking for more gets this)")
    bosh_max_hold: int = option(
        1, integer(minimum=0, maximum=5),
        "most BOSH requests held at once per session (a client asking for more gets "
        "this; it may send one more: requests = hold + 1)")
    bosh_max_inactivity: int = option(
        60, integer(minimum=5, maximum=3600),
        "seconds a BOSH session may go without a request before it ends (the client is gone)")
    bosh_max_pause: int = option(
        120, integer(minimum=0, maximum=86400),
        "longest pause, in seconds, a BOSH client may ask for (XEP-0124 section 10)")
    bosh_polling: int = option(
        2, integer(minimum=0, maximum=60),
        "shortest interval, in seconds, between two empty requests of a polling "
        "BOSH session (hold = 0); faster ones end it with policy-violation")
    bosh_origins: tuple[str, ...] = option(
        (), originList(),
        "origins (\"https://chat.example.org\") whose pages may use BOSH (CORS); "
        "[] allows any")
    trusted_proxies: tuple[str, ...] = option(
        ("127.0.0.1", "::1"), addressList(),
        "reverse proxies whose X-Forwarded-For (client address) and "
        "X-Forwarded-Proto: https (TLS) are believed, on the plain listener")
    conversejs_dir: str = option(
        "", filePath(allowEmpty=True),
        "Converse.js's dist directory (npm converse.js): serve a chat page at /chat "
        "that logs in to this node; \"\" (off) serves none")

    def validate(self) -> None:
        args, _ = splitEndpoint(self.endpoint) if self.endpoint else ([], {})
        ephemeral = len(args) > 1 and args[0] in ("tcp", "tcp6") and args[1] == "0"
        if self.endpoint and self.endpoint == self.tls_endpoint and not ephemeral:
            raise ConfigError("http.tls_endpoint: must differ from http.endpoint")


@section("storage")
@dataclasses.dataclass(frozen=True)
class StorageConfig:
    backend: str = option(
        "sqlite", choice("sqlite", "redis", "memory"),
        "\"sqlite\" (a file in data_dir), \"redis\" (shared by a cluster; see "
        "storage.redis) or \"memory\" (lost on restart, for tests)")
    # No default Redis: a node must never write its accounts into a Redis
    # the operator did not name (the machine's own may belong to others).
    redis: RedisAddress | None = option(
        "", redisURL(allowEmpty=True),
        "the Redis of backend \"redis\" (and of the cluster), "
        "\"redis://[:password@]host[:port][/db]\" or \"rediss://...\" for TLS; "
        "\"\" is not set")
    redis_unsafe: bool = option(
        False, boolean(),
        "UNSAFE: start on a Redis that cannot make writes durable (appendfsync "
        "not \"always\" on a Redis without WAITAOF), losing acknowledged "
        "messages on a crash")

    def validate(self) -> None:
        if self.backend == "redis" and self.redis is None:
            raise ConfigError('storage.redis: must be set when storage.backend is "redis", '
                              'e.g. "redis://127.0.0.1:6379/0"')


@section("limits")
@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    # RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
    max_stanza_size: int = option(
        262144, integer(minimum=10000),
        "largest stanza in bytes after authentication (RFC 6120 asks >= 10000)")
    max_stanza_size_unauthenticated: int = option(
        10240, integer(minimum=4096),
        "largest stanza in bytes before authentication")
    max_depth: int = option(
        48, integer(minimum=4, maximum=1000),
        "deepest element nesting inside one stanza")
    negotiation_timeout: float = option(
        60.0, number(minimum=0, minimumExclusive=True),
        "seconds from connecting to a bound resource before the stream is closed")
    # RFC 6120 §6.4.5 suggests allowing between 2 and 5 attempts.
    sasl_max_attempts: int = option(
        3, integer(minimum=3, maximum=6),
        "failed SASL attempts on one connection before it is closed; RFC 6120 "
        "§6.4.5 asks for 2 to 5 retries after the first attempt, so 3 to 6")
    auth_failure_delay: float = option(
        0.5, number(minimum=0),
        "seconds before answering a failed login; doubles per failure from one IP")
    auth_failure_delay_max: float = option(
        8.0, number(minimum=0),
        "cap of that delay in seconds")
    connections_per_ip: int = option(
        32, integer(minimum=1, zeroDisables=True),
        "simultaneous connections from one IP address; 0 disables the limit")
    new_connections_per_second: int = option(
        200, integer(minimum=1, zeroDisables=True),
        "new connections accepted per second on each listener; 0 disables")
    bytes_per_second: int = option(
        102400, integer(minimum=1024, zeroDisables=True),
        "bytes read per second on one connection (reading pauses); 0 disables")
    stanzas_per_second: int = option(
        200, integer(minimum=1, zeroDisables=True),
        "stanzas read per second on one connection (reading pauses); 0 disables")
    send_queue_limit: int = option(
        1048576, integer(minimum=10000),
        "bytes queued for a peer that does not read before it is disconnected")

    def validate(self) -> None:
        if self.max_stanza_size_unauthenticated > self.max_stanza_size:
            raise ConfigError("limits.max_stanza_size_unauthenticated: must not "
                              "exceed limits.max_stanza_size")
        if self.auth_failure_delay > self.auth_failure_delay_max:
            raise ConfigError("limits.auth_failure_delay: must not exceed "
                              "limits.auth_failure_delay_max")
        if self.send_queue_limit < self.max_stanza_size:
            raise ConfigError("limits.send_queue_limit: must be at least "
                              "limits.max_stanza_size, or no stanza of that size "
                              "could be sent")


@section("log")
@dataclasses.dataclass(frozen=True)
class LogConfig:
    verbose: bool = option(
        False, boolean(),
        "log every stanza in and out (with a serial per stream); for debugging")


#: Where the cluster's Redis is when neither C{[cluster] redis} nor C{[storage] redis} says.
DEFAULT_CLUSTER_REDIS = "redis://127.0.0.1:6379/0"


def nodeName() -> Check:
    """A cluster node's name: letters, digits, C{.}, C{_}, C{-} (it is part of Redis keys)."""

    def check(key: str, value: Any) -> str:
        value = string()(key, value)
        if value and not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
            raise ConfigError(f"{key}: a node name is letters, digits, '.', '_' and '-', "
                              f"got {describe(value)}")
        if len(value) > 64:
            raise ConfigError(f"{key}: at most 64 characters")
        return value

    return check


def hostPort() -> Check:
    """
    C{"host:port"}, C{"[IPv6]:port"} (RFC 6120 §4.9.3.19's form of the
    other host), or C{""}: where clients reach a node.
    """

    def check(key: str, value: Any) -> str:
        value = string()(key, value)
        if value == "":
            return value
        problem = hostPortProblem(value)
        if problem:
            raise ConfigError(f'{key}: expected "host:port" or "[IPv6 address]:port", '
                              f"got {describe(value)}: {problem}")
        return value

    return check


def hostPortProblem(value: str) -> str | None:
    """Why C{value} is not C{"host:port"} / C{"[IPv6]:port"}, or C{None}."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":") or ":" not in host:
            return "an IPv6 address goes in brackets, followed by :port"
        port = rest[1:]
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            return "the port is missing"
        if ":" in host:
            return "an IPv6 address must be in brackets"
    if not host or any(c.isspace() or c in "/@[]" for c in host):
        return "the host is not a host name or address"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return "the port must be a number from 1 to 65535"
    return None


@section("cluster")
@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """
    Present only on the nodes of a cluster (DESIGN §6): the section's
    presence turns clustering on, and then C{node} must be given
    (L{REQUIRED_WHEN_PRESENT}).  Declared here rather than in
    L{xmppd.cluster} so that a lone node never imports the cluster.
    """

    #: Keys a C{[cluster]} table must have when it is in the file.
    REQUIRED_WHEN_PRESENT = ("node",)

    node: str = option(
        "", nodeName(),
        "this node's name, unique in the cluster (e.g. \"n1\"); required in a [cluster] section")
    heartbeat: float = option(
        2.0, number(minimum=0, minimumExclusive=True),
        "seconds between two renewals of this node's heartbeat in Redis")
    lease: float = option(
        10.0, number(minimum=0, minimumExclusive=True),
        "seconds after the last heartbeat when other nodes take this node for dead and "
        "remove its sessions; more than heartbeat")
    redis: Any = option(
        "", redisURL(allowEmpty=True),
        "the cluster's Redis URL; \"\" uses [storage] redis (or " + DEFAULT_CLUSTER_REDIS + ")")
    client_address: str = option(
        "", hostPort(),
        "where clients reach this node, \"host:port\" or \"[IPv6]:port\"; a draining node "
        "sends its clients to another node's (see-other-host); \"\": this machine's "
        "fully qualified name and the c2s.endpoint port")

    @property
    def enabled(self) -> bool:
        return bool(self.node)

    def validate(self) -> None:
        if self.lease <= self.heartbeat:
            raise ConfigError("cluster.lease: must be more than cluster.heartbeat, or a "
                              "node would be taken for dead between two heartbeats")
