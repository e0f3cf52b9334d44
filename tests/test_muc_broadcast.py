"""
Tests for L{muc.broadcast}: a room stanza serialized once for many
recipients reads, for each, exactly as if it had been serialized for that
recipient alone; local sessions get the text, everyone else an element
through the router.
"""

import pytest
from twisted.words.xish import domish

from muc.broadcast import Prepared, sendPrepared
from muc.service import MUCService
from tests.domainhelpers import Domain
from tests.helpers import parse
from tests.muchelpers import NS_MUC, ROOM, SERVICE, settingsWith, statuses
from xmppd.stream.elements import serialize
from xmppd.core.jid import parseJID
from xmppd.core.stanzas import StanzaText

JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/gone"

STANZAS = [
    # A groupchat message as the room sends it.
    "<message from='room@conference.example.org/jul' type='groupchat' id='m1'>"
    "<body>a &lt;b&gt; &amp; 'c'</body>"
    "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='abc'/></message>",
    # An occupant's presence with nothing but the muc#user payload.
    "<presence from='room@conference.example.org/rom'>"
    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/>"
    "</x></presence>",
    # An empty stanza.
    "<presence from='room@conference.example.org/rom' type='unavailable'/>",
]


def canonical(elem):
    """An element as a comparable value: name, namespace, attributes and children."""
    return (elem.uri, elem.name, sorted(elem.attributes.items()),
            [canonical(c) if isinstance(c, domish.Element) else str(c) for c in elem.children])


@pytest.mark.parametrize("xml", STANZAS)
def test_textForIsSerialization(xml):
    """The text a recipient gets is the stanza serialized with its 'to', even for a resource with quotes and ampersands."""
    element = parse(xml)
    prepared = Prepared(element)
    to = "juliet@example.org/it's \"R&J\" <3"

    addressed = parse(xml)
    addressed["to"] = to
    assert canonical(parse(prepared.textFor(to))) == canonical(parse(serialize(addressed)))
    assert parse(prepared.textFor(to))["to"] == to


def test_elementForSharesChildren():
    """Each recipient's element has its own 'to' and shares the original's children without changing the original."""
    element = parse(STANZAS[0])
    prepared = Prepared(element)

    one = prepared.elementFor(JULIET)
    two = prepared.elementFor(ROMEO)

    assert one["to"] == JULIET and two["to"] == ROMEO
    assert element.getAttribute("to") is None
    assert all(a is b for a, b in zip(one.children, element.children))
    assert len(one.children) == len(element.children)
    one.addElement(("urn:xmpp:sid:0", "stanza-id"))
    assert len(two.children) == len(element.children) == len(one.children) - 1


class PreparedRoute:
    def __init__(self):
        self.prepared = []

    def deliverPrepared(self, recipient, prepared):
        self.prepared.append((recipient, prepared))


class PlainRoute:
    def deliver(self, stanza):
        raise AssertionError("sendPrepared goes through the router, not to the route")


class RecordingRouter:
    def __init__(self, routes):
        self.routes = routes
        self.routed = []

    def route(self, stanza):
        self.routed.append(stanza)


def test_sendPreparedUsesDeliverPrepared():
    """A recipient whose domain's route takes prepared stanzas gets it from that route, not through the router."""
    route = PreparedRoute()
    router = RecordingRouter({"example.org": route})
    prepared = Prepared(parse(STANZAS[0]))

    sendPrepared(router, prepared, parseJID(JULIET))

    assert route.prepared == [(parseJID(JULIET), prepared)]
    assert router.routed == []


@pytest.mark.parametrize("routes", [{"remote.example": PlainRoute()}, {}])
def test_sendPreparedElseRouter(routes):
    """A recipient whose domain's route does not take prepared stanzas (or has no route) gets an element through the router."""
    router = RecordingRouter(routes)
    prepared = Prepared(parse(STANZAS[0]))

    sendPrepared(router, prepared, parseJID("mercutio@remote.example/street"))

    [routed] = router.routed
    assert routed["to"] == "mercutio@remote.example/street"
    assert routed["from"] == "room@conference.example.org/jul"


def test_throughLocalDomain(tmp_path):
    """Through a served domain, a bound session gets the room's stanzas as text, and an occupant whose session ended gets the normal path: service-unavailable back to the room, which removes it (333)."""
    domain = Domain(tmp_path)
    service = MUCService(SERVICE, domain.router, domain.storage, domain.clock, settingsWith(),
                         b"0123456789abcdef0123456789abcdef", localDomains=("example.org",))
    service.startService()
    toService = []
    deliver = service.deliver
    service.deliver = lambda stanza: (toService.append(stanza), deliver(stanza))
    juliet = domain.bind(JULIET)
    juliet.send = lambda obj: juliet.sent.append(obj)  # keep text as well as elements
    domain.bind(ROMEO)
    join = "<presence from='%s' to='%s/%s'><x xmlns='%s'/></presence>"
    domain.send(join % (JULIET, ROOM, "jul", NS_MUC))
    domain.send("<iq type='set' id='c' from='%s' to='%s'><query xmlns='%s#owner'>"
                "<x xmlns='jabber:x:data' type='submit'/></query></iq>" % (JULIET, ROOM, NS_MUC))
    domain.send(join % (ROMEO, ROOM, "rom", NS_MUC))
    domain.unbind(ROMEO)  # gone without leaving the room
    juliet.take()
    toService.clear()

    domain.send("<message type='groupchat' from='%s' to='%s'><body>hi</body></message>"
                % (JULIET, ROOM))

    got = juliet.take()
    assert [type(obj) for obj in got] == [StanzaText, StanzaText]
    message, gone = (parse(text) for text in got)
    assert message["from"] == ROOM + "/jul" and message["to"] == JULIET
    assert [str(b) for b in message.elements(message.uri, "body")] == ["hi"]
    [bounce] = [s for s in toService if s.getAttribute("type") == "error"]
    assert bounce.name == "message"
    assert bounce["from"] == ROMEO and bounce["to"] == ROOM + "/jul"
    assert gone["from"] == ROOM + "/rom" and gone["type"] == "unavailable"
    assert "333" in statuses(gone)
    service.stopService()
