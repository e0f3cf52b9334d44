# -*- test-case-name: tests.test_bosh -*-
"""
BOSH (XEP-0124, XEP-0206) for tests: L{MemoryBOSH}, a client in memory
that posts each request on a connection of its own to a site
(L{xmppd.http.service.WebSite}) over a L{tests.streamhelpers.FakeTransport},
and what it and the end-to-end tests' raw HTTP client read: L{Answer}s.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def body(payload: str = "", **attrs) -> str:
    """A C{<body/>} request; C{xmpp_restart} names C{xmpp:restart}, and so on."""
    text = "<body xmlns='%s' xmlns:xmpp='%s'" % (NS_HTTPBIND, NS_XBOSH)
    for name, value in attrs.items():
        name = name.replace("xmpp_", "xmpp:").replace("xml_", "xml:")
        text += " %s='%s'" % (name, value)
    return text + (">%s</body>" % (payload,) if payload else "/>")


def plainAuth(user: str, password: str) -> str:
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token)


def bindIQ(resource: str, id: str = "bind1") -> str:
    return ("<iq xmlns='jabber:client' type='set' id='%s'><bind xmlns='%s'>"
            "<resource>%s</resource></bind></iq>" % (id, NS_BIND, resource))


class Answer:
    """One HTTP answer: C{status}, C{headers} (lower-case names), C{text}, C{body} (parsed)."""

    def __init__(self, status: int, headers: dict[str, str], text: bytes):
        self.status = status
        self.headers = headers
        self.raw = text
        self.text = text.decode("utf-8")
        try:
            self.body = ET.fromstring(text) if text.startswith(b"<") else None
        except ET.ParseError:
            self.body = None

    def __repr__(self) -> str:
        return "<Answer %d %s>" % (self.status, self.text)

    def get(self, name: str) -> str | None:
        if name.startswith("xmpp:"):
            name = "{%s}%s" % (NS_XBOSH, name[5:])
        return None if self.body is None else self.body.get(name)

    @property
    def payloads(self) -> list:
        return [] if self.body is None else list(self.body)

    def names(self) -> list[str]:
        return [child.tag.rsplit("}", 1)[-1] for child in self.payloads]

    @property
    def terminate(self) -> str | None:
        """The condition of a terminal answer ("" without one), None if not terminal."""
        if self.get("type") != "terminate":
            return None
        return self.get("condition") or ""


class Exchange:
    """One request on its own connection, in memory; C{answer} once the server answered."""

    def __init__(self, site, data: bytes, host: str):
        from twisted.internet.address import IPv4Address
        from tests.streamhelpers import FakeTransport
        address = IPv4Address("TCP", host, 4321)
        self.channel = site.buildProtocol(address)
        self.transport = FakeTransport(address)
        self.closed = False
        self.channel.makeConnection(self.transport)
        self.channel.dataReceived(data)

    @property
    def answer(self) -> Answer | None:
        data = self.transport.value()
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(rest)))
        if len(rest) < length:
            return None
        self.close()
        return Answer(status, headers, rest[:length])

    def close(self) -> None:
        """The client hangs up (after its answer, or before: a lost request)."""
        if not self.closed:
            from twisted.internet.error import ConnectionDone
            from twisted.python.failure import Failure
            self.closed = True
            self.transport.connected = False
            self.channel.connectionLost(Failure(ConnectionDone()))


class MemoryBOSH:
    """
    A BOSH client in memory: C{post} sends a request and returns its
    L{Exchange}; C{request} sends one and returns the answer, which must
    come at once.  C{rid} counts on by itself.
    """

    def __init__(self, site, host: str = "1.2.3.4", rid: int = 1000, path: str = "/http-bind"):
        self.site = site
        self.host = host
        self.rid = rid
        self.path = path
        self.sid = None

    def raw(self, data: bytes | str, method: str = "POST", headers=()) -> Exchange:
        if isinstance(data, str):
            data = data.encode("utf-8")
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, self.path)
        head += "Content-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n" % (len(data),)
        for name, value in headers:
            head += "%s: %s\r\n" % (name, value)
        return Exchange(self.site, head.encode("latin-1") + b"\r\n" + data, self.host)

    def post(self, payload: str = "", rid: int | None = None, headers=(), **attrs) -> Exchange:
        if rid is None:
            self.rid += 1
            rid = self.rid
        if self.sid is not None and "sid" not in attrs:
            attrs["sid"] = self.sid
        return self.raw(body(payload, rid=rid, **attrs), headers=headers)

    def request(self, payload: str = "", **kwargs) -> Answer:
        answer = self.post(payload, **kwargs).answer
        assert answer is not None, "the server held the request"
        return answer

    def create(self, **attrs) -> Answer:
        attrs = {"to": "example.org", "xml_lang": "en", "wait": "60", "hold": "1",
                 "ver": "1.11", "xmpp_version": "1.0", **attrs}
        answer = self.request(**attrs)
        self.sid = answer.get("sid")
        return answer
