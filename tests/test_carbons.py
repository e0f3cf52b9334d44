"""
Tests for L{xmppd.features.carbons}: XEP-0280 message carbons, with the XEP's
examples as XML literals fed to one in-memory domain, and client sessions on
recording streams.
"""

import pytest
from twisted.words.xish import domish

from tests.domainhelpers import DOMAIN, Domain, errorCondition, fromClient
from tests.helpers import parse
from xmppd.core.stanzas import cloneStanza, marks, meta
from xmppd.features.carbons import NS_CARBONS, NS_FORWARD, CarbonsHandler
from xmppd.core.jid import makeJID, parseJID

ROMEO = "romeo@%s" % DOMAIN
JULIET = "juliet@%s" % DOMAIN


@pytest.fixture
def domain(tmp_path):
    return Domain(tmp_path, features=("messages", "carbons"))


def handler(domain) -> CarbonsHandler:
    return domain.handler(CarbonsHandler)


def enable(domain, jid, stream):
    domain.send("<iq type='set' id='enable1' from='%s'>"
                "<enable xmlns='urn:xmpp:carbons:2'/></iq>" % jid)
    [result] = stream.take()
    assert result["type"] == "result"


def forwardedIn(copy, direction):
    """The message forwarded inside a carbon copy."""
    [wrapper] = [c for c in copy.elements() if c.uri == NS_CARBONS]
    assert wrapper.name == direction
    [forwarded] = list(wrapper.elements())
    assert (forwarded.uri, forwarded.name) == (NS_FORWARD, "forwarded")
    [message] = list(forwarded.elements())
    return message


def reparsed(element):
    """The element as the client reads it off the wire."""
    return parse(element.toXml())


@pytest.fixture
def romeo(domain):
    """Romeo on two carbons-enabled devices and one that never enabled carbons."""
    garden = domain.bind(ROMEO + "/garden", available=True, priority=1)
    home = domain.bind(ROMEO + "/home", available=True, priority=0)
    work = domain.bind(ROMEO + "/work", available=True, priority=0)
    enable(domain, ROMEO + "/garden", garden)
    enable(domain, ROMEO + "/home", home)
    return garden, home, work


# -- enabling (§4, §5) ------------------------------------------------------------


def test_enable(domain):
    """An enable request from a client gets an empty result and turns carbons on for it (§4)."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    domain.send("<iq xmlns='jabber:client' from='romeo@example.org/garden' id='enable1'"
                " type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
    [result] = garden.take()
    assert (result["type"], result["id"], result["to"]) == (
        "result", "enable1", ROMEO + "/garden")
    assert list(result.elements()) == []
    assert handler(domain).isEnabled(domain.sessions.get(parseJID(ROMEO + "/garden")))


def test_enableTwiceIsNoError(domain):
    """Enabling carbons again is answered with a result, not an error (§10.1)."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    enable(domain, ROMEO + "/garden", garden)
    enable(domain, ROMEO + "/garden", garden)


def test_disable(domain, romeo):
    """A disable request gets a result and the client gets no more carbons (§5)."""
    garden, home, work = romeo
    domain.send("<iq xmlns='jabber:client' from='romeo@example.org/home' id='disable1'"
                " type='set'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
    [result] = home.take()
    assert (result["type"], result["id"]) == ("result", "disable1")
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden'"
                " type='chat'><body>Hi</body></message>")
    assert home.take() == [] and len(garden.take()) == 1


def test_enableAddressedToTheDomain(domain):
    """A client may address its enable request to its server."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    domain.send("<iq from='romeo@example.org/garden' to='example.org' id='e' type='set'>"
                "<enable xmlns='urn:xmpp:carbons:2'/></iq>")
    [result] = garden.take()
    assert result["type"] == "result"


def test_enableForAnotherAccountNotAllowed(domain):
    """Asking to change another user's carbons gets not-allowed (§5's example)."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    domain.bind(JULIET + "/balcony", available=True)
    domain.send("<iq from='romeo@example.org/garden' to='juliet@example.org' id='e'"
                " type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
    [error] = garden.take()
    assert errorCondition(error) == "not-allowed"
    assert not domain.sessions.carbonSessions


def test_enableWithoutSessionNotAllowed(domain):
    """A request from an entity that is no client of this server gets not-allowed (§4.1)."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    iq = parse("<iq from='romeo@example.org/ghost' id='e' type='set'>"
               "<enable xmlns='urn:xmpp:carbons:2'/></iq>")
    replies = []
    domain.router.addRoute("elsewhere.example", type("R", (), {"deliver": replies.append})())
    iq["from"] = "mercutio@elsewhere.example/street"
    iq["to"] = ROMEO
    domain.send(iq)
    [error] = replies
    assert errorCondition(error) == "not-allowed"
    assert garden.take() == [] and not domain.sessions.carbonSessions


def test_closedSessionForgotten(domain, romeo):
    """A session that ends is no longer carbons-enabled."""
    domain.unbind(ROMEO + "/home")
    assert len(domain.sessions.carbonSessions) == 1


def test_disco(domain):
    """The server announces urn:xmpp:carbons:2; accounts do not (§3)."""
    carbons = handler(domain)
    requestor = parseJID(ROMEO + "/garden")
    assert [str(f) for f in carbons.getDiscoInfo(requestor, makeJID(None, DOMAIN))] == [
        NS_CARBONS]
    assert carbons.getDiscoInfo(requestor, makeJID("romeo", DOMAIN)) == []


# -- received (§7) --------------------------------------------------------------------


def test_receivedToFullJID(domain, romeo):
    """
    A message to one resource reaches it, and every other carbons-enabled
    resource gets a <received/> copy (§7's example); a resource without
    carbons gets nothing.
    """
    garden, home, work = romeo
    domain.send("""<message xmlns='jabber:client'
         from='juliet@example.org/balcony'
         to='romeo@example.org/garden'
         type='chat'>
  <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>""")
    [original] = garden.take()
    assert original.name == "message" and original.received is None
    [copy] = home.take()
    assert (copy["from"], copy["to"], copy["type"]) == (ROMEO, ROMEO + "/home", "chat")
    forwarded = forwardedIn(reparsed(copy), "received")
    assert forwarded.uri == "jabber:client"
    assert forwarded["from"] == "juliet@example.org/balcony"
    assert forwarded["to"] == ROMEO + "/garden"
    assert str(forwarded.body).startswith("What man art thou")
    assert str(forwarded.thread) == "0e3141cd80894871a68e6fe6b1ec56fa"
    assert work.take() == []


def test_receivedToBareJID(domain, romeo):
    """A message to the bare JID goes to the top resource; the other enabled ones get copies."""
    garden, home, work = romeo
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org'"
                " type='chat'><body>Romeo?</body></message>")
    [original] = garden.take()
    assert original["to"] == ROMEO
    [copy] = home.take()
    assert forwardedIn(copy, "received")["to"] == ROMEO
    assert work.take() == []


def test_noCopyForResourcesThatGotTheOriginal(domain):
    """Resources that share the top priority get the original, never a copy as well (§7)."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    home = domain.bind(ROMEO + "/home", available=True)
    enable(domain, ROMEO + "/garden", garden)
    enable(domain, ROMEO + "/home", home)
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org'"
                " type='chat'><body>Both</body></message>")
    [a], [b] = garden.take(), home.take()
    assert a.received is None and b.received is None


def test_copyReachesUnavailableEnabledResource(domain):
    """A carbons-enabled resource without presence still gets copies."""
    garden = domain.bind(ROMEO + "/garden", available=True)
    quiet = domain.bind(ROMEO + "/quiet", available=False)
    enable(domain, ROMEO + "/quiet", quiet)
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org'"
                " type='chat'><body>Hi</body></message>")
    assert len(garden.take()) == 1
    [copy] = quiet.take()
    assert forwardedIn(copy, "received") is not None


def test_noCopyWhenNobodyGetsTheMessage(domain):
    """A message no resource takes (it goes offline or back) is not copied either."""
    quiet = domain.bind(ROMEO + "/quiet", available=False)
    enable(domain, ROMEO + "/quiet", quiet)
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org'"
                " type='chat'><body>Hi</body></message>")
    assert quiet.take() == []


@pytest.mark.parametrize("payload", [
    "type='normal'><body>Normal with a body</body>",
    "><body>No type, a body</body>",
    "type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>",
    "type='chat'><received xmlns='urn:xmpp:receipts' id='r1'/>",
])
def test_eligible(domain, romeo, payload):
    """Chats (chat states and receipts included, §10.2) and normal messages with a body are copied (§6)."""
    garden, home, work = romeo
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden' "
                + payload + "</message>")
    assert len(home.take()) == 1


@pytest.mark.parametrize("payload", [
    "type='normal'><received xmlns='urn:xmpp:receipts' id='r1'/>",
    "type='headline'><body>News</body>",
    "type='groupchat'><body>Room talk</body>",
    "type='error'><body>x</body><error type='cancel'><item-not-found"
    " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    "type='chat'><body>PM</body><x xmlns='http://jabber.org/protocol/muc#user'/>",
    "type='chat'><body>Secret</body><no-copy xmlns='urn:xmpp:hints'/>",
])
def test_notEligible(domain, romeo, payload):
    """Headlines, groupchat, errors, MUC private messages, no-copy and bodyless normal messages are not copied (§6)."""
    garden, home, work = romeo
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden' "
                + payload + "</message>")
    assert len(garden.take()) == 1
    assert home.take() == []


def test_privateReceived(domain, romeo):
    """A private message gets no copy, and reaches the recipient without <private/> (§9)."""
    garden, home, work = romeo
    domain.send("""<message xmlns='jabber:client'
         from='juliet@example.org/home'
         to='romeo@example.org/garden'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <private xmlns='urn:xmpp:carbons:2'/>
</message>""")
    [original] = garden.take()
    assert [c for c in original.elements() if c.uri == NS_CARBONS] == []
    assert home.take() == []


def test_privateRemovedWithoutCarbonsUsers(tmp_path):
    """<private/> is removed before delivery even when nobody has carbons enabled (§9)."""
    domain = Domain(tmp_path, features=("messages", "carbons"))
    garden = domain.bind(ROMEO + "/garden", available=True)
    domain.send("<message from='juliet@example.org/home' to='romeo@example.org/garden'"
                " type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>")
    [original] = garden.take()
    assert original.private is None


def test_copiesAreClones(domain, romeo):
    """The forwarded copy is a copy: changing it leaves the delivered original as it was."""
    garden, home, work = romeo
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden'"
                " type='chat'><body>Hi</body></message>")
    [original], [copy] = garden.take(), home.take()
    forwarded = forwardedIn(copy, "received")
    assert forwarded is not original and forwarded.body is not original.body
    forwarded.body.children[:] = ["changed"]
    assert str(original.body) == "Hi"


# -- sent (§8) -----------------------------------------------------------------------


def test_sent(domain, romeo):
    """
    A message a user sends reaches its recipient unchanged, and the user's
    other carbons-enabled resources get a <sent/> copy (§8's example), but
    not the sending one.
    """
    garden, home, work = romeo
    balcony = domain.bind(JULIET + "/balcony", available=True)
    fromClient(domain, """<message xmlns='jabber:client'
         from='romeo@example.org/home'
         to='juliet@example.org/balcony'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>""")
    [delivered] = balcony.take()
    assert delivered.sent is None and str(delivered.body).startswith("Neither")
    assert home.take() == [] and work.take() == []
    [copy] = garden.take()
    assert (copy["from"], copy["to"], copy["type"]) == (ROMEO, ROMEO + "/garden", "chat")
    forwarded = forwardedIn(reparsed(copy), "sent")
    assert forwarded["from"] == ROMEO + "/home"
    assert forwarded["to"] == JULIET + "/balcony"
    assert str(forwarded.thread) == "0e3141cd80894871a68e6fe6b1ec56fa"


def test_sentFromResourceWithoutCarbons(domain, romeo):
    """Sent copies go out even when the sending client has not enabled carbons (§8)."""
    garden, home, work = romeo
    domain.bind(JULIET + "/balcony", available=True)
    fromClient(domain, "<message from='romeo@example.org/work' to='juliet@example.org'"
                       " type='chat'><body>From work</body></message>")
    assert len(garden.take()) == 1 and len(home.take()) == 1


def test_privateSent(domain, romeo):
    """A private message is not copied to the sender's other resources and keeps <private/> (§9)."""
    garden, home, work = romeo
    sent = []
    domain.router.addRoute("capulet.example", type("R", (), {"deliver": sent.append})())
    fromClient(domain, """<message xmlns='jabber:client'
         from='romeo@example.org/home'
         to='juliet@capulet.example/home'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <private xmlns='urn:xmpp:carbons:2'/>
</message>""")
    [original] = sent
    assert original.private is not None
    assert garden.take() == [] and home.take() == []


def test_sentToOwnAccountCopiedOnce(domain, romeo):
    """A message to one's own other resource gives each other device one copy, not two."""
    garden, home, work = romeo
    third = domain.bind(ROMEO + "/third", available=True)
    enable(domain, ROMEO + "/third", third)
    fromClient(domain, "<message from='romeo@example.org/home' to='romeo@example.org/work'"
                       " type='chat'><body>note to self</body></message>")
    assert len(work.take()) == 1
    assert home.take() == []
    [a], [b] = garden.take(), third.take()
    assert forwardedIn(a, "received") is not None and forwardedIn(b, "received") is not None


def test_sentCarriesArchiveId(domain, romeo):
    """When the archive gave the sent message an id, the sent copy carries it as a stanza-id."""
    garden, home, work = romeo
    domain.bind(JULIET + "/balcony", available=True)
    stanza = parse("<message from='romeo@example.org/home' to='juliet@example.org'"
                   " type='chat'><body>x</body></message>")
    meta(stanza).archiveSentId = (ROMEO, "abc123")
    fromClient(domain, stanza)
    [copy] = garden.take()
    forwarded = forwardedIn(copy, "sent")
    [sid] = [c for c in forwarded.elements() if c.name == "stanza-id"]
    assert (sid["by"], sid["id"]) == (ROMEO, "abc123")
    assert all(c.name != "stanza-id" for c in stanza.elements())


# -- copies are not messages -------------------------------------------------------


def test_copiesAreNotCopiedAgain(domain, romeo):
    """A carbon copy is marked as one and gets no copies of its own."""
    garden, home, work = romeo
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden'"
                " type='chat'><body>Hi</body></message>")
    [copy] = home.take()
    assert marks(copy).carbonCopy is True
    assert garden.take() != [] and work.take() == []


def test_cloneServerStanza():
    """A stanza from a server is forwarded as a client stanza (XEP-0297)."""
    stanza = domish.Element(("jabber:server", "message"))
    stanza["from"] = "juliet@capulet.example/balcony"
    stanza.addElement("body", content="Hi")
    stanza.addElement(("urn:xmpp:receipts", "request"))
    copy = cloneStanza(stanza)
    assert copy.uri == "jabber:client" and copy.body.uri == "jabber:client"
    wrapper = domish.Element((NS_FORWARD, "forwarded"))
    wrapper.addChild(copy)
    xml = wrapper.toXml()
    assert "<message xmlns='jabber:client'" in xml and "jabber:server" not in xml
    assert "<request xmlns='urn:xmpp:receipts'/>" in xml


# -- in a cluster ------------------------------------------------------------------


@pytest.fixture
def clustered(tmp_path):
    """A domain on a node configured as a cluster's (no Redis needed here), Romeo as in L{romeo}."""
    domain = Domain(tmp_path, features=("messages", "carbons"), sections={"cluster": {"node": "n1"}})
    garden = domain.bind(ROMEO + "/garden", available=True, priority=1)
    home = domain.bind(ROMEO + "/home", available=True, priority=0)
    work = domain.bind(ROMEO + "/work", available=True, priority=0)
    enable(domain, ROMEO + "/garden", garden)
    enable(domain, ROMEO + "/home", home)
    return domain, (garden, home, work)


def test_relayedMessageNotCopiedAgain(clustered):
    """
    A message a cluster routes again (its resource went before its node could
    deliver it) was copied where it was first routed: it reaches another
    resource, and nobody gets a second copy.
    """
    domain, (garden, home, work) = clustered
    message = parse("<message from='juliet@example.org/balcony' to='romeo@example.org/gone'"
                    " type='chat'><body>Hi</body></message>")
    meta(message).clusterRelayed = True
    domain.send(message)
    [original] = garden.take()
    assert original.received is None and str(original.body) == "Hi"
    assert home.take() == [] and work.take() == []


def test_relayedCopyForGoneResourceDropped(clustered):
    """
    A carbon copy a cluster routes again because its resource went is
    dropped: the other resources have the original or their own copy.
    """
    domain, (garden, home, work) = clustered
    copy = parse("<message from='romeo@example.org' to='romeo@example.org/gone' type='chat'>"
                 "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                 "<message xmlns='jabber:client' from='juliet@example.org/balcony'"
                 " to='romeo@example.org/garden' type='chat'><body>Hi</body></message>"
                 "</forwarded></received></message>")
    meta(copy).clusterRelayed = True
    domain.send(copy)
    assert garden.take() == [] and home.take() == [] and work.take() == []
    # A copy for a resource still bound (bound again elsewhere meanwhile) gets there.
    again = parse(copy.toXml().replace("/gone", "/home"))
    meta(again).clusterRelayed = True
    domain.send(again)
    assert len(home.take()) == 1 and garden.take() == []


def test_clusterCopiesAsALoneNode(clustered):
    """On a node of a cluster, a message routed the first time is copied as on a lone node."""
    domain, (garden, home, work) = clustered
    domain.send("<message from='juliet@example.org/balcony' to='romeo@example.org/garden'"
                " type='chat'><body>Hi</body></message>")
    assert len(garden.take()) == 1 and work.take() == []
    [copy] = home.take()
    assert str(forwardedIn(copy, "received").body) == "Hi"
