"""
Tests for L{xmppd.config}: defaults, the one-line error for every kind of
mistake, and the example file shipped with the project.
"""

import dataclasses
import os
import tomllib

import pytest

from xmppd import config as configModule
from xmppd.config import ConfigError, loadConfig, option, schema, section

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "xmppd.example.toml")


def load(tmp_path, text):
    path = tmp_path / "xmppd.toml"
    path.write_text(text, encoding="utf-8")
    return loadConfig(str(path))


def error(tmp_path, text):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    return str(raised.value)


def test_defaults(monkeypatch, tmp_path):
    """With no file the server serves localhost on 5222/5223 with SQLite in ./data."""
    monkeypatch.chdir(tmp_path)
    config = loadConfig(None)
    assert config.path is None
    assert config.server.domains == ("localhost",)
    assert config.server.data_dir == str(tmp_path / "data")
    assert config.c2s.endpoint == "tcp:5222"
    assert config.c2s.direct_tls_endpoint == "tcp:5223"
    assert config.c2s.require_tls is True
    assert (config.tls.certificate, config.tls.private_key) == ("", "")
    assert config.storage.backend == "sqlite"
    assert config.limits.max_stanza_size == 262144
    assert config.limits.max_stanza_size_unauthenticated == 10240
    assert config.limits.max_depth == 48
    assert config.limits.negotiation_timeout == 60
    assert config.limits.sasl_max_attempts == 3
    assert config.limits.auth_failure_delay == 0.5
    assert config.limits.auth_failure_delay_max == 8.0
    assert config.limits.connections_per_ip == 32
    assert config.limits.new_connections_per_second == 200
    assert config.limits.bytes_per_second == 102400
    assert config.limits.stanzas_per_second == 200
    assert config.limits.send_queue_limit == 1048576
    assert config.log.verbose is False


def test_emptyFileIsDefaults(tmp_path):
    """An empty file means the same as no file, apart from its path."""
    config = load(tmp_path, "")
    assert config.path == str(tmp_path / "xmppd.toml")
    assert dataclasses.replace(config, path=None) == loadConfig(None)


def test_valuesFromFile(tmp_path):
    """Values in the file are what the server uses, under the same names."""
    config = load(tmp_path, """
        [server]
        domains = ["Example.ORG", "chat.example.org"]
        [c2s]
        endpoint = "tcp:5222:interface=127.0.0.1"
        direct_tls_endpoint = ""
        require_tls = false
        [limits]
        auth_failure_delay = 1
        connections_per_ip = 0
        [log]
        verbose = true
        """)
    assert config.server.domains == ("example.org", "chat.example.org")
    assert config.c2s.endpoint == "tcp:5222:interface=127.0.0.1"
    assert config.c2s.direct_tls_endpoint == ""
    assert config.c2s.require_tls is False
    assert config.limits.auth_failure_delay == 1.0
    assert isinstance(config.limits.auth_failure_delay, float)
    assert config.limits.connections_per_ip == 0
    assert config.log.verbose is True


def test_configIsFrozen():
    """Nothing can change the configuration after it has been validated."""
    config = loadConfig(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.c2s.endpoint = "tcp:1"


def test_relativePathsAgainstWorkingDirectory(monkeypatch, tmp_path):
    """Relative paths mean what they mean in the shell the server was started from."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "xmppd.toml").write_text(
        '[server]\ndata_dir = "var"\n[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n')
    monkeypatch.chdir(tmp_path)
    config = loadConfig("etc/xmppd.toml")
    assert config.path == str(tmp_path / "etc" / "xmppd.toml")
    assert config.server.data_dir == str(tmp_path / "var")
    assert config.tls.certificate == str(tmp_path / "c.pem")
    assert config.tls.private_key == str(tmp_path / "k.pem")


def test_domainForms(tmp_path):
    """Domains are kept in their canonical form: lowercase, IP literals normalized."""
    config = load(tmp_path, '[server]\ndomains = ["Bücher.DE", "[0::1]", "127.0.0.1"]\n')
    assert config.server.domains == ("bücher.de", "[::1]", "127.0.0.1")


@pytest.mark.parametrize("text, message", [
    ('[c2s]\nendpoint = 5222',
     'c2s.endpoint: expected a Twisted endpoint string like "tcp:5222", got 5222'),
    ('[c2s]\nendpoint = "tcp:abc"',
     'c2s.endpoint: "tcp:abc" is not a usable listener: port "abc" is not a number '
     'from 0 to 65535'),
    ('[c2s]\nendpoint = "tcp:70000"',
     'c2s.endpoint: "tcp:70000" is not a usable listener: port "70000" is not a number '
     'from 0 to 65535'),
    ('[c2s]\nendpoint = "carrier-pigeon:5222"',
     'c2s.endpoint: "carrier-pigeon:5222" is not a usable listener: unknown endpoint '
     'type "carrier-pigeon"'),
    ('[c2s]\nendpoint = "tcp:5222:colour=blue"',
     'c2s.endpoint: "tcp:5222:colour=blue" is not a usable listener: tcp: unknown '
     'option "colour"'),
    ('[c2s]\nendpoint = ""',
     'c2s.endpoint: "" is not a usable listener: it is empty or contains spaces'),
    ('[c2s]\ndirect_tls_endpoint = "ssl:5223"',
     'c2s.direct_tls_endpoint: "ssl:5223" is not a usable listener: xmppd adds TLS '
     'itself from [tls]; use a plain endpoint such as "tcp:5223"'),
    ('[c2s]\ndirect_tls_endpoint = "tcp:5222"',
     'c2s.direct_tls_endpoint: must differ from c2s.endpoint'),
    ('[c2s]\nrequire_tls = "yes"',
     'c2s.require_tls: expected true or false, got "yes"'),
    ('[storage]\nbackend = "mysql"',
     'storage.backend: expected one of "sqlite", "redis", "memory", got "mysql"'),
    ('[storage]\nbackend = "redis"',
     'storage.redis: must be set when storage.backend is "redis", '
     'e.g. "redis://127.0.0.1:6379/0"'),
    ('[storage]\nbackend = "redis"\nredis = "http://127.0.0.1:6379"',
     'storage.redis: expected a URL starting with redis:// or rediss:// (TLS), '
     'like "redis://127.0.0.1:6379/0"'),
    ('[storage]\nredis_unsafe = "yes"',
     'storage.redis_unsafe: expected true or false, got "yes"'),
    ('[server]\ndomains = []',
     'server.domains: expected a non-empty list of domain names like ["example.org"], '
     'got []'),
    ('[server]\ndomains = "example.org"',
     'server.domains: expected a non-empty list of domain names like ["example.org"], '
     'got "example.org"'),
    ('[server]\ndomains = ["example.org", "EXAMPLE.org"]',
     'server.domains: "EXAMPLE.org" is listed twice'),
    ('[server]\ndomains = ["::1"]',
     'server.domains: "::1" is not a valid domain name: write an IPv6 address in '
     'brackets, like [::1]'),
    ('[server]\ndata_dir = 7',
     'server.data_dir: expected a path (a string), got 7'),
    ('[tls]\ncertificate = "/etc/x.pem"',
     'tls.private_key: must be set when tls.certificate is'),
    ('[limits]\nmax_depth = true',
     'limits.max_depth: expected an integer from 4 to 1000, got true'),
    ('[limits]\nmax_depth = 2',
     'limits.max_depth: expected an integer from 4 to 1000, got 2'),
    ('[limits]\nmax_stanza_size = 9999',
     'limits.max_stanza_size: expected an integer >= 10000, got 9999'),
    ('[limits]\nmax_stanza_size = 1e6',
     'limits.max_stanza_size: expected an integer >= 10000, got 1000000.0'),
    ('[limits]\nmax_stanza_size_unauthenticated = 300000',
     'limits.max_stanza_size_unauthenticated: must not exceed limits.max_stanza_size'),
    ('[limits]\nnegotiation_timeout = 0',
     'limits.negotiation_timeout: expected a number > 0, got 0'),
    ('[limits]\nnegotiation_timeout = false',
     'limits.negotiation_timeout: expected a number > 0, got false'),
    ('[limits]\nsasl_max_attempts = 7',
     'limits.sasl_max_attempts: expected an integer from 3 to 6, got 7'),
    ('[limits]\nsasl_max_attempts = 1',
     'limits.sasl_max_attempts: expected an integer from 3 to 6, got 1'),
    ('[limits]\nauth_failure_delay = -1',
     'limits.auth_failure_delay: expected a number >= 0, got -1'),
    ('[limits]\nauth_failure_delay = 9',
     'limits.auth_failure_delay: must not exceed limits.auth_failure_delay_max'),
    ('[limits]\nconnections_per_ip = -1',
     'limits.connections_per_ip: expected 0 (off) or an integer >= 1, got -1'),
    ('[limits]\nbytes_per_second = 100',
     'limits.bytes_per_second: expected 0 (off) or an integer >= 1024, got 100'),
    ('[limits]\nsend_queue_limit = 20000',
     'limits.send_queue_limit: must be at least limits.max_stanza_size, or no stanza '
     'of that size could be sent'),
    ('[log]\nverbose = 1',
     'log.verbose: expected true or false, got 1'),
])
def test_invalidValue(tmp_path, text, message):
    """A wrong value is refused with one line naming the key and what was expected."""
    assert error(tmp_path, text) == message


@pytest.mark.parametrize("text, message", [
    ('[server]\ndomaims = ["example.org"]',
     "server.domaims: unknown key (did you mean server.domains?)"),
    ('[server]\nendpoint = "tcp:5222"',
     "server.endpoint: unknown key (did you mean c2s.endpoint?)"),
    ('[srever]\ndomains = ["example.org"]',
     "srever: unknown section (did you mean server?)"),
    ('domains = ["example.org"]',
     "domains: unknown key at the top level (did you mean server.domains?)"),
    ('[gossip]\nhistory = 20',
     "gossip: unknown section"),
    ('[limits]\nfrobnicate = 1',
     "limits.frobnicate: unknown key"),
    ('server = "example.org"',
     'server: expected a table ([server]), got "example.org"'),
])
def test_unknownNames(tmp_path, text, message):
    """A misspelt or misplaced name is refused, with a suggestion when one is close."""
    assert error(tmp_path, text) == message


def test_notTOML(tmp_path):
    """A syntax error names the file and the line."""
    message = error(tmp_path, '[server]\ndomains = ["example.org"]\ndata_dir = \n')
    path = str(tmp_path / "xmppd.toml")
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 3" in message
    assert "\n" not in message


def test_notUTF8(tmp_path):
    """A file in another encoding is refused with a reason, not a decoding traceback."""
    path = tmp_path / "xmppd.toml"
    path.write_bytes(b'[server]\ndomains = ["b\xfccher.de"]\n')
    with pytest.raises(ConfigError) as raised:
        loadConfig(str(path))
    assert str(raised.value) == f"{path}: not valid TOML: not UTF-8 text (byte 22)"


def test_missingFile(tmp_path):
    """A configuration file that is not there is named in the error."""
    path = tmp_path / "nowhere" / "xmppd.toml"
    with pytest.raises(ConfigError) as raised:
        loadConfig(str(path))
    assert str(raised.value) == f"cannot read {path}: No such file or directory"


def test_exampleIsTheDefaults(monkeypatch):
    """The shipped example lists every option with its default value."""
    monkeypatch.chdir(os.path.dirname(EXAMPLE))
    with open(EXAMPLE, "rb") as f:
        document = tomllib.load(f)
    listed = {f"{name}.{key}" for name, table in document.items() for key in table}
    declared = {f"{name}.{f.name}" for name, cls in configModule.SECTIONS.items()
                for f in dataclasses.fields(cls)}
    assert listed == declared
    assert dataclasses.replace(loadConfig(EXAMPLE), path=None) == loadConfig(None)


def test_exampleExplainsEveryKey():
    """Every key in the shipped example has a comment line right above it."""
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), line


def test_everyOptionDocumented():
    """Every declared option carries a check and one line of documentation."""
    for name, cls in configModule.SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert callable(f.metadata["check"]), f"{name}.{f.name}"
            doc = f.metadata["doc"]
            assert doc and "\n" not in doc, f"{name}.{f.name}"


def test_featureSection(monkeypatch, tmp_path):
    """A feature declares its own section, and it is validated and reachable by name."""
    monkeypatch.setattr(schema, "SECTIONS", dict(schema.SECTIONS))

    @section("gossip")
    @dataclasses.dataclass(frozen=True)
    class GossipConfig:
        history: int = option(20, configModule.integer(minimum=0),
                               "rumours kept per topic")

    assert load(tmp_path, "[gossip]\nhistory = 5\n").gossip.history == 5
    assert loadConfig(None).gossip == GossipConfig(history=20)
    assert error(tmp_path, "[gossip]\nhistory = -1\n") == (
        "gossip.history: expected an integer >= 0, got -1")
    with pytest.raises(AttributeError):
        loadConfig(None).bosh


@pytest.mark.parametrize("value, message", [
    ('"PLAIN"', 'sasl.mechanisms: expected a list of SASL mechanism names, got "PLAIN"'),
    ('["SCRAM-SHA-512"]', 'sasl.mechanisms: unknown mechanism "SCRAM-SHA-512" (did you mean '
     '"SCRAM-SHA-1"?); known: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, '
     'SCRAM-SHA-1, PLAIN'),
    ('["scram-sha-1"]', 'sasl.mechanisms: unknown mechanism "scram-sha-1" (did you mean '
     '"SCRAM-SHA-1"?); known: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, '
     'SCRAM-SHA-1, PLAIN'),
    ('["ANONYMOUS"]', "sasl.mechanisms: ANONYMOUS is switched on per domain, with "
     "anonymous = true in its [hosts] table"),
    ('["PLAIN", "PLAIN"]', "sasl.mechanisms: a mechanism is listed twice"),
    ("[]", "sasl.mechanisms: at least one mechanism is needed, or nobody can log in"),
    ('["SCRAM-SHA-256-PLUS"]', "sasl.mechanisms: only -PLUS mechanisms leaves clients "
     "without channel binding (and connections without TLS 1.2 or 1.3) no way to log in; "
     "add SCRAM-SHA-256 or SCRAM-SHA-1"),
])
def test_saslMechanismsRefused(tmp_path, value, message):
    """A [sasl] mechanisms list that is not a usable list of known mechanisms is refused with one line naming the key."""
    assert error(tmp_path, f"[sasl]\nmechanisms = {value}\n") == message


def test_saslMechanisms(tmp_path):
    """[sasl] mechanisms keeps the operator's order; the default offers every mechanism the server implements."""
    from xmppd.c2s.sasl import MECHANISMS

    config = load(tmp_path, '[sasl]\nmechanisms = ["SCRAM-SHA-1", "PLAIN"]\n')
    assert config.sasl.mechanisms == ("SCRAM-SHA-1", "PLAIN")
    assert loadConfig(None).sasl.mechanisms == tuple(MECHANISMS)
