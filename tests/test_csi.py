"""
Tests for L{xmppd.features.csi}: client state indication (XEP-0352) on
client streams in memory (the stream management tests' node, with C{csi}),
the XEP's examples as literals.
"""

import pytest
from twisted.words.xish import domish

from tests.helpers import parse
from tests.smhelpers import DOMAIN, NS_SM, SMNode, acks, bodies
from tests.streamhelpers import PASSWORDS, plain
from xmppd.core.jid import parseJID
from xmppd.core.prepared import Prepared
from xmppd.features.csi import NS_CSI, classify, isInactive, setState

JULIET = "juliet@%s" % DOMAIN
BALCONY = JULIET + "/balcony"
ROMEO = "romeo@%s/orchard" % DOMAIN
NURSE = "nurse@%s/chamber" % DOMAIN
INACTIVE = "<inactive xmlns='%s'/>" % NS_CSI
ACTIVE = "<active xmlns='%s'/>" % NS_CSI
FEATURES = ("roster", "presence", "messages", "sm", "csi")


@pytest.fixture
def node(tmp_path):
    return SMNode(tmp_path, features=FEATURES)


def deliver(node, xml: str, to: str = BALCONY) -> None:
    """Hand a stanza to the session of C{to}, as the last step of any delivery does."""
    node.domain.deliverToSession(node.sessions.get(parseJID(to)), parse(xml))


def presence(sender: str, show: str | None = None, kind: str | None = None) -> str:
    attrs = " type='%s'" % kind if kind else ""
    child = "<show>%s</show>" % show if show else ""
    return "<presence from='%s' to='%s'%s>%s</presence>" % (sender, BALCONY, attrs, child)


def chatState(sender: str, state: str) -> str:
    return ("<message from='%s' to='%s' type='chat'><%s xmlns='%s'/></message>"
            % (sender, BALCONY, state, "http://jabber.org/protocol/chatstates"))


def chat(sender: str, body: str) -> str:
    return ("<message from='%s' to='%s' type='chat'><body>%s</body></message>"
            % (sender, BALCONY, body))


def pep(sender: str, node: str, itemId: str, payload: str = "") -> str:
    return ("<message from='%s' to='%s' type='headline'>"
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='%s'>"
            "<item id='%s'>%s</item></items></event></message>"
            % (sender, BALCONY, node, itemId, payload))


def seen(elements) -> list[str]:
    """What a client saw, one short word per stanza, in order."""
    out = []
    for e in elements:
        if e.name == "presence":
            out.append("presence %s %s" % (e["from"].split("@")[0],
                                           e.getAttribute("type") or next(
                                               (str(c) for c in e.elements() if c.name == "show"),
                                               "available")))
        elif e.name == "message" and e.body is not None:
            out.append("body " + str(e.body))
        elif e.name == "message":
            event = next((c for c in e.elements() if c.name == "event"), None)
            if event is not None:
                items = next(event.elements())
                out.append("pep %s %s" % (items["node"], next(items.elements())["id"]))
            else:
                out.append("state " + next(e.elements()).name)
        elif e.name == "iq":
            out.append("iq " + e["id"])
        else:
            out.append(e.name)
    return out


def inactive(node, sm: bool = False):
    client = node.login(sm=sm)
    assert client.exchange(INACTIVE) == []
    return client


# -- discovery and the nonzas (§4) -------------------------------------------------


def test_offeredOnlyAfterAuthentication(node):
    """The csi feature appears in the stream features once the client has authenticated."""
    client = node.connect()
    assert (NS_CSI, "csi") not in client.client.start().featureNames()
    client.client.exchange(plain("juliet", PASSWORDS["juliet"]))
    assert (NS_CSI, "csi") in client.client.start().featureNames()


def test_notOfferedWithoutTheFeature(tmp_path):
    """A domain that does not run csi does not offer it, and the nonza closes the stream."""
    node = SMNode(tmp_path)
    client = node.login()
    client.send(INACTIVE)
    assert client.reply().streamError == "unsupported-stanza-type"


def test_beforeAuthentication(node):
    """<inactive/> before authentication closes the stream with not-authorized."""
    client = node.connect()
    client.client.start()
    client.send(INACTIVE)
    assert client.reply().streamError == "not-authorized"


def test_streamsStartActive(node):
    """§4.2: a stream starts active and costs nothing: stanzas go at once, no state is kept."""
    client = node.login()
    assert "csi" not in client.stream.__dict__
    deliver(node, presence(ROMEO, "away"))
    assert seen(client.received()) == ["presence romeo away"]


def test_nonzasAreNotAnswered(node):
    """<inactive/> and <active/> get no answer, as the XEP's examples show."""
    client = node.login()
    assert client.exchange(INACTIVE) == []
    assert isInactive(client.stream)
    assert client.exchange(ACTIVE) == []
    assert not isInactive(client.stream)


def test_inactiveBeforeBind(node):
    """A client may say it is inactive before it binds; binding still answers, and the state holds."""
    client = node.connect()
    client.client.authenticate("juliet")
    assert client.exchange(INACTIVE) == []
    client.client.bind("balcony")
    deliver(node, presence(ROMEO, "away"))
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["presence romeo away"]


def test_nonzasNotCountedByStreamManagement(node):
    """Stream management counts stanzas only: the state changes leave 'h' where it was."""
    client = node.login(available=False, sm=True)
    client.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    client.send(INACTIVE)
    client.send(ACTIVE)
    client.send(INACTIVE)
    assert acks(client.request()) == [1]


# -- what waits, what goes (§3.2) ----------------------------------------------------


def test_presenceHeldUntilActive(node):
    """While inactive, presence updates wait; <active/> sends them, in the order they came."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    deliver(node, presence(NURSE, "dnd"))
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["presence romeo away", "presence nurse dnd"]
    deliver(node, presence(ROMEO, "chat"))
    assert seen(client.received()) == ["presence romeo chat"]


def test_presenceCollapsedPerSender(node):
    """Only the latest presence of each sender is sent, in the place of that latest one."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    deliver(node, presence(NURSE, "dnd"))
    deliver(node, presence(ROMEO, "xa"))
    deliver(node, presence(ROMEO, kind="unavailable"))
    assert seen(client.exchange(ACTIVE)) == ["presence nurse dnd", "presence romeo unavailable"]


def test_routedPresenceHeld(node):
    """A contact's broadcast presence, routed the usual way, waits too."""
    client = inactive(node)
    node.login("romeo", "orchard", available=False)
    node.server.router.route(parse(presence(ROMEO, "away")))
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["presence romeo away"]


def test_subscriptionRequestAtOnce(node):
    """A subscription request is something the user answers: it goes at once, after what was held."""
    client = inactive(node)
    deliver(node, presence(NURSE, "dnd"))
    deliver(node, presence(ROMEO, kind="subscribe"))
    assert seen(client.received()) == ["presence nurse dnd", "presence romeo subscribe"]


def test_chatStatesCollapsed(node):
    """Chat states without a body wait, and only the latest of each sender is kept."""
    client = inactive(node)
    deliver(node, chatState(ROMEO, "composing"))
    deliver(node, chatState(NURSE, "composing"))
    deliver(node, chatState(ROMEO, "paused"))
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["state composing", "state paused"]


def test_messageWithBodyFlushesInOrder(node):
    """A message with a body goes at once, after everything that was held, in order."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    deliver(node, chatState(ROMEO, "composing"))
    deliver(node, chat(ROMEO, "hello"))
    assert seen(client.received()) == ["presence romeo away", "state composing", "body hello"]
    # Still inactive: what comes next waits again.
    deliver(node, presence(NURSE, "dnd"))
    assert client.received() == []
    assert isInactive(client.stream)


def test_routedMessageFlushes(node):
    """A chat message from another client, through the router, reaches the inactive client at once."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    node.message(BALCONY, "wake up")
    assert seen(client.received()) == ["presence romeo away", "body wake up"]


def test_iqAtOnce(node):
    """IQs are answered by the client: they go at once, after what was held."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    deliver(node, "<iq from='%s' to='%s' type='get' id='v1'>"
                  "<query xmlns='jabber:iq:version'/></iq>" % (ROMEO, BALCONY))
    assert seen(client.received()) == ["presence romeo away", "iq v1"]


def test_ownIQAnswerFlushes(node):
    """The answer to the client's own request goes at once."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    client.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert seen(client.received()) == ["presence romeo away", "iq p1"]


def test_pepCollapsedPerNodeForCurrentValues(node):
    """A PEP notification of a current value (tune, avatar metadata...) is kept only in its latest form."""
    client = inactive(node)
    tune = "http://jabber.org/protocol/tune"
    deliver(node, pep(ROMEO, tune, "a"))
    deliver(node, pep(NURSE, tune, "b"))
    deliver(node, pep(ROMEO, tune, "c"))
    deliver(node, pep(ROMEO, "urn:xmpp:custom", "current"))
    deliver(node, pep(ROMEO, "urn:xmpp:custom", "current"))
    assert seen(client.exchange(ACTIVE)) == [
        "pep %s b" % tune, "pep %s c" % tune, "pep urn:xmpp:custom current"]


def test_pepItemsOfOneNodeKept(node):
    """Notifications of distinct items of a node (a bookmark per room) all wait, one per item."""
    client = inactive(node)
    bookmarks = "urn:xmpp:bookmarks:1"
    deliver(node, pep(JULIET, bookmarks, "room1@muc"))
    deliver(node, pep(JULIET, bookmarks, "room2@muc"))
    deliver(node, pep(JULIET, bookmarks, "room1@muc"))
    assert seen(client.exchange(ACTIVE)) == [
        "pep %s room2@muc" % bookmarks, "pep %s room1@muc" % bookmarks]


def test_preparedStanzasClassified(node):
    """Stanzas serialized once for many (a room's broadcast) wait or go like any other."""
    client = inactive(node)
    session = node.sessions.get(parseJID(BALCONY))
    occupant = parse("<presence from='room@muc.%s/romeo'><show>away</show></presence>" % DOMAIN)
    session.sendPrepared(Prepared(occupant), BALCONY)
    assert client.received() == []
    said = parse("<message from='room@muc.%s/romeo' type='groupchat'><body>hi all</body></message>"
                 % DOMAIN)
    session.sendPrepared(Prepared(said), BALCONY)
    assert seen(client.received()) == ["presence room away", "body hi all"]


def test_queueFullFlushesEverything(node):
    """When queue_size stanzas are held, they are all sent, and holding starts again."""
    node.configure("csi", queue_size=3)
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    deliver(node, presence(NURSE, "dnd"))
    assert client.received() == []
    deliver(node, chatState(ROMEO, "composing"))
    assert seen(client.received()) == [
        "presence romeo away", "presence nurse dnd", "state composing"]
    deliver(node, presence(ROMEO, "xa"))
    assert client.received() == []


def test_collapsedEntriesCountOnce(node):
    """The bound counts what is held, not what arrived: a stream of one sender's updates never fills it."""
    node.configure("csi", queue_size=2)
    client = inactive(node)
    for show in ["away", "xa"] * 50:
        deliver(node, presence(ROMEO, show))
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["presence romeo xa"]


# -- bad input: a tight loop (issue 16, item 8) ---------------------------------------


def test_tightLoopStaysBounded(node):
    """A client toggling its state thousands of times gets no answer and leaves no state behind."""
    client = node.login()
    deliver(node, presence(ROMEO, "away"))
    client.received()
    client.send((INACTIVE + ACTIVE) * 5000 + INACTIVE + INACTIVE)
    assert client.received() == []
    state = client.stream.csi
    assert state.held == {}
    deliver(node, presence(ROMEO, "xa"))
    assert len(state.held) == 1
    client.send((ACTIVE + INACTIVE) * 5000)
    assert seen(client.received()) == ["presence romeo xa"]
    assert client.stream.csi.held == {}
    assert client.stream.transport.connected


def test_unknownElementInNamespace(node):
    """Another element in the CSI namespace is not a state: the stream says unsupported-stanza-type."""
    client = node.login()
    client.send("<sleepy xmlns='%s'/>" % NS_CSI)
    assert client.reply().streamError == "unsupported-stanza-type"


# -- the end of the stream, and stream management --------------------------------------


def test_heldJoinUnackedOnResumption(node):
    """
    What was held when the connection broke is sent on the resumed stream,
    which is active again (§5.2).
    """
    client = inactive(node, sm=True)
    previd = client.stream.sm.id
    client.received()
    deliver(node, presence(ROMEO, "away"))
    client.disconnect()
    sm = node.handler.resumable[previd]
    new = node.connect()
    new.client.authenticate("juliet")
    reply = new.exchange("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, sm.acked))
    assert reply[0].name == "resumed"
    assert "presence romeo away" in seen(reply[1:])
    assert not isInactive(new.stream)
    deliver(node, presence(NURSE, "dnd"))
    assert "presence nurse dnd" in seen(new.received())


def test_heldFollowUnackedRulesAtSessionEnd(node):
    """
    When the session of an inactive client ends, what was held is treated
    as unacknowledged: presence is dropped, a message without a body goes
    on to the account's other resource.
    """
    other = node.login("juliet", "garden")
    client = inactive(node, sm=True)
    other.received()
    deliver(node, presence(ROMEO, "away"))
    deliver(node, "<message from='%s' to='%s' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/>"
                  "</message>" % (ROMEO, BALCONY))
    client.close()
    got = other.received()
    assert [e.name for e in got if e.name == "message"] == ["message"]
    assert "presence romeo away" not in seen(got)


def test_closedWithoutStreamManagement(node):
    """Without stream management what is held goes with the stream, and nothing breaks."""
    client = inactive(node)
    deliver(node, presence(ROMEO, "away"))
    client.close()
    assert client.stream.csi is None
    assert node.sessions.get(parseJID(BALCONY)) is None


# -- Bind 2's entry point -------------------------------------------------------------


def test_setState(node):
    """L{setState} does what the nonzas do, for Bind 2 to call inline."""
    client = node.login()
    setState(client.stream, False)
    setState(client.stream, False)
    deliver(node, presence(ROMEO, "away"))
    assert client.received() == []
    setState(client.stream, True)
    assert seen(client.received()) == ["presence romeo away"]
    setState(client.stream, True)
    assert not isInactive(client.stream)


# -- the rules alone --------------------------------------------------------------------


@pytest.mark.parametrize("xml", [
    "<message><subject>Room</subject></message>",
    "<message type='error'><error type='cancel'/></message>",
    "<message><x xmlns='jabber:x:conference' jid='room@muc'/></message>",
    "<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>",
    "<message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
    "<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
    "<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
    "<message xmlns='jabber:client'><body>hi</body></message></forwarded></received></message>",
    "<message><result xmlns='urn:xmpp:mam:2' queryid='q' id='1'/></message>",
    "<presence type='subscribed'/>",
    "<presence type='error'/>",
    "<iq type='result' id='1'/>",
])
def test_urgent(xml):
    """Invitations, subjects, encrypted and forwarded messages with a body, errors and IQs go at once."""
    assert classify(parse(xml)) is None


@pytest.mark.parametrize("xml", [
    "<message><received xmlns='urn:xmpp:receipts' id='1'/></message>",
    "<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
    "<message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/>"
    "</message></forwarded></sent></message>",
    "<message type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>"
    "<purge node='n'/></event></message>",
])
def test_heldAsTheyAre(xml):
    """Receipts, carbons of chat states and other notifications wait without being collapsed."""
    assert classify(parse(xml)) is False


def test_chatStateWithHintsCollapses():
    """A chat state that carries a no-store hint and an origin-id is still just a chat state."""
    stanza = parse("<message from='a@b/c'><paused xmlns='http://jabber.org/protocol/chatstates'/>"
                   "<no-store xmlns='urn:xmpp:hints'/><origin-id xmlns='urn:xmpp:sid:0' id='1'/>"
                   "</message>")
    assert classify(stanza) == ("chatstate", "a@b/c")


def test_retractCollapsesWithItsPublish():
    """A retraction replaces the held notification of the item it retracts."""
    event = ("<message from='a@b'><event xmlns='http://jabber.org/protocol/pubsub#event'>"
             "<items node='n'><%s id='i1'/></items></event></message>")
    assert classify(parse(event % "item")) == classify(parse(event % "retract"))


def test_unparsableTextGoesAtOnce(node):
    """Text that is not a stanza is never held (nothing is lost by a parsing mistake)."""
    client = inactive(node)
    state = client.stream.csi
    from xmppd.core.stanzas import StanzaText
    assert state.hold(StanzaText("<presence")) is False
    assert state.hold(domish.Element((None, "a"))) is False


def test_inlineElementThroughNonzaHook(node):
    """Bind 2 in the stream layer hands the inline <inactive/> to the nonza hook, which takes it."""
    from xmppd.core.events import OutgoingEvent
    client = node.login()
    stream = client.stream
    taken = node.server.hooks.fire("c2s/nonza", OutgoingEvent(
        stream, stream.session, parse(INACTIVE), None), DOMAIN)
    assert taken is True
    deliver(node, presence(ROMEO, "away"))
    assert client.received() == []
    assert isInactive(stream)


def test_preparedPresenceKeyedLikeElements():
    """A serialized presence is classified from its start tag, with the same key as the element."""
    from xmppd.features.csi import Reader, classifyText
    element = parse("<presence from=\"a@b/o'hara\" type='unavailable'/>")
    text = Prepared(element).textFor(BALCONY)
    assert classifyText(text, Reader()) == classify(element) == ("presence", "a@b/o'hara")
    subscribe = Prepared(parse("<presence from='a@b' type='subscribe'/>")).textFor(BALCONY)
    assert classifyText(subscribe, Reader()) is None


def test_preparedPepCollapses(node):
    """PEP notifications fanned out as text collapse like the same stanzas as elements."""
    client = inactive(node)
    session = node.sessions.get(parseJID(BALCONY))
    tune = "http://jabber.org/protocol/tune"
    for itemId in ("a", "b"):
        event = parse(pep(ROMEO, tune, itemId).replace(" to='%s'" % BALCONY, ""))
        session.sendPrepared(Prepared(event), BALCONY)
    assert client.received() == []
    assert seen(client.exchange(ACTIVE)) == ["pep %s b" % tune]


def test_readerRecovers():
    """Half a stanza, or several, is never held, and the next stanza is read correctly."""
    from xmppd.features.csi import Reader, classifyText
    reader = Reader()
    state = "<message from='a@b/c'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>"
    for bad in ["<message from='a@b'><x", "<message/><message/>", "<message><x></y></message>"]:
        assert classifyText(bad, reader) is None
        assert classifyText(state, reader) == ("chatstate", "a@b/c")
