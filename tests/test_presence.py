"""
Tests for L{xmppd.features.presence}: subscriptions along every row of RFC 6121
Appendix A, pre-approvals, pending requests, presence broadcasts, probes and
directed presence (RFC 6121 §3, §4), on a node in memory.
"""

import pytest

from tests.presencehelpers import DOMAIN, REMOTE, IMNode, RosterItem
from tests.streamhelpers import PASSWORDS, plain
from xmppd.features.presence import (BOTH, FROM, FROM_OUT, INBOUND, NONE, NONE_OUT,
                            NS_PRE_APPROVAL, OUTBOUND, STATE_FLAGS, TO, TO_IN, stateOf)
from xmppd.features.roster import NS_ROSTER

ROMEO = "romeo@" + DOMAIN
JULIET = "juliet@" + DOMAIN
NURSE = "nurse@" + DOMAIN
CONTACT = "contact@" + REMOTE


@pytest.fixture
def node(tmp_path):
    return IMNode(tmp_path)


def itemIn(state, jid, **kwargs):
    subscription, ask, pendingIn = STATE_FLAGS[state]
    return RosterItem(jid, subscription=subscription, ask=ask, pendingIn=pendingIn, **kwargs)


def pushes(elements):
    return [e for e in elements if e.name == "iq" and e.getAttribute("type") == "set"]


def pushedItems(elements):
    return [dict(next(p.query.elements(NS_ROSTER, "item")).attributes) for p in pushes(elements)]


def summary(elements):
    """(type, from, to) of each presence, for compact assertions."""
    return [(e.getAttribute("type"), e.getAttribute("from"), e.getAttribute("to"))
            for e in elements if e.name == "presence"]


def errorCondition(element):
    [error] = [e for e in element.elements() if e.name == "error"]
    return [c.name for c in error.elements() if c.name != "text"][0]


# -- RFC 6121 Appendix A, row by row ---------------------------------------------

def shown(state):
    """What a client sees of an item in C{state}: nothing, or (subscription, ask)."""
    subscription, ask, pendingIn = STATE_FLAGS[state]
    if subscription == "none" and pendingIn and not ask:
        return None
    return subscription, ask and subscription in ("none", "from")


def assertPushed(elements, old, new, item):
    """A push went out exactly when what the client sees of the item changed."""
    # The tests start from no item at all for "None".
    before = None if old == NONE else shown(old)
    after = None if item is None else shown(new)
    if before == after:
        assert pushes(elements) == []
    elif item is None or not item.visible:
        assert pushedItems(elements) == [{"jid": CONTACT, "subscription": "remove"}]
    else:
        [pushed] = pushedItems(elements)
        assert (pushed["subscription"], "ask" in pushed) == shown(new)


OUTBOUND_ROWS = [(t, s) for t in OUTBOUND for s in OUTBOUND[t]]
INBOUND_ROWS = [(t, s) for t in INBOUND for s in INBOUND[t]]


def test_tablesComplete():
    """Both tables have a row for each of the nine states and four subscription types."""
    for table in (OUTBOUND, INBOUND):
        assert set(table) == {"subscribe", "subscribed", "unsubscribe", "unsubscribed"}
        for rows in table.values():
            assert set(rows) == set(STATE_FLAGS)


@pytest.mark.parametrize("state", list(STATE_FLAGS))
def test_stateOfRoundTrip(state):
    """Each Appendix A state is stored as item flags and read back as itself."""
    assert stateOf(itemIn(state, CONTACT)) == state


@pytest.mark.parametrize("stanzaType, state", OUTBOUND_ROWS,
                         ids=["%s-%s" % row for row in OUTBOUND_ROWS])
def test_outboundRow(node, stanzaType, state):
    """A subscription stanza the user sends is routed and changes the roster as Appendix A.2 says."""
    if state != NONE:
        node.setItem("juliet", itemIn(state, CONTACT))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    elements = juliet.exchange("<presence type='%s' to='%s/home'/>" % (stanzaType, CONTACT))

    route, newState = OUTBOUND[stanzaType][state]
    routed = node.remote.take()
    if route:
        [stanza] = routed
        # §3.1.2: stamped with the user's bare JID, to the contact's bare JID.
        assert (stanza["type"], stanza["from"], stanza["to"]) == (stanzaType, JULIET, CONTACT)
    else:
        assert routed == []
    item = node.item("juliet", CONTACT)
    if newState is not None:
        assert stateOf(item) == newState
        assertPushed(elements, state, newState, item)
    elif stanzaType == "subscribed" and state in (NONE, NONE_OUT, TO):
        # The starred rows: a pre-approval (§3.4).
        assert stateOf(item) == state and item.approved
        assert pushedItems(elements)[0]["approved"] == "true"
    else:
        assert stateOf(item) == state
        assert pushes(elements) == []


@pytest.mark.parametrize("stanzaType, state", INBOUND_ROWS,
                         ids=["%s-%s" % row for row in INBOUND_ROWS])
def test_inboundRow(node, stanzaType, state):
    """A subscription stanza for the user is delivered and changes the roster as Appendix A.3 says."""
    if state != NONE:
        node.setItem("juliet", itemIn(state, CONTACT))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()
    juliet.available()
    node.remote.take()

    node.inject("<presence type='%s' from='%s/home' to='%s'/>" % (stanzaType, CONTACT, JULIET))

    deliver, newState = INBOUND[stanzaType][state]
    elements = juliet.received()
    delivered = [e for e in elements if e.name == "presence" and e.getAttribute("type") == stanzaType]
    if deliver:
        [stanza] = delivered
        assert (stanza["from"], stanza["to"]) == (CONTACT, JULIET)
    else:
        assert delivered == []
    item = node.item("juliet", CONTACT)
    assert stateOf(item) == (newState or state)
    if stanzaType == "subscribe" and state in (FROM, FROM_OUT, BOTH):
        # §3.1.3: already subscribed, so the server answers for the user.
        assert [s.getAttribute("type") for s in node.remote.take()][:1] == ["subscribed"]
    if newState is not None:
        assertPushed(elements, state, newState, item)


# -- subscription scenarios (RFC 6121 §3) ---------------------------------------


def test_subscriptionRequestAndApproval(node):
    """Romeo asks, Juliet approves: both rosters, pushes and Juliet's presence follow §3.1."""
    romeo = node.login("romeo", "orchard")
    juliet = node.login("juliet", "balcony")
    romeo.getRoster()
    romeo.available()
    juliet.getRoster()
    juliet.available()

    sent = romeo.exchange("<presence id='xk3h1v69' to='juliet@example.org' type='subscribe'/>")
    assert pushedItems(sent) == [{"jid": JULIET, "subscription": "none", "ask": "subscribe"}]
    [request] = juliet.presences()
    assert (request["type"], request["from"], request["id"]) == ("subscribe", ROMEO, "xk3h1v69")

    answered = juliet.exchange("<presence id='h4v1c4kj' to='romeo@example.org' type='subscribed'/>")

    assert pushedItems(answered) == [{"jid": ROMEO, "subscription": "from"}]
    got = romeo.received()
    assert pushedItems(got) == [{"jid": JULIET, "subscription": "to"}]
    assert summary(got) == [("subscribed", JULIET, ROMEO),
                            (None, juliet.jid, ROMEO)]
    assert node.item("romeo", JULIET).subscription == "to"
    assert node.item("juliet", ROMEO).subscription == "from"


def test_requestWhileOfflineDeliveredAtLogin(node):
    """A request that arrived while Juliet was offline reaches her, with its status, when she comes online (§3.1.3)."""
    romeo = node.login("romeo", "orchard")
    romeo.exchange("<presence to='juliet@example.org' type='subscribe'>"
                   "<status>I am Romeo</status></presence>")
    assert node.item("juliet", ROMEO).pendingIn

    juliet = node.login("juliet", "balcony")
    assert juliet.getRoster().query.firstChildElement() is None
    got = juliet.available()

    [request] = [p for p in got if p.getAttribute("type") == "subscribe"]
    assert request["from"] == ROMEO and request["to"] == juliet.jid
    assert str(request.status) == "I am Romeo"


def test_requestRedeliveredWhole(node):
    """A request's extensions (an XEP-0172 nick, an XEP-0379 token) reach Juliet with it when she logs in (§3.1.3)."""
    romeo = node.login("romeo", "orchard")
    romeo.exchange("<presence to='juliet@example.org' type='subscribe'>"
                   "<status>I am Romeo</status>"
                   "<nick xmlns='http://jabber.org/protocol/nick'>Romeo &amp; co</nick>"
                   "<preauth xmlns='urn:xmpp:pars:0' token='5CD3b'/></presence>")

    juliet = node.login("juliet", "balcony")
    [request] = [p for p in juliet.available() if p.getAttribute("type") == "subscribe"]

    assert str(request.status) == "I am Romeo"
    [nick] = request.elements("http://jabber.org/protocol/nick", "nick")
    assert str(nick) == "Romeo & co"
    [preauth] = request.elements("urn:xmpp:pars:0", "preauth")
    assert preauth["token"] == "5CD3b"


def test_requestExtensionsForgottenOnceAnswered(node):
    """Once Juliet answers, the kept request and its extensions are gone from her roster item."""
    romeo = node.login("romeo", "orchard")
    romeo.exchange("<presence to='juliet@example.org' type='subscribe'>"
                   "<nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>")
    assert node.item("juliet", ROMEO).pendingInExtensions

    juliet = node.login("juliet", "balcony")
    juliet.available()
    juliet.exchange("<presence to='romeo@example.org' type='subscribed'/>")

    item = node.item("juliet", ROMEO)
    assert not item.pendingIn and item.pendingInExtensions is None


def test_pendingRequestRepeatedAtEachLogin(node):
    """An unanswered request is shown again at each initial presence, until answered."""
    node.setItem("juliet", RosterItem(ROMEO, pendingIn=True))
    first = node.login("juliet", "balcony")
    assert [p["type"] for p in first.available() if p.getAttribute("from") == ROMEO] \
        == ["subscribe"]
    first.exchange("<presence type='unavailable'/>")

    again = first.available()
    assert [p["type"] for p in again if p.getAttribute("from") == ROMEO] == ["subscribe"]

    first.exchange("<presence to='romeo@example.org' type='subscribed'/>")
    first.exchange("<presence type='unavailable'/>")
    assert [p for p in first.available() if p.getAttribute("type") == "subscribe"] == []


def test_requestToOnlineUserReachesAvailableResourcesOnly(node):
    """A request goes to each available resource of the contact, not to one that sent no presence."""
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    balcony.available()
    chamber.received()

    node.inject("<presence type='subscribe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert summary(balcony.received()) == [("subscribe", CONTACT, JULIET)]
    assert chamber.received() == []


def test_requestToUnknownUserRefused(node):
    """Asking to subscribe to an account that does not exist is answered with unsubscribed (RFC 6121 §8.5.1)."""
    romeo = node.login("romeo", "orchard")
    romeo.getRoster()
    romeo.available()

    got = romeo.exchange("<presence to='nobody@example.org' type='subscribe'/>")

    assert ("unsubscribed", "nobody@" + DOMAIN, ROMEO) in summary(got)
    assert stateOf(node.item("romeo", "nobody@" + DOMAIN)) == NONE


def test_subscriptionToFullJIDIsToAccount(node):
    """A subscription request addressed to a full JID is about the account (§3.1.1)."""
    juliet = node.login("juliet", "balcony")
    juliet.available()

    node.inject("<presence type='subscribe' from='%s' to='%s/balcony'/>" % (CONTACT, JULIET))

    assert summary(juliet.received()) == [("subscribe", CONTACT, JULIET)]
    assert node.item("juliet", CONTACT).pendingIn


def test_declinedRequestLeavesNothing(node):
    """Denying a request leaves no trace in the roster."""
    node.setItem("juliet", RosterItem(CONTACT, pendingIn=True))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()

    got = juliet.exchange("<presence to='%s' type='unsubscribed'/>" % CONTACT)

    assert [s["type"] for s in node.remote.take()] == ["unsubscribed"]
    assert node.item("juliet", CONTACT) is None
    assert pushes(got) == []


def test_withdrawnRequestLeavesNothing(node):
    """A contact who takes back an unanswered request leaves no trace in the roster."""
    node.setItem("juliet", RosterItem(CONTACT, pendingIn=True))
    juliet = node.login("juliet", "balcony")
    juliet.available()

    node.inject("<presence type='unsubscribe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert node.item("juliet", CONTACT) is None
    assert summary(juliet.received()) == [("unsubscribe", CONTACT, JULIET)]


def test_preApproval(node):
    """Juliet pre-approves Romeo; his later request is approved at once without asking her (§3.4)."""
    juliet = node.login("juliet", "balcony")
    romeo = node.login("romeo", "orchard")
    juliet.getRoster()
    juliet.available()
    romeo.getRoster()
    romeo.available()

    got = juliet.exchange("<presence to='romeo@example.org' type='subscribed'/>")
    assert pushedItems(got) == [{"jid": ROMEO, "subscription": "none", "approved": "true"}]
    assert [p for p in romeo.received() if p.name == "presence"] == []

    got = romeo.exchange("<presence to='juliet@example.org' type='subscribe'/>")

    assert pushedItems(juliet.received()) == [{"jid": ROMEO, "subscription": "from"}]
    assert summary(got) == [("subscribed", JULIET, ROMEO), (None, juliet.jid, ROMEO)]
    assert pushedItems(got) == [{"jid": JULIET, "subscription": "none", "ask": "subscribe"},
                                {"jid": JULIET, "subscription": "to"}]
    assert node.item("juliet", ROMEO).approved is False


def test_preApprovalCancelled(node):
    """Unsubscribed takes a pre-approval back, and the later request is asked as usual (§3.4)."""
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()
    juliet.available()
    juliet.exchange("<presence to='%s' type='subscribed'/>" % CONTACT)

    got = juliet.exchange("<presence to='%s' type='unsubscribed'/>" % CONTACT)
    node.inject("<presence type='subscribe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert pushedItems(got) == [{"jid": CONTACT, "subscription": "none"}]
    assert node.remote.take() == []
    assert summary(juliet.received()) == [("subscribe", CONTACT, JULIET)]


def test_preApprovalStreamFeature(node):
    """Pre-approval support is announced once the stream is authenticated (§3.4.1)."""
    client = node.base.connect()

    before = client.start()
    client.exchange(plain("juliet", PASSWORDS["juliet"]))
    after = client.start()

    assert (NS_PRE_APPROVAL, "sub") not in before.featureNames()
    assert (NS_PRE_APPROVAL, "sub") in after.featureNames()


def test_unsubscribe(node):
    """Romeo unsubscribes from Juliet: her roster changes and he sees her go offline (§3.3)."""
    node.setItem("romeo", RosterItem(JULIET, subscription="to"))
    node.setItem("juliet", RosterItem(ROMEO, subscription="from"))
    juliet = node.login("juliet", "balcony")
    juliet.getRoster()
    juliet.available()
    romeo = node.login("romeo", "orchard")
    romeo.available()

    got = romeo.exchange("<presence to='juliet@example.org' type='unsubscribe'/>")

    assert (  "unavailable", juliet.jid, ROMEO) in summary(got)
    assert node.item("romeo", JULIET).subscription == "none"
    assert node.item("juliet", ROMEO).subscription == "none"
    seen = juliet.received()
    assert ("unsubscribe", ROMEO, JULIET) in summary(seen)
    assert pushedItems(seen) == [{"jid": ROMEO, "subscription": "none"}]


def test_cancelSubscription(node):
    """Juliet cancels Romeo's subscription: he is told, and sees her go offline (§3.2)."""
    node.setItem("romeo", RosterItem(JULIET, subscription="to"))
    node.setItem("juliet", RosterItem(ROMEO, subscription="from"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    romeo = node.login("romeo", "orchard")
    romeo.getRoster()
    romeo.available()

    juliet.exchange("<presence to='romeo@example.org' type='unsubscribed'/>")

    got = romeo.received()
    assert summary(got) == [("unsubscribed", JULIET, ROMEO),
                            ("unavailable", juliet.jid, ROMEO)]
    assert pushedItems(got) == [{"jid": JULIET, "subscription": "none"}]


def test_subscriptionToSelfIgnored(node):
    """A subscription request to one's own account changes nothing."""
    juliet = node.login("juliet", "balcony")
    juliet.available()

    got = juliet.exchange("<presence to='juliet@example.org' type='subscribe'/>")

    assert got == []
    assert node.roster("juliet").items == {}


# -- presence (RFC 6121 §4) -----------------------------------------------------


def test_initialPresenceBroadcastAndProbes(node):
    """Initial presence goes to subscribers and the user's resources; probes go to those the user follows (§4.2)."""
    node.setItem("juliet", RosterItem("a@" + REMOTE, subscription="from"))
    node.setItem("juliet", RosterItem("b@" + REMOTE, subscription="both"))
    node.setItem("juliet", RosterItem("c@" + REMOTE, subscription="to"))
    node.setItem("juliet", RosterItem("d@" + REMOTE, subscription="none", ask=True))
    juliet = node.login("juliet", "balcony")

    got = juliet.exchange("<presence><show>chat</show></presence>")

    assert summary(got) == [(None, juliet.jid, juliet.jid)]
    sent = sorted(summary(node.remote.take()), key=lambda s: (s[2], str(s[0])))
    assert sent == [(None, juliet.jid, "a@" + REMOTE),
                    (None, juliet.jid, "b@" + REMOTE),
                    ("probe", JULIET, "b@" + REMOTE),
                    ("probe", JULIET, "c@" + REMOTE)]
    session = node.sessions.get(parseFull(juliet.jid))
    assert session.available and session.priority == 0


def parseFull(text):
    from xmppd.core.jid import parseJID
    return parseJID(text)


def test_probeAnsweredFromAvailableResources(node):
    """Coming online, Romeo learns the presence of each of Juliet's available resources (§4.3)."""
    node.setItem("romeo", RosterItem(JULIET, subscription="to"))
    node.setItem("juliet", RosterItem(ROMEO, subscription="from"))
    balcony = node.login("juliet", "balcony")
    balcony.available("<status>on the balcony</status>")
    chamber = node.login("juliet", "chamber")
    chamber.available("<show>away</show>")
    node.login("juliet", "unseen")
    romeo = node.login("romeo", "orchard")

    got = romeo.available()

    answers = [p for p in got if p.getAttribute("from", "").startswith(JULIET)]
    assert sorted(p["from"] for p in answers) == [balcony.jid, chamber.jid]
    [fromBalcony] = [p for p in answers if p["from"] == balcony.jid]
    assert str(fromBalcony.status) == "on the balcony" and fromBalcony["to"] == ROMEO


def test_probeFromNonSubscriber(node):
    """A probe from someone not subscribed is answered with unsubscribed, never presence (§4.3.2)."""
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.remote.take()

    node.inject("<presence type='probe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert summary(node.remote.take()) == [("unsubscribed", JULIET, CONTACT)]


def test_probeWithNobodyOnline(node):
    """A probe for a subscribed contact with no available resource gets no answer (§4.3.2)."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))

    node.inject("<presence type='probe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert node.remote.take() == []


def test_probeFromSubscriberAnswered(node):
    """A remote subscriber's probe is answered with the presence of each available resource."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="both"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.remote.take()

    node.inject("<presence type='probe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert summary(node.remote.take()) == [(None, juliet.jid, CONTACT)]


def test_ownResourcesSeeEachOther(node):
    """A new resource learns of the user's other available resources, and they of it (§4.2.2)."""
    balcony = node.login("juliet", "balcony")
    balcony.available()
    chamber = node.login("juliet", "chamber")

    got = chamber.available()

    assert sorted(summary(got)) == sorted([(None, chamber.jid, chamber.jid),
                                           (None, balcony.jid, chamber.jid)])
    assert summary(balcony.received()) == [(None, chamber.jid, balcony.jid)]


def test_prioritiesRecorded(node):
    """Each resource's priority is what its last presence said (§4.7.2.3)."""
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")

    balcony.available("<priority>5</priority>")
    chamber.available("<priority>-1</priority>")
    balcony.exchange("<presence><priority>10</priority></presence>")

    assert node.sessions.get(parseFull(balcony.jid)).priority == 10
    assert node.sessions.get(parseFull(chamber.jid)).priority == -1


@pytest.mark.parametrize("priority", ["128", "high", "-129"])
def test_badPriority(node, priority):
    """A priority outside -128..127 is a bad-request, and the resource stays unavailable."""
    juliet = node.login("juliet", "balcony")

    [error] = juliet.exchange("<presence><priority>%s</priority></presence>" % priority)

    assert error["type"] == "error" and errorCondition(error) == "bad-request"
    assert not node.sessions.get(parseFull(juliet.jid)).available


def test_updatedPresence(node):
    """Later presence goes to subscribers and own resources, with no new probes (§4.4)."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="both"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.remote.take()

    got = juliet.exchange("<presence><show>away</show></presence>")

    assert summary(got) == [(None, juliet.jid, juliet.jid)]
    [update] = node.remote.take()
    assert update.name == "presence" and update.getAttribute("type") is None
    assert str(update.show) == "away"


def test_unavailablePresence(node):
    """Unavailable presence goes to subscribers, own resources and directed targets, and ends availability (§4.5)."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    balcony.available()
    chamber.available()
    balcony.exchange("<presence to='stranger@%s/x'/>" % REMOTE)
    node.remote.take()
    chamber.received()

    balcony.exchange("<presence type='unavailable'><status>gone</status></presence>")

    sent = summary(node.remote.take())
    assert sorted(sent) == sorted([("unavailable", balcony.jid, CONTACT),
                                   ("unavailable", balcony.jid, "stranger@%s/x" % REMOTE)])
    assert summary(chamber.received()) == [("unavailable", balcony.jid, chamber.jid)]
    session = node.sessions.get(parseFull(balcony.jid))
    assert not session.available and node.domain.presence.lastPresence(balcony.jid) is None


def test_droppedConnection(node):
    """When a connection drops, contacts and directed targets see the resource go unavailable (§4.5.2)."""
    node.setItem("juliet", RosterItem(ROMEO, subscription="from"))
    juliet = node.login("juliet", "balcony")
    romeo = node.login("romeo", "orchard")
    romeo.available()
    juliet.available()
    juliet.exchange("<presence to='stranger@%s'/>" % REMOTE)
    romeo.received()
    node.remote.take()

    juliet.disconnect()

    assert summary(romeo.received()) == [("unavailable", juliet.jid, ROMEO)]
    assert summary(node.remote.take()) == [("unavailable", juliet.jid, "stranger@" + REMOTE)]


def test_replacedConnectionAnnouncesItsDirectedPresenceEnd(node):
    """A connection replaced by a new bind of its full JID ends its directed presence; the new one starts clean."""
    older = node.login("juliet", "balcony")
    older.available()
    older.exchange("<presence to='stranger@%s/x'/>" % REMOTE)
    node.remote.take()

    newer = node.login("juliet", "balcony")

    assert summary(node.remote.take()) == [("unavailable", older.jid, "stranger@%s/x" % REMOTE)]
    newer.exchange("<presence type='unavailable'/>")
    assert node.remote.take() == []
    assert node.domain.presence.resources == {}


def test_directedPresenceTargetsAreBounded(node):
    """Past MAX_DIRECTED targets, directed presence still goes out but is not remembered (§4.6)."""
    from xmppd.core.presencestate import PresenceState
    node.domain.presence = PresenceState(maxDirected=2)
    juliet = node.login("juliet", "balcony")
    juliet.available()
    for name in ("a", "b", "c"):
        juliet.exchange("<presence to='%s@%s'/>" % (name, REMOTE))
    assert len(node.remote.take()) == 3

    juliet.disconnect()

    assert sorted(s[2] for s in summary(node.remote.take())) == [
        "a@" + REMOTE, "b@" + REMOTE]


def test_unavailableBeforeInitialPresence(node):
    """A resource that never became available announces nothing when it leaves."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    juliet = node.login("juliet", "balcony")

    juliet.disconnect()

    assert node.remote.take() == []


def test_directedPresence(node):
    """Directed presence reaches a non-contact; later broadcasts do not, the final unavailable does (§4.6)."""
    juliet = node.login("juliet", "balcony")
    nurse = node.login("nurse", "kitchen")
    nurse.available()
    juliet.available()

    juliet.exchange("<presence to='nurse@example.org'><status>come</status></presence>")
    assert summary(nurse.received()) == [(None, juliet.jid, NURSE)]
    juliet.exchange("<presence><show>away</show></presence>")
    assert nurse.received() == []

    juliet.exchange("<presence type='unavailable'/>")

    assert summary(nurse.received()) == [("unavailable", juliet.jid, NURSE)]


def test_directedUnavailableForgetsTarget(node):
    """After directed unavailable, the target is not told again at logout (§4.6.3)."""
    juliet = node.login("juliet", "balcony")
    juliet.available()
    juliet.exchange("<presence to='stranger@%s'/>" % REMOTE)
    juliet.exchange("<presence to='stranger@%s' type='unavailable'/>" % REMOTE)
    node.remote.take()

    juliet.disconnect()

    assert node.remote.take() == []


def test_directedToSubscriberNotDuplicated(node):
    """A subscriber who also got directed presence is told of the logout once."""
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    juliet.exchange("<presence to='%s/home'/>" % CONTACT)
    node.remote.take()

    juliet.disconnect()

    assert summary(node.remote.take()) == [("unavailable", juliet.jid, CONTACT)]


def test_presenceToBareJIDReachesAvailableResources(node):
    """Presence to a bare JID reaches each available resource and no other (RFC 6121 §8.5.2)."""
    balcony = node.login("juliet", "balcony")
    chamber = node.login("juliet", "chamber")
    balcony.available()
    chamber.received()

    node.inject("<presence from='%s/home' to='%s'/>" % (CONTACT, JULIET))

    assert summary(balcony.received()) == [(None, CONTACT + "/home", JULIET)]
    assert chamber.received() == []


def test_presenceToFullJID(node):
    """Presence to a full JID reaches that resource even before its initial presence; to an unknown one, nobody (§8.5.3)."""
    chamber = node.login("juliet", "chamber")

    node.inject("<presence from='room@%s/nick' to='%s/chamber'/>" % (REMOTE, JULIET))
    node.inject("<presence from='room@%s/nick' to='%s/nowhere'/>" % (REMOTE, JULIET))

    assert summary(chamber.received()) == [(None, "room@%s/nick" % REMOTE, JULIET + "/chamber")]


def test_presenceErrorToBareJID(node):
    """A presence error to the account reaches its available resources."""
    juliet = node.login("juliet", "balcony")
    juliet.available()

    node.inject("<presence type='error' from='%s' to='%s'><error type='cancel'>"
                "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                "</error></presence>" % (CONTACT, JULIET))

    assert summary(juliet.received()) == [("error", CONTACT, JULIET)]


def test_mutualSubscriptionPresence(node):
    """Two mutual contacts see each other come online and go offline."""
    node.setItem("romeo", RosterItem(JULIET, subscription="both"))
    node.setItem("juliet", RosterItem(ROMEO, subscription="both"))
    romeo = node.login("romeo", "orchard")
    romeo.available()
    juliet = node.login("juliet", "balcony")

    got = juliet.available()

    assert (None, romeo.jid, JULIET) in summary(got)
    assert summary(romeo.received()) == [(None, juliet.jid, ROMEO)]
    juliet.disconnect()
    assert summary(romeo.received()) == [("unavailable", juliet.jid, ROMEO)]


def test_otherDomainHooksIgnored(node):
    """A second served domain's handlers leave this domain's presence alone."""
    from xmppd.core.local import LocalDomain
    other = LocalDomain("other.example", node.server, features=("roster", "presence"))
    other.startService()
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    juliet = node.login("juliet", "balcony")

    juliet.available()

    assert summary(node.remote.take()) == [(None, juliet.jid, CONTACT)]


# -- with storage that answers later, as SQLite does ------------------------------


@pytest.fixture
def slowNode(tmp_path):
    return IMNode(tmp_path, slowStorage=True)


def test_slowStorageKeepsOrder(slowNode):
    """Answers sent back to back are processed in the order sent, however slow the storage."""
    node = slowNode
    romeo = node.login("romeo", "orchard")
    juliet = node.login("juliet", "balcony")
    romeo.getRoster()
    node.settle()
    romeo.available()
    juliet.available()
    romeo.send("<presence to='juliet@example.org' type='subscribe'/>")
    node.settle()

    juliet.send("<presence to='romeo@example.org' type='subscribed'/>")
    juliet.send("<presence to='romeo@example.org' type='subscribe'/>")
    node.settle()

    assert stateOf(node.item("juliet", ROMEO)) == FROM_OUT
    assert stateOf(node.item("romeo", JULIET)) == TO_IN
    got = romeo.received()
    assert [t for t, _, _ in summary(got)] == ["subscribed", None, "subscribe"]
    assert [i["subscription"] for i in pushedItems(got)] == ["none", "to"]


def test_slowStoragePresenceUpdatesInOrder(slowNode):
    """Presence changes reach contacts in the order they were sent, however slow the storage."""
    node = slowNode
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    juliet = node.login("juliet", "balcony")

    juliet.send("<presence><show>chat</show></presence>")
    juliet.send("<presence><show>away</show></presence>")
    juliet.send("<presence><show>xa</show></presence>")
    node.settle()

    shows = [str(p.show) for p in node.remote.take() if p.getAttribute("type") is None]
    assert shows == ["chat", "away", "xa"]


def test_slowStorageDroppedConnection(slowNode):
    """A dropped connection is announced even when the roster is read after the session is gone."""
    node = slowNode
    node.setItem("juliet", RosterItem(CONTACT, subscription="from"))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.settle()
    node.remote.take()

    juliet.disconnect()
    node.settle()

    assert summary(node.remote.take()) == [("unavailable", juliet.jid, CONTACT)]
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.settle()
    assert summary(node.remote.take())[0] == (None, juliet.jid, CONTACT)


def test_probeWhileRequestPending(node):
    """A probe from someone whose request awaits an answer neither gets presence nor cancels the request."""
    node.setItem("juliet", RosterItem(CONTACT, pendingIn=True))
    juliet = node.login("juliet", "balcony")
    juliet.available()
    node.remote.take()

    node.inject("<presence type='probe' from='%s' to='%s'/>" % (CONTACT, JULIET))

    assert node.remote.take() == []
    assert node.item("juliet", CONTACT).pendingIn


def test_markerElementDoesNotBypassSubscriptions(node):
    """A request carrying an element named like the server's internal marker is processed as any other."""
    juliet = node.login("juliet", "balcony")
    juliet.available()

    node.inject("<presence type='subscribe' from='%s' to='%s/balcony'><%s/></presence>"
                % (CONTACT, JULIET, "xmppdRedelivery"))

    assert node.item("juliet", CONTACT).pendingIn


def test_directedPresenceWaitsForEarlierSubscription(tmp_path):
    """A directed presence sent after a subscription request never reaches the contact before it (RFC 6120 §10.1)."""
    from twisted.internet import defer

    from tests.domainhelpers import Domain, fromClient
    from xmppd.features.presence import PresenceHandler

    world = Domain(tmp_path, features=("roster", "presence", "messages"))
    world.bind("romeo@example.org/orchard", available=True)
    juliet = world.bind("juliet@example.org/balcony", available=True)
    rosters = world.handler(PresenceHandler).rosters
    gate = defer.Deferred()
    rosters.run("romeo", lambda: gate)  # An earlier roster operation still running.
    fromClient(world, "<presence type='subscribe' from='romeo@example.org/orchard' "
                      "to='juliet@example.org'/>")
    fromClient(world, "<presence from='romeo@example.org/orchard' "
                      "to='juliet@example.org/balcony'><show>chat</show></presence>")
    assert juliet.take() == []
    gate.callback(None)
    assert [p.getAttribute("type") for p in juliet.take()] == ["subscribe", None]
