# -*- test-case-name: tests.test_pie_pep -*-
"""
An account's PEP data (XEP-0163) in the XEP-0227 file format (§4.9 of
v1.1), read into and written from L{PubSubNodeRecord}s; the rest of the
format is L{xmppd.cli.pie}.

XEP-0227 gives each C{<user/>} two C{<pubsub/>} children:

  - in C{http://jabber.org/protocol/pubsub#owner}, one C{<configure
    node=.../>} per node holding the node configuration as a XEP-0004 form
    (C{pubsub#node_config}).  The XEP is silent on affiliations and
    subscriptions; they are written here as XEP-0060's own owner elements
    next to the configuration: C{<affiliations node=.../>} (§8.9) and
    C{<subscriptions node=.../>} (§8.8, with C{subid});
  - in C{http://jabber.org/protocol/pubsub}, one C{<items node=.../>} per
    node with its C{<item id=... publisher=.../>}s, oldest first (as
    offline messages and archives are), so the last one is the newest
    again after an import; and, where a subscription has options, a
    XEP-0060 §6.3 C{<options node=... jid=... subid=.../>} form.

The XEP has no place for when an item was published; xmppd writes it as
the attribute C{published} (XEP-0082 date-time) in the namespace
L{NS_XMPPD_PIE}, which other servers ignore, so a round trip through
C{xmppctl} keeps it.  Items without it (from Prosody or ejabberd) are
stamped with the time of the import.

Reading is lenient where the XEP is: a node with items, affiliations or
subscriptions but no C{<configure/>} (which §4.9 says it MUST have) is
imported with an empty configuration, so the service's defaults apply;
unknown elements are skipped and noted.  What cannot be imported as
written (a node without a name, an item without an id or with two
payloads, an invalid JID, an unknown affiliation or subscription state) is
an error naming the line.

Implements: XEP-0227 v1.1 §4.9 (PEP nodes: configuration, items,
affiliations, subscriptions)
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from twisted.words.xish.domish import Element

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.storage.interfaces import (PUBSUB_AFFILIATIONS, PUBSUB_STATES, PubSubItem,
                                      PubSubNodeRecord, PubSubSubscription)
from xmppd.cli.xmltext import attr as _attr, escape as _escape

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_DATA = "jabber:x:data"
#: Where xmppd's own additions to the format live (XEP-0227 §4 allows them).
NS_XMPPD_PIE = "https://xmppd.example/pie"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"

#: XEP-0004 field types whose value is a list even with one value.
MULTI = frozenset(("list-multi", "jid-multi", "text-multi"))
#: The list-valued fields of XEP-0060's node_config form that are not
#: list-multi, so an export gives them their own type back.
LIST_TYPES = {"pubsub#contact": "jid-multi",
              "pubsub#children_association_whitelist": "jid-multi",
              "pubsub#children": "text-multi", "pubsub#collection": "text-multi"}

#: C{fail(message, element)} builds the error to raise, naming C{element}'s line.
Fail = Callable[[str, Element], Exception]
#: C{skip(element, why)} notes an element that is not imported.
Skip = Callable[[Element, str], None]


@dataclass
class _Node:
    config: dict = field(default_factory=dict)
    configured: bool = False
    #: item id -> PubSubItem, oldest first.
    items: dict[str, PubSubItem] = field(default_factory=dict)
    affiliations: dict[str, str] = field(default_factory=dict)
    #: (jid, subid) -> [state, options]
    subscriptions: dict[tuple[str, str], list] = field(default_factory=dict)


class PEPReader:
    """Collects one account's PEP data from its C{<pubsub/>} elements."""

    def __init__(self, jid: str, fail: Fail, skip: Skip) -> None:
        self.jid = jid
        self.fail = fail
        self.skip = skip
        self.nodes: dict[str, _Node] = {}
        # Whole seconds: written out and read back, the stamp stays the same.
        self.now = float(int(time.time()))

    def records(self) -> list[PubSubNodeRecord]:
        """The nodes read, in the order the file first named them."""
        return [PubSubNodeRecord(
            name, node.config, tuple(node.items.values()), node.affiliations,
            tuple(PubSubSubscription(self.jid, name, jid, subid, state, options)
                  for (jid, subid), (state, options) in node.subscriptions.items()))
            for name, node in self.nodes.items()]

    def _node(self, element: Element) -> tuple[str, _Node]:
        name = element.getAttribute("node")
        if not name:
            raise self.fail(f"the PEP <{element.name}> of {self.jid} has no 'node'", element)
        return name, self.nodes.setdefault(name, _Node())

    def _jid(self, text: str | None, what: str, element: Element, bare: bool) -> str:
        if not text:
            raise self.fail(f"{what} has no 'jid'", element)
        try:
            jid = parseJID(text)
        except InvalidJID as e:
            raise self.fail(f"{what}: {text!r} is not a valid JID ({e})", element) from None
        if bare and jid.resource:
            raise self.fail(f"{what}: {text!r} is not a bare JID", element)
        return jid.full()

    def owner(self, pubsub: Element) -> None:
        """A C{<pubsub xmlns='...#owner'/>}: configurations, affiliations, subscriptions."""
        for child in pubsub.elements():
            key = (child.uri, child.name)
            if key == (NS_PUBSUB_OWNER, "configure"):
                name, node = self._node(child)
                if node.configured:
                    raise self.fail(f"PEP node {name!r} of {self.jid} is configured twice",
                                    child)
                node.configured = True
                form = next(child.elements(NS_DATA, "x"), None)
                node.config = {} if form is None else readForm(form)
            elif key == (NS_PUBSUB_OWNER, "affiliations"):
                name, node = self._node(child)
                self._affiliations(name, node, child)
            elif key == (NS_PUBSUB_OWNER, "subscriptions"):
                name, node = self._node(child)
                self._subscriptions(name, node, child)
            else:
                self.skip(child, "not expected in PEP data")

    def public(self, pubsub: Element) -> None:
        """A C{<pubsub xmlns='http://jabber.org/protocol/pubsub'/>}: items and options."""
        for child in pubsub.elements():
            key = (child.uri, child.name)
            if key == (NS_PUBSUB, "items"):
                name, node = self._node(child)
                self._items(name, node, child)
            elif key == (NS_PUBSUB, "options"):
                self._options(child)
            else:
                self.skip(child, "not expected in PEP data")

    def _affiliations(self, name: str, node: _Node, container: Element) -> None:
        for element in container.elements():
            if (element.uri, element.name) != (NS_PUBSUB_OWNER, "affiliation"):
                self.skip(element, "not expected in PEP data")
                continue
            what = f"an affiliation with PEP node {name!r} of {self.jid}"
            jid = self._jid(element.getAttribute("jid"), what, element, bare=True)
            affiliation = element.getAttribute("affiliation")
            if affiliation == "none":
                continue
            if affiliation not in PUBSUB_AFFILIATIONS:
                raise self.fail(f"{what}: {affiliation!r} is not one of "
                                f"{', '.join(sorted(PUBSUB_AFFILIATIONS))}", element)
            node.affiliations[jid] = affiliation

    def _subscriptions(self, name: str, node: _Node, container: Element) -> None:
        for element in container.elements():
            if (element.uri, element.name) != (NS_PUBSUB_OWNER, "subscription"):
                self.skip(element, "not expected in PEP data")
                continue
            what = f"a subscription to PEP node {name!r} of {self.jid}"
            jid = self._jid(element.getAttribute("jid"), what, element, bare=False)
            state = element.getAttribute("subscription", "subscribed")
            if state == "none":
                continue
            if state not in PUBSUB_STATES:
                raise self.fail(f"{what}: {state!r} is not one of "
                                f"{', '.join(sorted(PUBSUB_STATES))}", element)
            # §6.1.6: a subid is needed only for several subscriptions of one
            # JID; the store keys every subscription by one.
            subid = element.getAttribute("subid") or uuid.uuid4().hex
            options = node.subscriptions.get((jid, subid), [None, {}])[1]
            node.subscriptions[(jid, subid)] = [state, options]

    def _options(self, element: Element) -> None:
        name, jid, subid = (element.getAttribute(a) for a in ("node", "jid", "subid"))
        node = self.nodes.get(name or "")
        matching = [key for key in (node.subscriptions if node else ())
                    if key[0] == jid and (subid is None or key[1] == subid)]
        if len(matching) != 1:
            self.skip(element, "no single subscription listed before it matches")
            return
        form = next(element.elements(NS_DATA, "x"), None)
        node.subscriptions[matching[0]][1] = {} if form is None else readForm(form)

    def _items(self, name: str, node: _Node, container: Element) -> None:
        for element in container.elements():
            if (element.uri, element.name) != (NS_PUBSUB, "item"):
                self.skip(element, "not expected in PEP data")
                continue
            itemId = element.getAttribute("id")
            what = f"an item of PEP node {name!r} of {self.jid}"
            if not itemId:
                raise self.fail(f"{what} has no 'id'", element)
            what = f"item {itemId!r} of PEP node {name!r} of {self.jid}"
            payloads = list(element.elements())
            if len(payloads) > 1:
                raise self.fail(f"{what} has more than one payload", element)
            if any(isinstance(c, str) and c.strip() for c in element.children):
                raise self.fail(f"{what} has text outside its payload", element)
            publisher = element.getAttribute("publisher")
            publisher = (self._jid(publisher, what, element, bare=False) if publisher
                         else self.jid)
            stamp = element.getAttribute((NS_XMPPD_PIE, "published"))
            published = self.now if stamp is None else _readStamp(stamp, what, element,
                                                                  self.fail)
            # An id given twice is a republication: the later one is newer.
            node.items.pop(itemId, None)
            node.items[itemId] = PubSubItem(
                itemId, payloads[0].toXml() if payloads else "", publisher, published)


def readForm(form: Element) -> dict:
    """
    A XEP-0004 form as a configuration dict (L{PubSubNode.config}): a
    C{str} per field, a C{list} for multi-valued types or several values;
    C{FORM_TYPE} and fields without a C{var} left out.
    """
    values: dict = {}
    for element in form.elements(NS_DATA, "field"):
        var = element.getAttribute("var")
        if not var or var == "FORM_TYPE":
            continue
        given = ["".join(c for c in value.children if isinstance(c, str))
                 for value in element.elements(NS_DATA, "value")]
        if element.getAttribute("type") in MULTI or len(given) > 1:
            values[var] = given
        else:
            values[var] = given[0] if given else ""
    return values


def _readStamp(text: str, what: str, element: Element, fail: Fail) -> float:
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise fail(f"{what}: published {text!r} is not a XEP-0082 date-time", element)
    return stamp.timestamp()


# Writing


def _stamp(seconds: float) -> str | None:
    """XEP-0082 date-time, to the microsecond; C{None} for a time no date has."""
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds"
                            ).replace("+00:00", "Z")


def _value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def writeForm(formType: str, values: dict, indent: str) -> Iterator[str]:
    """C{values} (as L{readForm} gives them) as a XEP-0004 form, one field a line."""
    yield f"{indent}<x xmlns='{NS_DATA}' type='form'>\n"
    yield (f"{indent}  <field var='FORM_TYPE' type='hidden'><value>{formType}</value>"
           f"</field>\n")
    for var in sorted(values):
        value = values[var]
        if isinstance(value, (list, tuple)):
            kind = f" type={_attr(LIST_TYPES.get(var, 'list-multi'))}"
            given = [_value(v) for v in value]
        else:
            kind, given = "", [] if value is None else [_value(value)]
        inner = "".join(f"<value>{_escape(v)}</value>" for v in given)
        yield f"{indent}  <field var={_attr(var)}{kind}>{inner}</field>\n"
    yield f"{indent}</x>\n"


def write(nodes: Iterable[PubSubNodeRecord], indent: str = "      ") -> Iterator[str]:
    """The two C{<pubsub/>} elements of an account's PEP C{nodes} (none if no nodes)."""
    nodes = sorted(nodes, key=lambda record: record.node)
    if not nodes:
        return
    yield f"{indent}<pubsub xmlns='{NS_PUBSUB_OWNER}'>\n"
    for record in nodes:
        node = _attr(record.node)
        yield f"{indent}  <configure node={node}>\n"
        yield from writeForm(NODE_CONFIG, record.config, indent + "    ")
        yield f"{indent}  </configure>\n"
        if record.affiliations:
            yield f"{indent}  <affiliations node={node}>\n"
            for jid, affiliation in sorted(record.affiliations.items()):
                yield (f"{indent}    <affiliation jid={_attr(jid)} "
                       f"affiliation={_attr(affiliation)}/>\n")
            yield f"{indent}  </affiliations>\n"
        if record.subscriptions:
            yield f"{indent}  <subscriptions node={node}>\n"
            for s in record.subscriptions:
                yield (f"{indent}    <subscription jid={_attr(s.jid)} "
                       f"subscription={_attr(s.state)} subid={_attr(s.subid)}/>\n")
            yield f"{indent}  </subscriptions>\n"
    yield f"{indent}</pubsub>\n"
    yield f"{indent}<pubsub xmlns='{NS_PUBSUB}' xmlns:xmppd='{NS_XMPPD_PIE}'>\n"
    for record in nodes:
        node = _attr(record.node)
        if record.items:
            yield f"{indent}  <items node={node}>\n"
            for item in record.items:
                stamp = _stamp(item.published)
                head = (f"{indent}    <item id={_attr(item.id)} "
                        f"publisher={_attr(item.publisher)}"
                        + (f" xmppd:published='{stamp}'" if stamp else ""))
                yield f"{head}>{item.payload}</item>\n" if item.payload else f"{head}/>\n"
            yield f"{indent}  </items>\n"
        for s in record.subscriptions:
            if s.options:
                yield (f"{indent}  <options node={node} jid={_attr(s.jid)} "
                       f"subid={_attr(s.subid)}>\n")
                yield from writeForm(SUBSCRIBE_OPTIONS, s.options, indent + "    ")
                yield f"{indent}  </options>\n"
    yield f"{indent}</pubsub>\n"
