# -*- test-case-name: tests.test_muc_service,tests.test_pubsub_config -*-
"""
Configuration checks that services on domains of their own share (MUC,
publish-subscribe): a domain template and a list of JIDs.  They sit in the
core, not in L{xmppd.config.schema}, because a JID is checked with the
core's RFC 7622 parser, and the configuration layer imports nothing above
it.
"""

from __future__ import annotations

from typing import Any

from xmppd.config import ConfigError, describe, normalizeDomain
from xmppd.core.jid import InvalidJID, parseJID

__all__ = ["domainTemplate", "jidList", "serviceDomain"]


def domainTemplate(example: str) -> Any:
    """
    A service's domain as a template of the served domain, such as
    C{example} (C{"conference.{domain}"}): C{{domain}} is the only field.
    """

    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}: expected a domain template like "
                              f"\"{example}\", got {describe(value)}")
        try:
            value.format(domain="example.org")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"{key}: {describe(value)} may only use {{domain}}, "
                              "the served domain")
        return value.strip()

    return check


def serviceDomain(template: str, domain: str) -> str:
    """The domain a checked L{domainTemplate} gives for the served C{domain}."""
    return normalizeDomain(template.format(domain=domain))


def jidList() -> Any:
    """A list of JIDs, kept as bare JIDs (service admins)."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of JIDs like [\"admin@example.org\"], "
                              f"got {describe(value)}")
        jids = []
        for item in value:
            try:
                jid = parseJID(item) if isinstance(item, str) else None
            except InvalidJID as e:
                raise ConfigError(f"{key}: {describe(item)} is not a valid JID: {e}")
            if jid is None:
                raise ConfigError(f"{key}: expected JIDs (strings), got {describe(item)}")
            jids.append(jid.userhost())
        return tuple(jids)

    return check
