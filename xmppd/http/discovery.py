# -*- test-case-name: tests.test_http -*-
"""
Connection discovery over HTTP (XEP-0156 §3): C{/.well-known/host-meta}
(XRD, RFC 6415) and C{/.well-known/host-meta.json} (JRD) list where a
browser client of a served domain connects: the WebSocket URL (RFC 7395
§4) and the BOSH one (XEP-0206), each added by its owner with
L{xmppd.http.service.HTTPService.addLink}.

The domain is the request's C{Host} (virtual hosting: one listener serves
every domain of the node), and a host the node does not serve gets 404, so
a stray name pointed at the node never looks like an XMPP service.  The
URLs repeat the C{Host} the client used (port included), with C{wss}/C{https}
when the client came over TLS (directly, or through a trusted proxy).
Both documents allow any origin (CORS), as XEP-0156 §3 asks, so a web
client on another site can read them.
"""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import quoteattr

from twisted.web import resource

from xmppd.config import normalizeDomain

#: A Host header: a name or IPv4 address, or a bracketed IPv6 address, and a port.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def wellKnown(service) -> resource.Resource:
    """The C{/.well-known} resource with both host-meta documents."""
    root = resource.Resource()
    root.putChild(b"host-meta", HostMeta(service, jrd=False))
    root.putChild(b"host-meta.json", HostMeta(service, jrd=True))
    return root


class HostMeta(resource.Resource):
    """One of the two host-meta documents of the requested domain."""

    isLeaf = True

    def __init__(self, service, jrd: bool):
        super().__init__()
        self.service = service
        self.jrd = jrd

    def render_GET(self, request) -> bytes:
        request.setHeader(b"access-control-allow-origin", b"*")
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace").strip()
        match = _HOST.match(host)
        domain = None
        if match:
            try:
                domain = normalizeDomain(match.group(1).rstrip("."))
            except ValueError:
                domain = None
        if domain is None or domain not in self.service.server.config.server.domains:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no XMPP service for this host\n"
        secure = getattr(request, "viaTLS", False)
        links = [(rel, "%s://%s%s" % (tlsScheme if secure else plainScheme, host, path))
                 for rel, path, plainScheme, tlsScheme in self.service.links]
        if self.jrd:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]},
                              indent=2).encode("utf-8") + b"\n"
        request.setHeader(b"content-type", b"application/xrd+xml; charset=utf-8")
        lines = ["<?xml version='1.0' encoding='utf-8'?>",
                 "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>"]
        lines += ["  <Link rel=%s href=%s/>" % (quoteattr(rel), quoteattr(href))
                  for rel, href in links]
        lines.append("</XRD>")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def render_HEAD(self, request) -> bytes:
        return self.render_GET(request)
