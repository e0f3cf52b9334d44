"""
Tests for L{xmppd.features.privacy}: the XEP-0016 list model (ordering,
fall-through, matching by JID, group and subscription, stanza kinds), the
jabber:iq:privacy protocol and its errors, and the one policy check that
enforces privacy lists together with the XEP-0191 block list.
"""

import json

import pytest
from twisted.words.protocols.jabber.error import StanzaError

from tests.domainhelpers import Domain, errorCondition, fromClient
from tests.helpers import parse
from xmppd.core.jid import parseJID
from xmppd.features.privacy.rules import (NS_PRIVACY, PrivacyItem, PrivacyList, Stored,
                                          evaluate, kindOf, parseList)
from xmppd.storage.interfaces import RosterItem

DOMAIN = "example.org"
JULIET = "juliet@example.org"
ROMEO = "romeo@example.org"


def plist(*items):
    return PrivacyList("test", tuple(sorted(items, key=lambda item: item.order)))


def jid(text):
    return parseJID(text)


# -- the model (§2.1) ---------------------------------------------------------

def test_firstMatchingItemDecides():
    """Items are read in ascending order and the first that matches decides."""
    rules = plist(PrivacyItem("allow", 2, "jid", ROMEO), PrivacyItem("deny", 1, "jid", DOMAIN))
    assert evaluate(rules, "message", jid(ROMEO + "/orchard")) is False
    rules = plist(PrivacyItem("allow", 1, "jid", ROMEO), PrivacyItem("deny", 2, "jid", DOMAIN))
    assert evaluate(rules, "message", jid(ROMEO + "/orchard")) is True
    assert evaluate(rules, "message", jid("nurse@example.org")) is False


def test_fallThroughAllows():
    """A stanza no item matches is allowed."""
    rules = plist(PrivacyItem("deny", 1, "jid", "iago@example.net"))
    assert evaluate(rules, "message", jid(ROMEO)) is True
    assert evaluate(None, "message", jid(ROMEO)) is True


@pytest.mark.parametrize("value, peer, matches", [
    ("romeo@example.org/orchard", "romeo@example.org/orchard", True),
    ("romeo@example.org/orchard", "romeo@example.org/garden", False),
    ("romeo@example.org", "romeo@example.org/garden", True),
    ("romeo@example.org", "romeo@example.org", True),
    ("example.org/orchard", "romeo@example.org/orchard", True),
    ("example.org", "nurse@example.org/x", True),
    ("example.org", "example.net", False),
])
def test_jidMatching(value, peer, matches):
    """JID items match as §2.1 orders it: full, bare, domain/resource, domain."""
    rules = plist(PrivacyItem("deny", 1, "jid", value))
    assert evaluate(rules, "message", jid(peer)) is not matches


def test_subscriptionAndGroupItems():
    """Subscription and group items read the user's roster; 'none' also covers strangers."""
    friend = RosterItem(ROMEO, subscription="both", groups=("Friends",))
    rules = plist(PrivacyItem("allow", 1, "group", "Friends"),
                  PrivacyItem("deny", 2, "subscription", "none"))
    assert evaluate(rules, "message", jid(ROMEO), friend) is True
    assert evaluate(rules, "message", jid("iago@example.net"), None) is False
    rules = plist(PrivacyItem("deny", 1, "subscription", "both"))
    assert evaluate(rules, "message", jid(ROMEO), friend) is False
    assert evaluate(rules, "message", jid(ROMEO), RosterItem(ROMEO, subscription="to")) is True


def test_kindsLimitAnItem():
    """An item naming stanza kinds covers only those; one naming none covers all."""
    rules = plist(PrivacyItem("deny", 1, "jid", ROMEO, frozenset(["message"])))
    assert evaluate(rules, "message", jid(ROMEO)) is False
    assert evaluate(rules, "iq", jid(ROMEO)) is True
    assert evaluate(rules, "presence-in", jid(ROMEO)) is True
    assert evaluate(rules, None, jid(ROMEO)) is True
    rules = plist(PrivacyItem("deny", 1, "jid", ROMEO))
    assert evaluate(rules, None, jid(ROMEO)) is False


@pytest.mark.parametrize("xml, inbound, kind", [
    ("<message/>", True, "message"),
    ("<message/>", False, None),
    ("<iq type='get'/>", True, "iq"),
    ("<iq type='get'/>", False, None),
    ("<presence/>", True, "presence-in"),
    ("<presence type='unavailable'/>", False, "presence-out"),
    ("<presence type='subscribe'/>", True, None),
    ("<presence type='probe'/>", True, None),
])
def test_kindOfStanza(xml, inbound, kind):
    """Kinds cover what §2.1 says: received messages and IQs, presence notifications each way."""
    assert kindOf(parse(xml), inbound) == kind


def listXML(items, name="l"):
    return parse("<list xmlns='%s' name='%s'>%s</list>" % (NS_PRIVACY, name, items))


@pytest.mark.parametrize("items", [
    "<item action='block' order='1'/>",
    "<item action='deny'/>",
    "<item action='deny' order='-1'/>",
    "<item action='deny' order='x'/>",
    "<item type='jid' action='deny' order='1'/>",
    "<item type='color' value='red' action='deny' order='1'/>",
    "<item type='subscription' value='maybe' action='deny' order='1'/>",
    "<item type='jid' value='@@' action='deny' order='1'/>",
    "<item value='x' action='deny' order='1'/>",
    "<item action='deny' order='1'><chat/></item>",
    "<item action='deny' order='1'/><item action='allow' order='1'/>",
])
def test_malformedItemsRefused(items):
    """A malformed item is bad-request."""
    with pytest.raises(StanzaError) as failed:
        parseList(listXML(items), 100)
    assert failed.value.condition == "bad-request"


def test_listRoundTrip():
    """A parsed list is kept in order and stored and read back unchanged."""
    parsed = parseList(listXML(
        "<item type='jid' value='Romeo@Example.org' action='allow' order='5'><message/></item>"
        "<item action='deny' order='1'><presence-out/><iq/></item>"), 100)
    assert [item.order for item in parsed.items] == [1, 5]
    assert parsed.items[1].value == ROMEO
    stored = Stored({"l": parsed}, "l")
    assert Stored.fromJSON(json.loads(json.dumps(stored.toJSON()))) == stored
