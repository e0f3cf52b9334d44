# -*- test-case-name: tests.test_pubsub_service -*-
"""
The publish-subscribe service of one served domain (XEP-0060), on its own
address from C{[pubsub] domain} (default C{pubsub.{domain}}), run
in-process like the MUC service: a route on the node's router whose IQs go
to wokkel's pubsub protocol handler (L{xmppd.features.pubsub.protocol})
and wokkel's disco handler, answered by the engine
(L{xmppd.features.pubsub.engine}) through the resource
(L{xmppd.features.pubsub.resource}).

  - IQs with a C{pubsub} or C{pubsub#owner} query: §5.6-§8.9;
  - disco#info and disco#items (§5.1-§5.5): identity pubsub/service, the
    C{pubsub#…} features, the nodes the asker may see, node meta-data;
  - an owner's answer to a subscription authorization request: a message
    with a submitted C{pubsub#subscribe_authorization} form (§8.6); other
    messages and presence to the service are ignored;
  - XEP-0199 ping; every other IQ gets C{service-unavailable}; an address
    with a localpart or resource has nothing behind it.

L{makeService} (the feature C{"pubsub"}) adds one such service per served
domain, and L{makeHandler} lists it in the domain's disco items.  Who may
create nodes is C{[pubsub] node_creation} (default: accounts of the served
domains).

The service needs a store with C{pubsub} (L{xmppd.storage.interfaces.IPubSubStore}):
the memory backend has one; on a backend without it the feature logs a
warning and runs no service (until the SQLite store lands).

Implements: XEP-0060 1.26
"""

from __future__ import annotations

from twisted.application import service as application
from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel import data_form
from wokkel.disco import DiscoFeature, DiscoHandler
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.ordering import Answering
from xmppd.core.router import IRoute
from xmppd.core.stanzas import errorReply, iqResult
from xmppd.features.pubsub.access import Access, storageRosterLookup
from xmppd.features.pubsub.engine import NS_AUTHORIZATION, PubSubEngine
from xmppd.features.pubsub.errors import StanzaError
from xmppd.features.pubsub.fanout import Fanout
from xmppd.features.pubsub.protocol import NS_PUBSUB, NS_PUBSUB_OWNER, Service
from xmppd.features.pubsub.resource import Resource
# Importing PubSubConfig declares the [pubsub] section (xmppd.config @section).
from xmppd.features.pubsub.settings import PubSubConfig
from xmppd.core.checks import serviceDomain
from xmppd.features.disco import ServiceItemHandler

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"


@implementer(IRoute)
class PubSubService(application.Service):
    """See the module docstring.  Also the C{parent} of its two wokkel handlers."""

    log = Logger()

    def __init__(self, domain: str, router, storage, clock, settings: PubSubConfig,
                 localDomains=(), rosters=None):
        self.domain = domain
        self.name = domain
        self.router = router
        self.clock = clock
        self.settings = settings
        #: Accounts of these domains may create nodes with node_creation "local".
        self.localDomains = frozenset(localDomains)
        self.fanout = Fanout(router, clock, settings.fanout_batch)
        self.engine = PubSubEngine(
            parseJID(domain), lambda: pubsubStore(storage), settings, self.fanout,
            access=Access(storageRosterLookup(rosters, self.localDomains)
                          if rosters is not None else None),
            mayCreate=self.mayCreate, admins=settings.admins)
        self.pubsub = Service(Resource(self.engine, settings.name))
        self.disco = DiscoHandler()
        self.handlers = [self.pubsub, ServiceInfo(), self.disco]
        for handler in self.handlers:
            handler.parent = self
        #: Requests being answered, held so their sender's next stanza waits.
        self.answering = Answering()

    def __iter__(self):
        return iter(self.handlers)

    def startService(self) -> None:
        application.Service.startService(self)
        self.router.addRoute(self.domain, self)
        self.log.info("Publish-subscribe service {domain} is up", domain=self.domain)

    def stopService(self):
        self.router.removeRoute(self.domain, self)
        self.fanout.stop()
        return application.Service.stopService(self)

    def mayCreate(self, requester) -> bool:
        policy = self.settings.node_creation
        if policy == "anyone":
            return True
        if policy == "local":
            return requester.host in self.localDomains and requester.user is not None
        return False

    # -- routing ----------------------------------------------------------------

    def send(self, stanza: domish.Element) -> None:
        """What the wokkel handlers send (their replies) goes through the router."""
        held = self.answering.sending(stanza)
        self.router.route(stanza)
        if held is not None:
            held.callback(None)

    def deliver(self, stanza: domish.Element) -> None:
        try:
            parseJID(stanza.getAttribute("from") or "")
            to = parseJID(stanza["to"])
        except (InvalidJID, KeyError):
            return
        if stanza.name == "message":
            self.onMessage(stanza)
            return
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return
        if to.user is not None or to.resource is not None:
            self.bounce(stanza, "service-unavailable")
            return
        query = firstElement(stanza)
        if query is None:
            self.bounce(stanza, "bad-request")
            return
        try:
            if query.name == "pubsub" and query.uri in (NS_PUBSUB, NS_PUBSUB_OWNER):
                self.answering.request(self.pubsub.handleRequest, stanza)
            elif query.name == "query" and query.uri in (NS_DISCO_INFO, NS_DISCO_ITEMS):
                self.disco.handleRequest(stanza)
            elif (query.uri, stanza["type"]) == (NS_PING, "get"):
                self.send(result(stanza))
            else:
                self.bounce(stanza, "service-unavailable")
        except Exception:
            self.log.failure("The publish-subscribe service failed on a stanza")
            self.bounce(stanza, "internal-server-error")

    def onMessage(self, message: domish.Element) -> None:
        """§8.6: an owner's answer to a subscription authorization request."""
        if message.getAttribute("type") == "error":
            return
        form = data_form.findForm(message, NS_AUTHORIZATION)
        if form is None or form.formType != "submit":
            return  # Other messages to the service are ignored.
        values = {var: field.value for var, field in form.fields.items()}
        values = {var: (v.full() if hasattr(v, "full") else v) for var, v in values.items()}
        d = defer.ensureDeferred(self.engine.authorize(parseJID(message["from"]), values))
        d.addErrback(self.failedMessage, message)

    def failedMessage(self, failure, message) -> None:
        if failure.check(StanzaError):
            reply = failure.value.toResponse(message)
        else:
            self.log.failure("Answering a subscription authorization", failure)
            reply = errorReply(message, "internal-server-error")
        if reply is not None:
            self.send(reply)

    def bounce(self, stanza, condition: str, text: str | None = None) -> None:
        reply = errorReply(stanza, condition, text)
        if reply is not None:
            self.send(reply)


def pubsubStore(storage):
    storage = storage() if callable(storage) else storage
    return storage.pubsub


def firstElement(parent: domish.Element) -> domish.Element | None:
    for elem in parent.elements():
        return elem
    return None


#: The empty result of an IQ (one helper for every service).
result = iqResult


@implementer(IDisco)
class ServiceInfo(XMPPHandler):
    """The features of the service address besides wokkel's C{pubsub#…} ones."""

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier:
            return defer.succeed([])
        return defer.succeed([DiscoFeature(feature) for feature in
                              (NS_PUBSUB, NS_DISCO_INFO, NS_PING)])

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return defer.succeed([])


# -- in-process wiring -------------------------------------------------------------

def pubsubDomainOf(settings: PubSubConfig, domain: str) -> str:
    return serviceDomain(settings.domain, domain)


def hasStore(storage) -> bool:
    return getattr(storage, "pubsub", None) is not None


def makeService(server, domain: str) -> PubSubService | None:
    """The C{"pubsub"} feature's service for the served C{domain}, on C{[pubsub] domain}."""
    settings = server.config.pubsub
    if not hasStore(server.storage):
        PubSubService.log.warn(
            "No publish-subscribe service for {domain}: storage backend {backend} has no "
            "publish-subscribe store", domain=domain, backend=type(server.storage).__name__)
        return None
    return PubSubService(pubsubDomainOf(settings, domain), server.router,
                         lambda: server.storage, server.clock, settings,
                         localDomains=server.config.server.domains,
                         rosters=lambda: server.storage.rosters)


def makeHandler(domain) -> ServiceItemHandler | None:
    """The C{"pubsub"} feature inside a served domain: its disco items list the service."""
    settings = domain.config.pubsub
    if not hasStore(domain.storage):
        return None
    return ServiceItemHandler(pubsubDomainOf(settings, domain.domain), settings.name)
