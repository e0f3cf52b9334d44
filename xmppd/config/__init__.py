# -*- test-case-name: tests.test_config -*-
"""
The server's configuration: one TOML file, validated once, frozen.

L{loadConfig} reads the file with the standard library's C{tomllib}, checks
every key, and returns a L{Config} whose attributes mirror the file exactly
(C{config.c2s.direct_tls_endpoint} is C{direct_tls_endpoint} in C{[c2s]}), so
operators and code speak the same names.  Anything wrong (a TOML syntax error,
an unknown section or key, a value of the wrong type or out of range) raises
L{ConfigError}, whose text is one line naming the key, and the server does not
start.  Nothing else in the server reads the file or checks a value again.

Options are declared next to their documentation, ejabberd-style: each section
is a frozen dataclass registered with L{section}, and each field is an
L{option} carrying its default, a check and one line of documentation.  A
feature with options of its own declares its section in its own module the
same way; the module must be imported before L{loadConfig} runs, and the
section is then reachable as C{config.<name>} (see L{Config.__getattr__}).

Served domains may each override a few node-wide settings in a table of
their own, C{[hosts."example.org"]}: L{xmppd.config.hosts} declares and checks
those, and gives the effective settings of a domain.

Listener addresses are Twisted server endpoint strings (C{"tcp:5222"},
C{"tcp6:5222:interface=\\:\\:"}, C{"unix:/run/xmppd.sock"},
C{"systemd:domain=INET:index=0"}).  They name plain transports: xmppd adds
TLS itself, from C{[tls]}, for STARTTLS and for direct TLS alike (see
L{xmppd.stream.tls}), so C{ssl:} endpoints are refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import idna
from twisted.internet.endpoints import serverFromString

from xmppd.core.modules import DEFAULT_FEATURES, FEATURES, importFeatures, isInstalled


class ConfigError(Exception):
    """
    The configuration cannot be used.  C{str()} of it is a single line that
    starts with the key (or the file) at fault, ready to show an operator.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(message.split("\n")))


#: A check takes the dotted key (for messages) and the value from the TOML
#: file, and returns the value to keep (possibly normalized) or raises
#: L{ConfigError}.
Check = Callable[[str, Any], Any]


def option(default: Any, check: Check, doc: str) -> Any:
    """
    Declare one option of a section: a dataclass field with its default, the
    check applied to a value read from the file, and a one-line explanation
    (what it is for and its unit).  The loader passes the default through the
    check too, so a default is written as in the file (C{"./data"}) and is
    normalized the same way; a list default is written as a tuple.
    """
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


#: Section name -> its dataclass, in declaration order.
SECTIONS: dict[str, type] = {}


def section(name: str) -> Callable[[type], type]:
    """
    Register a frozen dataclass as the section C{[name]} of the file.

    If the class has a C{validate(self)} method, it is called once all keys
    of the section have been checked, for rules that involve several keys.
    """

    def register(cls: type) -> type:
        if name in SECTIONS:
            raise ValueError(f"configuration section [{name}] declared twice")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"[{name}]: {cls.__name__} is not a dataclass")
        SECTIONS[name] = cls
        return cls

    return register


def options(sectionClass: type) -> list[dataclasses.Field]:
    """The L{option}s of a section, in file order."""
    return list(dataclasses.fields(sectionClass))


def describe(value: Any) -> str:
    """Show a value as it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(item) for item in value) + "]"
    if isinstance(value, dict):
        return "a table"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


# Checks.  Each factory returns a Check; the message says what was expected
# in the operator's terms, then what was found.


def _isInteger(value: Any) -> bool:
    # TOML's true is not 1: bool is a subclass of int in Python, refuse it.
    return isinstance(value, int) and not isinstance(value, bool)


def _rangeText(minimum: float | None, maximum: float | None,
               minimumExclusive: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" > {minimum}" if minimumExclusive else f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def boolean() -> Check:
    def check(key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {describe(value)}")
        return value

    return check


def integer(minimum: int | None = None, maximum: int | None = None,
            zeroDisables: bool = False) -> Check:
    """
    An integer in a range; with C{zeroDisables}, 0 is accepted as well and
    the range applies to the other values.
    """
    expected = "an integer" + _rangeText(minimum, maximum)
    if zeroDisables:
        expected = "0 (off) or " + expected

    def check(key: str, value: Any) -> int:
        if not _isInteger(value):
            raise ConfigError(f"{key}: expected {expected}, got {describe(value)}")
        if zeroDisables and value == 0:
            return value
        if ((minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            raise ConfigError(f"{key}: expected {expected}, got {value}")
        return value

    return check


def number(minimum: float | None = None, maximum: float | None = None,
           minimumExclusive: bool = False) -> Check:
    """A number (integers are accepted and made floats) in a range."""
    expected = "a number" + _rangeText(minimum, maximum, minimumExclusive)

    def check(key: str, value: Any) -> float:
        if not (_isInteger(value) or isinstance(value, float)) or value != value:
            raise ConfigError(f"{key}: expected {expected}, got {describe(value)}")
        tooLow = minimum is not None and (
            value <= minimum if minimumExclusive else value < minimum)
        tooHigh = maximum is not None and value > maximum
        if tooLow or tooHigh or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected {expected}, got {describe(value)}")
        return float(value)

    return check


def string() -> Check:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {describe(value)}")
        return value

    return check


def choice(*choices: str, notYet: tuple[str, ...] = ()) -> Check:
    """
    One of C{choices}; the values in C{notYet} are planned, and get a
    message saying so instead of a bare refusal.
    """
    expected = "one of " + ", ".join(describe(c) for c in choices)

    def check(key: str, value: Any) -> str:
        if value in notYet:
            raise ConfigError(
                f"{key}: {describe(value)} is not available yet; expected {expected}")
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(f"{key}: expected {expected}, got {describe(value)}")
        return value

    return check


def filePath(allowEmpty: bool = False) -> Check:
    """
    A file system path, made absolute against the current working directory
    (where the operator ran C{twistd} or C{xmppctl}, as with any command line
    tool), so later changes of directory do not change its meaning.  An empty
    string, when allowed, stays empty and means "not set".
    """

    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path (a string), got {describe(value)}")
        if value == "":
            if allowEmpty:
                return ""
            raise ConfigError(f"{key}: expected a path, got an empty string")
        if "\0" in value:
            raise ConfigError(f"{key}: a path cannot contain a NUL character")
        return os.path.abspath(os.path.expanduser(value))

    return check


def splitEndpoint(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint string the way Twisted does: fields separated by
    colons, a backslash escapes the next character, C{name=value} fields are
    keyword arguments.  C{"tcp:5222:interface=\\:\\:1"} gives
    C{(["tcp", "5222"], {"interface": "::1"})}.
    """
    fields, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    args, kwargs = [], {}
    for item in fields:
        name, equals, value = item.partition("=")
        if equals:
            kwargs[name] = value
        else:
            args.append(item)
    return args, kwargs


#: Endpoint types a listener may use -> (positional arguments after the
#: type, accepted keyword arguments).
_ENDPOINT_TYPES = {
    "tcp": (("port",), {"interface", "backlog"}),
    "tcp6": (("port",), {"interface", "backlog"}),
    "unix": (("path",), {"mode", "backlog", "lockfile"}),
    "systemd": ((), {"domain", "index", "name"}),
}


def _endpointProblem(description: str) -> str | None:
    """Why C{description} is not a usable listener, or C{None}."""
    if not description or description != description.strip() or any(
            c.isspace() for c in description):
        return "it is empty or contains spaces"
    args, kwargs = splitEndpoint(description)
    kind = args[0].lower()
    if kind == "ssl":
        return ("xmppd adds TLS itself from [tls]; use a plain endpoint "
                "such as \"tcp:5223\"")
    if kind not in _ENDPOINT_TYPES:
        return "unknown endpoint type " + describe(args[0])
    positional, keywords = _ENDPOINT_TYPES[kind]
    if len(args) - 1 != len(positional):
        return f"{kind}: takes {len(positional)} value(s) before the options"
    unknown = sorted(set(kwargs) - keywords)
    if unknown:
        return f"{kind}: unknown option {describe(unknown[0])}"
    if kind in ("tcp", "tcp6"):
        port = args[1]
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            return f"port {describe(port)} is not a number from 0 to 65535"
        if "backlog" in kwargs and not kwargs["backlog"].isdigit():
            return "backlog must be a number"
    if kind == "systemd":
        if "domain" not in kwargs or not ("index" in kwargs or "name" in kwargs):
            return "systemd: needs domain= and index= or name="
        return None  # Resolved against the inherited sockets only at start.
    try:
        # Twisted has the last word on the syntax; the reactor is not used
        # to build a TCP or UNIX endpoint, only to listen on it.
        serverFromString(None, description)
    except Exception as e:  # noqa: BLE001 - any refusal is the same answer
        return str(e) or type(e).__name__
    return None


def endpointString(allowEmpty: bool = False) -> Check:
    """A Twisted server endpoint string; empty disables the listener if allowed."""

    def check(key: str, value: Any) -> str:
        example = 'like "tcp:5222"' + (', or "" to disable' if allowEmpty else "")
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a Twisted endpoint string "
                              f"{example}, got {describe(value)}")
        if value == "" and allowEmpty:
            return ""
        problem = _endpointProblem(value)
        if problem:
            raise ConfigError(f"{key}: {describe(value)} is not a usable listener: {problem}")
        return value

    return check


def normalizeDomain(name: str) -> str:
    """
    The canonical form of a served domain (RFC 7622 §3.2): IDNA2008 with
    UTS #46 mapping for names (so lowercased, U-labels kept), the address
    for an IPv4 literal, and the bracketed address for an IPv6 literal.

    @raise ValueError: with the reason when C{name} is not a plausible domain.
    """
    if name.startswith("[") and name.endswith("]"):
        return "[" + str(ipaddress.IPv6Address(name[1:-1])) + "]"
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    if ":" in name:
        raise ValueError("write an IPv6 address in brackets, like [::1]")
    if name.endswith("."):
        raise ValueError("remove the trailing dot")
    try:
        return idna.decode(idna.encode(name, uts46=True))
    except idna.IDNAError as e:
        raise ValueError(str(e)) from None


def domainList(allowEmpty: bool = False) -> Check:
    """A list of domain names, normalized, each once; empty only if allowed."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not (value or allowEmpty):
            raise ConfigError(f"{key}: expected a {'' if allowEmpty else 'non-empty '}list "
                              f"of domain names like [\"example.org\"], got {describe(value)}")
        domains: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"{key}: expected domain names (strings), "
                                  f"got {describe(item)}")
            try:
                domain = normalizeDomain(item)
            except ValueError as e:
                raise ConfigError(f"{key}: {describe(item)} is not a valid domain name: {e}")
            if domain in domains:
                raise ConfigError(f"{key}: {describe(item)} is listed twice")
            domains.append(domain)
        return tuple(domains)

    return check


class Table(Mapping):
    """
    A TOML table of strings once checked: read-only and hashable, so a
    section holding one stays frozen.  A table of secrets shows only its keys
    when printed, so a configuration that reaches a log gives none away.
    """

    __slots__ = ("_items", "_secret")

    def __init__(self, items: Mapping[str, str] | None = None, secret: bool = False):
        self._items = dict(items or {})
        self._secret = secret

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        if self._secret:
            return "Table(%r, secret)" % (sorted(self._items),)
        return "Table(%r)" % (self._items,)


def stringTable(example: str, normalizeKey: Callable[[str], str] | None = None,
                keyName: str = "key", secret: bool = False) -> Check:
    """
    A table of non-empty strings (C{example} shows its shape in messages),
    checked into a L{Table}.  C{normalizeKey} returns a key's canonical form
    or raises C{ValueError} with the reason; two keys with one canonical form
    are an error.  With C{secret} no message ever shows a value.
    """

    def check(key: str, value: Any) -> Table:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table like {example}, got {describe(value)}")
        items: dict[str, str] = {}
        for name, item in value.items():
            canonical = name
            if normalizeKey is not None:
                try:
                    canonical = normalizeKey(name)
                except ValueError as e:
                    raise ConfigError(f"{key}: {describe(name)} is not a valid {keyName}: {e}")
            if canonical in items:
                raise ConfigError(f"{key}: {describe(name)} is listed twice")
            if isinstance(item, Mapping):
                # Unquoted dotted keys are nested tables in TOML:
                # conference.example.org = "x" means {conference: {example: ...}}.
                raise ConfigError(f"{key}: the value for {describe(name)} is a table; "
                                  f"quote keys that contain dots, like {example}")
            if not isinstance(item, str) or not item:
                shown = "" if secret else f", got {describe(item)}"
                raise ConfigError(f"{key}: the value for {describe(name)} must be "
                                  f"a non-empty string{shown}")
            items[canonical] = item
        return Table(items, secret=secret)

    return check


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
        "the features this node runs, by name (see xmppd/core/modules.py); "
        "leave one out to switch it off")


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


@section("storage")
@dataclasses.dataclass(frozen=True)
class StorageConfig:
    backend: str = option(
        "sqlite", choice("sqlite", "memory", notYet=("redis",)),
        "\"sqlite\" (a file in data_dir) or \"memory\" (lost on restart, for tests)")


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


#: The table of per-domain tables, C{[hosts."example.org"]}: declared and
#: checked by L{xmppd.config.hosts}.
HOSTS = "hosts"


@dataclasses.dataclass(frozen=True)
class Config:
    """
    A validated configuration.  The core sections are typed attributes;
    sections declared by features are reached by name the same way
    (C{config.muc}), through L{sections}.
    """

    path: str | None
    server: ServerConfig
    c2s: C2SConfig
    tls: TLSConfig
    storage: StorageConfig
    limits: LimitsConfig
    log: LogConfig
    sections: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, repr=False, hash=False)
    #: Served domain -> what its C{[hosts."domain"]} table says (an
    #: L{xmppd.config.hosts.HostConfig}); only the domains that have one.  Read
    #: through L{xmppd.config.hosts.hostSettings}.
    hosts: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), hash=False)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: feature sections.
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"configuration has no section [{name}]")


def _unknown(name: str, where: str, candidates: list[str]) -> ConfigError:
    # A right key in the wrong section ("server.endpoint") is the likeliest
    # slip; otherwise suggest the closest spelling.
    bareName = name.rpartition(".")[2]
    close = [c for c in candidates if c.rpartition(".")[2] == bareName and "." in c]
    close = close or difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{name}: unknown {where}{hint}")


def unknownKey(name: str, candidates: list[str]) -> ConfigError:
    """The error for the unknown key C{name} (dotted), with the closest of C{candidates}."""
    return _unknown(name, "key", candidates)


def _readFile(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text "
                          f"(byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _buildSection(name: str, sectionClass: type, table: Any,
                  allKeys: list[str]) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: expected a table ([{name}]), got {describe(table)}")
    fields = {f.name: f for f in options(sectionClass)}
    for key in table:
        if key not in fields:
            raise _unknown(f"{name}.{key}", "key", allKeys)
    values = {key: f.metadata["check"](f"{name}.{key}", table.get(key, f.default))
              for key, f in fields.items()}
    built = sectionClass(**values)
    validate = getattr(built, "validate", None)
    if validate is not None:
        validate()
    return built


def loadConfig(path: str | None) -> Config:
    """
    Read and validate the file at C{path}; C{None} gives the built-in
    defaults (serving C{localhost}, data in C{./data}).

    @raise ConfigError: the file cannot be read or is not valid.
    """
    return configFromDict({} if path is None else _readFile(path), path)


def configFromDict(document: Mapping[str, Any], path: str | None = None) -> Config:
    """
    Validate C{document}, a parsed TOML file (C{{"server": {"domains":
    ["example.org"]}}}), exactly as L{loadConfig} validates a file, and
    return its L{Config}; C{path} is where the document came from, if
    anywhere.  Programs that embed xmppd build their configuration in code
    with this (see L{xmppd.api.makeServer}).

    @raise ConfigError: the document is not valid (one line naming the key).
    """
    # Features declare their own sections: they must exist before checking.
    importFeatures()
    allKeys = [f"{name}.{f.name}" for name, cls in SECTIONS.items()
               for f in options(cls)]
    for name, value in document.items():
        if name not in SECTIONS and name != HOSTS:
            if isinstance(value, dict):
                raise _unknown(name, "section", [*SECTIONS, HOSTS])
            raise _unknown(name, "key at the top level", allKeys)
    sections = {name: _buildSection(name, cls, document.get(name, {}), allKeys)
                for name, cls in SECTIONS.items()}
    # Imported here: xmppd.config.hosts builds on this module's checks.
    from xmppd.config.hosts import buildHosts
    hosts = buildHosts(document.get(HOSTS, {}), sections["server"])
    core = {f.name for f in dataclasses.fields(Config)} - {"path", "sections", "hosts"}
    return Config(
        path=None if path is None else os.path.abspath(path),
        sections=MappingProxyType(sections), hosts=hosts,
        **{name: sections[name] for name in core})


#: Environment variable naming the configuration file.
CONFIG_ENVIRONMENT = "XMPPD_CONFIG"
#: Read from the current directory when it exists and nothing else is named.
DEFAULT_CONFIG = "xmppd.toml"


def findConfigFile(explicit: str | None = None,
                   environ: "dict[str, str] | None" = None) -> str | None:
    """
    Which configuration file the server and xmppctl read: the one named on
    the command line, else C{$XMPPD_CONFIG}, else C{./xmppd.toml} when it
    exists, else C{None} for the built-in defaults.  One function, so the
    server and the admin command can never disagree about it.
    """
    environ = os.environ if environ is None else environ
    if explicit:
        return explicit
    if environ.get(CONFIG_ENVIRONMENT):
        return environ[CONFIG_ENVIRONMENT]
    if os.path.exists(DEFAULT_CONFIG):
        return DEFAULT_CONFIG
    return None
