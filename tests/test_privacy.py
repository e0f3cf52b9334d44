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


# -- the protocol (§2.2-§2.8) ---------------------------------------------------

BALCONY = JULIET + "/balcony"
CHAMBER = JULIET + "/chamber"
ORCHARD = ROMEO + "/orchard"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def world(tmp_path):
    """Juliet (two resources) and Romeo, subscribed both ways, all online."""
    world = Domain(tmp_path, features=("presence", "roster", "messages", "disco", "blocking",
                                       "privacy"),
                   sections={"privacy": {"max_items": 3, "max_lists": 2}})
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both",
                                                              groups=("Montagues",)))
    world.storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET, subscription="both"))
    world.streams = {}
    for full in (ORCHARD, BALCONY, CHAMBER):
        world.streams[full] = world.bind(full)
        world.send("<presence from='%s'/>" % full)
    for stream in world.streams.values():
        stream.take()
    return world


def ask(world, payload, sender=BALCONY, kind="set", id="p1"):
    """Send a privacy request as C{sender}; what C{sender} got back."""
    world.send("<iq type='%s' id='%s' from='%s'><query xmlns='%s'>%s</query></iq>"
               % (kind, id, sender, NS_PRIVACY, payload))
    return [s for s in world.streams[sender].take() if s.getAttribute("id") == id]


def ok(world, payload, sender=BALCONY, kind="set"):
    [reply] = ask(world, payload, sender, kind)
    assert reply["type"] == "result", reply.toXml()
    return reply


def refused(world, payload, sender=BALCONY, kind="set"):
    [reply] = ask(world, payload, sender, kind)
    return errorCondition(reply)


DENY_ROMEO_MESSAGES = ("<list name='quiet'><item type='jid' value='%s' action='deny' order='1'>"
                       "<message/></item></list>" % ROMEO)


def test_listsAndNames(world):
    """A stored list is named in the overview with the default and active lists, and read back in order (§2.3)."""
    assert list(ok(world, "", kind="get").query.elements()) == []
    ok(world, "<list name='a'><item action='deny' order='9'/>"
              "<item type='group' value='Montagues' action='allow' order='3'/></list>")
    ok(world, "<default name='a'/>")
    ok(world, "<active name='a'/>")
    overview = ok(world, "", kind="get").query
    assert [(e.name, e.getAttribute("name")) for e in overview.elements()] == [
        ("active", "a"), ("default", "a"), ("list", "a")]
    # Another resource has no active list of its own.
    other = ok(world, "", sender=CHAMBER, kind="get").query
    assert [e.name for e in other.elements()] == ["default", "list"]
    [stored] = ok(world, "<list name='a'/>", kind="get").query.elements()
    assert [(i["order"], i["action"]) for i in stored.elements()] == [("3", "allow"), ("9", "deny")]


@pytest.mark.parametrize("payload, kind, condition", [
    ("<list name='nope'/>", "get", "item-not-found"),
    ("<list name='a'/><list name='b'/>", "get", "bad-request"),
    ("<active name='nope'/>", "set", "item-not-found"),
    ("<default name='nope'/>", "set", "item-not-found"),
    ("<list name='nope'/>", "set", "item-not-found"),
    ("<active/><default/>", "set", "bad-request"),
    ("", "set", "bad-request"),
    ("<list name='a'><item action='deny' order='x'/></list>", "set", "bad-request"),
    ("<list><item action='deny' order='1'/></list>", "set", "bad-request"),
    ("<list name='big'>" + "".join("<item action='deny' order='%d'/>" % i for i in range(4))
     + "</list>", "set", "policy-violation"),
])
def test_errors(world, payload, kind, condition):
    """Unknown lists are item-not-found, malformed requests bad-request, oversized lists policy-violation."""
    assert refused(world, payload, kind=kind) == condition


def test_tooManyLists(world):
    """An account keeps at most max_lists lists."""
    for name in ("a", "b"):
        ok(world, "<list name='%s'><item action='deny' order='1'/></list>" % name)
    assert refused(world, "<list name='c'><item action='deny' order='1'/></list>") == \
        "policy-violation"


def test_onlyTheAccountMayAsk(world):
    """Another user asking about someone's lists gets service-unavailable."""
    world.send("<iq type='get' id='x1' from='%s' to='%s'><query xmlns='%s'/></iq>"
               % (ORCHARD, JULIET, NS_PRIVACY))
    [reply] = world.streams[ORCHARD].take()
    assert errorCondition(reply) == "service-unavailable"


def test_editPushedToEveryResource(world):
    """Every connected resource of the account gets the name of a changed list (§2.6)."""
    ok(world, DENY_ROMEO_MESSAGES)
    [push] = world.streams[CHAMBER].take()
    assert push["type"] == "set" and push["from"] == JULIET
    assert [e["name"] for e in push.query.elements()] == ["quiet"]
    assert world.streams[ORCHARD].take() == []


def test_removingListInUseElsewhereConflicts(world):
    """A list active for another resource, or the default another resource uses, cannot be removed (§2.8)."""
    ok(world, DENY_ROMEO_MESSAGES)
    ok(world, "<active name='quiet'/>", sender=CHAMBER)
    assert refused(world, "<list name='quiet'/>") == "conflict"
    ok(world, "<active/>", sender=CHAMBER)
    ok(world, "<default name='quiet'/>")
    assert refused(world, "<list name='quiet'/>") == "conflict"
    assert refused(world, "<default/>") == "conflict"
    # Once the other resource has a list of its own, only this one uses the default.
    ok(world, "<list name='other'><item action='allow' order='1'/></list>")
    ok(world, "<active name='other'/>", sender=CHAMBER)
    ok(world, "<list name='quiet'/>")
    assert [(e.name, e.getAttribute("name")) for e in ok(world, "", kind="get").query.elements()] \
        == [("list", "other")]


def test_defaultListDeniesMessages(world):
    """A default list denying a JID's messages answers them service-unavailable and delivers nothing."""
    ok(world, DENY_ROMEO_MESSAGES)
    ok(world, "<default name='quiet'/>")
    for stream in world.streams.values():
        stream.take()
    world.send("<message from='%s' to='%s' id='m1' type='chat'><body>hi</body></message>"
               % (ORCHARD, JULIET))
    assert world.streams[BALCONY].take() == [] and world.streams[CHAMBER].take() == []
    [bounce] = world.streams[ORCHARD].take()
    assert errorCondition(bounce) == "service-unavailable"
    # The list named messages only: presence still arrives.
    world.send("<presence from='%s'><show>away</show></presence>" % ORCHARD)
    assert len(world.streams[BALCONY].take()) == 1


def test_activeListIsPerSession(world):
    """An active list governs its own resource only; the others keep the default (none here)."""
    ok(world, DENY_ROMEO_MESSAGES)
    ok(world, "<active name='quiet'/>")
    world.streams[CHAMBER].take()
    for resource in (BALCONY, CHAMBER):
        world.send("<message from='%s' to='%s' type='chat'><body>hi</body></message>"
                   % (ORCHARD, resource))
    assert world.streams[BALCONY].take() == []
    assert len(world.streams[CHAMBER].take()) == 1


def test_presenceInPerResource(world):
    """A contact's broadcast skips the resource whose active list denies presence-in."""
    ok(world, "<list name='calm'><item type='group' value='Montagues' action='deny' order='1'>"
              "<presence-in/></item></list>")
    ok(world, "<active name='calm'/>")
    world.streams[CHAMBER].take()
    world.send("<presence from='%s'><show>away</show></presence>" % ORCHARD)
    assert world.streams[BALCONY].take() == []
    assert [s["from"] for s in world.streams[CHAMBER].take()] == [ORCHARD]


def test_presenceOutDenied(world):
    """A default list denying presence-out to a subscription hides the user's broadcasts from them."""
    ok(world, "<list name='hide'><item type='subscription' value='both' action='deny' order='1'>"
              "<presence-out/></item></list>")
    ok(world, "<default name='hide'/>")
    world.streams[ORCHARD].take()
    world.send("<presence from='%s'><show>dnd</show></presence>" % BALCONY)
    assert world.streams[ORCHARD].take() == []
    # Messages are not presence: they still go.
    world.send("<message from='%s' to='%s' type='chat'><body>hi</body></message>"
               % (BALCONY, ORCHARD))
    assert len(world.streams[ORCHARD].take()) == 1


def test_outboundDenyAllAndIQ(world):
    """An item without kinds stops the user's own stanzas with not-acceptable, and IQs to the user."""
    ok(world, "<list name='cut'><item type='jid' value='%s' action='deny' order='1'/></list>"
              % ROMEO)
    ok(world, "<default name='cut'/>")
    for stream in world.streams.values():
        stream.take()
    fromClient(world, "<message from='%s' to='%s' id='m2'><body>x</body></message>"
               % (BALCONY, ORCHARD))
    [refusal] = world.streams[BALCONY].take()
    assert errorCondition(refusal) == "not-acceptable"
    # Not the XEP-0191 condition: no block list was involved.
    assert refusal.error.firstChildElement().name == "not-acceptable"
    assert list(refusal.error.elements("urn:xmpp:blocking:errors", "blocked")) == []
    world.send("<iq type='get' id='q1' from='%s' to='%s'><query xmlns='jabber:iq:version'/></iq>"
               % (ORCHARD, BALCONY))
    [answer] = world.streams[ORCHARD].take()
    assert errorCondition(answer) == "service-unavailable"
    assert world.streams[BALCONY].take() == []


def test_blockListComesFirst(world):
    """A JID on the block list stays blocked even if a privacy list allows it first (one check, XEP-0191 §5)."""
    ok(world, "<list name='open'><item type='jid' value='%s' action='allow' order='1'/></list>"
              % ROMEO)
    ok(world, "<default name='open'/>")
    world.send("<iq type='set' id='b1' from='%s'><block xmlns='urn:xmpp:blocking'>"
               "<item jid='%s'/></block></iq>" % (BALCONY, ROMEO))
    for stream in world.streams.values():
        stream.take()
    world.send("<message from='%s' to='%s' type='chat'><body>hi</body></message>"
               % (ORCHARD, BALCONY))
    assert world.streams[BALCONY].take() == []
    [bounce] = world.streams[ORCHARD].take()
    assert errorCondition(bounce) == "service-unavailable"


def test_disco(world):
    """The server announces jabber:iq:privacy."""
    world.send("<iq type='get' id='d1' from='%s' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % BALCONY)
    [reply] = world.streams[BALCONY].take()
    features = {f["var"] for f in reply.query.elements(
        "http://jabber.org/protocol/disco#info", "feature")}
    assert NS_PRIVACY in features


# -- the block list as a privacy list (XEP-0191 and XEP-0016 agree) ------------

NS_BLOCKING = "urn:xmpp:blocking"


def blocking(world, payload, sender=BALCONY, kind="set", id="b1"):
    world.send("<iq type='%s' id='%s' from='%s'>%s</iq>" % (kind, id, sender, payload))
    return [s for s in world.streams[sender].take() if s.getAttribute("id") == id]


def test_blockListShownAsPrivacyList(world):
    """JIDs blocked with XEP-0191 appear to privacy-list clients as deny-everything items of urn:xmpp:blocking."""
    assert [e.getAttribute("name") for e in ok(world, "", kind="get").query.elements()] == []
    blocking(world, "<block xmlns='%s'><item jid='%s'/><item jid='example.net'/></block>"
             % (NS_BLOCKING, ROMEO))
    names = [e.getAttribute("name") for e in ok(world, "", kind="get").query.elements()]
    assert names == [NS_BLOCKING]
    [shown] = ok(world, "<list name='%s'/>" % NS_BLOCKING, kind="get").query.elements()
    assert [(i["type"], i["value"], i["action"], i["order"], list(i.elements()))
            for i in shown.elements()] == [
        ("jid", ROMEO, "deny", "1", []), ("jid", "example.net", "deny", "2", [])]


def test_blockThroughPrivacyList(world):
    """Setting urn:xmpp:blocking as a privacy list blocks for XEP-0191 too: listed, pushed, enforced, presence gone."""
    [reply] = blocking(world, "<blocklist xmlns='%s'/>" % NS_BLOCKING, sender=CHAMBER,
                       kind="get")
    assert reply["type"] == "result"
    ok(world, "<list name='%s'><item type='jid' value='%s' action='deny' order='1'/></list>"
              % (NS_BLOCKING, ROMEO))
    got = world.streams[CHAMBER].take()
    pushes = [s for s in got if s.name == "iq"]
    assert {p.firstChildElement().uri for p in pushes} == {NS_BLOCKING, NS_PRIVACY}
    # Romeo saw Juliet's resources go; Juliet saw Romeo go.
    assert sorted((s["from"], s.getAttribute("type")) for s in world.streams[ORCHARD].take()
                  if s.name == "presence") == [(BALCONY, "unavailable"), (CHAMBER, "unavailable")]
    assert [(s["from"], s.getAttribute("type")) for s in got if s.name == "presence"] == [
        (ORCHARD, "unavailable")]
    [listed] = blocking(world, "<blocklist xmlns='%s'/>" % NS_BLOCKING, kind="get")
    assert [i["jid"] for i in listed.firstChildElement().elements()] == [ROMEO]
    fromClient(world, "<message from='%s' to='%s' id='m3'><body>x</body></message>"
               % (BALCONY, ORCHARD))
    [refusal] = world.streams[BALCONY].take()
    assert list(refusal.error.elements("urn:xmpp:blocking:errors", "blocked"))

    # Removing the list unblocks.
    ok(world, "<list name='%s'/>" % NS_BLOCKING)
    [listed] = blocking(world, "<blocklist xmlns='%s'/>" % NS_BLOCKING, kind="get")
    assert list(listed.firstChildElement().elements()) == []


@pytest.mark.parametrize("payload, condition", [
    ("<list name='urn:xmpp:blocking'><item type='jid' value='%s' action='allow' order='1'/>"
     "</list>" % ROMEO, "bad-request"),
    ("<list name='urn:xmpp:blocking'><item type='jid' value='%s' action='deny' order='1'>"
     "<message/></item></list>" % ROMEO, "bad-request"),
    ("<list name='urn:xmpp:blocking'><item type='group' value='x' action='deny' order='1'/>"
     "</list>", "bad-request"),
    ("<active name='urn:xmpp:blocking'/>", "not-allowed"),
    ("<default name='urn:xmpp:blocking'/>", "not-allowed"),
])
def test_blockListKeepsItsShape(world, payload, condition):
    """The block list holds only deny-everything JID items, and always applies."""
    assert refused(world, payload) == condition
