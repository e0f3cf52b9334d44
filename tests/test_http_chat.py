"""
The chat page (L{xmppd.http.chat}) in memory: the page's Converse.js
settings for the C{Host} used and the transports the node serves, its
Content-Security-Policy, the files of the configured directory and nothing
else, and C{http.conversejs_dir} at start.  The browser itself is
L{tests.test_e2e_browser}.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from twisted.internet.task import Clock, Cooperator

from xmppd.config import ConfigError, configFromDict
from xmppd.http.chat import PATH, ChatPage
from xmppd.http.service import HTTPService
from tests.streamhelpers import DOMAIN, Node
from tests.test_http import connect

WEBSOCKET = "urn:xmpp:alt-connections:websocket"
BOSH = "urn:xmpp:alt-connections:xbosh"


@pytest.fixture
def dist(tmp_path):
    """A Converse.js directory, a secret beside it, and a link out of it."""
    directory = tmp_path / "dist"
    (directory / "locales").mkdir(parents=True)
    (directory / "converse.min.js").write_text("export default {};\n")
    (directory / "converse.min.css").write_text("body {}\n")
    (directory / "locales" / "fr.js").write_text("// fr\n")
    (directory / "libomemo.wasm").write_bytes(b"\0asm")
    (directory / ".htpasswd").write_text("hidden\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    os.symlink(tmp_path / "secret.txt", directory / "escape.js")
    return directory


@pytest.fixture
def get(tmp_path, dist, monkeypatch):
    """
    C{get(path, host=..., https=False, links=...)}: the head and body of
    C{GET path} on a service with C{/chat} on C{dist}.  A file is written by
    a pull producer, which Twisted drives with the global cooperator on the
    real reactor: here with one on a L{Clock}, run until nothing is left.
    """
    from twisted.internet import _producer_helpers
    clock = Clock()
    monkeypatch.setattr(_producer_helpers, "cooperate",
                        Cooperator(scheduler=lambda work: clock.callLater(0, work)).cooperate)
    (tmp_path / "node").mkdir()
    node = Node(tmp_path / "node")

    def get(path, host=b"example.org:5280", https=False, links=(WEBSOCKET,), sources=()):
        service = HTTPService(node.server, None, reactor=node.clock)
        for source in sources:
            service.addConnectSource(source)
        if WEBSOCKET in links:
            service.addLink(WEBSOCKET, "/xmpp-websocket", ("ws", "wss"))
        if BOSH in links:
            service.addLink(BOSH, "/http-bind")
        service.putChild(PATH, ChatPage(service, str(dist)))
        channel, transport = connect(service.site)
        if https:
            channel.isSecure = lambda: True
        channel.dataReceived(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host))
        for _ in range(100):
            if not clock.getDelayedCalls():
                break
            clock.advance(0)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        return head, body

    return get


def settings(body: bytes) -> dict:
    """What the page hands C{converse.initialize}."""
    match = re.search(rb"converse\.initialize\((.*?)\);\n</script>", body, re.S)
    assert match, body
    return json.loads(match.group(1))


def test_page(get):
    """
    The page loads Converse.js from C{/chat/dist/} and points it at the
    WebSocket on the C{Host} used, for that domain.
    """
    head, body = get(b"/chat")
    assert head.lower().startswith(b"http/1.1 200 ")
    assert b"content-type: text/html; charset=utf-8" in head.lower()
    assert b'<script type="module" src="/chat/dist/converse.min.js"></script>' in body
    assert b'<link rel="stylesheet" href="/chat/dist/converse.min.css">' in body
    assert settings(body) == {
        "assets_path": "/chat/dist/",
        "authentication": "login",
        "default_domain": DOMAIN,
        "discover_connection_methods": False,
        "muc_nickname_from_jid": True,
        "view_mode": "fullscreen",
        "websocket_url": "ws://example.org:5280/xmpp-websocket",
    }
    assert get(b"/chat/")[1].count(b"converse.initialize") == 1


def test_pageOverTLSWithBOSH(get):
    """Over HTTPS: wss and https; BOSH is offered once the node serves it."""
    head, body = get(b"/chat", host=b"example.org:5443", https=True,
                     links=(WEBSOCKET, BOSH))
    found = settings(body)
    assert found["websocket_url"] == "wss://example.org:5443/xmpp-websocket"
    assert found["bosh_service_url"] == "https://example.org:5443/http-bind"
    head, body = get(b"/chat?transport=bosh", https=True,
                     links=(WEBSOCKET, BOSH))
    assert "websocket_url" not in settings(body)
    assert settings(body)["bosh_service_url"] == "https://example.org:5280/http-bind"


@pytest.mark.parametrize("query, message", [
    (b"bosh", b"this node does not serve bosh\n"),
    (b"carrier-pigeon", b"transport must be websocket or bosh\n"),
])
def test_transportNotServed(get, query, message):
    """A transport the node does not serve (or that does not exist) is no page."""
    head, body = get(b"/chat?transport=" + query)
    assert head.lower().startswith(b"http/1.1 404 ")
    assert body == message


def test_otherHostName(get):
    """
    A page reached by another name (C{chat.example.org}) logs in to the
    node's first domain, through the name the browser used.
    """
    found = settings(get(b"/chat", host=b"chat.example.net")[1])
    assert found["default_domain"] == DOMAIN
    assert found["websocket_url"] == "ws://chat.example.net/xmpp-websocket"


@pytest.mark.parametrize("host", [b"", b"a b", b"example.org/x", b"</script>"])
def test_badHost(get, host):
    head, body = get(b"/chat", host=host)
    assert head.lower().startswith(b"http/1.1 400 ")
    assert b"<" not in body


def test_contentSecurityPolicy(get):
    """
    Only the page's own start-up script (its nonce, new each time) and
    scripts of this origin run; connections go to this origin, the
    WebSocket's and HTTPS; the page cannot be framed by other sites.
    """
    heads = []
    for _ in range(2):
        head, body = get(b"/chat")
        policy = re.search(rb"(?i)content-security-policy: (.*)\r\n", head).group(1).decode()
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert ('<script type="module" nonce="%s">' % nonce).encode() in body
        heads.append(nonce)
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self' 'nonce-%s' 'wasm-unsafe-eval'" % nonce
        assert directives["connect-src"] == "'self' ws://example.org:5280 https:"
        assert directives["frame-ancestors"] == "'self'"
        assert directives["base-uri"] == "'none'"
        assert b"x-content-type-options: nosniff" in head.lower()
    assert heads[0] != heads[1]


def policyOf(head: bytes) -> dict:
    policy = re.search(rb"(?i)content-security-policy: (.*)\r\n", head).group(1).decode()
    return dict(d.strip().split(" ", 1) for d in policy.split(";"))


def test_contentSecurityPolicyAllowsUploads(get):
    """
    File upload's URLs (XEP-0363) may be on another origin, even plain
    http (C{upload.public_url} behind a proxy): the page may PUT there and
    show the files, for the domain the page is for.
    """
    asked = []

    def upload(domain):
        asked.append(domain)
        return "http://files.%s:8080" % (domain,)

    head, _ = get(b"/chat", host=b"chat.example.net", sources=(upload, lambda domain: None))
    directives = policyOf(head)
    assert asked == [DOMAIN]
    assert directives["connect-src"] == (
        "'self' ws://chat.example.net https: http://files.example.org:8080")
    assert directives["img-src"] == "'self' data: blob: https: http://files.example.org:8080"
    assert directives["media-src"] == "'self' data: blob: https: http://files.example.org:8080"
    assert directives["default-src"] == "'none'"
    # Named once: uploads on the HTTPS listener that serves BOSH too.
    head, _ = get(b"/chat", host=b"example.org:5443", https=True, links=(WEBSOCKET, BOSH),
                  sources=(lambda domain: "https://example.org:5443",))
    assert policyOf(head)["connect-src"] == (
        "'self' https://example.org:5443 wss://example.org:5443 https:")


def test_uploadURLsInThePolicy(tmp_path):
    """The node's upload feature tells the HTTP service where its URLs are."""
    from xmppd.tap import makeService
    config = configFromDict({"server": {"data_dir": str(tmp_path / "data")},
                             "storage": {"backend": "memory"},
                             "http": {"endpoint": "tcp:0", "tls_endpoint": ""},
                             "upload": {"public_url": "http://{domain}.files.test"}})
    web = makeService(config).getServiceNamed("http")
    assert [source("example.org") for source in web.connectSources] == [
        "http://example.org.files.test"]


def test_files(get):
    """The directory's files, with the types a browser needs for modules and WebAssembly."""
    head, body = get(b"/chat/dist/converse.min.js")
    assert head.lower().startswith(b"http/1.1 200 ")
    assert b"content-type: text/javascript; charset=utf-8" in head.lower()
    assert b"x-content-type-options: nosniff" in head.lower()
    assert body == b"export default {};\n"
    head, body = get(b"/chat/dist/locales/fr.js")
    assert body == b"// fr\n"
    head, body = get(b"/chat/dist/libomemo.wasm")
    assert b"content-type: application/wasm" in head.lower()


@pytest.mark.parametrize("path", [
    b"/chat/dist/",                       # no listing
    b"/chat/dist",
    b"/chat/dist/locales/",
    b"/chat/dist/.htpasswd",              # no dot files
    b"/chat/dist/../secret.txt",          # never outside the directory
    b"/chat/dist/%2e%2e/secret.txt",
    b"/chat/dist/locales/..%2f..%2fsecret.txt",
    b"/chat/dist/escape.js",              # nor through a link
    b"/chat/dist/missing.js",
    b"/chat/other",
])
def test_nothingElse(get, path):
    head, body = get(path)
    assert head.lower().startswith(b"http/1.1 404 "), head
    assert b"secret" not in body and b"hidden" not in body


def test_offByDefault():
    assert configFromDict({}).http.conversejs_dir == ""


def test_directoryWithoutConverse(tmp_path):
    """A C{conversejs_dir} without Converse.js stops the node at start, saying what to name."""
    from xmppd.tap import makeService
    config = configFromDict({"server": {"data_dir": str(tmp_path / "data")},
                             "storage": {"backend": "memory"},
                             "http": {"conversejs_dir": str(tmp_path)}})
    with pytest.raises(ConfigError) as e:
        makeService(config)
    assert str(e.value) == (
        "http.conversejs_dir: %s has no converse.min.js or converse.min.css (name "
        "Converse.js's dist directory, e.g. node_modules/converse.js/dist after npm install "
        "converse.js)" % (tmp_path,))
    config = configFromDict({"server": {"data_dir": str(tmp_path / "data")},
                             "storage": {"backend": "memory"},
                             "http": {"conversejs_dir": str(tmp_path / "nowhere")}})
    with pytest.raises(ConfigError, match="is not a directory"):
        makeService(config)
