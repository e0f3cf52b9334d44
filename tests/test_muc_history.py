"""
Tests for L{muc.history}: the discussion history a newcomer gets on
entering a room (XEP-0045 §7.2.15), with XEP-0203 delay stamps, and the
limits a newcomer may ask for (maxstanzas, maxchars, seconds, since).
"""

from muc.history import parseStamp, stamp
from tests.muchelpers import MUC, ROOM
from xmppd.stream.elements import serialize

JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/orchard"
NS_DELAY = "urn:xmpp:delay"

#: 2023-11-14T22:13:20Z, so stamps are not the epoch.
START = 1700000000


def roomWithHistory(count=3, step=10, **settings):
    """Juliet's room in which she said 'm0', 'm1', ... one every C{step} seconds."""
    m = MUC(**settings)
    m.clock.advance(START)
    m.create(JULIET, "jul")
    for n in range(count):
        if n:
            m.clock.advance(step)
        m.say(JULIET, "m%d" % n)
    m.clear()
    return m


def history(stanzas):
    """The messages with a body a newcomer got, in order."""
    return [s for s in stanzas
            if s.name == "message" and list(s.elements(s.uri, "body"))]


def bodies(stanzas):
    return [str(b) for s in history(stanzas) for b in s.elements(s.uri, "body")]


def enter(m, attributes=""):
    extra = "<history %s/>" % attributes if attributes else ""
    return m.join(ROMEO, "rom", extra=extra)


def test_historyDelayed():
    """A newcomer gets the recent messages from their senders' occupant JIDs, each with a delay from the room stamped when it was said."""
    m = roomWithHistory()

    got = enter(m)

    messages = history(got)
    assert bodies(got) == ["m0", "m1", "m2"]
    for n, message in enumerate(messages):
        assert message["from"] == ROOM + "/jul" and message["to"] == ROMEO
        assert message["type"] == "groupchat"
        [delay] = message.elements(NS_DELAY, "delay")
        assert delay["from"] == ROOM
        assert delay["stamp"] == stamp(START + 10 * n)
    assert next(messages[0].elements(NS_DELAY, "delay"))["stamp"] == "2023-11-14T22:13:20.000Z"
    # History comes after the presence and before the subject (§7.2.15).
    assert [s.name for s in got] == ["presence", "presence", "message", "message",
                                     "message", "message"]
    assert list(got[-1].elements(got[-1].uri, "subject"))


def test_historyMaxStanzas():
    """A newcomer asking for maxstanzas gets that many of the latest messages, or all when fewer."""
    m = roomWithHistory()

    assert bodies(enter(m, "maxstanzas='2'")) == ["m1", "m2"]
    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))
    assert bodies(enter(m, "maxstanzas='5'")) == ["m0", "m1", "m2"]
    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))
    assert bodies(enter(m, "maxstanzas='0'")) == []


def test_historyMaxChars():
    """A newcomer asking for maxchars gets the latest messages whose whole stanzas fit in that many characters."""
    m = roomWithHistory()
    everything = history(enter(m))
    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))
    lastTwo = sum(len(serialize(s)) for s in everything[-2:])

    assert bodies(enter(m, "maxchars='%d'" % lastTwo)) == ["m1", "m2"]
    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))
    assert bodies(enter(m, "maxchars='0'")) == []


def test_historySeconds():
    """A newcomer asking for seconds gets only the messages said within that many seconds."""
    m = roomWithHistory()
    m.clock.advance(5)

    assert bodies(enter(m, "seconds='16'")) == ["m1", "m2"]


def test_historySince():
    """A newcomer asking for history since a moment gets only the messages said from then on."""
    m = roomWithHistory()

    assert bodies(enter(m, "since='2023-11-14T22:13:25Z'")) == ["m1", "m2"]
    assert parseStamp("2023-11-14T22:13:25Z") == START + 5


def test_historyLength():
    """A room keeps no more messages than [muc] history_length."""
    m = roomWithHistory(count=5, history_length=3)

    assert bodies(enter(m)) == ["m2", "m3", "m4"]


def test_historyOnlyWithBody():
    """Messages without a body (chat states, subject changes) are not replayed as history."""
    m = roomWithHistory(count=1)
    m.send("<message type='groupchat' from='%s' to='%s'>"
           "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>" % (JULIET, ROOM))
    m.send("<message type='groupchat' from='%s' to='%s'><subject>Verona</subject></message>"
           % (JULIET, ROOM))

    got = enter(m)

    messages = [s for s in got if s.name == "message"]
    assert bodies(got) == ["m0"]
    # The one without a body that the newcomer gets is the subject, last.
    assert len(messages) == 2
    assert [str(e) for e in messages[-1].elements(messages[-1].uri, "subject")] == ["Verona"]
