"""
Helpers for the in-memory tests of the per-account data features (vCard,
private XML, last activity): one served domain with only the features under
test, memory storage, a L{Clock}, and sessions bound to fake streams, so a
test routes an XML literal in and reads the stanzas the server sent back.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.words.xish import domish

from xmppd.config import loadConfig
from xmppd.core.jid import parseJID
from xmppd.core.local import LocalDomain
from xmppd.core.server import XMPPServer
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.service import StorageService
from xmppd.core.stanzas import NS_STANZAS
from tests.helpers import parse
from tests.sessionhelpers import bindNow


def errorCondition(stanza: domish.Element) -> str | None:
    """The RFC 6120 §8.3 defined condition of an error stanza, or C{None}."""
    for error in stanza.elements(None, "error"):
        for child in error.elements(NS_STANZAS):
            if child.name != "text":
                return child.name
    return None


class FakeStream:
    """What a bound session needs of a client stream: it records what is sent."""

    def __init__(self):
        self.sent: list[domish.Element] = []

    def send(self, obj) -> None:
        self.sent.append(obj)

    def replaceSession(self) -> None:
        pass


class RecordingRoute:
    """The default route: records stanzas for domains we do not serve."""

    def __init__(self):
        self.stanzas: list[domish.Element] = []

    def deliver(self, stanza: domish.Element) -> None:
        self.stanzas.append(stanza)


class Domain:
    """
    A node serving C{domain} with C{features}, in memory.  C{sections} adds
    TOML lines to the configuration (C{{"vcard": {"max_size": 100}}}).
    """

    def __init__(self, tmp_path, domain: str, features: tuple[str, ...],
                 users: tuple[str, ...] = (), sections: dict | None = None):
        lines = ["[server]", 'domains = ["%s"]' % domain,
                 'data_dir = "%s"' % (tmp_path / "data"),
                 "[storage]", 'backend = "memory"']
        for name, keys in (sections or {}).items():
            lines.append("[%s]" % name)
            lines.extend("%s = %r" % (key, value) for key, value in keys.items())
        path = tmp_path / "xmppd.toml"
        path.write_text("\n".join(lines) + "\n")
        self.name = domain
        self.clock = Clock()
        self.clock.advance(1_700_000_000)  # epoch seconds, as the reactor's clock
        self.server = XMPPServer(loadConfig(str(path)), clock=self.clock)
        self.server.storageService = StorageService(MemoryStorage())
        self.server.storageService.startService()
        self.storage = self.server.storage
        for user in users:
            self.storage.users.addUser(user, domain, {})
        self.remote = RecordingRoute()
        self.server.router.defaultRoute = self.remote
        self.domain = LocalDomain(domain, self.server, features=features)
        self.domain.startService()

    def bind(self, fullJID: str, available: bool = False):
        """A session of a connected client on C{fullJID}, whose stream records what it gets."""
        session = bindNow(self.server.sessions, parseJID(fullJID), FakeStream())
        self.server.sessions.setAvailability(session.jid, available, 0)
        return session

    def close(self, session) -> None:
        """The session ends, as c2s ends it (hook first, then unbind)."""
        self.server.hooks.notify("session/closed", session)
        self.server.sessions.unbind(session)

    def route(self, xml: str) -> None:
        self.server.router.route(parse(xml))

    def exchange(self, session, xml: str) -> domish.Element:
        """Route C{xml} from C{session}'s client and return the one stanza it got back."""
        before = len(session.stream.sent)
        self.route(xml)
        replies = session.stream.sent[before:]
        assert len(replies) == 1, replies
        return replies[0]
