# -*- test-case-name: tests.test_pep -*-
"""
The C{[pep]} section of the configuration: the defaults of a node created
by a first publish (XEP-0163 §5 "Recommended Defaults") and the bounds of
what PEP keeps in memory and sends for one event.  The limits every node
shares (items, payload size, nodes and subscriptions per account) are those
of C{[pubsub]} (L{xmppd.features.pubsub.settings}).

Implements: XEP-0163 1.2.2
"""

from __future__ import annotations

import dataclasses

from xmppd.config import integer, option, section

__all__ = ["PEPConfig"]


@section("pep")
@dataclasses.dataclass(frozen=True)
class PEPConfig:
    default_max_items: int = option(
        1, integer(1),
        "pubsub#max_items of a node created by a first publish unless its "
        "publish-options say otherwise (\"max\" is [pubsub] max_items)")
    max_last_items: int = option(
        100, integer(1),
        "last published items sent to one resource that comes online or "
        "announces new interests (XEP-0163 §4.3.4); more nodes than this wait "
        "for the next event")
    max_remote_resources: int = option(
        10000, integer(0),
        "full JIDs of other domains whose available presence to local accounts "
        "PEP remembers, to send them last items once their caps are known")
    engines_cached: int = option(
        1000, integer(1), "accounts whose PEP service objects are kept between requests")
    nodes_cached: int = option(
        10000, integer(1),
        "accounts whose PEP nodes, affiliations and subscriptions are kept in "
        "memory, so that a publish reads none of them from storage")
