"""
Tests for L{xmppd.features.messages}: RFC 6121 §8.5 message delivery, driven through
the router with XML literals; presence state is set on the sessions directly.
"""

import pytest
from twisted.internet import defer

from tests.domainhelpers import Domain, errorCondition
from xmppd.core.delivery import mostAvailable
from xmppd.core.stanzas import messageType
from xmppd.features.messages import MAX_WAITING, MessageHandler

ROMEO = "romeo@example.org/orchard"


@pytest.fixture
def domain(tmp_path):
    return Domain(tmp_path, features=("messages",))


def message(to, kind=None, body="Wherefore art thou?", sender=ROMEO, id="m1"):
    typeAttr = " type='%s'" % kind if kind else ""
    toAttr = " to='%s'" % to if to is not None else ""
    return ("<message from='%s'%s id='%s'%s><body>%s</body></message>"
            % (sender, toAttr, id, typeAttr, body))


class FakeSession:
    def __init__(self, priority, available=True):
        self.priority = priority
        self.available = available


# -- helpers -----------------------------------------------------------------


def test_unknownTypeIsNormal():
    """A message with no type or a type nobody knows is handled as "normal" (RFC 6121 §5.2.2)."""
    from tests.domainhelpers import parse
    assert messageType(parse("<message/>")) == "normal"
    assert messageType(parse("<message type='shout'/>")) == "normal"
    assert messageType(parse("<message type='chat'/>")) == "chat"


def test_mostAvailableHighestPriorityAll():
    """Every resource sharing the highest non-negative priority is chosen."""
    a, b, c = FakeSession(5), FakeSession(5), FakeSession(1)
    assert mostAvailable([c, a, b]) == [a, b]


def test_mostAvailableSkipsNegativeAndUnavailable():
    """Negative priorities and resources without presence are never chosen."""
    negative, hidden = FakeSession(-1), FakeSession(10, available=False)
    assert mostAvailable([negative, hidden]) == []
    assert mostAvailable([negative, FakeSession(0)], everyone=True) != []


# -- to a bare JID ------------------------------------------------------------


def test_chatToBareJIDHighestPriority(domain):
    """Chat to Juliet's bare JID reaches only her highest-priority resource, with 'to' untouched."""
    romeo = domain.bind(ROMEO, available=True)
    balcony = domain.bind("juliet@example.org/balcony", available=True, priority=5)
    chamber = domain.bind("juliet@example.org/chamber", available=True, priority=1)

    domain.send(message("juliet@example.org", "chat"))

    [got] = balcony.take()
    assert got["to"] == "juliet@example.org"
    assert str(got.body) == "Wherefore art thou?"
    assert chamber.take() == [] and romeo.take() == []


@pytest.mark.parametrize("kind", [None, "normal", "chat"])
def test_equalPrioritiesAllGetIt(domain, kind):
    """When two resources share the highest priority, both get the message."""
    balcony = domain.bind("juliet@example.org/balcony", available=True, priority=1)
    chamber = domain.bind("juliet@example.org/chamber", available=True, priority=1)
    garden = domain.bind("juliet@example.org/garden", available=True, priority=0)

    domain.send(message("juliet@example.org", kind))

    assert len(balcony.take()) == 1 and len(chamber.take()) == 1
    assert garden.take() == []


def test_negativePriorityNeverGetsBareMessages(domain):
    """A resource with a negative priority gets nothing sent to the bare JID, even when it is the only one."""
    romeo = domain.bind(ROMEO, available=True)
    shy = domain.bind("juliet@example.org/shy", available=True, priority=-1)

    domain.send(message("juliet@example.org", "chat"))

    assert shy.take() == []
    [bounce] = romeo.take()
    assert errorCondition(bounce) == "service-unavailable"


def test_resourceWithoutPresenceGetsNoBareMessages(domain):
    """A connected resource that sent no presence gets no bare-JID message (RFC 6121 §4.7.2.3)."""
    romeo = domain.bind(ROMEO, available=True)
    quiet = domain.bind("juliet@example.org/quiet")

    domain.send(message("juliet@example.org", "normal"))

    assert quiet.take() == []
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_headlineToAllNonNegative(domain):
    """A headline reaches every available resource with a non-negative priority."""
    a = domain.bind("juliet@example.org/a", available=True, priority=5)
    b = domain.bind("juliet@example.org/b", available=True, priority=0)
    c = domain.bind("juliet@example.org/c", available=True, priority=-5)

    domain.send(message("juliet@example.org", "headline"))

    assert len(a.take()) == 1 and len(b.take()) == 1 and c.take() == []


def test_headlineNobodyIsDropped(domain):
    """A headline nobody can take disappears without an error."""
    romeo = domain.bind(ROMEO, available=True)
    domain.bind("juliet@example.org/c", available=True, priority=-5)

    domain.send(message("juliet@example.org", "headline"))
    domain.send(message("nobody@example.org", "headline"))

    assert romeo.take() == []


def test_groupchatToBareJIDRefused(domain):
    """Groupchat to a bare JID is never delivered; the sender gets service-unavailable."""
    romeo = domain.bind(ROMEO, available=True)
    juliet = domain.bind("juliet@example.org/balcony", available=True)

    domain.send(message("juliet@example.org", "groupchat"))

    assert juliet.take() == []
    [bounce] = romeo.take()
    assert errorCondition(bounce) == "service-unavailable"
    assert bounce["to"] == ROMEO and bounce["from"] == "juliet@example.org"
    assert bounce["id"] == "m1"


def test_errorToBareJIDDropped(domain):
    """An error message to a bare JID is dropped, and never answered."""
    romeo = domain.bind(ROMEO, available=True)
    juliet = domain.bind("juliet@example.org/balcony", available=True)

    domain.send(message("juliet@example.org", "error"))
    domain.send(message("nobody@example.org", "error"))

    assert juliet.take() == [] and romeo.take() == []


def test_offlineWithoutStorageBounces(domain):
    """Chat to an existing account with nobody online bounces with service-unavailable."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send(message("juliet@example.org", "chat"))

    [bounce] = romeo.take()
    assert errorCondition(bounce) == "service-unavailable"
    assert str(bounce.body) == "Wherefore art thou?"


def test_unknownAccountBounces(domain):
    """A message to an account that does not exist bounces with service-unavailable."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send(message("nobody@example.org", "normal"))
    domain.send(message("nobody@example.org/res", "chat", id="m2"))

    bounces = romeo.take()
    assert [errorCondition(b) for b in bounces] == ["service-unavailable"] * 2
    assert [b["id"] for b in bounces] == ["m1", "m2"]


def test_offlineHookTakesMessage(domain):
    """With offline storage present, a chat to an offline account goes to it instead of bouncing."""
    romeo = domain.bind(ROMEO, available=True)
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event) or True)

    domain.send(message("juliet@example.org", "chat"))
    domain.send(message("juliet@example.org", "headline"))

    [event] = stored
    assert event.recipient.full() == "juliet@example.org"
    assert event.stanza.getAttribute("type") == "chat"
    assert romeo.take() == []


def test_offlineHookAllNegative(domain):
    """When every resource has a negative priority, normal messages go to offline storage."""
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event) or True)
    shy = domain.bind("juliet@example.org/shy", available=True, priority=-1)

    domain.send(message("juliet@example.org"))

    assert len(stored) == 1 and shy.take() == []


def test_offlineHookNotOfferedUnknownAccount(domain):
    """Offline storage is never offered a message for an account that does not exist."""
    romeo = domain.bind(ROMEO, available=True)
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event) or True)

    domain.send(message("nobody@example.org", "chat"))

    assert stored == []
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_offlineHookDeclines(domain):
    """When offline storage declines a message, the sender gets service-unavailable."""
    romeo = domain.bind(ROMEO, available=True)
    domain.hooks.add("message/offline", lambda event: None)

    domain.send(message("juliet@example.org", "normal"))

    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_noStorageWhenOnline(domain, monkeypatch):
    """Delivery to an online user, or any bounce nobody could store, never asks storage."""
    def forbidden(*args):
        raise AssertionError("storage was asked")
    monkeypatch.setattr(domain.storage.users, "userExists", forbidden)
    romeo = domain.bind(ROMEO, available=True)
    juliet = domain.bind("juliet@example.org/balcony", available=True)

    domain.send(message("juliet@example.org", "chat"))
    domain.send(message("juliet@example.org/gone", "chat"))
    domain.send(message("nobody@example.org", "chat"))

    assert len(juliet.take()) == 2
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_lookupsKeepOrder(domain, monkeypatch):
    """Messages waiting for one account lookup reach offline storage in the order they were sent."""
    pending = []

    def userExists(user, host):
        d = defer.Deferred()
        pending.append(d)
        return d
    monkeypatch.setattr(domain.storage.users, "userExists", userExists)
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event) or True)

    for n in range(3):
        domain.send(message("juliet@example.org", "chat", body=str(n), id=str(n)))
    assert len(pending) == 1 and stored == []
    pending[0].callback(True)

    assert [str(event.stanza.body) for event in stored] == ["0", "1", "2"]
    assert domain.handler(MessageHandler).waiting == {}


def test_lookupFinishesAfterLogin(domain, monkeypatch):
    """A message that waited for the account lookup is delivered if the user came online meanwhile."""
    pending = []
    monkeypatch.setattr(domain.storage.users, "userExists",
                        lambda user, host: pending.append(defer.Deferred()) or pending[-1])
    domain.hooks.add("message/offline", lambda event: True)

    domain.send(message("juliet@example.org", "chat"))
    juliet = domain.bind("juliet@example.org/balcony", available=True)
    pending[0].callback(True)

    assert len(juliet.take()) == 1


def test_waitingQueueBounded(domain, monkeypatch):
    """Past the bound on messages waiting for a lookup, senders get resource-constraint."""
    romeo = domain.bind(ROMEO, available=True)
    monkeypatch.setattr(domain.storage.users, "userExists", lambda user, host: defer.Deferred())
    domain.hooks.add("message/offline", lambda event: True)

    for n in range(MAX_WAITING + 1):
        domain.send(message("juliet@example.org", "chat", id=str(n)))

    [bounce] = romeo.take()
    assert errorCondition(bounce) == "resource-constraint"
    assert bounce["id"] == str(MAX_WAITING)


def test_lookupFailure(domain, monkeypatch):
    """When storage fails, the waiting senders get internal-server-error rather than silence."""
    romeo = domain.bind(ROMEO, available=True)
    monkeypatch.setattr(domain.storage.users, "userExists",
                        lambda user, host: defer.fail(RuntimeError("disk on fire")))
    domain.hooks.add("message/offline", lambda event: True)

    domain.send(message("juliet@example.org", "chat"))

    assert errorCondition(romeo.take()[0]) == "internal-server-error"
    assert domain.handler(MessageHandler).waiting == {}


# -- to oneself ------------------------------------------------------------------


def test_messageWithoutToGoesToOwnBareJID(domain):
    """A message with no 'to' is delivered as if sent to the sender's own bare JID (RFC 6120 §10.3.1)."""
    balcony = domain.bind("juliet@example.org/balcony", available=True, priority=1)
    chamber = domain.bind("juliet@example.org/chamber", available=True, priority=1)

    domain.send(message(None, "chat", sender="juliet@example.org/balcony"))

    assert len(balcony.take()) == 1 and len(chamber.take()) == 1


# -- to a full JID ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["normal", "chat", "groupchat", "headline", "error"])
def test_fullJIDDeliveredWhateverType(domain, kind):
    """A bound resource gets a message sent to its full JID whatever its type, even without presence."""
    romeo = domain.bind(ROMEO, available=True)
    juliet = domain.bind("juliet@example.org/balcony", available=False, priority=-3)

    domain.send(message("juliet@example.org/balcony", kind))

    [got] = juliet.take()
    assert got["to"] == "juliet@example.org/balcony"
    assert romeo.take() == []


def test_chatToGoneResourceGoesToBareJID(domain):
    """Chat to a resource that is not online goes to another resource of the same user."""
    romeo = domain.bind(ROMEO, available=True)
    chamber = domain.bind("juliet@example.org/chamber", available=True)

    domain.send(message("juliet@example.org/balcony", "chat"))

    [got] = chamber.take()
    assert got["to"] == "juliet@example.org/balcony"
    assert romeo.take() == []


@pytest.mark.parametrize("kind", ["normal", "groupchat", "headline"])
def test_otherTypesToGoneResourceBounce(domain, kind):
    """Non-chat messages to a resource that is gone are not redirected; the sender gets service-unavailable."""
    romeo = domain.bind(ROMEO, available=True)
    chamber = domain.bind("juliet@example.org/chamber", available=True)

    domain.send(message("juliet@example.org/balcony", kind))

    assert chamber.take() == []
    [bounce] = romeo.take()
    assert errorCondition(bounce) == "service-unavailable"
    assert bounce["from"] == "juliet@example.org/balcony"


def test_errorToGoneResourceDropped(domain):
    """An error message to a resource that is gone disappears."""
    romeo = domain.bind(ROMEO, available=True)
    chamber = domain.bind("juliet@example.org/chamber", available=True)

    domain.send(message("juliet@example.org/balcony", "error"))

    assert chamber.take() == [] and romeo.take() == []


def test_chatToGoneResourceOffline(domain):
    """Chat to a resource of a user with nobody online goes to offline storage when there is one."""
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event) or True)

    domain.send(message("juliet@example.org/balcony", "chat"))

    [event] = stored
    assert event.recipient.userhost() == "juliet@example.org"


def test_otherDomainsLeftAlone(tmp_path):
    """The handler of one domain leaves the messages of another domain to that domain's handler."""
    from xmppd.core.local import LocalDomain
    domain = Domain(tmp_path, features=("messages",))
    other = LocalDomain("other.example", domain.server, features=("messages",))
    other.startService()
    romeo = domain.bind(ROMEO, available=True)
    nurse = domain.bind("nurse@other.example/home", available=True)

    domain.send(message("nurse@other.example", "chat"))

    assert len(nurse.take()) == 1 and romeo.take() == []
    handlers = [h for h in other.handlers if isinstance(h, MessageHandler)]
    assert len(handlers) == 1
