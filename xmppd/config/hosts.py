# -*- test-case-name: tests.test_vhosts -*-
"""
Virtual hosts: the settings of one served domain.

A node serves several domains (C{server.domains}); each may override a few
node-wide settings in a table of its own:

    [hosts."example.org"]
    register = true
    anonymous = true

L{HostConfig} declares the keys the way L{xmppd.config} declares sections
(an L{xmppd.config.option} each, with its check and documentation), and
L{buildHosts} checks the tables when the configuration is loaded: a table
for a domain that is not served, an unknown key or a bad value is one line
naming the key (C{hosts."example.org".register: expected true or false}).

L{hostSettings} then merges a domain's table with the node-wide settings,
once, so the code that acts on a setting (c2s negotiation, registration,
TLS, C{xmppctl}) asks one question and never needs to know where the answer
came from:

  - C{register}: in-band registration (XEP-0077) is open on the domain.
    The node-wide default is the older pair C{[register] allow} and
    C{domains}, which keeps working; the domain's table wins over it;
  - C{requireTLS}: no authentication (nor registration) before TLS; the
    default is C{c2s.require_tls};
  - C{maxUsers}: most accounts of the domain, 0 for no limit;
  - C{anonymous}: SASL ANONYMOUS (RFC 4505, XEP-0175) is offered;
  - C{certificate}, C{privateKey}: the domain's own credentials, chosen by
    SNI (L{xmppd.stream.tls.serverContextFactory}); empty for the node's;
  - C{admins}: who may run the admin commands (XEP-0133) on the domain:
    C{server.admins} and the domain's own C{admins}.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from xmppd.config.schema import (ConfigError, bareJIDList, boolean, describe, filePath, integer,
                                 normalizeDomain, option, options, unknownKey)

#: The table of per-domain tables, C{[hosts."example.org"]}.
HOSTS = "hosts"


def hostKey(domain: str, key: str | None = None) -> str:
    """How a key of a domain's table is named in messages: C{hosts."example.org".register}."""
    name = f"{HOSTS}.{json.dumps(domain, ensure_ascii=False)}"
    return name if key is None else f"{name}.{key}"


@dataclasses.dataclass(frozen=True)
class HostConfig:
    """
    What one C{[hosts."example.org"]} table says, key by key; C{None} is a
    key the table leaves out, so the node-wide setting applies (the
    documentation line says which).
    """

    register: bool | None = option(
        None, boolean(),
        "in-band registration (XEP-0077) open on this domain; by default "
        "[register] allow and domains decide")
    require_tls: bool | None = option(
        None, boolean(),
        "refuse authentication before TLS on this domain; by default c2s.require_tls")
    max_users: int | None = option(
        None, integer(minimum=1, zeroDisables=True),
        "most accounts this domain may have; 0 (the default) means no limit")
    anonymous: bool | None = option(
        None, boolean(),
        "offer SASL ANONYMOUS (XEP-0175) on this domain: a temporary account "
        "that lasts as long as its session; false by default")
    certificate: str | None = option(
        None, filePath(allowEmpty=True),
        "PEM certificate chain of this domain, chosen by SNI; \"\" (the default) "
        "uses the node's certificate")
    private_key: str | None = option(
        None, filePath(allowEmpty=True),
        "PEM private key (unencrypted) of that certificate; \"\" with certificate \"\"")
    admins: tuple[str, ...] | None = option(
        None, bareJIDList(),
        "administrators of this domain only (ad-hoc commands, XEP-0133), as bare JIDs; "
        "added to server.admins, who administer every domain")

    def validate(self, name: str) -> None:
        # Keys left out mean "the node's", like an empty string.
        certificate, privateKey = self.certificate or "", self.private_key or ""
        if certificate and not privateKey:
            raise ConfigError(f"{hostKey(name, 'private_key')}: must be set when "
                              f"{hostKey(name, 'certificate')} is")
        if privateKey and not certificate:
            raise ConfigError(f"{hostKey(name, 'certificate')}: must be set when "
                              f"{hostKey(name, 'private_key')} is")


def buildHosts(table: Any, server: Any) -> Mapping[str, HostConfig]:
    """
    Check C{[hosts]} against the checked C{[server]} section: one table per
    served domain (named in any form C{server.domains} accepts; kept under
    the canonical one), each with known keys only.

    @raise ConfigError: naming the key at fault.
    """
    example = f'[{hostKey("example.org")}]'
    if not isinstance(table, dict):
        raise ConfigError(f"{HOSTS}: expected tables like {example}, got {describe(table)}")
    fields = {f.name: f for f in options(HostConfig)}
    hosts: dict[str, HostConfig] = {}
    for name, settings in table.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"{hostKey(name)}: expected a table of settings for a "
                              f"served domain, like {example}, got {describe(settings)}")
        try:
            domain = normalizeDomain(name)
        except ValueError as e:
            raise ConfigError(f"{hostKey(name)}: not a valid domain name: {e}") from None
        if domain not in server.domains:
            # [hosts.example.org] is three nested tables in TOML.
            nested = any(isinstance(value, dict) for value in settings.values())
            hint = (f"quote domain names that contain dots, like {example}" if nested
                    else f"add it to server.domains or remove [{hostKey(name)}]")
            raise ConfigError(f"{hostKey(name)}: {describe(name)} is not in "
                              f"server.domains; {hint}")
        if domain in hosts:
            raise ConfigError(f"{hostKey(name)}: this domain has two tables")
        for key in settings:
            if key not in fields:
                raise unknownKey(hostKey(name, key), [hostKey(name, k) for k in fields])
        values = {key: fields[key].metadata["check"](hostKey(name, key), value)
                  for key, value in settings.items()}
        if values.get("register") and "register" not in server.modules:
            raise ConfigError(f"{hostKey(name, 'register')}: needs the feature "
                              f"\"register\" in server.modules")
        host = HostConfig(**values)
        host.validate(name)
        hosts[domain] = host
    return MappingProxyType(hosts)


@dataclasses.dataclass(frozen=True, slots=True)
class HostSettings:
    """What one served domain runs with (see the module docstring)."""

    domain: str
    register: bool = False
    requireTLS: bool = True
    maxUsers: int = 0
    anonymous: bool = False
    certificate: str = ""
    privateKey: str = ""
    #: Who may run the admin commands on this domain: C{server.admins} and
    #: the domain's own C{admins}.
    admins: frozenset = frozenset()


def defaultRegistration(registerConfig: Any, domain: str) -> bool:
    """
    Whether C{[register]} alone opens in-band registration on C{domain}:
    C{allow}, and C{domain} among C{domains} unless that list is empty.
    """
    if registerConfig is None:
        return False
    return bool(registerConfig.allow) and (
        not registerConfig.domains or domain in registerConfig.domains)


def hostSettings(config, domain: str, registerConfig: Any = None) -> HostSettings:
    """
    The effective settings of the served C{domain}: its C{[hosts]} table
    over the node-wide settings.  C{registerConfig} stands in for
    C{config.register} (a handler built with settings of its own).
    """
    if registerConfig is None:
        registerConfig = config.sections.get("register")
    host = config.hosts.get(domain) or HostConfig()
    return HostSettings(
        domain=domain,
        register=(defaultRegistration(registerConfig, domain) if host.register is None
                  else host.register),
        requireTLS=config.c2s.require_tls if host.require_tls is None else host.require_tls,
        maxUsers=host.max_users or 0,
        anonymous=bool(host.anonymous),
        certificate=host.certificate or "",
        privateKey=host.private_key or "",
        admins=frozenset(config.server.admins) | frozenset(host.admins or ()),
    )


def allHostSettings(config) -> dict[str, HostSettings]:
    """L{hostSettings} of every served domain."""
    return {domain: hostSettings(config, domain) for domain in config.server.domains}
