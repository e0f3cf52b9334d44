# -*- test-case-name: tests.test_upload -*-
"""
The upload service of one served domain (XEP-0363), on its own address
from C{[upload] domain} (default C{upload.{domain}}), run in-process like
the publish-subscribe and MUC services: a route on the node's router.

  - disco#info (§2): identity store/file, the C{urn:xmpp:http:upload:0}
    feature and the C{max-file-size} form; disco#items is empty; ping;
  - a slot request (§4) from an account of a served domain gets a PUT and
    a GET URL on the HTTP service (L{xmppd.http.upload}), or an error
    (§4.1): C{not-acceptable} with C{<file-too-large/>} over
    C{max_file_size}, C{resource-constraint} (type wait, with C{<retry/>})
    over the account's quota or over C{slots_per_minute}, C{bad-request}
    for a file name with a path or control characters, a size that is
    not a number or a malformed content type, and C{not-allowed} for
    anyone else (remote users, the domain itself);
  - every other IQ gets C{service-unavailable}; messages and presence are
    ignored.

L{makeService} (the feature C{"upload"} of C{server.modules}) adds one
such service per served domain and L{makeHandler} lists it in the
domain's disco items, but only on a node with HTTP: without a listener
there is nowhere to upload, so the feature is off and says so at start
(and C{xmppctl check} warns).

Implements: XEP-0363 1.1.0
"""

from __future__ import annotations

import collections
import time

from twisted.application import service as application
from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel import data_form
from zope.interface import implementer

from xmppd.core.checks import serviceDomain
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.router import IRoute
from xmppd.core.stanzas import errorReply, iqResult
from xmppd.features.disco import ServiceItemHandler
# Importing UploadConfig declares the [upload] section (xmppd.config @section).
from xmppd.features.upload.settings import UploadConfig
from xmppd.features.upload.store import SlotRefused, UploadStore

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"

#: The window of C{slots_per_minute}, in seconds.
RATE_WINDOW = 60.0


def stamp(seconds: float) -> str:
    """XEP-0082 DateTime in UTC (the C{<retry stamp=…/>} of §4.1)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@implementer(IRoute)
class UploadService(application.Service):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain: str, router, store: UploadStore, clock,
                 settings: UploadConfig, localDomains, baseURL):
        """
        @param baseURL: called with the served domain, gives the URL the
            HTTP service is reached at (C{https://example.org:5443}) or
            C{None} when it does not listen (yet).
        """
        self.domain = domain
        self.name = domain
        self.router = router
        self.store = store
        self.clock = clock
        self.settings = settings
        self.localDomains = frozenset(localDomains)
        self.baseURL = baseURL
        #: Bare JID -> times of its recent slot requests (slots_per_minute).
        self.recent: dict[str, collections.deque] = {}

    def startService(self) -> None:
        application.Service.startService(self)
        self.router.addRoute(self.domain, self)
        self.log.info("HTTP upload service {domain} is up", domain=self.domain)

    def stopService(self):
        self.router.removeRoute(self.domain, self)
        return application.Service.stopService(self)

    def send(self, stanza: domish.Element) -> None:
        self.router.route(stanza)

    def deliver(self, stanza: domish.Element) -> None:
        try:
            sender = parseJID(stanza.getAttribute("from") or "")
            to = parseJID(stanza["to"])
        except (InvalidJID, KeyError):
            return
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return
        if to.user is not None or to.resource is not None:
            self.bounce(stanza, "service-unavailable")
            return
        query = next(iter(stanza.elements()), None)
        if query is None:
            self.bounce(stanza, "bad-request")
            return
        kind = (query.uri, query.name, stanza["type"])
        try:
            if kind == (NS_DISCO_INFO, "query", "get"):
                self.send(self.discoInfo(stanza, query))
            elif kind == (NS_DISCO_ITEMS, "query", "get"):
                reply = result(stanza)
                reply.addElement((NS_DISCO_ITEMS, "query"))
                self.send(reply)
            elif kind == (NS_PING, "ping", "get"):
                self.send(result(stanza))
            elif kind == (NS_UPLOAD, "request", "get"):
                self.requestSlot(stanza, sender, query)
            else:
                self.bounce(stanza, "service-unavailable")
        except Exception:
            self.log.failure("The upload service failed on a stanza")
            self.bounce(stanza, "internal-server-error")

    # -- §2 discovery ------------------------------------------------------------

    def discoInfo(self, iq: domish.Element, query: domish.Element) -> domish.Element:
        if query.getAttribute("node"):
            return errorReply(iq, "item-not-found")
        reply = result(iq)
        info = reply.addElement((NS_DISCO_INFO, "query"))
        identity = info.addElement("identity")
        identity["category"] = "store"
        identity["type"] = "file"
        identity["name"] = self.settings.name
        for feature in (NS_UPLOAD, NS_DISCO_INFO, NS_PING):
            info.addElement("feature")["var"] = feature
        form = data_form.Form("result", formNamespace=NS_UPLOAD)
        form.addField(data_form.Field(var="max-file-size",
                                      value=str(self.settings.max_file_size)))
        info.addChild(form.toElement())
        return reply

    # -- §4 slots ----------------------------------------------------------------

    def requestSlot(self, iq: domish.Element, sender, request: domish.Element) -> None:
        if sender.user is None or sender.host not in self.localDomains:
            self.bounce(iq, "not-allowed",
                        "only accounts of this server may upload files here")
            return
        bare = sender.userhost()
        retry = self.rateLimited(bare)
        if retry is not None:
            self.bounceRetry(iq, "you asked for too many upload slots; try again later",
                             retry)
            return
        base = self.baseURL(sender.host)
        if base is None:
            self.bounce(iq, "service-unavailable", "the HTTP service is not listening",
                        "wait")
            return
        try:
            slot = self.store.newSlot(bare, request.getAttribute("filename"),
                                      request.getAttribute("size"),
                                      request.getAttribute("content-type"))
        except SlotRefused as refused:
            self.refuse(iq, refused)
            return
        reply = result(iq)
        answer = reply.addElement((NS_UPLOAD, "slot"))
        answer.addElement("put")["url"] = base + self.store.putPath(slot)
        answer.addElement("get")["url"] = base + self.store.getPath(slot)
        self.send(reply)

    def rateLimited(self, bare: str) -> float | None:
        """C{None} and count the request, or when C{bare} may ask again."""
        now = self.clock.seconds()
        if len(self.recent) > 10000:
            for key in [k for k, times in self.recent.items()
                        if not times or times[-1] <= now - RATE_WINDOW]:
                del self.recent[key]
        times = self.recent.setdefault(bare, collections.deque())
        while times and times[0] <= now - RATE_WINDOW:
            times.popleft()
        if len(times) >= self.settings.slots_per_minute:
            return times[0] + RATE_WINDOW
        times.append(now)
        return None

    def refuse(self, iq: domish.Element, refused: SlotRefused) -> None:
        if refused.reason == "too-large":
            reply = errorReply(iq, "not-acceptable", refused.text, "modify")
            if reply is not None:
                tooLarge = reply.error.addElement((NS_UPLOAD, "file-too-large"))
                tooLarge.addElement("max-file-size", content=str(self.settings.max_file_size))
                self.send(reply)
        elif refused.reason == "quota":
            retry = self.store.retryAt(self.store.ownerKey(
                parseJID(iq["from"]).userhost()))
            self.bounceRetry(iq, refused.text, retry)
        else:
            self.bounce(iq, "bad-request", refused.text, "modify")

    def bounceRetry(self, iq: domish.Element, text: str, retry: float | None) -> None:
        """§4.1: resource-constraint (wait), with when to retry if known."""
        reply = errorReply(iq, "resource-constraint", text, "wait")
        if reply is None:
            return
        if retry is not None:
            reply.error.addElement((NS_UPLOAD, "retry"))["stamp"] = stamp(retry)
        self.send(reply)

    def bounce(self, stanza, condition: str, text: str | None = None,
               errorType: str | None = None) -> None:
        reply = errorReply(stanza, condition, text, errorType)
        if reply is not None:
            self.send(reply)


#: The empty result of an IQ (one helper for every service).
result = iqResult


# -- in-process wiring -------------------------------------------------------------

def uploadDomainOf(settings: UploadConfig, domain: str) -> str:
    return serviceDomain(settings.domain, domain)


def hasHTTP(config) -> bool:
    return bool(config.http.endpoint or config.http.tls_endpoint)


def makeStore(server) -> UploadStore:
    return UploadStore(server.config.server.data_dir, server.secret, server.clock,
                       server.config.upload)


def baseURLOf(server):
    """Where C{server}'s upload URLs start for a served domain (C{[upload] public_url})."""
    template = server.config.upload.public_url

    def baseURL(host: str) -> str | None:
        if template:
            return template.format(domain=host)
        try:
            web = server.getServiceNamed("http")
        except KeyError:
            return None
        return web.publicURL(host)

    return baseURL


def makeService(server, domain: str) -> UploadService | None:
    """The C{"upload"} feature's service for the served C{domain}, on C{[upload] domain}."""
    settings = server.config.upload
    if not hasHTTP(server.config):
        UploadService.log.warn(
            "No HTTP upload service for {domain}: HTTP is off (http.endpoint and "
            "http.tls_endpoint are empty)", domain=domain)
        return None
    return UploadService(uploadDomainOf(settings, domain), server.router, makeStore(server),
                         server.clock, settings, server.config.server.domains,
                         baseURLOf(server))


def makeHandler(domain) -> ServiceItemHandler | None:
    """The C{"upload"} feature inside a served domain: its disco items list the service."""
    if not hasHTTP(domain.config):
        return None
    settings = domain.config.upload
    return ServiceItemHandler(uploadDomainOf(settings, domain.domain), settings.name)
