"""
The HTTP service (L{xmppd.http}) in memory: the limits every connection
meets before a resource sees it, the trusted proxies, connection discovery
(XEP-0156), the C{[http]} configuration, and that a node without HTTP does
not import it.  Channels run over a fake transport with time from a
L{Clock}.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from xmppd.config import ConfigError, configFromDict
from xmppd.http.service import HTTPService, TooManyConnections, WebSite
from tests.streamhelpers import FakeTransport, Node
from tests.e2e import REPO


class Echo(Resource):
    """Answers a POST with the size of its body."""

    isLeaf = True

    def render_POST(self, request):
        return b"%d" % len(request.content.read())

    def render_GET(self, request):
        return b"ok"


def makeSite(**http):
    config = dataclasses.replace(configFromDict({}).http, **http)
    root = Resource()
    root.putChild(b"echo", Echo())
    clock = Clock()
    return WebSite(root, config, 2, reactor=clock), clock


def connect(site, host="1.2.3.4"):
    """A channel of C{site} from C{host} (C{None} if refused) and its transport."""
    address = IPv4Address("TCP", host, 1234)
    channel = site.buildProtocol(address)
    transport = FakeTransport(address)
    channel.makeConnection(transport)
    if isinstance(channel, TooManyConnections):
        assert transport.value().startswith(b"HTTP/1.1 429 ")
        assert transport.disconnecting
        return None, transport
    return channel, transport


def test_request():
    """A request within every limit is served."""
    site, clock = makeSite()
    channel, transport = connect(site)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"ok")


def test_bodyTooLargeByLength():
    """A Content-Length over C{http.max_request_size} gets 413 before the body is read."""
    site, clock = makeSite(max_request_size=1024)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1025\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    channel.dataReceived(b"x" * 1025)
    assert transport.value().count(b"HTTP/1.1") == 1


def test_bodyTooLargeChunked():
    """A chunked body is counted as it comes: over the limit, 413."""
    site, clock = makeSite(max_request_size=1024)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
    channel.dataReceived(b"400\r\n" + b"x" * 1024 + b"\r\n")
    assert transport.value() == b""
    channel.dataReceived(b"1\r\nx\r\n0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")


def test_bodyWithinLimit():
    site, clock = makeSite(max_request_size=1024)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1024\r\n\r\n"
                         + b"x" * 1024)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"1024")


class Args(Resource):
    """Answers a POST with the form arguments Twisted found and the body."""

    isLeaf = True

    def render_POST(self, request):
        return b"%r %s" % (sorted(request.args), request.content.read())


def test_formlessPathsLeavePostBodiesUnparsed():
    """A path served with forms=False (BOSH) gets its POST bodies unparsed, whatever their Content-Type says: only the query string makes request.args (Twisted's form parsing read each POST's Content-Type with the email package, a quarter of a BOSH request); other paths (the admin console's forms) still get their forms parsed."""
    site, clock = makeSite()
    site.resource.putChild(b"raw", Args())
    site.resource.putChild(b"form", Args())
    site.formless.add(b"raw")
    channel, transport = connect(site)
    body = b"a=1&b=2"
    request = (b"POST /%s?q=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s")
    channel.dataReceived(request % (b"raw", len(body), body))
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"[b'q'] a=1&b=2")
    transport.clear()
    channel.dataReceived(request % (b"form", len(body), body))
    assert transport.value().endswith(b"[b'a', b'b', b'q'] a=1&b=2")
    transport.clear()
    body = b"--x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--x--\r\n"
    channel.dataReceived(b"POST /raw HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                         b"multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"[] " + body)


def test_onlyBoshIsFormless(tmp_path):
    """The node serves /http-bind with forms=False, and every other path with forms parsed (the admin console reads its forms from request.args)."""
    script = (
        "from xmppd.config import configFromDict\n"
        "from xmppd.tap import makeService\n"
        "from xmppd.http.service import HTTPService\n"
        "def find(service):\n"
        "    if isinstance(service, HTTPService):\n"
        "        return service\n"
        "    for child in getattr(service, 'services', []):\n"
        "        found = find(child)\n"
        "        if found is not None:\n"
        "            return found\n"
        "web = find(makeService(configFromDict({'server': {'data_dir': %r},"
        " 'http': {'endpoint': 'tcp:0:interface=127.0.0.1', 'tls_endpoint': ''}})))\n"
        "print(sorted(web.site.formless))\n" % str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[b'http-bind']"


def test_headersTooLarge():
    """A request head over C{http.max_header_size} gets 400."""
    site, clock = makeSite(max_header_size=1024)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n")
    for n in range(20):
        channel.dataReceived(b"X-Filler-%d: %s\r\n" % (n, b"y" * 100))
    assert transport.value().startswith(b"HTTP/1.1 400 ")
    assert transport.disconnecting


def test_tooManyHeaders():
    site, clock = makeSite(max_headers=8)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\n"
                         + b"".join(b"X-%d: 1\r\n" % n for n in range(9)) + b"\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")


def test_slowHead():
    """
    A client that sends its request head slowly (slowloris) gets 408 after
    C{http.header_timeout}, however often it sends a byte, and is cut off
    if it does not read the answer.
    """
    site, clock = makeSite(header_timeout=10.0)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\n")
    for _ in range(9):
        clock.advance(1)
        channel.dataReceived(b"X")
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting
    clock.advance(channel.abortTimeout)
    assert transport.aborted


@pytest.mark.parametrize("framing", [b"Content-Length: 1000", b"Transfer-Encoding: chunked"])
def test_slowBody(framing):
    """
    A body trickled a byte at a time (a slow POST) must also be whole
    within C{http.header_timeout} of the request's start: 408, then cut off.
    """
    site, clock = makeSite(header_timeout=10.0, request_timeout=60.0)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\n%s\r\n\r\n" % framing)
    if framing.startswith(b"Transfer"):
        channel.dataReceived(b"3e8\r\n")
    for _ in range(9):
        clock.advance(1)
        channel.dataReceived(b"x")
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting
    clock.advance(channel.abortTimeout)
    assert transport.aborted


def test_bodyInTimeThenKeepAlive():
    """A body whole in time is answered, and the next request has a deadline of its own."""
    site, clock = makeSite(header_timeout=10.0)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nxx")
    clock.advance(9)
    channel.dataReceived(b"xx")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"4")
    clock.advance(9)
    assert not transport.disconnecting
    channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert transport.value().count(b"HTTP/1.1 200 ") == 2
    assert not transport.disconnecting


def test_silentRequestClosed():
    """
    A request whose body stops coming is closed after C{http.request_timeout}
    seconds of silence (an upload, which has no overall deadline, included).
    """
    site, clock = makeSite(header_timeout=100.0, request_timeout=5.0)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nx")
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting


def test_idleKeepAliveClosed():
    """A keep-alive connection with no next request is closed after C{http.header_timeout}."""
    site, clock = makeSite(header_timeout=5.0)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert not transport.disconnecting
    clock.advance(5)
    assert transport.disconnecting


def test_connectionsPerAddress():
    """Over C{limits.connections_per_ip} HTTP connections from one address, more get 429."""
    site, clock = makeSite()
    first, _ = connect(site)
    second, _ = connect(site)
    assert connect(site)[0] is None
    assert connect(site, "5.6.7.8")[0] is not None
    first.connectionLost(None)
    assert connect(site)[0] is not None


def test_trustedProxyNotCounted():
    """A trusted proxy speaks for many clients: its connections are not capped."""
    site, clock = makeSite()
    channels = [connect(site, "127.0.0.1")[0] for _ in range(5)]
    assert None not in channels


def hostMeta(tmp_path, path, host, https=False, proxyHTTPS=False, peer="1.2.3.4"):
    node = Node(tmp_path)
    service = HTTPService(node.server, None, reactor=node.clock)
    service.addLink("urn:xmpp:alt-connections:websocket", "/xmpp-websocket", ("ws", "wss"))
    channel, transport = connect(service.site, peer)
    if https:
        channel.isSecure = lambda: True
    extra = b"X-Forwarded-Proto: https\r\n" if proxyHTTPS else b""
    channel.dataReceived(b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra))
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head, body


def test_hostMetaXRD(tmp_path):
    """XEP-0156 §3: the XRD document of a served domain lists the WebSocket URL."""
    head, body = hostMeta(tmp_path, b"/.well-known/host-meta", b"example.org:5280")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: application/xrd+xml" in head.lower()
    assert b"access-control-allow-origin: *" in head.lower()
    assert body == (b"<?xml version='1.0' encoding='utf-8'?>\n"
                    b"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                    b"  <Link rel=\"urn:xmpp:alt-connections:websocket\" "
                    b"href=\"ws://example.org:5280/xmpp-websocket\"/>\n</XRD>\n")


def test_hostMetaJSON(tmp_path):
    """The JRD form; a client behind a trusted proxy that used HTTPS gets wss."""
    head, body = hostMeta(tmp_path, b"/.well-known/host-meta.json", b"example.org",
                          proxyHTTPS=True, peer="127.0.0.1")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body) == {"links": [{"rel": "urn:xmpp:alt-connections:websocket",
                                           "href": "wss://example.org/xmpp-websocket"}]}


def test_hostMetaOverTLS(tmp_path):
    head, body = hostMeta(tmp_path, b"/.well-known/host-meta.json", b"example.org:5443",
                          https=True)
    assert json.loads(body)["links"][0]["href"] == "wss://example.org:5443/xmpp-websocket"


@pytest.mark.parametrize("host", [b"elsewhere.example", b"example.org/x", b"", b"a b"])
def test_hostMetaUnknownHost(tmp_path, host):
    """A host the node does not serve gets 404: no XMPP service there."""
    head, body = hostMeta(tmp_path, b"/.well-known/host-meta", host)
    assert head.startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize("http, message", [
    ({"websocket_origins": ["chat.example.org"]},
     'http.websocket_origins: "chat.example.org" is not an origin: scheme://host[:port], '
     'no path'),
    ({"trusted_proxies": ["proxy"]},
     'http.trusted_proxies: "proxy" is not an IP address or network'),
    ({"endpoint": "tcp:5280", "tls_endpoint": "tcp:5280"},
     "http.tls_endpoint: must differ from http.endpoint"),
    ({"header_timeout": 0}, "http.header_timeout: "),
    ({"max_request_size": 10}, "http.max_request_size: "),
    ({"tls_endpoint": "ssl:5443"}, "http.tls_endpoint: "),
])
def test_configErrors(http, message):
    """Bad C{[http]} values are one line naming the key."""
    with pytest.raises(ConfigError) as e:
        configFromDict({"http": http})
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_defaults():
    """Plain HTTP on loopback for a proxy (Prosody), HTTPS on 5443 (ejabberd)."""
    http = configFromDict({}).http
    assert http.endpoint == "tcp:5280:interface=127.0.0.1"
    assert http.tls_endpoint == "tcp:5443"
    assert http.websocket_origins == ()


def test_noHTTPNoImport(tmp_path):
    """A node with both HTTP listeners disabled imports neither the service nor wsproto."""
    script = (
        "import sys\n"
        "from xmppd.config import configFromDict\n"
        "from xmppd.tap import makeService\n"
        "makeService(configFromDict({'server': {'data_dir': %r},"
        " 'http': {'endpoint': '', 'tls_endpoint': ''}}))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('xmppd.http', 'wsproto',"
        " 'xmppd.c2s.websocket'))))\n" % str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
