"""
Helpers for publish-subscribe tests with no network (STYLE.md "Testing
style" 1): the C{pubsub.example.org} service over a real router, memory
storage and a L{Clock}; users' domains are recording routes, so a test
sends IQs as XML literals from a user and reads what each JID received.
"""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.words.xish import domish

from tests.helpers import parse
from xmppd.core.router import Router
from xmppd.features.pubsub.service import PubSubService
from xmppd.features.pubsub.settings import PubSubConfig
from xmppd.storage.memory import MemoryStorage

SERVICE = "pubsub.example.org"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_CONFIG = NS_PUBSUB + "#node_config"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
CAROL = "carol@example.org/tablet"
MERCUTIO = "mercutio@remote.example/street"


class RecordingRoute:
    """A user domain: keeps every stanza routed to it, by C{to}."""

    def __init__(self):
        self.received: dict[str, list[domish.Element]] = {}

    def deliver(self, stanza: domish.Element) -> None:
        self.received.setdefault(stanza["to"], []).append(stanza)


class PreparedRoute(RecordingRoute):
    """A served domain that takes notifications serialized once (deliverPrepared)."""

    def __init__(self):
        RecordingRoute.__init__(self)
        self.prepared: list = []

    def deliverPrepared(self, recipient, prepared) -> None:
        self.prepared.append(prepared)
        self.received.setdefault(recipient.full(), []).append(
            parse(prepared.textFor(recipient.full())))


def settingsWith(**changes) -> PubSubConfig:
    return dataclasses.replace(PubSubConfig(), **changes)


def form(fields: dict, formType: str = "submit", ns: str = NS_CONFIG) -> str:
    """A data form (XEP-0004) as XML text."""
    xml = ["<x xmlns='jabber:x:data' type='%s'>" % formType,
           "<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % ns]
    for var, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        xml.append("<field var='%s'>%s</field>" % (
            var, "".join("<value>%s</value>" % v for v in values)))
    xml.append("</x>")
    return "".join(xml)


class PubSub:
    """One publish-subscribe service and the users around it."""

    def __init__(self, storage=None, clock=None, users=None, **settings):
        self.clock = clock or Clock()
        self.router = Router()
        self.users = users or RecordingRoute()
        self.remote = RecordingRoute()
        self.router.addRoute("example.org", self.users)
        self.router.addRoute("remote.example", self.remote)
        self.storage = storage or MemoryStorage()
        self.settings = settingsWith(**settings)
        self.service = PubSubService(SERVICE, self.router, self.storage, self.clock,
                                     self.settings, localDomains=("example.org",),
                                     rosters=self.storage.rosters)
        self.service.startService()
        self.serial = 0

    def take(self, jid: str) -> list[domish.Element]:
        """Everything C{jid} received since the last call."""
        route = self.remote if jid.split("/")[0].endswith("remote.example") else self.users
        return route.received.pop(jid, [])

    def send(self, xml: str) -> None:
        self.router.route(parse(xml))

    def iq(self, sender: str, payload: str, iqType: str = "set",
           to: str = SERVICE) -> domish.Element:
        """Send an IQ as C{sender}; the one reply it gets."""
        self.serial += 1
        self.take(sender)
        self.send("<iq type='%s' id='q%d' from='%s' to='%s'>%s</iq>"
                  % (iqType, self.serial, sender, to, payload))
        replies = [s for s in self.take(sender) if s.name == "iq"]
        assert len(replies) == 1, [r.toXml() for r in replies]
        return replies[0]

    def pubsub(self, sender: str, inner: str, iqType: str = "set", owner: bool = False):
        ns = NS_OWNER if owner else NS_PUBSUB
        return self.iq(sender, "<pubsub xmlns='%s'>%s</pubsub>" % (ns, inner), iqType)

    # -- common steps ---------------------------------------------------------

    def create(self, sender: str = ALICE, node: str = "news", config: dict | None = None):
        extra = "<configure>%s</configure>" % form(config) if config else ""
        reply = self.pubsub(sender, "<create node='%s'/>%s" % (node, extra))
        assert reply["type"] == "result", reply.toXml()
        return reply

    def subscribe(self, sender: str, node: str = "news", jid: str | None = None):
        return self.pubsub(sender, "<subscribe node='%s' jid='%s'/>" % (node, jid or sender))

    def publish(self, sender: str = ALICE, node: str = "news", itemId: str | None = "i1",
                payload: str = "<entry xmlns='urn:example'>hello</entry>",
                options: dict | None = None):
        idAttr = " id='%s'" % itemId if itemId else ""
        extra = ""
        if options is not None:
            extra = "<publish-options>%s</publish-options>" % form(
                options, ns=NS_PUBSUB + "#publish-options")
        return self.pubsub(sender, "<publish node='%s'><item%s>%s</item></publish>%s"
                           % (node, idAttr, payload, extra))


def condition(reply: domish.Element) -> tuple[str | None, str | None]:
    """The error's (stanza condition, pubsub#errors condition), or (None, None)."""
    if reply.getAttribute("type") != "error":
        return (None, None)
    [error] = [e for e in reply.elements() if e.name == "error"]
    stanza = app = None
    for child in error.elements():
        if child.uri == NS_STANZAS and child.name != "text":
            stanza = child.name
        elif child.uri == NS_ERRORS:
            app = child.name
    return (stanza, app)


def events(received: list[domish.Element]) -> list[domish.Element]:
    """The C{<event/>} children of the notifications among C{received}."""
    return [child for stanza in received if stanza.name == "message"
            for child in stanza.elements(NS_EVENT, "event")]
