"""
Helpers for handler tests (STYLE.md, "Testing style" 1): one served domain
in memory with the features a test asks for, memory storage, time from a
L{Clock}, and client sessions bound to recording stand-ins for streams, so
a test feeds XML literals to the router and reads what each resource got.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.words.xish import domish

from tests.helpers import parse, toml as _toml
from tests.sessionhelpers import bindNow
from xmppd.config import loadConfig
from xmppd.core.events import OutgoingEvent
from xmppd.core.jid import parseJID
from xmppd.core.local import LocalDomain
from xmppd.core.scram import makeCredentials
from xmppd.core.server import XMPPServer
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.service import StorageService

DOMAIN = "example.org"


class RecordingStream:
    """
    Stands in for a bound client stream: records what is sent to it, the
    stream error it was closed with, and when the client last sent data.
    """

    def __init__(self, clock):
        self.sent: list[domish.Element] = []
        self.lastReceived = clock.seconds()
        self.clock = clock
        self.error: str | None = None
        self.replaced = False

    def send(self, obj) -> None:
        if isinstance(obj, domish.Element):
            self.sent.append(obj)

    def streamError(self, condition: str, text: str | None = None) -> None:
        self.error = condition

    def replaceSession(self) -> None:
        self.replaced = True

    def receive(self) -> None:
        """The client sends something now."""
        self.lastReceived = self.clock.seconds()

    def take(self) -> list[domish.Element]:
        """What arrived since the last call."""
        sent, self.sent = self.sent, []
        return sent


class Domain:
    """
    One served domain (L{DOMAIN}) on a node of its own, with C{features} and
    configuration C{sections} ({section: {key: value}}).  Accounts "juliet"
    and "romeo" exist.
    """

    def __init__(self, tmp_path, features=(), sections: dict | None = None,
                 users=("juliet", "romeo"), storage=None):
        """
        @param storage: an open storage backend to use instead of a new
            L{MemoryStorage} (the storage fault tests give SQLite); the
            accounts are added to it without waiting.
        """
        tmp_path.mkdir(parents=True, exist_ok=True)
        sections = dict(sections or {})
        lines = ["[server]", "domains = [%s]" % _toml(DOMAIN),
                 "data_dir = %s" % _toml(str(tmp_path / "data"))]
        lines.extend("%s = %s" % (k, _toml(v)) for k, v in sections.pop("server", {}).items())
        lines.extend(["[storage]", 'backend = "memory"'])
        for name, keys in sections.items():
            lines.append("[%s]" % name)
            lines.extend("%s = %s" % (k, _toml(v)) for k, v in keys.items())
        path = tmp_path / "xmppd.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.config = loadConfig(str(path))
        self.clock = Clock()
        self.server = XMPPServer(self.config, clock=self.clock)
        self.server.storageService = StorageService(
            storage if storage is not None else MemoryStorage())
        self.server.storageService.startService()
        self.storage = self.server.storage
        for user in users:
            self.storage.users.addUser(user, DOMAIN, makeCredentials("secret"))
        self.domain = LocalDomain(DOMAIN, self.server, features=tuple(features))
        self.domain.startService()
        self.router = self.server.router
        self.sessions = self.server.sessions
        self.hooks = self.server.hooks

    def handler(self, cls):
        """The domain's handler of class C{cls}."""
        [found] = [h for h in self.domain.handlers if isinstance(h, cls)]
        return found

    def bind(self, jid: str, available: bool = False, priority: int = 0) -> RecordingStream:
        """A client session on C{jid}, with the presence state given."""
        stream = RecordingStream(self.clock)
        session = bindNow(self.sessions, parseJID(jid), stream)
        self.sessions.setAvailability(session.jid, available, priority)
        self.hooks.notify("session/bound", session)
        return stream

    def unbind(self, jid: str) -> None:
        """The session on C{jid} ends."""
        session = self.sessions.get(parseJID(jid))
        self.hooks.notify("session/closed", session)
        self.sessions.unbind(session)

    def send(self, xml: str | domish.Element) -> domish.Element:
        """Route a stanza (an XML literal, already stamped with C{from}) as c2s would."""
        stanza = parse(xml) if isinstance(xml, str) else xml
        self.router.route(stanza)
        return stanza


def errorCondition(stanza: domish.Element) -> str | None:
    """The defined condition of an error stanza, or C{None}."""
    if stanza.getAttribute("type") != "error":
        return None
    for error in stanza.elements(None, "error"):
        for child in error.elements("urn:ietf:params:xml:ns:xmpp-stanzas"):
            if child.name != "text":
                return child.name
    return None


def fromClient(domain, xml):
    """What a client stream does with a stanza: the sender-side hooks, then the router."""
    stanza = parse(xml) if isinstance(xml, str) else xml
    session = domain.sessions.get(parseJID(stanza["from"]))
    to = stanza.getAttribute("to")
    event = OutgoingEvent(session.stream, session, stanza, parseJID(to) if to else None)
    if not domain.hooks.fire("c2s/outgoing", event):
        domain.router.route(stanza)
    return stanza
