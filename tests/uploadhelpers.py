"""
Helpers for HTTP File Upload tests with no network: the store in a
temporary directory with time from a L{Clock}, the upload service of
C{upload.example.org} on a real router with recording user domains, and
the HTTP side on the node's own L{WebSite} over fake transports, so the
limits and the streaming of bodies are the real ones.
"""

from __future__ import annotations

import dataclasses

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from tests.helpers import parse
from tests.pubsubhelpers import RecordingRoute
from tests.streamhelpers import FakeTransport
from xmppd.config import configFromDict
from xmppd.core.router import Router
from xmppd.features.upload.service import UploadService
from xmppd.features.upload.store import PATH, UploadStore
from xmppd.http.service import WebSite
from xmppd.http.upload import UploadBodies, UploadResource

SERVICE = "upload.example.org"
ALICE = "alice@example.org/desk"
BOB = "bob@example.org/phone"
MERCUTIO = "mercutio@remote.example/street"
BASE = "https://example.org:5443"
SECRET = b"s" * 32
NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def settingsWith(**changes):
    return dataclasses.replace(configFromDict({}).upload, **changes)


def makeStore(tmp_path, clock=None, secret=SECRET, **settings) -> UploadStore:
    clock = clock or Clock()
    if not clock.seconds():
        clock.advance(1_700_000_000)
    return UploadStore(str(tmp_path), secret, clock, settingsWith(**settings))


class Service:
    """One upload service and the users around it."""

    def __init__(self, store: UploadStore, base: str | None = BASE):
        self.store = store
        self.clock = store.clock
        self.router = Router()
        self.users = RecordingRoute()
        self.remote = RecordingRoute()
        self.router.addRoute("example.org", self.users)
        self.router.addRoute("remote.example", self.remote)
        self.service = UploadService(SERVICE, self.router, store, self.clock, store.settings,
                                     ("example.org",), lambda host: base)
        self.service.startService()
        self.serial = 0

    def iq(self, sender: str, payload: str, iqType: str = "get", to: str = SERVICE):
        """Send an IQ as C{sender}; the one reply it gets."""
        self.serial += 1
        route = self.remote if "remote.example" in sender else self.users
        route.received.pop(sender, None)
        self.router.route(parse("<iq type='%s' id='q%d' from='%s' to='%s'>%s</iq>"
                                % (iqType, self.serial, sender, to, payload)))
        [reply] = route.received.pop(sender, [])
        return reply

    def request(self, sender: str = ALICE, filename: str = "photo.png", size="1000",
                contentType: str | None = "image/png"):
        attributes = "filename='%s' size='%s'" % (filename, size)
        if contentType is not None:
            attributes += " content-type='%s'" % contentType
        return self.iq(sender, "<request xmlns='%s' %s/>" % (NS_UPLOAD, attributes))


def condition(reply) -> str:
    error = reply.error
    return [e.name for e in error.elements() if e.uri == NS_STANZAS and e.name != "text"][0]


class Response:
    """One HTTP response as a client reads it."""

    def __init__(self, data: bytes):
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ")[1])
        self.headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def header(self, name: bytes) -> bytes | None:
        return self.headers.get(name.lower())


class Web:
    """The HTTP service's site with C{/upload/} on C{store}, over fake transports."""

    def __init__(self, store: UploadStore, **http):
        config = dataclasses.replace(configFromDict({}).http, **http)
        root = Resource()
        root.putChild(PATH.encode(), UploadResource(store))
        self.site = WebSite(root, config, 100, reactor=store.clock)
        self.site.bodyHandlers[PATH.encode()] = UploadBodies(store)

    def connect(self):
        address = IPv4Address("TCP", "1.2.3.4", 1234)
        channel = self.site.buildProtocol(address)
        transport = FakeTransport(address)
        channel.makeConnection(transport)
        return channel, transport

    def request(self, method: bytes, path: bytes, body: bytes | None = None,
                headers: dict[bytes, bytes] | None = None) -> Response:
        channel, transport = self.connect()
        head = [b"%s %s HTTP/1.1" % (method, path), b"Host: example.org"]
        for name, value in (headers or {}).items():
            head.append(name + b": " + value)
        if body is not None and b"Content-Length" not in (headers or {}):
            head.append(b"Content-Length: %d" % len(body))
        channel.dataReceived(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        response = Response(transport.value())
        channel.connectionLost(Failure(ConnectionDone()))
        return response

    def put(self, url: str, body: bytes, contentType: bytes = b"image/png",
            headers: dict[bytes, bytes] | None = None) -> Response:
        return self.request(b"PUT", path(url), body,
                            {b"Content-Type": contentType, **(headers or {})})

    def get(self, url: str, method: bytes = b"GET") -> Response:
        return self.request(method, path(url))


def path(url: str) -> bytes:
    """The path of C{url} (an upload slot's URL) as a request target."""
    return url.removeprefix(BASE).encode("ascii")
