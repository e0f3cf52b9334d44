"""
Tests for the session directory (L{xmppd.core.sessions}): the contract of
L{ISessionDirectory} that every implementation keeps, run here against the
in-memory L{SessionManager}.

A second implementation (a Redis directory) reuses the contract by
subclassing L{DirectoryContract} with its own C{makeDirectory}, or by
calling L{contractTests} with a factory; each test binds through the
asynchronous C{bind} and waits for it without a reactor when the
implementation settles at once, and with C{pytest_twisted} otherwise.
"""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from xmppd.core.jid import parseJID
from xmppd.core.sessions import ISessionDirectory, ISessionView, SessionManager
from tests.sessionhelpers import bindNow

JULIET = "juliet@a.example"
BALCONY = JULIET + "/balcony"
GARDEN = JULIET + "/garden"


class FakeStream:
    """A holder that records what it got and whether a new bind replaced it."""

    def __init__(self):
        self.replaced = False
        self.sent = []
        self.errors = []

    def send(self, obj):
        self.sent.append(obj)

    def replaceSession(self):
        self.replaced = True

    def streamError(self, condition, text=None):
        self.errors.append(condition)


class DirectoryContract:
    """
    What every L{ISessionDirectory} guarantees; subclass and give
    C{makeDirectory} to run it against another implementation.
    """

    def makeDirectory(self):
        raise NotImplementedError

    def bind(self, directory, jid: str, stream=None):
        return bindNow(directory, parseJID(jid), stream or FakeStream())

    def test_providesInterfaces(self):
        """The directory and its views provide the interfaces features are written against."""
        directory = self.makeDirectory()
        assert verifyObject(ISessionDirectory, directory)
        assert verifyObject(ISessionView, self.bind(directory, BALCONY))

    def test_bindIsAsynchronous(self):
        """Bind answers with a Deferred that fires with the view of the new binding."""
        directory = self.makeDirectory()
        results = []
        directory.bind(parseJID(BALCONY), FakeStream()).addCallback(results.append)
        [view] = results
        assert view.jid == parseJID(BALCONY)

    def test_bindAndGet(self):
        """A bound full JID is found again by that JID, not by another resource."""
        directory = self.makeDirectory()
        session = self.bind(directory, BALCONY)
        assert directory.get(parseJID(BALCONY)) is session
        assert directory.get(parseJID(GARDEN)) is None
        assert directory.isBound(parseJID(BALCONY))
        assert not directory.isBound(parseJID(GARDEN))

    def test_rebindReplaces(self):
        """Binding an online full JID again replaces the old session, whose stream is told."""
        directory = self.makeDirectory()
        old, new = FakeStream(), FakeStream()
        first = self.bind(directory, BALCONY, old)
        second = self.bind(directory, BALCONY, new)
        assert old.replaced and not new.replaced
        assert directory.get(parseJID(BALCONY)) is second
        assert len(directory) == 1
        # The replaced stream going away later must not unbind its successor.
        directory.unbind(first)
        assert directory.get(parseJID(BALCONY)) is second

    def test_replacedBeforeBindFires(self):
        """The old holder has been told to go by the time the new bind's Deferred fires."""
        directory = self.makeDirectory()
        old = FakeStream()
        self.bind(directory, BALCONY, old)
        seen = []
        directory.bind(parseJID(BALCONY), FakeStream()).addCallback(
            lambda view: seen.append(old.replaced))
        assert seen == [True]

    def test_sessionsOfAccount(self):
        """All resources of an account are found through its bare JID, in bind order."""
        directory = self.makeDirectory()
        self.bind(directory, BALCONY)
        self.bind(directory, GARDEN)
        self.bind(directory, "romeo@a.example/x")
        resources = [s.jid.resource for s in directory.sessionsOf(parseJID(JULIET))]
        assert resources == ["balcony", "garden"]
        assert len(directory) == 3
        assert directory.countOf(parseJID(JULIET)) == 2
        assert directory.countOf(parseJID("nobody@a.example")) == 0

    def test_rebindKeepsPlace(self):
        """A full JID bound again keeps its place among the account's resources."""
        directory = self.makeDirectory()
        self.bind(directory, BALCONY)
        self.bind(directory, GARDEN)
        self.bind(directory, BALCONY)
        resources = [s.jid.resource for s in directory.sessionsOf(parseJID(JULIET))]
        assert resources == ["balcony", "garden"]

    def test_listsDoNotChangeUnderTheCaller(self):
        """A list of sessions a caller holds stays as it was while sessions come and go."""
        directory = self.makeDirectory()
        balcony = self.bind(directory, BALCONY)
        directory.setAvailability(balcony.jid, True, 0)
        everyone = directory.sessionsOf(parseJID(JULIET))
        available = directory.availableSessionsOf(parseJID(JULIET))
        self.bind(directory, GARDEN)
        directory.unbind(balcony)
        assert [s.jid.resource for s in everyone] == ["balcony"]
        assert [s.jid.resource for s in available] == ["balcony"]

    def test_unbindForgetsEmptyAccounts(self):
        """Unbinding the last resource leaves no trace of the account."""
        directory = self.makeDirectory()
        session = self.bind(directory, BALCONY)
        directory.unbind(session)
        assert list(directory.sessionsOf(parseJID(JULIET))) == []
        assert list(directory.availableSessionsOf(parseJID(JULIET))) == []
        assert directory.get(parseJID(BALCONY)) is None
        assert len(directory) == 0

    def test_newBindingIsUnavailable(self):
        """A resource that has just bound is not available and has priority 0."""
        directory = self.makeDirectory()
        session = self.bind(directory, BALCONY)
        assert not session.available and session.priority == 0
        assert list(directory.availableSessionsOf(parseJID(JULIET))) == []

    def test_setAvailability(self):
        """Availability and priority set through the directory show in its views and lists."""
        directory = self.makeDirectory()
        balcony = self.bind(directory, BALCONY)
        garden = self.bind(directory, GARDEN)
        directory.setAvailability(parseJID(GARDEN), True, 5)
        assert garden.available and garden.priority == 5
        assert not balcony.available
        assert list(directory.availableSessionsOf(parseJID(JULIET))) == [garden]
        directory.setAvailability(parseJID(BALCONY), True, -1)
        assert list(directory.availableSessionsOf(parseJID(JULIET))) == [balcony, garden]
        directory.setAvailability(parseJID(GARDEN), False, 0)
        assert not garden.available and garden.priority == 0
        assert list(directory.availableSessionsOf(parseJID(JULIET))) == [balcony]

    def test_setAvailabilityOfNobody(self):
        """Setting the availability of a full JID nobody holds changes nothing."""
        directory = self.makeDirectory()
        directory.setAvailability(parseJID(BALCONY), True, 1)
        assert directory.get(parseJID(BALCONY)) is None
        assert len(directory) == 0

    def test_viewsAreReadOnly(self):
        """A feature cannot change a session's availability or carbons behind the directory's back."""
        directory = self.makeDirectory()
        session = self.bind(directory, BALCONY)
        with pytest.raises(AttributeError):
            session.available = True
        with pytest.raises(AttributeError):
            session.priority = 3
        with pytest.raises(AttributeError):
            session.carbons = True

    def settle(self, d):
        """Wait for the Deferred C{d} of a directory's write (the in-memory one fires at once)."""
        results = []
        d.addBoth(results.append)
        assert results == [None]

    def test_carbons(self):
        """
        A new binding has carbons off; set through the directory, they show
        in its view and among the directory's carbons sessions, until the
        binding goes (XEP-0280 state is per session).
        """
        directory = self.makeDirectory()
        balcony = self.bind(directory, BALCONY)
        garden = self.bind(directory, GARDEN)
        assert not balcony.carbons and not directory.carbonSessions
        self.settle(directory.setCarbons(parseJID(GARDEN), True))
        assert garden.carbons and not balcony.carbons
        assert list(directory.carbonSessions) == [garden]
        # Availability changes keep the carbons state, and the other way round.
        directory.setAvailability(parseJID(GARDEN), True, 2)
        assert garden.carbons and garden.available and garden.priority == 2
        self.settle(directory.setCarbons(parseJID(BALCONY), True))
        self.settle(directory.setCarbons(parseJID(GARDEN), False))
        assert not garden.carbons and garden.available and garden.priority == 2
        assert list(directory.carbonSessions) == [balcony]
        directory.unbind(balcony)
        assert not directory.carbonSessions

    def test_carbonsOfNobody(self):
        """Setting the carbons of a full JID nobody holds changes nothing."""
        directory = self.makeDirectory()
        self.settle(directory.setCarbons(parseJID(BALCONY), True))
        assert directory.get(parseJID(BALCONY)) is None
        assert not directory.carbonSessions

    def test_rebindStartsWithoutCarbons(self):
        """A new bind of a full JID whose session had carbons on starts with them off."""
        directory = self.makeDirectory()
        self.bind(directory, BALCONY)
        self.settle(directory.setCarbons(parseJID(BALCONY), True))
        again = self.bind(directory, BALCONY)
        assert not again.carbons and not directory.carbonSessions

    def test_viewSends(self):
        """A stanza handed to a view reaches the stream holding the binding."""
        directory = self.makeDirectory()
        stream = FakeStream()
        session = self.bind(directory, BALCONY, stream)
        session.send("<message/>")
        assert stream.sent == ["<message/>"]

    def test_terminate(self):
        """Terminating a binding closes its holder with the stream error given."""
        directory = self.makeDirectory()
        stream = FakeStream()
        session = self.bind(directory, BALCONY, stream)
        directory.terminate(session, "not-authorized", "account removed")
        assert stream.errors == ["not-authorized"]


def contractTests(factory):
    """The contract as a test class for C{factory}, a callable making a fresh directory."""
    return type("DirectoryContractFor" + getattr(factory, "__name__", "Directory"),
                (DirectoryContract,), {"makeDirectory": staticmethod(factory)})


TestSessionManager = contractTests(SessionManager)


def test_unbindLeavesNoAccountBehind():
    """The in-memory directory keeps nothing for an account whose last resource went."""
    sessions = SessionManager()
    session = bindNow(sessions, parseJID(BALCONY), FakeStream())
    sessions.unbind(session)
    assert sessions._byBare == {}
