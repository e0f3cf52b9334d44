"""
Tests for L{muc.nickname}: room nicks checked and compared with the PRECIS
Nickname profile (RFC 8266 §2, its examples in §3), and the room refusing
or mapping them as a client sees it (XEP-0045 §7.2.9, status 210).
"""

import pytest

from muc import nickname
from tests.muchelpers import (
    JULIET, MUC, ROMEO, ROOM, errorCondition, errorOf, item, roomWithRomeo, statuses)

ROMEO2 = "romeo@example.org/phone"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def errorText(stanza):
    return [str(t) for t in errorOf(stanza).elements(NS_STANZAS, "text")]


@pytest.mark.parametrize("given, enforced", [
    ("Foo Bar", "Foo Bar"),
    ("  stpeter ", "stpeter"),              # RFC 8266 §2.1 2b: leading and trailing spaces go
    ("St\u00a0\u00a0Peter", "St Peter"),    # 2a and 2c: non-ASCII spaces, one space inside
    ("\uff32\uff4f\uff4d\uff45\uff4f", "Romeo"),  # width mapping through NFKC
    ("Richard \u2163", "Richard IV"),       # §3 example 10
    ("Jan \U0001F60A", "Jan \U0001F60A"),   # an emoji beside letters is fine
])
def test_enforceMaps(given, enforced):
    """A nick the profile maps is accepted in its mapped form (RFC 8266 §2.3, §4)."""
    assert nickname.enforce(given) == enforced


@pytest.mark.parametrize("given", [
    "",
    "   ",
    "rom\u0085eo",                 # a C1 control character
    "ro\u200bmeo",                 # a zero-width space (default ignorable)
    "\U0001F916\ufe0f",            # robot face with the emoji variation selector
    "\U0001F468\u200d\U0001F469\u200d\U0001F467",  # a family: zero-width joiners
    "\U0001F600",                  # a lone emoji
    "\U0001F44D\U0001F3FD \u2764",  # emoji and symbols only
])
def test_enforceRefuses(given):
    """Empty nicks, controls, invisible characters and emoji-only nicks are refused with a readable reason."""
    with pytest.raises(nickname.InvalidNickname) as caught:
        nickname.enforce(given)
    assert str(caught.value).startswith("a nickname")


def test_comparisonFoldsCase():
    """Nicks that differ in case, width or compatibility forms compare equal (RFC 8266 §2.4)."""
    keys = {nickname.comparisonKey(nickname.enforce(n))
            for n in ("Romeo", "ROMEO", "romeo", "\uff32\uff4f\uff4d\uff45\uff4f")}
    assert keys == {"romeo"}
    # §3 examples 5-7: capital and small sigma match, final sigma does not.
    assert nickname.comparisonKey("\u03a3") == nickname.comparisonKey("\u03c3")
    assert nickname.comparisonKey("\u03c2") != nickname.comparisonKey("\u03c3")


def room():
    m = MUC()
    m.create(JULIET, "jul")
    m.clear()
    return m


# Nicks that are valid resourceparts (RFC 7622 OpaqueString) but not
# nicknames: one with controls or invisible characters never reaches the
# room, the client's server refuses its address first.
@pytest.mark.parametrize("nick", ["\U0001F600", "\U0001F44D\U0001F3FD \u2764", "   "])
def test_roomRefusesInvalidNick(nick):
    """Entering with a nick the profile refuses gets jid-malformed (modify) from the room, with a text."""
    m = room()

    [refusal] = m.join(ROMEO, nick)

    assert errorCondition(refusal) == "jid-malformed"
    assert errorOf(refusal)["type"] == "modify"
    assert errorOf(refusal)["by"] == ROOM
    assert errorText(refusal) and errorText(refusal)[0].startswith("a nickname")
    assert len(m.service.rooms["room"].occupants) == 1


def test_creatingWithInvalidNick():
    """A room is not created for someone whose nick the profile refuses."""
    m = MUC()

    [refusal] = m.join(JULIET, "\U0001F600")

    assert errorCondition(refusal) == "jid-malformed"
    assert errorText(refusal)
    assert "room" not in m.service.rooms


def test_nickChangeToInvalidNick():
    """Changing to a nick the profile refuses gets jid-malformed and keeps the old nick."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/\u2764'/>" % (ROMEO, ROOM))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "jid-malformed"
    assert "rom" in m.service.rooms["room"].occupants
    assert m.take(JULIET) == []


def test_equivalentNickConflicts():
    """A nick equal to an occupant's after the comparison rules ('ROM' and 'rom') is a conflict."""
    m = roomWithRomeo()

    for nick in ("ROM", "\uff52\uff4f\uff4d", "Jul"):
        [refusal] = m.join("nurse@example.org/kitchen", nick)
        assert errorCondition(refusal) == "conflict", nick
        assert errorOf(refusal)["by"] == ROOM


def test_equivalentNickChangeConflicts():
    """Changing to a nick equivalent to another occupant's is a conflict."""
    m = roomWithRomeo()

    m.send("<presence from='%s' to='%s/JUL'/>" % (ROMEO, ROOM))

    [refusal] = m.take(ROMEO)
    assert errorCondition(refusal) == "conflict"


def test_mappedNickStatus210():
    """A nick the profile maps is used mapped, and the newcomer's own presence says so (210)."""
    m = room()

    own = [s for s in m.join(ROMEO, "  rom ") if s.name == "presence"][-1]

    assert own["from"] == ROOM + "/rom"
    assert statuses(own) == {"110", "210"}
    assert [p["from"] for p in m.take(JULIET)] == [ROOM + "/rom"]


def test_secondDeviceEquivalentNick():
    """A second device of the same account under an equivalent nick joins the same occupant (210)."""
    m = roomWithRomeo()

    own = [s for s in m.join(ROMEO2, "ROM") if s.name == "presence"][-1]

    assert own["from"] == ROOM + "/rom" and statuses(own) == {"110", "210"}
    assert item(own)["role"] == "participant"
    assert m.take(JULIET) == []
    assert len(m.service.rooms["room"].occupants) == 2


def test_privateMessageToEquivalentNick():
    """A private message to an equivalent nick reaches the occupant."""
    m = roomWithRomeo()

    m.send("<message type='chat' from='%s' to='%s/ROM'><body>hi</body></message>"
           % (JULIET, ROOM))

    [message] = m.take(ROMEO)
    assert message["from"] == ROOM + "/jul"


def register(m, sender, nick):
    m.send("<iq type='set' id='reg' from='%s' to='%s'><query xmlns='jabber:iq:register'>"
           "<x xmlns='jabber:x:data' type='submit'>"
           "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
           "<field var='muc#register_roomnick'><value>%s</value></field></x>"
           "</query></iq>" % (sender, ROOM, nick))
    [reply] = [s for s in m.take(sender) if s.name == "iq"]
    return reply


def test_registeringEquivalentNickConflicts():
    """Registering a nick equivalent to another occupant's, or to a nick someone registered, is a conflict."""
    m = roomWithRomeo()

    assert errorCondition(register(m, "nurse@example.org/kitchen", "ROM")) == "conflict"
    assert register(m, ROMEO, "rom")["type"] == "result"
    m.send("<presence type='unavailable' from='%s' to='%s/rom'/>" % (ROMEO, ROOM))
    [refusal] = m.join("nurse@example.org/kitchen", "Rom")
    assert errorCondition(refusal) == "conflict"  # registered to Romeo, who is away


def test_registeringInvalidNick():
    """Registering a nick the profile refuses is not-acceptable, with the reason."""
    m = room()

    reply = register(m, ROMEO, "\U0001F600")

    assert errorCondition(reply) == "not-acceptable"
    assert errorText(reply)[0].startswith("a nickname")
