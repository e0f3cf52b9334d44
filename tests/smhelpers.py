"""
Helpers for the stream management tests: the stream tests' node in memory
(L{tests.streamhelpers.Node}: client streams over L{StringTransport}, memory
storage, a L{Clock}) whose domain runs presence, messages and C{sm}, with
clients that enable or resume stream management and read back elements.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from twisted.words.xish import domish

from tests.streamhelpers import DOMAIN, Node
from xmppd.core.local import LocalDomain
from xmppd.features.sm import NS_SM, StreamManagementHandler

__all__ = ["DOMAIN", "NS_SM", "SMClient", "SMNode"]

#: What the domain of an L{SMNode} runs unless a test says otherwise.
FEATURES = ("roster", "presence", "messages", "sm")


class SMClient:
    """A client of an L{SMNode}: the stream helper's client plus SM verbs."""

    def __init__(self, node: "SMNode", client):
        self.node = node
        self.client = client

    @property
    def stream(self):
        return self.client.stream

    @property
    def transport(self):
        return self.client.transport

    @property
    def jid(self) -> str:
        return self.client.jid

    def send(self, xml: str) -> None:
        self.client.send(xml)

    def received(self) -> list[domish.Element]:
        """The elements received since the last call."""
        return self.client.received().elements

    def reply(self):
        """What the server wrote since the last call, parsed (stream errors, footer...)."""
        return self.client.received()

    def exchange(self, xml: str) -> list[domish.Element]:
        self.received()
        self.send(xml)
        return self.received()

    def enable(self, resume: bool = True, extra: str = "") -> domish.Element:
        """Enable stream management; the <enabled/> comes back."""
        attrs = " resume='true'" if resume else ""
        [enabled] = self.exchange("<enable xmlns='%s'%s%s/>" % (NS_SM, attrs, extra))
        assert enabled.name == "enabled", enabled.toXml()
        return enabled

    def request(self) -> list[domish.Element]:
        """Send <r/>; what came back."""
        return self.exchange("<r xmlns='%s'/>" % NS_SM)

    def ack(self, h: int) -> list[domish.Element]:
        """Send <a h/>; what came back."""
        return self.exchange("<a xmlns='%s' h='%d'/>" % (NS_SM, h))

    def available(self) -> None:
        self.send("<presence/>")

    def disconnect(self) -> None:
        """The TCP connection breaks: no footer."""
        self.client.disconnect()

    def close(self) -> None:
        """The client closes its stream cleanly, and the connection goes."""
        self.send("</stream:stream>")
        self.client.disconnect()


def acks(elements) -> list[int]:
    """The 'h' values of the <a/> elements among C{elements}."""
    return [int(e["h"]) for e in elements if (e.uri, e.name) == (NS_SM, "a")]


def bodies(elements) -> list[str]:
    """The bodies of the messages among C{elements}, in order."""
    return [str(e.body) for e in elements if e.name == "message"]


class SMNode:
    """
    A node in memory whose domain runs L{FEATURES}; C{sm} overrides keys
    of the C{[sm]} section.
    """

    def __init__(self, tmp_path, features=FEATURES, **sm):
        self.base = Node(tmp_path)
        self.server = self.base.server
        self.clock = self.base.clock
        if sm:
            self.configure("sm", **sm)
        # Takes the route of the featureless domain the base node started.
        self.domain = LocalDomain(DOMAIN, self.server, features=features)
        self.domain.startService()

    @property
    def sessions(self):
        return self.server.sessions

    @property
    def handler(self) -> StreamManagementHandler:
        """The domain's stream management handler."""
        [handler] = [h for h in self.domain.handlers if isinstance(h, StreamManagementHandler)]
        return handler

    def configure(self, section: str, **values) -> None:
        config = self.server.config
        sections = dict(config.sections)
        sections[section] = dataclasses.replace(sections[section], **values)
        self.server.config = dataclasses.replace(config, sections=MappingProxyType(sections))

    def connect(self) -> SMClient:
        return SMClient(self, self.base.connect())

    def login(self, user: str = "juliet", resource: str = "balcony", sm: bool = False,
              available: bool = True) -> SMClient:
        """A client bound to C{user}/C{resource}, with SM enabled if asked, available."""
        client = self.connect()
        client.client.login(user, resource)
        client.received()
        if sm:
            client.enable()
        if available:
            client.available()
            client.received()
        return client

    def message(self, to: str, body: str, sender: str = "romeo@%s/orchard" % DOMAIN,
                kind: str = "chat") -> None:
        """A message arrives for C{to}, as from another client."""
        stanza = domish.Element((None, "message"))
        stanza["from"] = sender
        stanza["to"] = to
        stanza["type"] = kind
        stanza.addElement("body", content=body)
        self.server.router.route(stanza)
