# -*- test-case-name: tests.test_config -*-
"""
Loading the server's configuration: one TOML file, validated once, frozen.

L{loadConfig} reads the file with the standard library's C{tomllib}, checks
every key, and returns a L{Config} whose attributes mirror the file exactly
(C{config.c2s.direct_tls_endpoint} is C{direct_tls_endpoint} in C{[c2s]}), so
operators and code speak the same names.  Anything wrong (a TOML syntax error,
an unknown section or key, a value of the wrong type or out of range) raises
L{ConfigError}, whose text is one line naming the key, and the server does not
start.  Nothing else in the server reads the file or checks a value again.

The sections are those registered with L{xmppd.config.schema.section}: the
node's own (L{xmppd.config.sections}) and those of every known feature,
imported first (L{xmppd.config.registry.importFeatures}).  Served domains may
each override a few node-wide settings in a table of their own,
C{[hosts."example.org"]}: L{xmppd.config.hosts} declares and checks those.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from xmppd.config import schema
from xmppd.config.hosts import HOSTS, buildHosts
from xmppd.config.registry import importFeatures
from xmppd.config.schema import ConfigError, _unknown, describe, options
from xmppd.config.sections import (C2SConfig, LimitsConfig, LogConfig,
                                   SASLConfig, ServerConfig, StorageConfig, TLSConfig)


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
    sasl: SASLConfig
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
                  allKeys: list[str], present: bool = False) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: expected a table ([{name}]), got {describe(table)}")
    fields = {f.name: f for f in options(sectionClass)}
    for key in table:
        if key not in fields:
            raise _unknown(f"{name}.{key}", "key", allKeys)
    if present:
        # A section whose presence switches something on ([cluster]).
        for key in getattr(sectionClass, "REQUIRED_WHEN_PRESENT", ()):
            if key not in table:
                raise ConfigError(f"{name}.{key}: required in a [{name}] section")
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
    allKeys = [f"{name}.{f.name}" for name, cls in schema.SECTIONS.items()
               for f in options(cls)]
    for name, value in document.items():
        if name not in schema.SECTIONS and name != HOSTS:
            if isinstance(value, dict):
                raise _unknown(name, "section", [*schema.SECTIONS, HOSTS])
            raise _unknown(name, "key at the top level", allKeys)
    sections = {name: _buildSection(name, cls, document.get(name, {}), allKeys,
                                    name in document)
                for name, cls in schema.SECTIONS.items()}
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
