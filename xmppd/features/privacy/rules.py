# -*- test-case-name: tests.test_privacy -*-
"""
The privacy list model of XEP-0016 §2.1, pure: no I/O, no streams.

A list is a sequence of items, each with an C{action} (allow or deny), a
unique non-negative C{order}, an optional C{type} (C{jid}, C{group},
C{subscription}) with its C{value}, and the stanza kinds it covers
(C{message}, C{iq}, C{presence-in}, C{presence-out}; none named means
every stanza, both ways).  A stanza is checked against the items in
ascending order; the first item that matches it decides, and a stanza no
item matches is allowed (the fall-through of §2.1).

What a kind covers (§2.1, as ejabberd and Openfire read it): C{message}
and C{iq} the messages and IQs the user receives; C{presence-in} the
presence notifications (available and unavailable) the user receives;
C{presence-out} those the user sends.  Everything else (subscription
requests, probes, and messages or IQs the user sends) only items without
kinds cover.

JIDs match as XEP-0016 §2.1 orders them (and XEP-0191 §6 repeats): a full
JID only itself, a bare JID every resource of it, C{domain/resource} that
resource at the domain, a domain every JID at it.  A C{subscription} item
of value C{none} also covers JIDs not on the roster; a C{group} item only
contacts in that roster group.

Lists are stored as JSON; L{parseList} builds one from the XML of a set and
raises the stanza errors of §2.6 (C{bad-request}) for a malformed item.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.core.jid import InvalidJID, parseJID

__all__ = ["KINDS", "NS_PRIVACY", "PrivacyItem", "PrivacyList", "Stored", "evaluate",
           "kindOf", "listElement", "matchKeys", "parseList"]

NS_PRIVACY = "jabber:iq:privacy"

#: The stanza kinds an item may name (§2.1), as element names.
KINDS = ("message", "iq", "presence-in", "presence-out")

TYPES = ("jid", "group", "subscription")
SUBSCRIPTIONS = ("both", "to", "from", "none")
ACTIONS = ("allow", "deny")


def matchKeys(jid: JID) -> list[str]:
    """
    The JID item values that match C{jid} (§2.1): itself, its bare JID, its
    domain/resource and its domain.
    """
    keys = [jid.full()]
    if jid.resource is not None:
        if jid.user is not None:
            keys.append(jid.userhost())
        keys.append("%s/%s" % (jid.host, jid.resource))
    if jid.user is not None or jid.resource is not None:
        keys.append(jid.host)
    return keys


def kindOf(stanza: domish.Element, inbound: bool) -> str | None:
    """
    The kind a list item must name to cover C{stanza} going this way, or
    C{None} when only items without kinds cover it (see the module
    docstring).
    """
    name = stanza.name
    if name == "presence":
        if stanza.getAttribute("type") in (None, "unavailable"):
            return "presence-in" if inbound else "presence-out"
        return None
    if inbound and name in ("message", "iq"):
        return name
    return None


@dataclasses.dataclass(frozen=True)
class PrivacyItem:
    """One rule of a list (§2.1)."""

    action: str
    order: int
    type: str | None = None
    value: str | None = None
    #: The kinds covered; empty: every stanza, both ways.
    kinds: frozenset = frozenset()

    def covers(self, kind: str | None) -> bool:
        return not self.kinds or (kind is not None and kind in self.kinds)

    def matches(self, keys: list[str], rosterItem) -> bool:
        """Whether the item's type and value cover a peer (its L{matchKeys}, its roster item)."""
        if self.type is None:
            return True
        if self.type == "jid":
            return self.value in keys
        if self.type == "subscription":
            subscription = rosterItem.subscription if rosterItem is not None else "none"
            return subscription == self.value
        return rosterItem is not None and self.value in rosterItem.groups

    def toElement(self) -> domish.Element:
        item = domish.Element((NS_PRIVACY, "item"))
        if self.type is not None:
            item["type"] = self.type
            item["value"] = self.value
        item["action"] = self.action
        item["order"] = str(self.order)
        for kind in KINDS:
            if kind in self.kinds:
                item.addElement(kind)
        return item

    def toJSON(self) -> dict:
        data = {"action": self.action, "order": self.order}
        if self.type is not None:
            data["type"] = self.type
            data["value"] = self.value
        if self.kinds:
            data["kinds"] = [kind for kind in KINDS if kind in self.kinds]
        return data

    @classmethod
    def fromJSON(cls, data: dict) -> "PrivacyItem":
        item = cls(data["action"], int(data["order"]), data.get("type"), data.get("value"),
                   frozenset(data.get("kinds", ())))
        if (item.action not in ACTIONS or item.type not in (None,) + TYPES
                or not item.kinds <= frozenset(KINDS)):
            raise ValueError("a stored privacy item is malformed")
        return item


@dataclasses.dataclass(frozen=True)
class PrivacyList:
    """A named list, its items in processing order."""

    name: str
    items: tuple[PrivacyItem, ...]

    @property
    def needsRoster(self) -> bool:
        """Whether checking a stanza against the list reads the user's roster."""
        return any(item.type in ("group", "subscription") for item in self.items)

    def decide(self, kind: str | None, peer: JID, rosterItem=None) -> bool | None:
        """
        C{True} if the first item covering the stanza allows it, C{False}
        if it denies it, C{None} when no item covers it (fall through).
        """
        keys = None
        for item in self.items:
            if not item.covers(kind):
                continue
            if item.type == "jid" and keys is None:
                keys = matchKeys(peer)
            if item.matches(keys or (), rosterItem):
                return item.action == "allow"
        return None


def evaluate(privacyList: PrivacyList | None, kind: str | None, peer: JID,
             rosterItem=None) -> bool:
    """Whether C{privacyList} lets the stanza through; no list, or no covering item: yes."""
    if privacyList is None:
        return True
    return privacyList.decide(kind, peer, rosterItem) is not False


def listElement(privacyList: PrivacyList) -> domish.Element:
    element = domish.Element((NS_PRIVACY, "list"))
    element["name"] = privacyList.name
    for item in privacyList.items:
        element.addChild(item.toElement())
    return element


def parseItem(element: domish.Element) -> PrivacyItem:
    """One C{<item/>} of a set, or C{bad-request} saying what is wrong (§2.6)."""
    action = element.getAttribute("action")
    if action not in ACTIONS:
        raise StanzaError("bad-request", text="an item's action is allow or deny")
    order = element.getAttribute("order")
    if order is None or not order.isdigit() or len(order) > 10:
        raise StanzaError("bad-request", text="an item's order is a non-negative integer")
    itemType = element.getAttribute("type")
    value = element.getAttribute("value")
    if itemType is None:
        if value is not None:
            raise StanzaError("bad-request", text="an item with a value needs a type")
    elif itemType not in TYPES:
        raise StanzaError("bad-request", text="an item's type is jid, group or subscription")
    elif value is None or value == "":
        raise StanzaError("bad-request", text="a %s item needs a value" % (itemType,))
    elif itemType == "jid":
        try:
            value = parseJID(value).full()
        except InvalidJID:
            raise StanzaError("bad-request", text="not a JID: %s" % (value[:100],))
    elif itemType == "subscription" and value not in SUBSCRIPTIONS:
        raise StanzaError("bad-request",
                          text="a subscription item's value is both, to, from or none")
    kinds = set()
    for child in element.elements():
        if child.name not in KINDS or child.uri != NS_PRIVACY:
            raise StanzaError("bad-request", text="unknown stanza kind <%s/>" % (child.name[:50],))
        kinds.add(child.name)
    return PrivacyItem(action, int(order), itemType, value, frozenset(kinds))


def parseList(element: domish.Element, maxItems: int) -> PrivacyList:
    """The list of a set (§2.6); orders must be unique (§2.1)."""
    name = element.getAttribute("name")
    if not name:
        raise StanzaError("bad-request", text="a list needs a name")
    items = [parseItem(child) for child in element.elements(NS_PRIVACY, "item")]
    if len({item.order for item in items}) != len(items):
        raise StanzaError("bad-request", text="two items of a list have the same order")
    if len(items) > maxItems:
        raise StanzaError("policy-violation", type="modify",
                          text="a privacy list holds at most %d items" % (maxItems,))
    return PrivacyList(name, tuple(sorted(items, key=lambda item: item.order)))


@dataclasses.dataclass
class Stored:
    """An account's lists and its default list's name, as stored (JSON)."""

    lists: dict[str, PrivacyList] = dataclasses.field(default_factory=dict)
    default: str | None = None

    def toJSON(self) -> dict:
        return {"default": self.default,
                "lists": {name: [item.toJSON() for item in privacyList.items]
                          for name, privacyList in self.lists.items()}}

    @classmethod
    def fromJSON(cls, data) -> "Stored":
        if not isinstance(data, dict) or not isinstance(data.get("lists", {}), dict):
            raise ValueError("stored privacy lists are not a mapping")
        lists = {}
        for name, items in data.get("lists", {}).items():
            parsed: Iterable[PrivacyItem] = (PrivacyItem.fromJSON(item) for item in items)
            lists[name] = PrivacyList(name, tuple(sorted(parsed, key=lambda item: item.order)))
        default = data.get("default")
        return cls(lists, default if default in lists else None)
