"""
Tests for L{xmppd.s2s.config}: the C{[s2s]} section's defaults and the
one-line error for each mistake.
"""

from __future__ import annotations

import pytest

from xmppd.config import ConfigError, loadConfig
from xmppd.s2s.config import parseHostPort


def load(tmp_path, text: str):
    path = tmp_path / "xmppd.toml"
    path.write_text(text, encoding="utf-8")
    return loadConfig(str(path))


def configError(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    return str(raised.value)


def test_defaults(tmp_path):
    """By default federation listens on 5269, requires TLS, allows dialback, and bounds queues and waits."""
    s2s = load(tmp_path, "").s2s
    assert (s2s.listen, s2s.direct_tls_listen) == ("tcp:5269", "")
    assert s2s.require_encryption is True and s2s.require_valid_certificates is False
    assert s2s.ca_file == "" and dict(s2s.hosts) == {}
    assert (s2s.max_queue, s2s.connect_timeout, s2s.idle_timeout) == (1000, 30.0, 600.0)


def test_hosts(tmp_path):
    """Static host overrides are domain -> host:port, domains normalized."""
    s2s = load(tmp_path, '[s2s]\nhosts = {"Example.NET" = "127.0.0.1:5270", '
                         '"v6.example" = "[::1]:5269"}\n').s2s
    assert dict(s2s.hosts) == {"example.net": "127.0.0.1:5270", "v6.example": "[::1]:5269"}


@pytest.mark.parametrize("text, message", [
    ('[s2s]\nhosts = {"example.net" = "127.0.0.1"}',
     's2s.hosts: the value for "example.net" ("127.0.0.1") is not host:port: expected host:port'),
    ('[s2s]\nhosts = {"example.net" = "h:99999"}',
     's2s.hosts: the value for "example.net" ("h:99999") is not host:port: '
     'the port must be a number from 1 to 65535'),
    ('[s2s]\nhosts = {"example.net" = "::1:5269"}',
     's2s.hosts: the value for "example.net" ("::1:5269") is not host:port: '
     'write an IPv6 address in brackets, like [::1]:5269'),
    ('[s2s]\nhosts = {"bad..name" = "h:1"}', 's2s.hosts: "bad..name" is not a valid domain name'),
    ('[s2s]\nmax_queue = 0', "s2s.max_queue: expected an integer >= 1, got 0"),
    ('[s2s]\nconnect_timeout = 0', "s2s.connect_timeout: expected a number > 0, got 0"),
    ('[s2s]\nidle_timeout = -1', "s2s.idle_timeout: expected a number >= 0, got -1"),
    ('[s2s]\nlisten = "ssl:5269"', 's2s.listen: "ssl:5269" is not a usable listener'),
    ('[s2s]\nlisten = "tcp:5269"\ndirect_tls_listen = "tcp:5269"',
     "s2s.direct_tls_listen: must differ from s2s.listen"),
    ('[s2s]\nrequire_encryption = "yes"', 's2s.require_encryption: expected true or false'),
    ('[s2s]\ndialback = true', "s2s.dialback: unknown key"),
], ids=["no-port", "port-range", "bare-ipv6", "bad-domain", "queue", "connect-timeout",
        "idle-timeout", "ssl-endpoint", "same-listeners", "boolean", "unknown-key"])
def test_errors(tmp_path, text, message):
    """Each mistake in [s2s] is one line naming the key."""
    assert configError(tmp_path, text + "\n").startswith(message)


def test_ephemeralListenersMayBeEqual(tmp_path):
    """Two listeners on port 0 are fine: each gets its own port."""
    s2s = load(tmp_path, '[s2s]\nlisten = "tcp:0"\ndirect_tls_listen = "tcp:0"\n').s2s
    assert s2s.listen == s2s.direct_tls_listen == "tcp:0"


@pytest.mark.parametrize("text, expected", [
    ("host.example:5269", ("host.example", 5269)),
    ("[2001:db8::1]:5270", ("2001:db8::1", 5270)),
    ("127.0.0.1:1", ("127.0.0.1", 1)),
])
def test_parseHostPort(text, expected):
    """host:port and [IPv6]:port are understood."""
    assert parseHostPort(text) == expected


def test_parseHostDefaultPort():
    """With a default port, a bare host is accepted."""
    assert parseHostPort("host.example", 5269) == ("host.example", 5269)
