"""
Tests for L{xmppd.features.blocking}: XEP-0191 block lists, their pushes, and what
blocked JIDs can no longer do, with clients on in-memory streams.
"""

import json

import pytest
from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID

from tests.streamhelpers import DOMAIN, Node
from xmppd.core.hooks import OBSERVE, POLICY
from xmppd.features import blocking
from xmppd.features.blocking import NS_BLOCKING, NS_BLOCKING_ERRORS, isBlocked
from xmppd.storage.interfaces import DISABLED
from xmppd.core.events import AccountEvent
from xmppd.core.jid import parseJID
from xmppd.storage.interfaces import RosterItem

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
JULIET = "juliet@%s" % DOMAIN
ROMEO = "romeo@%s" % DOMAIN


class World:
    """A node with the blocking feature and helpers to look at what happened."""

    def __init__(self, tmp_path, maxItems=1000):
        self.node = Node(tmp_path)
        self.domain = self.node.server.router.routes[DOMAIN]
        self.handler = blocking.BlockingHandler(self.domain, maxItems=maxItems)
        self.domain.addHandler(self.handler)
        self.storage = self.node.server.storage
        #: Presence to bare JIDs, which the core alone does not deliver.
        self.presence = []
        self.domain.hooks.add("presence/bare", self.recordPresence, OBSERVE)

    def recordPresence(self, event):
        self.presence.append(event.stanza)
        return True

    def login(self, user, resource):
        return self.node.connect().login(user, resource)

    def stored(self, user="juliet"):
        value = self.storage.accountData.get(user, DOMAIN, "blocklist").result
        return None if value is None else json.loads(value)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def only(reply):
    [element] = reply.elements
    return element


def condition(stanza):
    [error] = [e for e in stanza.elements() if e.name == "error"]
    return [c.name for c in error.elements() if c.uri == NS_STANZAS][0], error


def items(element):
    return [item["jid"] for item in element.elements(NS_BLOCKING, "item")]


def block(client, *jids, id="block1"):
    payload = "".join("<item jid='%s'/>" % jid for jid in jids)
    return client.exchange("<iq type='set' id='%s'><block xmlns='%s'>%s</block></iq>"
                           % (id, NS_BLOCKING, payload))


def unblock(client, *jids, id="unblock1"):
    payload = "".join("<item jid='%s'/>" % jid for jid in jids)
    return client.exchange("<iq type='set' id='%s'><unblock xmlns='%s'>%s</unblock></iq>"
                           % (id, NS_BLOCKING, payload))


def blocklist(client, id="blocklist1"):
    reply = client.exchange("<iq type='get' id='%s'><blocklist xmlns='%s'/></iq>"
                            % (id, NS_BLOCKING))
    [result] = [e for e in reply.elements if e.getAttribute("id") == id]
    return result


# -- the protocol ---------------------------------------------------------


def test_emptyBlocklist(world):
    """A user who blocked nobody gets an empty <blocklist/> (XEP-0191 §3.2, Example 5)."""
    juliet = world.login("juliet", "chamber")
    result = blocklist(juliet)
    assert result["type"] == "result"
    [payload] = result.elements()
    assert (payload.uri, payload.name) == (NS_BLOCKING, "blocklist")
    assert items(payload) == []


def test_blockThenList(world):
    """Blocked JIDs are listed in the order they were blocked (Examples 4 and 6-7)."""
    juliet = world.login("juliet", "chamber")
    reply = block(juliet, "romeo@montague.net")
    assert only(reply)["type"] == "result" and only(reply)["id"] == "block1"
    block(juliet, "iago@shakespeare.lit", id="block2")
    assert items(next(blocklist(juliet).elements())) == [
        "romeo@montague.net", "iago@shakespeare.lit"]
    assert world.stored() == ["romeo@montague.net", "iago@shakespeare.lit"]


def test_blockPushedToInterestedResources(world):
    """A block is pushed to every resource that asked for the list, and only to those (Example 8)."""
    chamber = world.login("juliet", "chamber")
    balcony = world.login("juliet", "balcony")
    garden = world.login("juliet", "garden")
    blocklist(chamber)
    blocklist(balcony)

    reply = block(chamber, "romeo@montague.net")

    pushes = [e for e in reply.elements if e["type"] == "set"]
    [result] = [e for e in reply.elements if e["type"] == "result"]
    assert result["id"] == "block1"
    [push] = pushes
    assert push["to"] == JULIET + "/chamber" and push["from"] == JULIET
    [command] = push.elements()
    assert (command.uri, command.name) == (NS_BLOCKING, "block")
    assert items(command) == ["romeo@montague.net"]
    [other] = balcony.received().elements
    assert other["to"] == JULIET + "/balcony" and other["type"] == "set"
    assert items(next(other.elements())) == ["romeo@montague.net"]
    assert garden.received().elements == []


def test_blockPreparesJIDs(world):
    """Items are stored in their canonical form, so a differently written JID matches."""
    juliet = world.login("juliet", "chamber")
    block(juliet, "Romeo@Montague.NET/Orchard")
    assert world.stored() == ["romeo@montague.net/Orchard"]


def test_blockWithoutItems(world):
    """A block with no item is a bad-request and changes nothing (§3.3)."""
    juliet = world.login("juliet", "chamber")
    error = only(block(juliet))
    assert error["type"] == "error"
    assert condition(error)[0] == "bad-request"
    assert world.stored() is None


def test_blockMalformedJID(world):
    """An item that is not a JID is refused with jid-malformed and nothing is blocked."""
    juliet = world.login("juliet", "chamber")
    error = only(block(juliet, "romeo@montague.net", "@@bad"))
    assert condition(error)[0] == "jid-malformed"
    assert world.stored() is None


def test_blockListLimit(tmp_path):
    """A block list cannot grow past [blocking] max_items: policy-violation, nothing added."""
    world = World(tmp_path, maxItems=2)
    juliet = world.login("juliet", "chamber")
    block(juliet, "a@example.net", "b@example.net")
    error = only(block(juliet, "c@example.net", id="block2"))
    assert condition(error)[0] == "policy-violation"
    assert world.stored() == ["a@example.net", "b@example.net"]


def test_unblockOne(world):
    """Unblocking a JID removes it and pushes the unblock (Examples 10-12)."""
    juliet = world.login("juliet", "chamber")
    blocklist(juliet)
    block(juliet, "romeo@montague.net", "iago@shakespeare.lit")
    reply = unblock(juliet, "romeo@montague.net")
    [push] = [e for e in reply.elements if e["type"] == "set"]
    [command] = push.elements()
    assert command.name == "unblock" and items(command) == ["romeo@montague.net"]
    assert [e["type"] for e in reply.elements if e["id"] == "unblock1"] == ["result"]
    assert world.stored() == ["iago@shakespeare.lit"]


def test_unblockAll(world):
    """An empty <unblock/> empties the list and pushes an empty unblock (Examples 13-15)."""
    juliet = world.login("juliet", "chamber")
    blocklist(juliet)
    block(juliet, "romeo@montague.net", "iago@shakespeare.lit")
    reply = unblock(juliet)
    [push] = [e for e in reply.elements if e["type"] == "set"]
    [command] = push.elements()
    assert command.name == "unblock" and list(command.elements()) == []
    assert items(next(blocklist(juliet).elements())) == []
    assert world.stored() is None


def test_blocklistSurvivesSessions(world):
    """The block list is stored: a later session sees it and it still applies."""
    juliet = world.login("juliet", "chamber")
    block(juliet, ROMEO)
    juliet.disconnect()
    again = world.login("juliet", "balcony")
    assert items(next(blocklist(again).elements())) == [ROMEO]


def test_otherAccountsListRefused(world):
    """Nobody can read or change another account's list: service-unavailable."""
    world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    reply = romeo.exchange("<iq type='get' id='b1' to='%s'><blocklist xmlns='%s'/></iq>"
                           % (JULIET, NS_BLOCKING))
    assert condition(only(reply))[0] == "service-unavailable"
    reply = romeo.exchange("<iq type='set' id='b2' to='%s'><block xmlns='%s'>"
                           "<item jid='%s'/></block></iq>" % (JULIET, NS_BLOCKING, ROMEO))
    assert condition(only(reply))[0] == "service-unavailable"
    assert world.stored() is None


def test_requestToOwnServer(world):
    """A request addressed to the server itself works like one without 'to'."""
    juliet = world.login("juliet", "chamber")
    reply = juliet.exchange("<iq type='set' id='b1' to='%s'><block xmlns='%s'>"
                            "<item jid='%s'/></block></iq>" % (DOMAIN, NS_BLOCKING, ROMEO))
    assert only(reply)["type"] == "result"
    assert world.stored() == [ROMEO]


def test_disco(world):
    """The server announces urn:xmpp:blocking (§3.1); accounts' JIDs do not."""
    features = world.handler.getDiscoInfo(JID(JULIET), JID(DOMAIN))
    assert [f for f in features] == [NS_BLOCKING]
    assert world.handler.getDiscoInfo(JID(JULIET), JID(JULIET)) == []
    assert world.handler.getDiscoInfo(JID(JULIET), JID(DOMAIN), "node") == []


# -- matching -------------------------------------------------------------


@pytest.mark.parametrize("item, jid, blocked", [
    ("romeo@montague.net", "romeo@montague.net", True),
    ("romeo@montague.net", "romeo@montague.net/orchard", True),
    ("romeo@montague.net/orchard", "romeo@montague.net/orchard", True),
    ("romeo@montague.net/orchard", "romeo@montague.net/garden", False),
    ("romeo@montague.net/orchard", "romeo@montague.net", False),
    ("montague.net", "romeo@montague.net/orchard", True),
    ("montague.net", "montague.net", True),
    ("montague.net", "chat.montague.net", False),
    ("montague.net/pipe", "montague.net/pipe", True),
    ("montague.net/pipe", "montague.net", False),
    ("romeo@montague.net", "benvolio@montague.net", False),
])
def test_matching(item, jid, blocked):
    """Items match as XEP-0191 §6 orders them: full JID, bare JID, domain/resource, domain."""
    assert isBlocked({item: None}, parseJID(jid)) is blocked


# -- enforcement ----------------------------------------------------------


def test_blockedContactsMessageBounced(world):
    """A message from a blocked user never arrives; the sender gets service-unavailable (§3.3)."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    block(juliet, ROMEO)

    reply = romeo.exchange("<message to='%s' id='m1' type='chat'><body>hi</body></message>"
                           % JULIET)

    error = only(reply)
    assert error["type"] == "error" and error["from"] == JULIET
    assert error["to"] == ROMEO + "/orchard"
    assert condition(error)[0] == "service-unavailable"
    assert juliet.received().elements == []


def test_blockedContactsIQ(world):
    """An IQ get from a blocked user gets service-unavailable; an IQ result is dropped (§3.3)."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    block(juliet, ROMEO)
    reply = romeo.exchange("<iq to='%s/chamber' id='v1' type='get'>"
                           "<query xmlns='jabber:iq:version'/></iq>" % JULIET)
    assert condition(only(reply))[0] == "service-unavailable"
    reply = romeo.exchange("<iq to='%s/chamber' id='v2' type='result'/>" % JULIET)
    assert reply.elements == []
    assert juliet.received().elements == []


def test_blockedContactsPresenceDropped(world):
    """Presence from a blocked user is dropped without any error (§3.3)."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    romeo.exchange("<presence to='%s/chamber'/>" % JULIET)
    assert len(juliet.received().elements) == 1  # the control: delivered before the block
    block(juliet, ROMEO)

    assert romeo.exchange("<presence to='%s/chamber'/>" % JULIET).elements == []
    assert romeo.exchange("<presence to='%s' type='subscribe'/>" % JULIET).elements == []
    assert juliet.received().elements == []
    assert world.presence == []


def test_messageToBlockedJID(world):
    """A message to a JID one blocked is not sent and comes back with <blocked/> (§3.3, Example 9)."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    block(juliet, ROMEO)

    reply = juliet.exchange("<message to='%s' id='m1'><body>Can you hear me now?</body>"
                            "</message>" % ROMEO)

    error = only(reply)
    assert error["from"] == ROMEO and error["to"] == JULIET + "/chamber"
    name, errorElement = condition(error)
    assert name == "not-acceptable" and errorElement["type"] == "cancel"
    assert [(c.uri, c.name) for c in errorElement.elements()
            if c.uri == NS_BLOCKING_ERRORS] == [(NS_BLOCKING_ERRORS, "blocked")]
    assert [c.name for c in error.elements()][0] == "body"
    assert romeo.received().elements == []


def test_iqAndPresenceToBlockedJID(world):
    """An IQ get to a blocked JID gets <blocked/>; presence to it is dropped silently."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    block(juliet, "romeo@%s/orchard" % DOMAIN)
    reply = juliet.exchange("<iq to='%s/orchard' id='v1' type='get'>"
                            "<query xmlns='jabber:iq:version'/></iq>" % ROMEO)
    assert condition(only(reply))[0] == "not-acceptable"
    assert juliet.exchange("<presence to='%s/orchard'/>" % ROMEO).elements == []
    assert romeo.received().elements == []


def test_domainBlockCoversEveryone(world):
    """Blocking a domain stops messages to and from every user of it."""
    juliet = world.login("juliet", "chamber")
    block(juliet, "montague.net")
    reply = juliet.exchange("<message to='benvolio@montague.net' id='m1'><body>x</body></message>")
    assert condition(only(reply))[0] == "not-acceptable"


def test_fullJIDBlockSparesOtherResources(world):
    """Blocking one resource leaves the contact's other resources reachable."""
    juliet = world.login("juliet", "chamber")
    orchard = world.login("romeo", "orchard")
    garden = world.login("romeo", "garden")
    block(juliet, ROMEO + "/orchard")
    orchard.exchange("<message to='%s/chamber' id='m1'><body>1</body></message>" % JULIET)
    garden.exchange("<message to='%s/chamber' id='m2'><body>2</body></message>" % JULIET)
    assert [m["id"] for m in juliet.received().elements] == ["m2"]


def test_unblockRestoresDelivery(world):
    """After an unblock, the contact's messages arrive again (§3.4)."""
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    block(juliet, ROMEO)
    unblock(juliet, ROMEO)
    assert romeo.exchange("<message to='%s' id='m1'><body>hi</body></message>"
                          % JULIET).elements == []
    [message] = juliet.received().elements
    assert message["id"] == "m1"


def test_ownResourcesNeverBlocked(world):
    """A user blocking their own JID or domain still reaches their other resources and their server."""
    chamber = world.login("juliet", "chamber")
    balcony = world.login("juliet", "balcony")
    block(chamber, JULIET, DOMAIN)
    chamber.exchange("<message to='%s/balcony' id='m1'><body>me</body></message>" % JULIET)
    [message] = balcony.received().elements
    assert message["id"] == "m1"
    # The server's answers (here the block list itself) still arrive.
    assert items(next(blocklist(chamber).elements())) == [JULIET, DOMAIN]


def test_offlineUsersListLoaded(world, monkeypatch):
    """A stanza for a user whose list is not in memory waits for it, then is decided and delivered in order."""
    romeo = world.login("romeo", "orchard")
    world.storage.accountData.set("juliet", DOMAIN, "blocklist", json.dumps(["iago@example.net"]))
    pending = []
    real = world.storage.accountData.get

    def slowGet(user, domain, key):
        if key == DISABLED:
            # Read at login (is the account disabled?), not the block list.
            return real(user, domain, key)
        d = defer.Deferred()
        pending.append((d, real(user, domain, key)))
        return d

    monkeypatch.setattr(world.storage.accountData, "get", slowGet)
    delivered = []
    world.domain.hooks.add("message/bare", lambda event: delivered.append(event.stanza["id"]), POLICY.then(1))

    romeo.exchange("<message to='%s' id='m1'><body>1</body></message>" % JULIET)
    romeo.exchange("<message to='%s' id='m2'><body>2</body></message>" % JULIET)
    assert delivered == [] and len(pending) == 1

    d, value = pending[0]
    d.callback(value.result)
    assert delivered == ["m1", "m2"]
    # Juliet has no session: the core answers as for any offline user.
    assert [condition(e)[0] for e in romeo.received().elements] == [
        "service-unavailable", "service-unavailable"]


def test_offlineUsersBlockApplies(world):
    """A blocked user's message to an offline user who blocked them is refused from storage."""
    juliet = world.login("juliet", "chamber")
    block(juliet, ROMEO)
    juliet.disconnect()
    world.handler.cache.recent.clear()
    romeo = world.login("romeo", "orchard")
    delivered = []
    world.domain.hooks.add("message/bare", lambda event: delivered.append(event.stanza), POLICY.then(1))
    reply = romeo.exchange("<message to='%s' id='m1'><body>1</body></message>" % JULIET)
    assert condition(only(reply))[0] == "service-unavailable"
    assert delivered == []


def test_outgoingWaitsForLoad(world, monkeypatch):
    """A stanza sent before the sender's list is loaded is held, then refused or sent."""
    world.storage.accountData.set("juliet", DOMAIN, "blocklist", json.dumps([ROMEO]))
    pending = []
    real = world.storage.accountData.get

    def slowGet(user, domain, key):
        if key == DISABLED:
            # Read at login (is the account disabled?), not the block list.
            return real(user, domain, key)
        d = defer.Deferred()
        pending.append((d, real(user, domain, key)))
        return d

    monkeypatch.setattr(world.storage.accountData, "get", slowGet)
    juliet = world.login("juliet", "chamber")
    romeo = world.login("romeo", "orchard")
    juliet.exchange("<message to='%s' id='m1'><body>1</body></message>" % ROMEO)
    juliet.exchange("<message to='nurse@%s' id='m2'><body>2</body></message>" % DOMAIN)
    assert juliet.received().elements == []
    while pending:  # Romeo's list, Juliet's, then the nurse's for m2.
        d, value = pending.pop(0)
        d.callback(value.result)
    replies = juliet.received().elements
    assert [(e["id"], condition(e)[0]) for e in replies] == [
        ("m1", "not-acceptable"), ("m2", "service-unavailable")]
    assert romeo.received().elements == []


def test_accountRemovedForgetsList(world):
    """When an account is removed its cached list goes with it."""
    juliet = world.login("juliet", "chamber")
    block(juliet, ROMEO)
    juliet.disconnect()
    assert JULIET in world.handler.cache.recent
    world.domain.hooks.notify("account/removed", AccountEvent("juliet", DOMAIN))
    assert JULIET not in world.handler.cache.recent and JULIET not in world.handler.cache.pinned


# -- presence side effects ------------------------------------------------


def makeAvailable(world, client, status):
    """What the presence feature records when a resource sends available presence."""
    from tests.test_router import parse
    server = world.node.server
    session = server.sessions.get(parseJID(client.jid))
    server.sessions.setAvailability(session.jid, True, 0)
    presenceState(world).setPresence(
        client.jid, parse("<presence from='%s'><status>%s</status></presence>"
                          % (client.jid, status)))
    return session


def presenceState(world):
    """The served domain's record of each resource's presence (L{xmppd.core.presencestate})."""
    return world.node.server.router.routes[DOMAIN].presence


def test_blockSendsUnavailable(world):
    """Blocking a subscribed contact sends them unavailable presence from each available resource (§3.3)."""
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem("nurse@%s" % DOMAIN,
                                                               subscription="to"))
    juliet = world.login("juliet", "chamber")
    makeAvailable(world, juliet, "here")
    block(juliet, ROMEO, "nurse@%s" % DOMAIN)
    assert [(p["from"], p["to"], p.getAttribute("type")) for p in world.presence] == [
        (JULIET + "/chamber", ROMEO, "unavailable")]


def test_blockSendsUnavailableToDirected(world):
    """A blocked JID that got directed presence gets unavailable presence too."""
    juliet = world.login("juliet", "chamber")
    session = makeAvailable(world, juliet, "here")
    presenceState(world).addDirected(session.jid.full(), "iago@example.net/x")
    delivered = []
    world.node.server.router.routes["example.net"] = type(
        "R", (), {"deliver": lambda self, s: delivered.append(s)})()
    block(juliet, "iago@example.net")
    assert [(p["to"], p["type"]) for p in delivered] == [("iago@example.net/x", "unavailable")]


def test_unblockSendsPresenceAndProbe(world):
    """Unblocking sends the contact current presence and probes them (§3.4)."""
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    juliet = world.login("juliet", "chamber")
    makeAvailable(world, juliet, "on the balcony")
    block(juliet, ROMEO)
    del world.presence[:]
    unblock(juliet, ROMEO)
    [current, probe] = world.presence
    assert current["from"] == JULIET + "/chamber" and current["to"] == ROMEO
    assert str(current.status) == "on the balcony"
    assert (probe["type"], probe["from"], probe["to"]) == ("probe", JULIET, ROMEO)


def test_noPresenceWhenUnavailable(world):
    """A user who is not available sends no presence when blocking or unblocking."""
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    juliet = world.login("juliet", "chamber")
    block(juliet, ROMEO)
    unblock(juliet, ROMEO)
    assert world.presence == []


# -- a room's fan-out (stanza/prepared) -----------------------------------

def test_roomFanoutRespectsBlocking(tmp_path):
    """A user who blocked a room gets none of its broadcasts; a user who did not gets them."""
    from muc.broadcast import Prepared
    from tests.domainhelpers import Domain
    from tests.helpers import parse
    from xmppd.core.stanzas import StanzaText

    world = Domain(tmp_path, features=("messages", "blocking"))
    world.storage.accountData.set("juliet", "example.org", "blocklist",
                                  json.dumps(["room@conference.example.org"]))
    received = {}
    for jid in ("juliet@example.org/balcony", "romeo@example.org/orchard"):
        stream = world.bind(jid, available=True)
        received[jid] = []
        stream.send = received[jid].append
    prepared = Prepared(parse("<message from='room@conference.example.org/nurse' "
                              "type='groupchat'><body>Madam!</body></message>"))
    for jid in received:
        world.domain.deliverPrepared(parseJID(jid), prepared)
    [text] = received["romeo@example.org/orchard"]
    assert type(text) is StanzaText and "Madam!" in text
    assert received["juliet@example.org/balcony"] == []


def test_blockCoversWhatLeavesForAnotherDomain(tmp_path):
    """Presence the server sends for a user to a blocked contact on another domain is stopped."""
    from tests.domainhelpers import Domain
    from tests.helpers import parse
    from xmppd.core.local import LocalDomain

    world = Domain(tmp_path, features=("messages", "blocking"))
    LocalDomain("other.example", world.server, features=("messages",)).startService()
    world.storage.accountData.set("juliet", "example.org", "blocklist",
                                  json.dumps(["romeo@other.example"]))
    world.bind("juliet@example.org/balcony", available=True)
    received = {"romeo": [], "nurse": []}
    for name in received:
        stream = world.bind("%s@other.example/r" % name, available=True)
        stream.send = received[name].append
    # Broadcasts made by the server on juliet's behalf, not sent by her client.
    for name in received:
        world.router.route(parse("<presence from='juliet@example.org/balcony' "
                                 "to='%s@other.example/r'/>" % name))
    assert received["romeo"] == []
    assert len(received["nurse"]) == 1


# -- the contact appears offline to the user (§3.3, §3.4) -------------------

def presenceWorld(tmp_path):
    """A domain with presence, rosters and blocking; Juliet and Romeo subscribed both ways."""
    from tests.domainhelpers import Domain
    world = Domain(tmp_path, features=("presence", "roster", "blocking"))
    world.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    world.storage.rosters.setItem("romeo", DOMAIN, RosterItem(JULIET, subscription="both"))
    return world


def seen(stanzas):
    return [(s["from"], s.getAttribute("type")) for s in stanzas if s.name == "presence"]


def blockFrom(world, jid, *items, command="block"):
    from tests.domainhelpers import fromClient
    payload = "".join("<item jid='%s'/>" % item for item in items)
    fromClient(world, "<iq type='set' id='b1' from='%s'><%s xmlns='%s'>%s</%s></iq>"
               % (jid, command, NS_BLOCKING, payload, command))


def test_blockShowsContactOffline(tmp_path):
    """Blocking a contact sends the user's resources unavailable presence from each of the contact's resources (§3.3)."""
    world = presenceWorld(tmp_path)
    balcony = world.bind(JULIET + "/balcony")
    world.send("<presence from='%s/balcony'/>" % JULIET)
    for resource in ("orchard", "garden"):
        world.bind("%s/%s" % (ROMEO, resource))
        world.send("<presence from='%s/%s'/>" % (ROMEO, resource))
    assert sorted(seen(balcony.take())) == [
        (JULIET + "/balcony", None), (ROMEO + "/garden", None), (ROMEO + "/orchard", None)]

    blockFrom(world, JULIET + "/balcony", ROMEO)

    assert sorted(seen(balcony.take())) == [
        (ROMEO + "/garden", "unavailable"), (ROMEO + "/orchard", "unavailable")]


def test_blockShowsRemoteContactOffline(tmp_path):
    """A blocked contact on another server, whose presence the user had, appears offline too."""
    world = presenceWorld(tmp_path)
    balcony = world.bind(JULIET + "/balcony")
    world.send("<presence from='%s/balcony'/>" % JULIET)
    world.send("<presence from='iago@example.net/x' to='%s'/>" % JULIET)
    world.send("<presence from='nurse@example.net/y' to='%s'/>" % JULIET)
    balcony.take()

    blockFrom(world, JULIET + "/balcony", "iago@example.net")

    assert seen(balcony.take()) == [("iago@example.net/x", "unavailable")]


def test_unblockShowsContactAgain(tmp_path):
    """Unblocking a contact the user is subscribed to brings their current presence back (§3.4)."""
    world = presenceWorld(tmp_path)
    balcony = world.bind(JULIET + "/balcony")
    world.send("<presence from='%s/balcony'/>" % JULIET)
    world.bind(ROMEO + "/orchard")
    world.send("<presence from='%s/orchard'><status>in the orchard</status></presence>" % ROMEO)
    blockFrom(world, JULIET + "/balcony", ROMEO)
    balcony.take()

    blockFrom(world, JULIET + "/balcony", ROMEO, command="unblock")

    [presence] = [s for s in balcony.take() if s.name == "presence"]
    assert presence["from"] == ROMEO + "/orchard" and presence.getAttribute("type") is None
    assert str(presence.status) == "in the orchard"


def test_blockedContactsBroadcastsStayHidden(tmp_path):
    """While blocked, neither side's later broadcasts reach the other."""
    world = presenceWorld(tmp_path)
    balcony = world.bind(JULIET + "/balcony")
    world.send("<presence from='%s/balcony'/>" % JULIET)
    orchard = world.bind(ROMEO + "/orchard")
    world.send("<presence from='%s/orchard'/>" % ROMEO)
    blockFrom(world, JULIET + "/balcony", ROMEO)
    balcony.take(), orchard.take()

    world.send("<presence from='%s/orchard'><show>away</show></presence>" % ROMEO)
    world.send("<presence from='%s/balcony'><show>dnd</show></presence>" % JULIET)

    assert [s["from"] for s in balcony.take()] == [JULIET + "/balcony"]
    assert [s["from"] for s in orchard.take()] == [ROMEO + "/orchard"]
