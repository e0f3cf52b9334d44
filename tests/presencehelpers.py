"""
Helpers for the roster and presence tests: a whole node in memory (the
stream tests' L{tests.streamhelpers.Node}: real client streams over
L{StringTransport}, memory storage, a L{Clock}) whose domain runs the
C{roster} and C{presence} features, a few more accounts, a stand-in for a
remote server, and clients that speak XML literals and read back elements.

With memory storage every Deferred fires at once, so whatever a stanza
causes has happened when L{IMClient.send} returns.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from twisted.internet.task import deferLater
from twisted.words.xish import domish
from zope.interface import implementer

from tests.streamhelpers import DOMAIN, PASSWORDS, Node
from xmppd.core.local import LocalDomain
from xmppd.core.router import IRoute
from xmppd.core.scram import makeCredentials
from xmppd.storage.interfaces import RosterItem

__all__ = ["DOMAIN", "REMOTE", "IMClient", "IMNode", "RemoteServer", "RosterItem"]

#: A domain served by a L{RemoteServer}: "another server" for the tests.
REMOTE = "elsewhere.example"

#: Accounts beyond those of L{tests.streamhelpers.PASSWORDS}.
MORE_USERS = ("nurse", "benvolio", "mercutio")


def password(user: str) -> str:
    return PASSWORDS.get(user, user + "'s secret")


@implementer(IRoute)
class RemoteServer:
    """Records what the node routes to L{REMOTE}, as an S2S link would."""

    def __init__(self):
        self.stanzas: list[domish.Element] = []

    def deliver(self, stanza: domish.Element) -> None:
        self.stanzas.append(stanza)

    def take(self) -> list[domish.Element]:
        stanzas, self.stanzas = self.stanzas, []
        return stanzas


class SlowRosterStore:
    """
    A roster store whose answers come one turn of the clock late, as a
    database's do: what the code under test does while waiting shows.
    """

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def later(*args):
            return method(*args).addCallback(
                lambda result: deferLater(self.clock, 0, lambda: result))
        return later


class IMClient:
    """A logged-in client of an L{IMNode}."""

    def __init__(self, node: "IMNode", client):
        self.node = node
        self.client = client
        self.jid: str = client.jid

    def send(self, xml: str) -> None:
        self.client.send(xml)

    def received(self) -> list[domish.Element]:
        """The stanzas received since the last call."""
        return self.client.received().elements

    def exchange(self, xml: str) -> list[domish.Element]:
        """Send C{xml}; what came back once storage has answered."""
        self.received()
        self.send(xml)
        self.node.settle()
        return self.received()

    def presences(self) -> list[domish.Element]:
        return [e for e in self.received() if e.name == "presence"]

    def getRoster(self, ver: str | None = None) -> domish.Element:
        """Request the roster (becoming an interested resource); the result comes back."""
        attr = "" if ver is None else " ver='%s'" % ver
        replies = self.exchange("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'%s/></iq>"
                                % attr)
        [result] = [e for e in replies if e.name == "iq" and e.getAttribute("id") == "r1"]
        return result

    def available(self, extra: str = "") -> list[domish.Element]:
        """Send available presence; what came back at once."""
        return self.exchange("<presence>%s</presence>" % extra)

    def disconnect(self) -> None:
        """The connection drops with no goodbye."""
        self.client.disconnect()


class IMNode:
    """A node in memory with roster and presence on its domain; see the module docstring."""

    def __init__(self, tmp_path, slowStorage: bool = False):
        self.base = Node(tmp_path)
        self.server = self.base.server
        self.clock = self.base.clock
        self.store = self.server.storage.rosters
        if slowStorage:
            self.server.storage.rosters = SlowRosterStore(self.store, self.clock)
        for user in MORE_USERS:
            self.server.storage.users.addUser(user, DOMAIN, makeCredentials(password(user)))
        # Takes the route of the featureless domain the base node started.
        self.domain = LocalDomain(DOMAIN, self.server, features=("roster", "presence"))
        self.domain.startService()
        self.remote = RemoteServer()
        self.server.router.addRoute(REMOTE, self.remote)

    @property
    def sessions(self):
        return self.server.sessions

    def login(self, user: str, resource: str) -> IMClient:
        client = self.base.connect()
        client.authenticate(user, password(user))
        client.bind(resource)
        client.received()
        return IMClient(self, client)

    def configure(self, section: str, **values) -> None:
        """Change options of a feature's configuration section from now on."""
        config = self.server.config
        sections = dict(config.sections)
        sections[section] = dataclasses.replace(sections[section], **values)
        self.server.config = dataclasses.replace(config, sections=MappingProxyType(sections))

    def settle(self) -> None:
        """Let the slow storage answer everything it was asked, and what follows."""
        for _ in range(1000):
            if not any(call.getTime() <= self.clock.seconds()
                       for call in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)
        raise AssertionError("storage never settled")

    def setItem(self, user: str, item: RosterItem) -> None:
        self.store.setItem(user, DOMAIN, item)

    def item(self, user: str, jid: str) -> RosterItem | None:
        result = []
        self.store.getItem(user, DOMAIN, jid).addCallback(result.append)
        return result[0]

    def roster(self, user: str):
        result = []
        self.store.getRoster(user, DOMAIN).addCallback(result.append)
        return result[0]

    def inject(self, xml: str) -> None:
        """A stanza arriving from another server."""
        from tests.test_router import parse
        self.server.router.route(parse(xml))
