# -*- test-case-name: tests.test_tap -*-
"""
The one wiring path (DESIGN §1): L{makeService} builds the service tree from a
validated configuration.  The twistd plugin (C{twistd -n xmppd --config FILE})
and C{xmppd.tac} (C{twistd -ny xmppd.tac}) both call it, and so do the tests.
"""

from __future__ import annotations

from xmppd.admin.service import AdminService
from xmppd.components.server import ComponentService
from xmppd.c2s.listeners import C2SService
from xmppd.config import ConfigError
from xmppd.core.local import addDomain
from xmppd.s2s.service import S2SService
from xmppd.core.server import XMPPServer
from xmppd.storage import makeStorage
from xmppd.storage.service import StorageService
from xmppd.stream.tls import ensureCertificate, hostCertificates, serverContextFactory


def makeService(config, reactor=None, clock=None) -> XMPPServer:
    """Build (not start) one node from a loaded L{xmppd.config.Config}."""
    server = XMPPServer(config, reactor=reactor, clock=clock)
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor,
                          config.storage.redis, config.storage.redis_unsafe)
    # The SQLite engine times its jobs and group commits for /metrics.
    storage.metrics = server.metrics
    server.storageService = StorageService(storage)
    server.storageService.setServiceParent(server)
    cluster = getattr(config, "sections", {}).get("cluster")
    if cluster is not None and cluster.enabled:
        # Only a node of a cluster imports the cluster (DESIGN §6).
        from xmppd.cluster.service import ClusterService
        ClusterService(server, reactor=reactor).setServiceParent(server)
        # Its control channel (xmppctl drain) drives the client listeners.
        from xmppd.admin.control import ControlService
        ControlService(server).setServiceParent(server)
    admin = AdminService(server, reactor=reactor)
    admin.setServiceParent(server)
    for domain in config.server.domains:
        local = addDomain(server, domain)[0]
        # Ad-hoc commands (XEP-0050/0133) at the domain's JID.
        admin.serveDomain(local)
    certificate, key = ensureCertificate(config)
    tlsOptions = serverContextFactory(certificate, key, hostCertificates(config))
    if config.s2s.listen:
        # Federation: the router's default route while it runs.
        S2SService(server, certificate, key, hostCertificates(config),
                   reactor=reactor).setServiceParent(server)
    if config.components.listen or config.components.secrets:
        ComponentService(server, reactor=reactor).setServiceParent(server)
    #: What a live reload (L{xmppd.admin.reload}) gives a new certificate.
    server.tlsOptions = tlsOptions
    c2s = C2SService(server, tlsOptions, reactor=reactor)
    c2s.setServiceParent(server)
    if config.http.endpoint or config.http.tls_endpoint:
        # A node without HTTP never imports twisted.web or wsproto.
        addHTTP(server, c2s, tlsOptions, reactor)
    return server


def addHTTP(server, c2s, tlsOptions, reactor=None) -> None:
    """
    The HTTP service (L{xmppd.http}) and what it serves: the WebSocket
    and BOSH transports of client streams (RFC 7395, XEP-0206), connection
    discovery (XEP-0156), the HTTP API (L{xmppd.admin.api}), the admins' web
    console (C{/admin}), the Converse.js
    page when configured and, with the
    feature C{"upload"}, HTTP File Upload (XEP-0363, L{xmppd.http.upload}).
    Added after the client listeners, so it stops first.
    """
    try:
        from xmppd.c2s import websocket
    except ImportError as e:
        # An install without wsproto, or a Twisted without its WebSocket.
        raise ConfigError("http: the WebSocket needs Twisted >= 25.5 and wsproto (%s); "
                          "install them, or disable HTTP with http.endpoint = \"\" and "
                          "http.tls_endpoint = \"\"" % (e,)) from None
    from xmppd.http.service import HTTPService
    web = HTTPService(server, tlsOptions, reactor=reactor)
    web.putChild(websocket.PATH, websocket.XMPPWebSocketResource(
        c2s.transportFactory("websocket"), server.config.http.websocket_origins))
    web.addLink(websocket.LINK_REL, "/" + websocket.PATH, ("ws", "wss"))
    from xmppd.c2s import bosh
    web.putChild(bosh.PATH, bosh.BOSHResource(c2s.transportFactory("bosh"), server.config.http),
                 forms=False)
    web.addLink(bosh.LINK_REL, "/" + bosh.PATH)
    if server.config.http.conversejs_dir:
        # The chat page, like ejabberd's mod_conversejs (off by default).
        from xmppd.http import chat
        try:
            chat.checkDirectory(server.config.http.conversejs_dir)
        except chat.ConverseDirectoryError as e:
            raise ConfigError(str(e)) from None
        web.putChild(chat.PATH, chat.ChatPage(web, server.config.http.conversejs_dir))
    # The HTTP API for integrators: the admin operations, token-authenticated.
    from xmppd.admin.api import addAPI
    addAPI(server, web)
    # The web console for the node's admins (L{xmppd.admin.console}).
    from xmppd.admin.console import PATH as CONSOLE, AdminConsole
    web.putChild(CONSOLE, AdminConsole(server))
    web.setServiceParent(server)
    if server.config.metrics.enabled:
        # /metrics for operators (loopback or token only), and the reactor's
        # lag measured for it.
        from xmppd.http.metrics import addMetrics
        addMetrics(server, web)
    if "upload" in server.config.server.modules:
        # HTTP File Upload (XEP-0363): the files of the upload services' slots.
        from xmppd.features.upload.service import baseURLOf, makeStore
        from xmppd.features.upload.store import PATH
        from xmppd.http.upload import addUpload
        sweeper = addUpload(web, makeStore(server), PATH, clock=server.clock)
        # The chat page's browser PUTs and GETs there.
        web.addConnectSource(baseURLOf(server))
        sweeper.setServiceParent(server)

