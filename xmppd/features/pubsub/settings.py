# -*- test-case-name: tests.test_pubsub_service -*-
"""
The C{[pubsub]} section of the configuration: where each served domain's
publish-subscribe service lives, who may create nodes on it, and the limits
every node shares (issue 12 item 5).  Node owners choose the rest per node
with the configuration form (L{xmppd.features.pubsub.nodeconfig}).

Implements: XEP-0060 1.26
"""

from __future__ import annotations

import dataclasses

from xmppd.config import ConfigError, choice, integer, option, section, string
from xmppd.core.checks import domainTemplate, jidList

__all__ = ["PubSubConfig"]


@section("pubsub")
@dataclasses.dataclass(frozen=True)
class PubSubConfig:
    domain: str = option(
        "pubsub.{domain}", domainTemplate("pubsub.{domain}"),
        "the publish-subscribe service's domain for each served domain; "
        "{domain} is the served domain")
    name: str = option("Publish-Subscribe", string(), "the service's name in service discovery")
    node_creation: str = option(
        "local", choice("local", "anyone", "admins"),
        "who may create nodes: local (accounts of the served domains), anyone "
        "(remote users too), admins (only the JIDs in admins)")
    admins: tuple = option(
        (), jidList(), "JIDs that own every node of the service (XEP-0060 §4.1 service admins)")
    max_items: int = option(
        1000, integer(1),
        "the most items one node keeps; pubsub#max_items 'max' means this many")
    default_max_items: int = option(
        10, integer(1), "pubsub#max_items of a new node unless configured otherwise")
    max_payload_size: int = option(
        65536, integer(1), "the largest item payload in bytes (larger: payload-too-big)")
    max_nodes_per_owner: int = option(
        100, integer(1), "the most nodes one account may own on the service")
    max_subscriptions: int = option(
        1000, integer(1), "the most subscriptions one account may hold on the service")
    fanout_batch: int = option(
        500, integer(1),
        "notifications sent per reactor turn; a larger fan-out continues on the next turn")
    max_backlog: int = option(
        100000, integer(1),
        "notifications waiting to be sent beyond which publishing is refused for a moment "
        "(resource-constraint), so the queue stays bounded")

    def validate(self) -> None:
        if self.default_max_items > self.max_items:
            raise ConfigError(f"pubsub.default_max_items: {self.default_max_items} is above "
                              f"pubsub.max_items ({self.max_items})")
