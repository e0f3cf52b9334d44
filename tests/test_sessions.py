"""
Tests for L{xmppd.core.sessions.SessionManager}: binding, replacing and finding
sessions by JID.
"""

from xmppd.core.jid import parseJID
from xmppd.core.sessions import SessionManager


class FakeStream:
    def __init__(self):
        self.replaced = False

    def send(self, obj):
        pass

    def replaceSession(self):
        self.replaced = True


def test_bindAndGet():
    """A bound full JID is found again by that JID, not by another resource."""
    sessions = SessionManager()
    session = sessions.bind(parseJID("juliet@a.example/balcony"), FakeStream())
    assert sessions.get(parseJID("juliet@a.example/balcony")) is session
    assert sessions.get(parseJID("juliet@a.example/garden")) is None
    assert sessions.isBound(parseJID("juliet@a.example/balcony"))


def test_rebindReplaces():
    """Binding an online full JID again replaces the old session, whose stream is told."""
    sessions = SessionManager()
    old, new = FakeStream(), FakeStream()
    first = sessions.bind(parseJID("juliet@a.example/balcony"), old)
    second = sessions.bind(parseJID("juliet@a.example/balcony"), new)
    assert old.replaced and not new.replaced
    assert sessions.get(parseJID("juliet@a.example/balcony")) is second
    # The replaced stream going away later must not unbind its successor.
    sessions.unbind(first)
    assert sessions.get(parseJID("juliet@a.example/balcony")) is second


def test_sessionsOfAccount():
    """All resources of an account are found through its bare JID."""
    sessions = SessionManager()
    sessions.bind(parseJID("juliet@a.example/balcony"), FakeStream())
    sessions.bind(parseJID("juliet@a.example/garden"), FakeStream())
    sessions.bind(parseJID("romeo@a.example/x"), FakeStream())
    resources = {s.jid.resource for s in sessions.sessionsOf(parseJID("juliet@a.example"))}
    assert resources == {"balcony", "garden"}
    assert len(sessions) == 3


def test_unbindForgetsEmptyAccounts():
    """Unbinding the last resource leaves no trace of the account."""
    sessions = SessionManager()
    session = sessions.bind(parseJID("juliet@a.example/balcony"), FakeStream())
    sessions.unbind(session)
    assert sessions.sessionsOf(parseJID("juliet@a.example")) == []
    assert sessions._byBare == {}
    assert len(sessions) == 0
