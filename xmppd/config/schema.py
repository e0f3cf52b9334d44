# -*- test-case-name: tests.test_config -*-
"""
The option DSL: how the configuration is declared and how values are checked.

Options are declared next to their documentation, ejabberd-style: each section
is a frozen dataclass registered with L{section}, and each field is an
L{option} carrying its default, a check and one line of documentation.  A
feature with options of its own declares its section in its own module the
same way; the module must be imported before L{xmppd.config.loading.loadConfig}
runs, and the section is then reachable as C{config.<name>}.

A check (L{boolean}, L{integer}, L{endpointString}, ...) takes the dotted key
and the value read from the file, and returns the value to keep or raises
L{ConfigError}, whose text is one line naming the key.

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
from collections.abc import Callable, Mapping
from typing import Any

import idna
from precis_i18n import get_profile
from twisted.internet.endpoints import serverFromString


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


def bareJIDList() -> Check:
    """
    A list of bare JIDs of accounts (C{"admin@example.org"}), each once, in
    canonical form: the localpart by the PRECIS UsernameCaseMapped profile
    (RFC 7622 §3.3), the domain as L{normalizeDomain} keeps it.  The
    configuration layer checks this itself rather than with the core's JID
    parser, which sits above it.
    """
    username = get_profile("UsernameCaseMapped")

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of bare JIDs like "
                              f"[\"admin@example.org\"], got {describe(value)}")
        jids: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"{key}: expected bare JIDs (strings), got {describe(item)}")
            if "/" in item:
                raise ConfigError(f"{key}: {describe(item)} has a resource; write the bare "
                                  f"JID, like \"admin@example.org\"")
            localpart, at, domain = item.rpartition("@")
            if not at or not localpart:
                raise ConfigError(f"{key}: {describe(item)} is not an account's JID; write "
                                  f"user@domain, like \"admin@example.org\"")
            try:
                localpart = username.enforce(localpart)
            except UnicodeEncodeError as e:
                raise ConfigError(f"{key}: {describe(item)} has an invalid user part "
                                  f"({e.reason})")
            if "@" in localpart or len(localpart.encode()) > 1023:
                raise ConfigError(f"{key}: {describe(item)} has an invalid user part")
            try:
                domain = normalizeDomain(domain)
            except ValueError as e:
                raise ConfigError(f"{key}: {describe(item)} has an invalid domain: {e}")
            jid = f"{localpart}@{domain}"
            if jid in jids:
                raise ConfigError(f"{key}: {describe(item)} is listed twice")
            jids.append(jid)
        return tuple(jids)

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
