"""
Tests for L{xmppd.features.nickname}: user nickname (XEP-0172) published
through PEP and added to the user's subscription requests, over one
in-memory domain.
"""

from __future__ import annotations

from tests.domainhelpers import fromClient
from tests.test_pep import JULIET, ROMEO, PEPDomain, answer, events
from xmppd.core.events import AccountEvent
from xmppd.features.nickname import NS_NICK, NicknameHandler


class NickDomain(PEPDomain):
    """L{PEPDomain} with the nickname feature."""

    def __init__(self, tmp_path):
        PEPDomain.__init__(self, tmp_path,
                           features=("disco", "clientcaps", "pep", "nickname"))

    def publishNick(self, sender, nick, options=None):
        return self.publish(sender, node=NS_NICK, itemId="current", options=options,
                            item="<nick xmlns='%s'>%s</nick>" % (NS_NICK, nick))

    def subscribe(self, sender, to, extra=""):
        presence = fromClient(self, "<presence from='%s' to='%s' type='subscribe'>%s"
                                    "</presence>" % (sender, to, extra))
        self.clock.advance(0)
        return presence


def nicksIn(presence):
    return [str(nick) for nick in presence.elements(NS_NICK, "nick")]


# -- §4.5 the nick through PEP ----------------------------------------------------------

def test_nickNotified(tmp_path):
    """A contact whose client says nick+notify gets the user's new nickname."""
    domain = NickDomain(tmp_path)
    juliet = domain.online(JULIET)
    romeo = domain.online(ROMEO, [NS_NICK])
    ident = domain.publishNick(JULIET, "Jules")
    assert answer(juliet, ident)["type"] == "result"
    assert events(romeo, NS_NICK) == [("juliet@example.org", ["current"])]
    [message] = [s for s in romeo.sent if s.name == "message"]
    assert str(message.event.items.item.nick) == "Jules"


# -- §4.1 the nick in subscription requests -----------------------------------------------

def test_subscribeGetsPublishedNick(tmp_path):
    """A subscription request sent without a nick carries the one the user published."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules")
    presence = domain.subscribe(JULIET, "tybalt@example.org")
    assert nicksIn(presence) == ["Jules"]


def test_clientNickKept(tmp_path):
    """A nick the client put in its subscription request is left as it is."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules")
    presence = domain.subscribe(JULIET, "tybalt@example.org",
                                "<nick xmlns='%s'>Juliet C.</nick>" % (NS_NICK,))
    assert nicksIn(presence) == ["Juliet C."]


def test_noNickPublished(tmp_path):
    """Without a published nickname the subscription request goes unchanged."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    assert nicksIn(domain.subscribe(JULIET, "tybalt@example.org")) == []


def test_privateNickNotShared(tmp_path):
    """A nickname published with access model whitelist is not handed to a stranger."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules", options={"pubsub#access_model": "whitelist"})
    assert nicksIn(domain.subscribe(JULIET, "tybalt@example.org")) == []


def test_newNickUsed(tmp_path):
    """After the user publishes another nickname, the next request carries the new one."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules")
    domain.subscribe(JULIET, "tybalt@example.org")
    domain.publishNick(JULIET, "Julie")
    assert nicksIn(domain.subscribe(JULIET, "romeo@example.org")) == ["Julie"]


def test_otherPresenceUntouched(tmp_path):
    """Only subscription requests get the nick, never ordinary presence (§4.1's note)."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules")
    presence = fromClient(domain, "<presence from='%s' to='romeo@example.org'/>" % (JULIET,))
    domain.clock.advance(0)
    assert nicksIn(presence) == []


def test_accountRemovedForgotten(tmp_path):
    """A removed account's nickname is not kept in memory."""
    domain = NickDomain(tmp_path)
    domain.online(JULIET)
    domain.publishNick(JULIET, "Jules")
    domain.subscribe(JULIET, "tybalt@example.org")
    handler = domain.handler(NicknameHandler)
    assert "juliet@example.org" in handler.nicks
    domain.hooks.notify("account/removed", AccountEvent("juliet", "example.org"))
    assert "juliet@example.org" not in handler.nicks
