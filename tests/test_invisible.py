"""
Tests for L{xmppd.features.invisible}: XEP-0186 invisible mode as contacts
and the user's own resources notice it.
"""

import pytest

from tests.domainhelpers import Domain, errorCondition
from xmppd.features.invisible import NS_INVISIBLE_0, NS_INVISIBLE_1
from xmppd.storage.interfaces import RosterItem

JULIET = "juliet@example.org"
ROMEO = "romeo@example.org"
BALCONY = JULIET + "/balcony"
ORCHARD = ROMEO + "/orchard"


@pytest.fixture
def world(tmp_path):
    """Juliet and Romeo, subscribed both ways, both online; Romeo's stream is returned too."""
    world = Domain(tmp_path, features=("presence", "roster", "messages", "disco", "invisible"))
    world.storage.rosters.setItem("juliet", "example.org", RosterItem(ROMEO, subscription="both"))
    world.storage.rosters.setItem("romeo", "example.org", RosterItem(JULIET, subscription="both"))
    world.orchard = world.bind(ORCHARD)
    world.send("<presence from='%s'/>" % ORCHARD)
    world.balcony = world.bind(BALCONY)
    world.send("<presence from='%s'><status>at the window</status></presence>" % BALCONY)
    world.orchard.take(), world.balcony.take()
    return world


def command(world, name, ns=NS_INVISIBLE_0, sender=BALCONY, attrs=""):
    world.send("<iq type='set' id='i1' from='%s' to='example.org'><%s xmlns='%s'%s/></iq>"
               % (sender, name, ns, attrs))


def presences(stream):
    return [(s["from"], s.getAttribute("type")) for s in stream.take() if s.name == "presence"]


def test_goingInvisibleShowsContactsOffline(world):
    """A contact sees the user go offline when the user goes invisible; the user gets a result."""
    command(world, "invisible")
    assert presences(world.orchard) == [(BALCONY, "unavailable")]
    [result] = world.balcony.take()
    assert result["type"] == "result" and result["id"] == "i1"


def test_invisibleBroadcastsReachOnlyOwnResources(world):
    """While invisible, a presence change reaches the user's own resources and no contact."""
    chamber = world.bind(JULIET + "/chamber")
    world.send("<presence from='%s/chamber'/>" % JULIET)
    command(world, "invisible")
    world.orchard.take(), chamber.take(), world.balcony.take()

    world.send("<presence from='%s'><show>away</show></presence>" % BALCONY)

    assert presences(world.orchard) == []
    assert presences(chamber) == [(BALCONY, None)]


def test_probesFindInvisibleOffline(world):
    """A contact's probe gets no presence of an invisible resource, as for an offline one."""
    command(world, "invisible")
    world.balcony.take(), world.orchard.take()
    world.send("<presence type='probe' from='%s' to='%s'/>" % (ROMEO, JULIET))
    assert presences(world.orchard) == []


def test_directedPresenceAndMessagesStillWork(world):
    """While invisible, directed presence goes out and messages still arrive."""
    command(world, "invisible")
    world.balcony.take(), world.orchard.take()
    world.send("<presence from='%s' to='%s'/>" % (BALCONY, ORCHARD))
    world.send("<message from='%s' to='%s' type='chat'><body>hi</body></message>"
               % (ORCHARD, JULIET))
    assert presences(world.orchard) == [(BALCONY, None)]
    [message] = world.balcony.take()
    assert message.name == "message" and str(message.body) == "hi"


def test_visibleAgainSendsCurrentPresence(world):
    """Going visible sends the contacts the user's current presence."""
    command(world, "invisible")
    world.send("<presence from='%s'><status>hiding</status></presence>" % BALCONY)
    world.orchard.take()
    command(world, "visible")
    [presence] = [s for s in world.orchard.take() if s.name == "presence"]
    assert presence["from"] == BALCONY and presence.getAttribute("type") is None
    assert str(presence.status) == "hiding"
    # Later broadcasts reach contacts again.
    world.send("<presence from='%s'><show>chat</show></presence>" % BALCONY)
    assert presences(world.orchard) == [(BALCONY, None)]


def test_modeEndsWithTheSession(world):
    """A new session on the same resource is visible."""
    command(world, "invisible")
    world.unbind(BALCONY)
    world.orchard.take()
    world.bind(BALCONY)
    world.send("<presence from='%s'/>" % BALCONY)
    assert (BALCONY, None) in presences(world.orchard)


def test_noProbesWhenAsked(world):
    """Version 1 with probe='false': initial presence while invisible sends no probes."""
    world.unbind(BALCONY)
    balcony = world.bind(BALCONY)
    command(world, "invisible", NS_INVISIBLE_1, attrs=" probe='false'")
    balcony.take(), world.orchard.take()
    world.send("<presence from='%s'/>" % BALCONY)
    # No probe reached Romeo, so his presence is not sent back.
    assert presences(balcony) == [(BALCONY, None)]
    assert presences(world.orchard) == []


def test_onlyTheAccountMayAsk(world):
    """Another entity asking for someone's invisibility gets service-unavailable."""
    world.send("<iq type='set' id='i2' from='%s' to='%s'><invisible xmlns='%s'/></iq>"
               % (ORCHARD, JULIET, NS_INVISIBLE_0))
    [reply] = world.orchard.take()
    assert errorCondition(reply) == "service-unavailable"


def test_disco(world):
    """The server announces both versions of the command (§4)."""
    world.send("<iq type='get' id='d1' from='%s' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % BALCONY)
    [reply] = world.balcony.take()
    features = {f["var"] for f in reply.query.elements(
        "http://jabber.org/protocol/disco#info", "feature")}
    assert {NS_INVISIBLE_0, NS_INVISIBLE_1} <= features


def test_slixmppVisibleNamespace(world):
    """slixmpp's <visible xmlns='urn:xmpp:visible:0'/> brings the user back too."""
    command(world, "invisible")
    world.orchard.take()
    command(world, "visible", "urn:xmpp:visible:0")
    assert presences(world.orchard) == [(BALCONY, None)]
