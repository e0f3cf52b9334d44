# -*- test-case-name: tests.test_http_chat -*-
"""
A browser chat client served by the node (issue 15, item 6), as ejabberd's
C{mod_conversejs} does: with C{http.conversejs_dir} naming a Converse.js
distribution directory (npm's C{converse.js}, its C{dist/}), C{/chat} is a
page that loads Converse.js from C{/chat/dist/} and points it at this
node.  Off by default: the node ships no JavaScript of its own, and an
operator who wants the page installs Converse.js and names its directory.

The page is made per request, for the domain of the C{Host} the browser
used (the node's first served domain when that name is not one it serves:
a chat page is often reached as C{chat.example.org} for C{example.org}),
with the connection URLs of connection discovery (L{xmppd.http.discovery},
registered with L{xmppd.http.service.HTTPService.addLink}) on that same
C{Host}: the WebSocket's (C{wss} over TLS), and BOSH's once the node
serves it.  C{?transport=websocket} or C{?transport=bosh} keeps only one
of them, so one can try either (Converse prefers the WebSocket).

Its Content-Security-Policy lets the page run only its own inline start-up
script (a nonce per response) and scripts from C{/chat/dist/}, and connect
only to this origin, its WebSocket URL, HTTPS, and the origin of file
upload's URLs (L{xmppd.http.service.HTTPService.addConnectSource}: they
may live on another host, even over plain HTTP), whose files it may also
show; Converse's OMEMO needs WebAssembly (C{'wasm-unsafe-eval'}), its
templates inline styles.

The files are served from the configured directory only: no directory
listings, no dot files, nothing a symbolic link leads to outside the
directory; anything else is 404.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets

from twisted.web import pages, resource, static

from xmppd.config import normalizeDomain

#: Where the page is served.
PATH = "chat"

#: The link relations of XEP-0156 that the page hands to Converse, and the
#: Converse setting and C{?transport=} name of each.
TRANSPORTS = {
    "urn:xmpp:alt-connections:websocket": ("websocket_url", "websocket"),
    "urn:xmpp:alt-connections:xbosh": ("bosh_service_url", "bosh"),
}

#: A Host header: a name or IPv4 address, or a bracketed IPv6 address, and a port.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")

#: What Converse.js must contain to be served (checked when the node starts).
REQUIRED_FILES = ("converse.min.js", "converse.min.css")


class ConverseDirectoryError(ValueError):
    """C{http.conversejs_dir} does not hold a Converse.js distribution."""


def checkDirectory(directory: str) -> None:
    """
    Refuse a C{http.conversejs_dir} without Converse.js in it at start, with
    the reason, rather than serve a chat page that cannot load.
    """
    if not os.path.isdir(directory):
        raise ConverseDirectoryError("http.conversejs_dir: %s is not a directory" % (directory,))
    missing = [name for name in REQUIRED_FILES
               if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise ConverseDirectoryError(
            "http.conversejs_dir: %s has no %s (name Converse.js's dist directory, "
            "e.g. node_modules/converse.js/dist after npm install converse.js)"
            % (directory, " or ".join(missing)))


def origin(url: str) -> str:
    """The origin (C{scheme://host:port}) of an absolute URL, for a CSP source."""
    scheme, _, rest = url.partition("://")
    return scheme + "://" + rest.split("/", 1)[0]


def _scriptJSON(value) -> str:
    """JSON that cannot end the C{<script>} element it is written into."""
    return (json.dumps(value, indent=2, sort_keys=True)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


class ChatPage(resource.Resource):
    """C{/chat}: the page (see the module docstring); C{/chat/dist/}: Converse.js's files."""

    def __init__(self, service, directory: str):
        super().__init__()
        self.service = service
        self.putChild(b"dist", ConverseFiles(directory))

    def getChild(self, name, request):
        if name == b"":
            # /chat/ is the page too.
            return self
        return pages.notFound()

    def settings(self, request, host: str, domain: str) -> dict | str:
        """
        What the page hands C{converse.initialize}, or why there is no page
        (a C{?transport=} this node does not serve).
        """
        wanted = request.args.get(b"transport", [None])[0]
        if wanted is not None:
            wanted = wanted.decode("ascii", "replace")
            if wanted not in {name for _, name in TRANSPORTS.values()}:
                return "transport must be websocket or bosh\n"
        secure = getattr(request, "viaTLS", False)
        settings = {
            "assets_path": "/%s/dist/" % (PATH,),
            "authentication": "login",
            "default_domain": domain,
            "discover_connection_methods": False,
            "muc_nickname_from_jid": True,
            "view_mode": "fullscreen",
        }
        for rel, path, plainScheme, tlsScheme in self.service.links:
            if rel in TRANSPORTS:
                key, name = TRANSPORTS[rel]
                if wanted in (None, name):
                    settings[key] = "%s://%s%s" % (tlsScheme if secure else plainScheme,
                                                   host, path)
        if not any(key.endswith("_url") for key in settings):
            return "this node does not serve %s\n" % (wanted or "WebSocket or BOSH",)
        return settings

    def render_GET(self, request) -> bytes:
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace").strip()
        match = _HOST.match(host)
        if not match:
            return self.refuse(request, 400, "a Host header is required\n")
        domains = self.service.server.config.server.domains
        try:
            domain = normalizeDomain(match.group(1).rstrip("."))
        except ValueError:
            domain = None
        if domain not in domains:
            domain = domains[0]
        settings = self.settings(request, host, domain)
        if isinstance(settings, str):
            return self.refuse(request, 404, settings)
        nonce = secrets.token_urlsafe(16)
        origins = sorted({origin(url) for key, url in settings.items()
                          if key.endswith("_url")})
        # File upload's URLs (XEP-0363): the page PUTs files there and shows
        # them from there, wherever the operator put them (even plain http).
        uploads = sorted({origin(url) for url in (source(domain) for source in
                                                   self.service.connectSources) if url})
        elsewhere = "".join(" " + o for o in uploads)
        connectElsewhere = "".join(" " + o for o in uploads if o not in origins)
        policy = "; ".join((
            "default-src 'none'",
            "script-src 'self' 'nonce-%s' 'wasm-unsafe-eval'" % (nonce,),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob: https:%s" % (elsewhere,),
            "media-src 'self' data: blob: https:%s" % (elsewhere,),
            "font-src 'self' data:",
            "connect-src 'self' %s https:%s" % (" ".join(origins), connectElsewhere),
            "worker-src 'self' blob:",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", policy.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-store")
        page = PAGE % {"title": html.escape(domain), "dist": "/%s/dist" % (PATH,),
                       "nonce": nonce, "settings": _scriptJSON(settings)}
        return page.encode("utf-8")

    def render_HEAD(self, request) -> bytes:
        return self.render_GET(request)

    def refuse(self, request, code: int, text: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return text.encode("utf-8")


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat on %(title)s</title>
<link rel="stylesheet" href="%(dist)s/converse.min.css">
<script type="module" src="%(dist)s/converse.min.js"></script>
</head>
<body class="converse-fullscreen">
<script type="module" nonce="%(nonce)s">
converse.initialize(%(settings)s);
</script>
</body>
</html>
"""


class ConverseFiles(static.File):
    """
    The Converse.js directory: its files only (see the module docstring).
    Each child is a L{ConverseFiles} of its own (C{createSimilarFile}), so
    the checks hold at every depth.
    """

    indexNames: list[str] = []
    childNotFound = pages.notFound()
    contentTypes = dict(static.File.contentTypes, **{
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".wasm": "application/wasm",
        ".map": "application/json",
    })

    def __init__(self, path, *args, root: str | None = None, **kwargs):
        super().__init__(path, *args, **kwargs)
        #: The configured directory, resolved: nothing outside it is served.
        self.root = root if root is not None else os.path.realpath(path)

    def createSimilarFile(self, path):
        child = super().createSimilarFile(path)
        child.root = self.root
        return child

    def getChild(self, path, request):
        if path.startswith(b"."):
            return self.childNotFound
        child = super().getChild(path, request)
        if isinstance(child, ConverseFiles):
            real = os.path.realpath(child.path)
            if real != self.root and not real.startswith(self.root + os.sep):
                return self.childNotFound
        return child

    def directoryListing(self):
        return self.childNotFound

    def render_GET(self, request):
        if self.isdir():
            return self.childNotFound.render(request)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"public, max-age=3600")
        return super().render_GET(request)
