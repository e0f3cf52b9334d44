"""
Tests for L{xmppd.features.pep}: personal eventing (XEP-0163) on every
account's bare JID, over one in-memory domain with entity capabilities
(L{xmppd.features.clientcaps}) learnt from presence.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from twisted.internet.defer import ensureDeferred

from tests.domainhelpers import DOMAIN, Domain, RecordingStream, errorCondition
from tests.helpers import parse
from tests.sessionhelpers import bindNow
from xmppd.core.events import AccountEvent
from xmppd.core.jid import parseJID
from xmppd.core.stanzas import StanzaText
from xmppd.features.clientcaps.tracker import capsOf
from xmppd.features.pep.engine import contactMaySee
from xmppd.features.pep.handler import PEP_PUBLISHED, PEPHandler, pepOf
from xmppd.storage.interfaces import RosterItem

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_OPTIONS = NS_PUBSUB + "#publish-options"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
TUNE = "http://jabber.org/protocol/tune"

JULIET = "juliet@example.org/balcony"
JULIET2 = "juliet@example.org/chamber"
ROMEO = "romeo@example.org/orchard"
ROMEO2 = "romeo@example.org/garden"
TYBALT = "tybalt@example.org/street"
REMOTE = "mercutio@remote.example/street"


def capsFor(features) -> tuple[str, frozenset]:
    """
    A ver for a client with C{features}, and the features: the test puts
    them in the domain's caps cache, so it is never asked (XEP-0115 §6.3).
    """
    features = frozenset(features) | {NS_INFO, NS_CAPS}
    digest = hashlib.sha1("<".join(sorted(features)).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii"), features


class TextStream(RecordingStream):
    """A client stream that also takes stanzas serialized once (the fan-out's text)."""

    def send(self, obj) -> None:
        if isinstance(obj, StanzaText):
            obj = parse(str(obj))
        RecordingStream.send(self, obj)


class PEPDomain(Domain):
    """
    A domain with clientcaps and pep; juliet and romeo are contacts (both
    ways, unless said otherwise), tybalt is a stranger.
    """

    def __init__(self, tmp_path, subscription="both", sections=None,
                 features=("disco", "clientcaps", "pep")):
        Domain.__init__(self, tmp_path, features=features,
                        sections=sections, users=("juliet", "romeo", "tybalt"))
        self.caps = capsOf(self.domain)
        rosters = self.storage.rosters
        rosters.setItem("juliet", DOMAIN, RosterItem("romeo@example.org",
                                                     subscription=subscription))
        back = {"both": "both", "from": "to", "to": "from", "none": "none"}[subscription]
        rosters.setItem("romeo", DOMAIN, RosterItem("juliet@example.org", subscription=back))
        self.ids = iter(range(1, 10000))

    def bind(self, jid, available=True, priority=0):
        stream = TextStream(self.clock)
        session = bindNow(self.sessions, parseJID(jid), stream)
        self.sessions.setAvailability(session.jid, available, priority)
        self.hooks.notify("session/bound", session)
        return stream

    def online(self, jid, interests=(), sender=None):
        """C{jid} binds and sends presence announcing C{NODE+notify} for C{interests}."""
        stream = self.bind(jid)
        self.announce(jid, interests, sender)
        return stream

    def announce(self, jid, interests=(), to=None):
        ver, features = capsFor(node + "+notify" for node in interests)
        self.caps.cache[("sha-1", ver)] = features
        self.send("<presence from='%s'%s><c xmlns='%s' hash='sha-1' node='n' ver='%s'/>"
                  "</presence>" % (jid, " to='%s'" % to if to else "", NS_CAPS, ver))
        self.clock.advance(0)

    def iq(self, sender, payload, to=None, type="set"):
        """Send an IQ to C{to} (none: no 'to'); its id."""
        ident = "q%d" % next(self.ids)
        self.send("<iq from='%s'%s type='%s' id='%s'>%s</iq>" % (
            sender, " to='%s'" % to if to else "", type, ident, payload))
        self.clock.advance(0)
        return ident

    def publish(self, sender, node=TUNE, item="<tune xmlns='%s'><title>Fortune</title></tune>"
                % TUNE, itemId="current", options=None, to=None):
        extra = ""
        if options:
            extra = "<publish-options>%s</publish-options>" % form(options)
        return self.iq(sender, "<pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item>"
                               "</publish>%s</pubsub>" % (NS_PUBSUB, node, itemId, item, extra),
                       to=to)

    def items(self, sender, owner, node=TUNE):
        return self.iq(sender, "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
                       % (NS_PUBSUB, node), to=owner, type="get")


def form(fields: dict) -> str:
    xml = ["<x xmlns='jabber:x:data' type='submit'>",
           "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % NS_OPTIONS]
    for var, value in fields.items():
        xml.append("<field var='%s'><value>%s</value></field>" % (var, value))
    xml.append("</x>")
    return "".join(xml)


def answer(stream, ident):
    [reply] = [s for s in stream.sent if s.name == "iq" and s.getAttribute("id") == ident]
    return reply


def events(stream, node=TUNE):
    """The notifications C{stream} got for C{node}: (from, item ids)."""
    found = []
    for stanza in stream.sent:
        if stanza.name != "message":
            continue
        for event in stanza.elements(NS_EVENT, "event"):
            for items in event.elements(NS_EVENT, "items"):
                if items.getAttribute("node") == node:
                    found.append((stanza["from"], [i.getAttribute("id") for i in
                                                   items.elements(NS_EVENT, "item")]))
    return found


def pubsubCondition(stanza):
    for error in stanza.elements(None, "error"):
        for child in error.elements():
            if child.uri == NS_ERRORS:
                return child.name
    return None


# -- §3 publishing, §5 defaults ------------------------------------------------------

def test_publishAutoCreates(tmp_path):
    """A first publish to one's own bare JID creates the node with PEP's defaults and succeeds."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.publish(JULIET, to="juliet@example.org")
    reply = answer(juliet, ident)
    assert reply["type"] == "result"
    node = domain.storage.pubsub.getNode("juliet@example.org", TUNE).result
    assert node.config["pubsub#access_model"] == "presence"
    assert node.config["pubsub#send_last_published_item"] == "on_sub_and_presence"
    assert node.config["pubsub#max_items"] == "1"


def test_publishWithoutTo(tmp_path):
    """A publish with no 'to' goes to the sender's own PEP service."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.publish(JULIET)
    assert answer(juliet, ident)["type"] == "result"
    assert domain.storage.pubsub.getNode("juliet@example.org", TUNE).result is not None


def test_publishToAnotherAccountForbidden(tmp_path):
    """Publishing to someone else's PEP node is forbidden and creates nothing."""
    domain = PEPDomain(tmp_path)
    romeo = domain.online(ROMEO)
    ident = domain.publish(ROMEO, to="juliet@example.org")
    assert errorCondition(answer(romeo, ident)) == "forbidden"
    assert domain.storage.pubsub.getNode("juliet@example.org", TUNE).result is None


def test_missingAccount(tmp_path):
    """A PEP request to an account that does not exist is service-unavailable."""
    domain = PEPDomain(tmp_path)
    romeo = domain.online(ROMEO)
    ident = domain.items(ROMEO, "nobody@example.org")
    assert errorCondition(answer(romeo, ident)) == "service-unavailable"


# -- access models (XEP-0060 §4.5 through XEP-0163 §5) --------------------------------

def test_presenceAccessRefusesStranger(tmp_path):
    """A stranger retrieving a presence-access node gets presence-subscription-required."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    tybalt = domain.online(TYBALT)
    reply = answer(tybalt, domain.items(TYBALT, "juliet@example.org"))
    assert errorCondition(reply) == "not-authorized"
    assert pubsubCondition(reply) == "presence-subscription-required"


def test_presenceAccessAllowsContact(tmp_path):
    """A contact with a presence subscription retrieves the items."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    romeo = domain.online(ROMEO)
    reply = answer(romeo, domain.items(ROMEO, "juliet@example.org"))
    assert reply["type"] == "result"
    assert [i["id"] for i in reply.pubsub.items.elements(NS_PUBSUB, "item")] == ["current"]


def test_openAccessAllowsAnyone(tmp_path):
    """A node published with access model open (as OMEMO does) is readable by a stranger."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    node = "eu.siacs.conversations.axolotl.devicelist"
    domain.publish(JULIET, node=node, item="<list xmlns='x'/>",
                   options={"pubsub#access_model": "open"})
    tybalt = domain.online(TYBALT)
    reply = answer(tybalt, domain.items(TYBALT, "juliet@example.org", node))
    assert reply["type"] == "result"


# -- §4 notifications ------------------------------------------------------------------

def test_contactWithNotifyNotified(tmp_path):
    """A contact whose caps say tune+notify gets the notification, from the owner's bare JID."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [TUNE])
    romeo.take()
    domain.publish(JULIET)
    assert events(romeo) == [("juliet@example.org", ["current"])]


def test_contactWithoutNotifyNotNotified(tmp_path):
    """A contact whose caps do not ask for the node gets nothing."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO, ["urn:xmpp:avatar:metadata"])
    domain.publish(JULIET)
    assert events(romeo) == []


def test_strangerWithNotifyNotNotified(tmp_path):
    """Someone without a presence subscription is not notified, whatever its caps say."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    tybalt = domain.online(TYBALT, [TUNE])
    domain.publish(JULIET)
    assert events(tybalt) == []


def test_subscriptionToOnlyNotNotified(tmp_path):
    """A contact the owner does not share presence with ('to' only) is not notified."""
    domain = PEPDomain(tmp_path, subscription="to")
    domain.online(JULIET)
    romeo = domain.online(ROMEO, [TUNE])
    domain.publish(JULIET)
    assert events(romeo) == []


def test_ownerOtherResourceNotified(tmp_path):
    """The owner's other available resource gets the notification of its own publish."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    chamber = domain.online(JULIET2, [TUNE])
    chamber.take()
    domain.publish(JULIET)
    assert events(chamber) == [("juliet@example.org", ["current"])]


def test_notificationSerializedOnce(tmp_path):
    """Two contacts' resources get one notification text prepared once for both."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    first = domain.online(ROMEO, [TUNE])
    second = domain.online(ROMEO2, [TUNE])
    first.take(), second.take()
    fanout = domain.handler(PEPHandler).fanout
    before = fanout.sent
    domain.publish(JULIET)
    assert events(first) == events(second) == [("juliet@example.org", ["current"])]
    assert fanout.sent - before == 3  # romeo's two resources and juliet's own


def test_explicitSubscriberNotified(tmp_path):
    """An explicit XEP-0060 subscriber to a PEP node is notified without caps."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    romeo = domain.online(ROMEO)
    ident = domain.iq(ROMEO, "<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub>"
                      % (NS_PUBSUB, TUNE, ROMEO), to="juliet@example.org")
    assert answer(romeo, ident)["type"] == "result"
    romeo.take()
    domain.publish(JULIET, itemId="second")
    assert events(romeo) == [("juliet@example.org", ["second"])]


def test_remoteContactNotifiedThroughRouter(tmp_path):
    """A contact on another domain whose caps say +notify gets the notification through the router."""
    domain = PEPDomain(tmp_path)
    domain.storage.rosters.setItem("juliet", DOMAIN, RosterItem("mercutio@remote.example",
                                                                subscription="both"))
    routed = []
    domain.router.addRoute("remote.example", type("R", (), {
        "deliver": lambda self, stanza: routed.append(stanza)})())
    domain.online(JULIET)
    domain.announce(REMOTE, [TUNE], to="juliet@example.org")
    del routed[:]
    domain.publish(JULIET)
    notified = [s for s in routed if s.name == "message"]
    assert [s["to"] for s in notified] == [REMOTE]
    assert notified[0]["from"] == "juliet@example.org"


# -- §4.3.4 last published item ------------------------------------------------------

def test_lastItemWhenContactComesOnline(tmp_path):
    """A contact coming online with tune+notify gets the last published tune."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    romeo = domain.online(ROMEO, [TUNE])
    domain.clock.advance(0)
    assert events(romeo) == [("juliet@example.org", ["current"])]


def test_lastItemToOwnNewResource(tmp_path):
    """The owner's resource that comes online later gets its own account's last item."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    chamber = domain.online(JULIET2, [TUNE])
    domain.clock.advance(0)
    assert events(chamber) == [("juliet@example.org", ["current"])]


def test_noLastItemToStranger(tmp_path):
    """A stranger coming online with +notify gets no last item."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    tybalt = domain.online(TYBALT, [TUNE])
    domain.clock.advance(0)
    assert events(tybalt) == []


def test_lastItemToRemoteContactOnPresence(tmp_path):
    """A remote contact whose available presence reaches the owner gets the last item."""
    domain = PEPDomain(tmp_path)
    domain.storage.rosters.setItem("juliet", DOMAIN, RosterItem("mercutio@remote.example",
                                                                subscription="both"))
    routed = []
    domain.router.addRoute("remote.example", type("R", (), {
        "deliver": lambda self, stanza: routed.append(stanza)})())
    domain.online(JULIET)
    domain.publish(JULIET)
    domain.announce(REMOTE, [TUNE], to="juliet@example.org")
    domain.clock.advance(0)
    assert [s["to"] for s in routed if s.name == "message"] == [REMOTE]


def test_lastItemsBounded(tmp_path):
    """A resource interested in many nodes gets at most [pep] max_last_items of them."""
    domain = PEPDomain(tmp_path, sections={"pep": {"max_last_items": 2}})
    domain.online(JULIET)
    nodes = ["urn:example:%d" % i for i in range(4)]
    for node in nodes:
        domain.publish(JULIET, node=node, item="<x xmlns='urn:example'/>")
    romeo = domain.online(ROMEO, nodes)
    domain.clock.advance(0)
    assert sum(len(events(romeo, node)) for node in nodes) == 2


# -- XEP-0060 §7.1.5 publish-options, XEP-0222, XEP-0223 -----------------------------

def test_preconditionNotMet(tmp_path):
    """A publish whose options differ from the node's configuration is conflict/precondition-not-met."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.publish(JULIET)
    ident = domain.publish(JULIET, itemId="2", options={"pubsub#access_model": "open"})
    reply = answer(juliet, ident)
    assert errorCondition(reply) == "conflict"
    assert pubsubCondition(reply) == "precondition-not-met"


def test_preconditionMet(tmp_path):
    """A publish whose options match the node (true for 1 too) succeeds."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    options = {"pubsub#persist_items": "true", "pubsub#access_model": "presence"}
    domain.publish(JULIET, options=options)
    ident = domain.publish(JULIET, itemId="2", options=options)
    assert answer(juliet, ident)["type"] == "result"


def test_privateStorage(tmp_path):
    """XEP-0223: a whitelist node is kept, read back by its owner, and hidden from contacts."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    node = "storage:bookmarks"
    options = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"}
    romeo = domain.online(ROMEO, [node])
    romeo.take()
    assert answer(juliet, domain.publish(
        JULIET, node=node, item="<storage xmlns='storage:bookmarks'/>",
        options=options))["type"] == "result"
    assert events(romeo, node) == []
    reply = answer(juliet, domain.items(JULIET, "juliet@example.org", node))
    assert [i["id"] for i in reply.pubsub.items.elements(NS_PUBSUB, "item")] == ["current"]
    refused = answer(romeo, domain.items(ROMEO, "juliet@example.org", node))
    assert errorCondition(refused) == "not-allowed"


def test_persistentStorageMax(tmp_path):
    """XEP-0222 with max_items max keeps every item (no longer only the newest)."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    options = {"pubsub#persist_items": "true", "pubsub#max_items": "max"}
    for ident in ("a", "b", "c"):
        domain.publish(JULIET, node="urn:xmpp:bookmarks:1", itemId=ident,
                       item="<conference xmlns='urn:xmpp:bookmarks:1'/>", options=options)
    reply = answer(juliet, domain.items(JULIET, None, "urn:xmpp:bookmarks:1"))
    assert sorted(i["id"] for i in reply.pubsub.items.elements(NS_PUBSUB, "item")) == \
        ["a", "b", "c"]


# -- §6.1 service discovery ------------------------------------------------------------

def discoInfo(domain, sender, to):
    stream = domain.sessions.get(parseJID(sender)).stream
    ident = domain.iq(sender, "<query xmlns='%s'/>" % NS_INFO, to=to, type="get")
    return answer(stream, ident)


def test_accountIdentity(tmp_path):
    """disco#info on one's own bare JID shows pubsub/pep and publish-options."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    reply = discoInfo(domain, JULIET, "juliet@example.org")
    identities = {(i["category"], i["type"]) for i in reply.query.elements(NS_INFO, "identity")}
    features = {f["var"] for f in reply.query.elements(NS_INFO, "feature")}
    assert ("pubsub", "pep") in identities
    assert NS_PUBSUB + "#publish-options" in features
    assert NS_PUBSUB + "#auto-create" in features
    assert NS_PUBSUB + "#last-published" in features


def test_serverFeatures(tmp_path):
    """The server's disco#info lists the PEP pubsub features, without the pep identity."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    reply = discoInfo(domain, JULIET, DOMAIN)
    features = {f["var"] for f in reply.query.elements(NS_INFO, "feature")}
    identities = {(i["category"], i["type"]) for i in reply.query.elements(NS_INFO, "identity")}
    assert NS_PUBSUB + "#publish-options" in features
    assert ("pubsub", "pep") not in identities


# -- account removal --------------------------------------------------------------------

def test_accountRemovedForgetsEngine(tmp_path):
    """Removing an account drops its PEP service from memory."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    handler = domain.handler(PEPHandler)
    assert "juliet@example.org" in handler.engines
    domain.hooks.notify("account/removed", AccountEvent("juliet", DOMAIN))
    assert "juliet@example.org" not in handler.engines


def test_remoteUserReadsOpenNode(tmp_path):
    """A user of another domain reads an open node; the answer goes back through the router."""
    domain = PEPDomain(tmp_path)
    routed = []
    domain.router.addRoute("remote.example", type("R", (), {
        "deliver": lambda self, stanza: routed.append(stanza)})())
    domain.online(JULIET)
    domain.publish(JULIET, node="urn:example:open", item="<x xmlns='urn:example'/>",
                   options={"pubsub#access_model": "open"})
    ident = domain.items(REMOTE, "juliet@example.org", "urn:example:open")
    [reply] = [s for s in routed if s.getAttribute("id") == ident]
    assert reply["type"] == "result" and reply["from"] == "juliet@example.org"


def test_nodesListedToContact(tmp_path):
    """disco#items on an account lists the PEP nodes the asker may see, not the private ones."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    domain.publish(JULIET, node="storage:bookmarks", item="<storage xmlns='storage:bookmarks'/>",
                   options={"pubsub#access_model": "whitelist"})
    romeo = domain.online(ROMEO)
    ident = domain.iq(ROMEO, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                      to="juliet@example.org", type="get")
    reply = answer(romeo, ident)
    assert [i["node"] for i in reply.query.elements()] == [TUNE]


def test_nodeInfo(tmp_path):
    """disco#info on a PEP node a contact may see says pubsub/leaf; a private one is item-not-found."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    domain.publish(JULIET)
    domain.publish(JULIET, node="storage:bookmarks", item="<storage xmlns='storage:bookmarks'/>",
                   options={"pubsub#access_model": "whitelist"})
    romeo = domain.online(ROMEO)
    ident = domain.iq(ROMEO, "<query xmlns='%s' node='%s'/>" % (NS_INFO, TUNE),
                      to="juliet@example.org", type="get")
    reply = answer(romeo, ident)
    assert ("pubsub", "leaf") in {(i["category"], i["type"])
                                  for i in reply.query.elements(NS_INFO, "identity")}
    ident = domain.iq(ROMEO, "<query xmlns='%s' node='storage:bookmarks'/>" % NS_INFO,
                      to="juliet@example.org", type="get")
    assert errorCondition(answer(romeo, ident)) == "item-not-found"


@pytest.mark.parametrize("model, subscription, groups, affiliation, expected", [
    ("presence", "both", (), "none", True),
    ("presence", "from", (), "none", True),
    ("presence", "to", (), "none", False),
    ("presence", None, (), "none", False),
    ("open", "both", (), "none", True),
    ("open", None, (), "none", False),
    ("roster", "both", ("Friends",), "none", True),
    ("roster", "both", ("Family",), "none", False),
    ("whitelist", "both", (), "none", False),
    ("whitelist", "both", (), "member", True),
    ("authorize", "both", (), "none", False),
    ("presence", "both", (), "outcast", False),
])
def test_contactMaySee(model, subscription, groups, affiliation, expected):
    """Who is notified unasked follows the node's access model (XEP-0060 §4.5, XEP-0163 §4)."""
    item = None if subscription is None else RosterItem("romeo@example.org",
                                                        subscription=subscription, groups=groups)
    assert contactMaySee(model, item, affiliation, ["Friends"]) is expected


def test_rosterAccessNotifiesAllowedGroup(tmp_path):
    """On a roster-access node only contacts in an allowed group are notified."""
    domain = PEPDomain(tmp_path)
    domain.storage.rosters.setItem("juliet", DOMAIN, RosterItem(
        "romeo@example.org", subscription="both", groups=("Montagues",)))
    domain.online(JULIET)
    romeo = domain.online(ROMEO, ["urn:example:r"])
    domain.publish(JULIET, node="urn:example:r", item="<x xmlns='urn:example'/>",
                   options={"pubsub#access_model": "roster",
                            "pubsub#roster_groups_allowed": "Capulets"})
    assert events(romeo, "urn:example:r") == []
    domain.storage.rosters.setItem("juliet", DOMAIN, RosterItem(
        "romeo@example.org", subscription="both", groups=("Capulets",)))
    domain.publish(JULIET, node="urn:example:r", item="<x xmlns='urn:example'/>",
                   itemId="2", options={"pubsub#access_model": "roster"})
    assert events(romeo, "urn:example:r") == [("juliet@example.org", ["2"])]


@pytest.mark.parametrize("payload, condition", [
    ("<pubsub xmlns='%s'/>" % NS_PUBSUB, "feature-not-implemented"),
    ("<pubsub xmlns='%s'><publish/></pubsub>" % NS_PUBSUB, "bad-request"),
    ("<pubsub xmlns='%s'><publish node='n'><item><a xmlns='x'/><b xmlns='x'/></item>"
     "</publish></pubsub>" % NS_PUBSUB, "bad-request"),
    ("<pubsub xmlns='%s'><items node='nothing'/></pubsub>" % NS_PUBSUB, "item-not-found"),
    ("<pubsub xmlns='%s'><items/></pubsub>" % NS_PUBSUB, "bad-request"),
])
def test_badRequests(tmp_path, payload, condition):
    """Malformed or impossible PEP requests get their stanza error, never silence."""
    domain = PEPDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.iq(JULIET, payload, type="get" if "<items" in payload else "set")
    assert errorCondition(answer(juliet, ident)) == condition


# -- the "pep/published" hook and the interface for features on PEP ---------------------

def test_publishedHook(tmp_path):
    """Features on PEP hear of each publish with the owner, node, item id and payload."""
    domain = PEPDomain(tmp_path)
    domain.online(JULIET)
    heard = []
    domain.hooks.add(PEP_PUBLISHED, heard.append)
    domain.publish(JULIET)
    [event] = heard
    assert (event.owner.full(), event.node, event.itemId, event.publisher.full()) == (
        "juliet@example.org", TUNE, "current", JULIET)
    assert (event.payload.uri, event.payload.name) == (TUNE, "tune")


def test_publishedHookNotOnError(tmp_path):
    """A refused publish is not heard of."""
    domain = PEPDomain(tmp_path)
    domain.online(ROMEO)
    heard = []
    domain.hooks.add(PEP_PUBLISHED, heard.append)
    domain.publish(ROMEO, to="juliet@example.org")
    assert heard == []


def test_publishForAndItemsOf(tmp_path):
    """A feature publishes as the account (contacts notified) and reads the items back."""
    domain = PEPDomain(tmp_path)
    romeo = domain.online(ROMEO, [TUNE])
    pep = pepOf(domain.domain)
    item = parse("<item id='x'><tune xmlns='%s'><title>Air</title></tune></item>" % TUNE)
    owner = parseJID("juliet@example.org")
    assert ensureDeferred(pep.publishFor(owner, TUNE, item)).result == ["x"]
    assert events(romeo) == [("juliet@example.org", ["x"])]
    [(itemId, payload)] = ensureDeferred(pep.itemsOf(owner, TUNE)).result
    assert (itemId, str(payload.title)) == ("x", "Air")
    assert ensureDeferred(pep.itemsOf(owner, "nothing")).result == []
    assert ensureDeferred(pep.accessModelOf(owner, TUNE)).result == "presence"
