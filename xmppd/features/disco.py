# -*- test-case-name: tests.test_disco -*-
"""
Service discovery (XEP-0030) for a served domain and its accounts.

The answers are generated: every handler of the domain that provides
wokkel's L{IDisco} is asked (as wokkel's own C{DiscoHandler} does, by walking
its siblings), so a feature switched off in C{server.modules} disappears from
disco with its handler.  Each handler's C{getDiscoInfo(requestor, target,
nodeIdentifier)} is called with C{target} the domain's JID or an account's
bare JID, and answers for that kind of entity (most features announce
nothing for accounts).  A handler that fails is logged and left out rather
than failing the whole answer.

  - The domain: identity server/im named "xmppd" (XEP-0030 §3.1, the
    Registry's "server" category), the features of every handler, and any
    extended forms (XEP-0128) they return, such as XEP-0157 contact
    addresses.  Items (§4) come from the handlers' C{getDiscoItems} and from
    the hook C{"disco/items"} (L{DiscoItemsEvent}, C{notify}: append
    C{wokkel.disco.DiscoItem}s to C{event.items}), through which services
    that are not handlers of the domain, like a MUC service on a subdomain
    or the node's components, list themselves.  Node-wide callbacks hear
    every domain's queries: they check C{event.target}.
  - An account's bare JID (also an IQ sent with no C{to}, which addresses
    the sender's own account): the server answers on the account's behalf
    (RFC 6121 §8.5.2.1.3) with identity account/registered (XEP-0030 §3.1
    example 4), but only to the account itself and to entities with a
    presence subscription to it ("from" or "both" in its roster): XEP-0030
    §3.1 leaves the answer to the server's privacy policy, and telling
    strangers which accounts exist would let them enumerate users.  Everyone
    else, and any query about an account that does not exist, gets
    C{service-unavailable}, the answer RFC 6121 §8.5.1 requires for IQs to
    missing accounts, so the two cannot be told apart.
  - A node nobody knows gets C{item-not-found} (XEP-0030 §3.1, §4.1).
    Handlers answer for the nodes they own (the caps handler answers for
    its C{node#ver}, XEP-0115 §6.2).

Feature C{var}s and identities are unique in an answer (XEP-0030 §3.1).

Implements: XEP-0030 2.5
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel.data_form import Form
from wokkel.disco import (DISCO_INFO, DISCO_ITEMS, NS_DISCO_INFO, NS_DISCO_ITEMS,
                          DiscoFeature, DiscoIdentity, DiscoItem)
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.jid import InvalidJID, makeJID, parseJID

#: Disco's interface to other features (entity capabilities hashes the
#: domain's own info): L{gatherInfo}.  Anything else here is internal.
__all__ = ["ServiceItemHandler", "gatherInfo", "makeHandler"]

#: The name of the server's identity.
SERVER_NAME = "xmppd"

#: Roster subscriptions that let the contact see the account's presence.
SUBSCRIBED = frozenset(("from", "both"))

log = Logger()


@dataclass
class DiscoItemsEvent:
    """The hook C{"disco/items"}: add L{DiscoItem}s for C{target} to C{items}."""

    requestor: object
    target: object
    nodeIdentifier: str
    items: list = field(default_factory=list)


def _gather(handlers, method: str, requestor, target, nodeIdentifier: str) -> defer.Deferred:
    calls = [defer.maybeDeferred(getattr(handler, method), requestor, target, nodeIdentifier)
             for handler in handlers if IDisco.providedBy(handler)]

    def flatten(results):
        gathered = []
        for success, result in results:
            if success:
                gathered.extend(result or ())
            else:
                log.failure("A disco handler failed", result)
        return gathered

    return defer.DeferredList(calls, consumeErrors=True).addCallback(flatten)


def gatherInfo(handlers, requestor, target, nodeIdentifier: str = "") -> defer.Deferred:
    """
    The identities, features and forms that C{handlers} (an iterable of
    wokkel handlers) give for C{target}'s C{nodeIdentifier}, as a list;
    failures are logged and left out.
    """
    return _gather(handlers, "getDiscoInfo", requestor, target, nodeIdentifier)


def gatherItems(handlers, requestor, target, nodeIdentifier: str = "") -> defer.Deferred:
    """Like L{gatherInfo}, for items."""
    return _gather(handlers, "getDiscoItems", requestor, target, nodeIdentifier)


def infoElement(info, nodeIdentifier: str = "") -> domish.Element:
    """
    The C{<query/>} of a disco#info result for C{info} (as from
    L{gatherInfo}): identities, then features, then forms, each once.
    """
    query = domish.Element((NS_DISCO_INFO, "query"))
    if nodeIdentifier:
        query["node"] = nodeIdentifier
    identities, features, forms = [], [], []
    seen = set()
    for item in info:
        if isinstance(item, DiscoIdentity):
            key = ("identity", item.category, item.type, getattr(item, "lang", None))
            target = identities
        elif isinstance(item, DiscoFeature):
            key, target = ("feature", str(item)), features
        elif isinstance(item, Form):
            key, target = ("form", item.formNamespace), forms
        else:
            continue
        if key not in seen:
            seen.add(key)
            target.append(item)
    for item in identities + features + forms:
        query.addChild(item.toElement())
    return query


@implementer(IDisco)
class DiscoHandler(XMPPHandler, IQHandlerMixin):
    """
    Answers disco#info and disco#items for the domain and its accounts; see
    the module docstring.
    """

    iqHandlers = {DISCO_INFO: "onDiscoInfo", DISCO_ITEMS: "onDiscoItems"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.domainJID = makeJID(None, domain.domain)

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(DISCO_INFO, self.handleRequest)
        self.xmlstream.addObserver(DISCO_ITEMS, self.handleRequest)

    # -- IDisco: what disco itself announces --------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier:
            return []
        if target.user is None:
            identity = DiscoIdentity("server", "im", SERVER_NAME)
        else:
            identity = DiscoIdentity("account", "registered")
        return [identity, DiscoFeature(NS_DISCO_INFO), DiscoFeature(NS_DISCO_ITEMS)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []

    # -- requests -------------------------------------------------------------

    async def request(self, iq: domish.Element):
        """The requestor, target and node of a disco request, once it may be answered."""
        try:
            requestor = parseJID(iq["from"])
            to = iq.getAttribute("to")
            target = requestor.userhostJID() if to is None else parseJID(to)
        except (InvalidJID, KeyError):
            raise StanzaError("bad-request")
        if target.user is None:
            target = self.domainJID
        elif not await self.mayAnswerFor(requestor, target):
            raise StanzaError("service-unavailable")
        nodeIdentifier = iq.query.getAttribute("node", "")
        return requestor, target, nodeIdentifier

    async def mayAnswerFor(self, requestor, account) -> bool:
        """Whether C{requestor} may learn about C{account}; see the module docstring."""
        if requestor.userhost() == account.userhost():
            return True
        item = await self.domain.storage.rosters.getItem(
            account.user, account.host, requestor.userhost())
        return item is not None and item.subscription in SUBSCRIBED

    async def onDiscoInfo(self, iq: domish.Element):
        requestor, target, nodeIdentifier = await self.request(iq)
        info = await gatherInfo(self.parent, requestor, target, nodeIdentifier)
        if nodeIdentifier and not info:
            raise StanzaError("item-not-found")
        return infoElement(info, nodeIdentifier)

    async def onDiscoItems(self, iq: domish.Element):
        requestor, target, nodeIdentifier = await self.request(iq)
        items = await gatherItems(self.parent, requestor, target, nodeIdentifier)
        event = DiscoItemsEvent(requestor, target, nodeIdentifier)
        self.domain.hooks.notify("disco/items", event)
        items.extend(event.items)
        if nodeIdentifier and not items:
            raise StanzaError("item-not-found")
        query = domish.Element((NS_DISCO_ITEMS, "query"))
        if nodeIdentifier:
            query["node"] = nodeIdentifier
        for item in items:
            if isinstance(item, DiscoItem):
                query.addChild(item.toElement())
        return query


def makeHandler(domain) -> DiscoHandler:
    return DiscoHandler(domain)


@implementer(IDisco)
class ServiceItemHandler(XMPPHandler):
    """
    Lists a service a feature runs on a domain of its own (MUC's
    C{conference.}, publish-subscribe's C{pubsub.}) in the served domain's
    disco#items (XEP-0030 §4), so clients find it.
    """

    def __init__(self, serviceDomain: str, name: str):
        XMPPHandler.__init__(self)
        self.serviceDomain = serviceDomain
        self.name = name

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        return defer.succeed([])

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier or target.user is not None:
            return defer.succeed([])
        return defer.succeed([DiscoItem(parseJID(self.serviceDomain), name=self.name)])
