"""
Helpers for MUC tests with no network (STYLE.md "Testing style" 1): a MUC
service on C{conference.example.org} over a real router, memory storage and
a L{Clock}; users' domains are recording routes, so a test sends XML
literals as a user and reads what each full JID received.
"""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.words.xish import domish

from muc.service import MUCService
from muc.settings import MUCConfig
from tests.helpers import parse
from xmppd.core.router import Router
from xmppd.storage.memory import MemoryStorage

SERVICE = "conference.example.org"
ROOM = "room@" + SERVICE
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"

#: The cast of the admin and affiliation tests: Alice owns the room, Bob
#: and Carol are in it, Dave comes later, root is a service admin.
ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
CAROL = "carol@example.org/laptop"
DAVE = "dave@example.org/tablet"
ROOT = "root@example.org/console"
#: The room and nickname tests' cast: Juliet makes the room, Romeo joins.
JULIET = "juliet@example.org/balcony"
ROMEO = "romeo@example.org/orchard"


class RecordingRoute:
    """A user domain: keeps every stanza routed to it, by C{to}."""

    def __init__(self):
        self.received: dict[str, list[domish.Element]] = {}

    def deliver(self, stanza: domish.Element) -> None:
        self.received.setdefault(stanza["to"], []).append(stanza)


def settingsWith(**changes) -> MUCConfig:
    return dataclasses.replace(MUCConfig(), **changes)


class MUC:
    """One MUC service and the users around it."""

    def __init__(self, storage=None, clock=None, **settings):
        self.clock = clock or Clock()
        self.router = Router()
        self.users = RecordingRoute()
        self.remote = RecordingRoute()
        self.router.addRoute("example.org", self.users)
        self.router.addRoute("remote.example", self.remote)
        self.storage = storage or MemoryStorage()
        self.settings = settingsWith(**settings)
        self.service = self.start()

    def start(self) -> MUCService:
        service = MUCService(SERVICE, self.router, self.storage, self.clock, self.settings,
                             b"0123456789abcdef0123456789abcdef",
                             localDomains=("example.org",))
        service.startService()
        return service

    def restart(self) -> None:
        self.service.stopService()
        self.service = self.start()

    def send(self, xml: str, **attributes) -> None:
        stanza = parse(xml)
        for key, value in attributes.items():
            stanza[key] = value
        self.router.route(stanza)

    def take(self, jid: str) -> list[domish.Element]:
        """Everything C{jid} received since the last call."""
        route = self.remote if jid.split("/")[0].endswith("remote.example") else self.users
        return route.received.pop(jid, [])

    def clear(self) -> None:
        self.users.received.clear()
        self.remote.received.clear()

    # -- common steps -----------------------------------------------------

    def join(self, jid: str, nick: str, room: str = ROOM, extra: str = "") -> list[domish.Element]:
        self.send("<presence from='%s' to='%s/%s'><x xmlns='%s'>%s</x></presence>"
                  % (jid, room, nick, NS_MUC, extra))
        return self.take(jid)

    def create(self, jid: str, nick: str, room: str = ROOM, config: dict | None = None) -> None:
        """Create and configure a room (an instant room with C{config} applied)."""
        self.join(jid, nick, room)
        self.configure(jid, config or {}, room)
        self.take(jid)

    def configure(self, jid: str, config: dict, room: str = ROOM) -> list[domish.Element]:
        fields = "".join(
            "<field var='%s'>%s</field>" % (var, "".join(
                "<value>%s</value>" % v for v in (value if isinstance(value, (list, tuple))
                                                   else [value])))
            for var, value in config.items())
        self.send("<iq type='set' id='cfg' from='%s' to='%s'><query xmlns='%s'>"
                  "<x xmlns='jabber:x:data' type='submit'>"
                  "<field var='FORM_TYPE'><value>%s#roomconfig</value></field>%s"
                  "</x></query></iq>" % (jid, room, NS_OWNER, NS_MUC, fields))
        return self.take(jid)

    def say(self, jid: str, body: str, room: str = ROOM) -> None:
        self.send("<message type='groupchat' from='%s' to='%s'><body>%s</body></message>"
                  % (jid, room, body))


def occupiedRoom(**fields) -> MUC:
    """
    Alice's room (nick 'alice', owner) with Bob and Carol in it, on a
    service whose admin is root, configured with C{fields} (by their
    C{muc#roomconfig_} suffix); nothing received yet.
    """
    m = MUC(admins=("root@example.org",))
    m.create(ALICE, "alice", config={"muc#roomconfig_" + k: v for k, v in fields.items()})
    m.join(BOB, "bob")
    m.join(CAROL, "carol")
    m.clear()
    return m


def roomWithRomeo(**config) -> MUC:
    """
    Juliet's room (nick 'jul', configured with those muc#roomconfig fields
    by their full names) with Romeo in it as 'rom'; nothing received yet.
    """
    m = MUC()
    m.create(JULIET, "jul", config=config)
    m.join(ROMEO, "rom")
    m.clear()
    return m


def presences(stanzas: list[domish.Element]) -> list[domish.Element]:
    return [s for s in stanzas if s.name == "presence"]


def presencesFrom(stanzas: list[domish.Element], nick: str) -> list[domish.Element]:
    """The presence stanzas among C{stanzas} from the occupant C{nick} of L{ROOM}."""
    return [s for s in presences(stanzas) if s["from"] == ROOM + "/" + nick]


def texts(stanza: domish.Element, name: str) -> list[str]:
    """The texts of C{stanza}'s children C{name} in the stanza's own namespace."""
    return [str(e) for e in stanza.elements(stanza.uri, name)]


def errorOf(stanza: domish.Element) -> domish.Element:
    """The one C{<error/>} of an error stanza."""
    [error] = stanza.elements(None, "error")
    return error


def onlyIQ(stanzas: list[domish.Element]) -> domish.Element:
    """The one IQ among C{stanzas}."""
    iqs = [s for s in stanzas if s.name == "iq"]
    assert len(iqs) == 1, [s.toXml() for s in stanzas]
    return iqs[0]


def takeIQ(m: MUC, jid: str) -> domish.Element:
    """The one IQ C{jid} received, taken out of what it received; the rest stays for the test."""
    got = m.take(jid)
    reply = onlyIQ(got)
    rest = [s for s in got if s is not reply]
    if rest:
        m.users.received[jid] = rest
    return reply


def adminItems(*attributes: dict) -> str:
    """muc#admin items: each a dict of attributes, with an optional 'reason'."""
    parts = []
    for attrs in attributes:
        attrs = dict(attrs)
        reason = attrs.pop("reason", None)
        parts.append("<item %s>%s</item>" % (
            " ".join("%s='%s'" % kv for kv in attrs.items()),
            "<reason>%s</reason>" % reason if reason else ""))
    return "".join(parts)


def adminSet(m: MUC, sender: str, *attributes: dict) -> domish.Element:
    """A muc#admin set with those items (L{adminItems}); the IQ reply C{sender} got (L{takeIQ})."""
    m.send("<iq type='set' id='a1' from='%s' to='%s'><query xmlns='%s'>%s</query></iq>"
           % (sender, ROOM, NS_ADMIN, adminItems(*attributes)))
    return takeIQ(m, sender)


def adminGet(m: MUC, sender: str, **attributes: str) -> domish.Element:
    """A muc#admin get of one item with C{attributes} (an affiliation or a role); the reply."""
    m.send("<iq type='get' id='a2' from='%s' to='%s'><query xmlns='%s'>%s</query></iq>"
           % (sender, ROOM, NS_ADMIN, adminItems(attributes)))
    return takeIQ(m, sender)


def affiliations(m: MUC, name: str = "room") -> dict:
    """The room's affiliations, bare JID -> affiliation."""
    return dict(m.service.rooms[name].affiliations)


def statuses(stanza: domish.Element) -> set[str]:
    return {s["code"] for x in stanza.elements(NS_USER, "x") for s in x.elements(NS_USER, "status")}


def item(stanza: domish.Element) -> domish.Element | None:
    for x in stanza.elements(NS_USER, "x"):
        for found in x.elements(NS_USER, "item"):
            return found
    return None


def errorCondition(stanza: domish.Element) -> str | None:
    if stanza.getAttribute("type") != "error":
        return None
    for error in stanza.elements(None, "error"):
        for elem in error.elements():
            if elem.name != "text":
                return elem.name
    return None
