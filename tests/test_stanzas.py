"""
Tests for L{xmppd.core.stanzas}'s typed marks (L{StanzaMeta}) and holds: a
client can never fake an in-process mark with a child element; and for
L{ownAccountSender}, who may ask about an account.
"""

import pytest
from twisted.words.protocols.jabber.error import StanzaError

from tests.domainhelpers import DOMAIN, Domain
from tests.helpers import parse
from xmppd.core.dispatch import isHandled
from xmppd.core.stanzas import (NO_MARKS, StanzaMeta, hold, holders, marks, meta,
                                 ownAccountSender)

JULIET = "juliet@%s" % DOMAIN

#: Children named like every mark, the metadata key, and the wokkel flag.
FORGED = "".join("<%s/>" % name for name in
                 StanzaMeta.__slots__ + ("_xmppdMeta", "meta", "handled", "marks"))


def forged(body="hi"):
    return parse("<message from='romeo@example.org/orchard' to='%s' type='chat'>"
                 "<body>%s</body>%s</message>" % (JULIET, body, FORGED))


def test_childElementsAreNoMarks():
    """A client's <replayed/>, <carbonCopy/>, <handled/> or <_xmppdMeta/> child sets no mark."""
    stanza = forged()
    found = marks(stanza)
    assert found is NO_MARKS
    for name in StanzaMeta.__slots__:
        assert getattr(found, name) in (None, False, frozenset()), name
    assert holders(stanza) is None
    assert not isHandled(stanza)


def test_marksAreKeptPerStanza():
    """A mark set on one stanza is read back from it, and no other stanza has it."""
    stanza, other = forged(), forged()
    meta(stanza).replayed = True
    assert marks(stanza).replayed is True
    assert marks(other).replayed is False
    assert meta(stanza) is meta(stanza)


def test_noMarksIsReadOnly():
    """The shared empty marks refuse writes, so no stanza can set a mark for all."""
    with pytest.raises(AttributeError):
        marks(forged()).replayed = True
    assert NO_MARKS.replayed is False


def test_metaHasNoDict():
    """The marks are slots: an unknown mark name is an error, not a silent new field."""
    with pytest.raises(AttributeError):
        meta(forged()).replayd = True


def test_holdsCollect():
    """Every hold of a stanza is in its list, in order."""
    stanza = forged()
    first, second = hold(stanza), hold(stanza)
    assert holders(stanza) == [first, second]


def test_forgedMarksDoNotStopArchiving(tmp_path):
    """A message carrying children named like marks is still archived and copied as usual."""
    domain = Domain(tmp_path, features=("messages", "roster", "carbons", "mam"))
    balcony = domain.bind(JULIET + "/balcony", available=True)
    domain.send(forged("archived").toXml())
    [got] = balcony.take()
    assert str(got.body) == "archived"
    page = domain.storage.archive.query("juliet", DOMAIN, limit=None).result
    assert len(list(page.messages)) == 1


@pytest.mark.parametrize("to", [None, DOMAIN, JULIET])
def test_ownAccountSenderAcceptsTheAccountItself(to):
    """A session may ask about its own account with no to, its domain or its bare JID as to."""
    iq = parse("<iq type='get' id='1' from='%s/balcony'/>" % (JULIET,))
    if to is not None:
        iq["to"] = to
    assert ownAccountSender(iq, DOMAIN).full() == JULIET + "/balcony"


@pytest.mark.parametrize("sender, to", [
    (JULIET, None),                                   # no resource: not a session
    ("romeo@montague.example/orchard", None),         # another server's user
    (DOMAIN + "/admin", None),                        # no user part
    ("@bad@/x", None),                                # not a JID
    (None, None),                                     # no from at all
    (JULIET + "/balcony", "romeo@%s" % (DOMAIN,)),   # about another account
    (JULIET + "/balcony", "other.example"),           # at another domain
])
def test_ownAccountSenderRefusesEveryoneElse(sender, to):
    """Anyone but the account's own session asking about itself gets service-unavailable."""
    iq = parse("<iq type='get' id='1'/>")
    if sender is not None:
        iq["from"] = sender
    if to is not None:
        iq["to"] = to
    with pytest.raises(StanzaError) as caught:
        ownAccountSender(iq, DOMAIN)
    assert caught.value.condition == "service-unavailable"
