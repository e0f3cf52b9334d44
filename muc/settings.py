# -*- test-case-name: tests.test_muc_service -*-
"""
The C{[muc]} section of the configuration: where the MUC service lives and
the limits every room shares.  Room owners choose the rest per room with
the configuration form (L{muc.features}).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from xmppd.config import (ConfigError, boolean, choice, describe, integer, number, option,
                          section, string)
from xmppd.core.checks import domainTemplate, jidList


@section("muc")
@dataclasses.dataclass(frozen=True)
class MUCConfig:
    domain: str = option(
        "conference.{domain}", domainTemplate("conference.{domain}"),
        "the MUC service's domain for each served domain; {domain} is the served domain")
    name: str = option("Chatrooms", string(), "the service's name in service discovery")
    room_creation: str = option(
        "local", choice("local", "anyone", "admins"),
        "who may create rooms: local (accounts of the served domains), anyone "
        "(remote users too), admins (only the JIDs in admins)")
    admins: tuple = option(
        (), jidList(), "JIDs that own every room of the service (XEP-0045 §5.2 service admins)")
    history_length: int = option(
        20, integer(0, 1000), "messages of discussion history a room keeps for people entering")
    max_occupants: int = option(
        200, integer(1), "a new room's size limit (muc#roomconfig_maxusers)")
    max_occupants_limit: int = option(
        1000, integer(1), "the largest size an owner may give a room")
    rate: float = option(
        5.0, number(minimum=0),
        "messages per second an occupant may send to a room on average; 0 means no limit")
    burst: int = option(10, integer(1), "messages an occupant may send at once above the rate")
    idle_unload: float = option(
        300.0, number(minimum=0),
        "seconds an empty persistent room stays in memory before it is unloaded "
        "(restored transparently on its next stanza)")
    persistent_default: bool = option(
        False, boolean(), "whether new rooms are persistent unless configured otherwise")
    public_default: bool = option(
        True, boolean(), "whether new rooms are listed in service discovery unless configured otherwise")

    def validate(self) -> None:
        if self.max_occupants > self.max_occupants_limit:
            raise ConfigError(f"muc.max_occupants: {self.max_occupants} is above "
                              f"muc.max_occupants_limit ({self.max_occupants_limit})")


def endpointList() -> Any:
    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of endpoints like "
                              f"[\"tcp:host=127.0.0.1:port=5347\"], got {describe(value)}")
        return tuple(_clientEndpoint(key, item) for item in value)

    def _clientEndpoint(key: str, item: Any) -> str:
        if not isinstance(item, str) or not item.startswith(("tcp:", "tls:", "unix:")):
            raise ConfigError(f"{key}: {describe(item)} is not a client endpoint like "
                              "\"tcp:host=127.0.0.1:port=5347\"")
        return item

    return check


@section("muc_component")
@dataclasses.dataclass(frozen=True)
class MUCComponentConfig:
    connect: tuple = option(
        (), endpointList(),
        "xmppd nodes the MUC service connects to when run as an external component "
        "(twistd -n xmppd-muc), as Twisted client endpoints")
    secret: str = option(
        "", string(), "the component secret, as in the node's [components] secrets")
    instance: str = option(
        "", string(),
        "this process's name among several MUC processes of the same domain, sent to "
        "the nodes, which give each name its share of the rooms (components.balance); "
        "unique per process and kept across restarts; \"\" uses host name and process id")
