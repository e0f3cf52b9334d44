# -*- test-case-name: tests.test_privatexml -*-
"""
Private XML storage: a user keeps arbitrary XML on the server, one fragment
per namespace, that only the user can read and write (XEP-0049 §2).

Each namespace is stored on its own, under the account-data key
C{"private:<namespace>"}, as the serialized elements of that namespace from
the last set (XEP-0049 §2.3 allows several elements of one namespace in a
set, and returns them all).  A get of a namespace never stored answers the
requested element, empty, as Prosody and ejabberd do, so clients that read
their bookmarks on first login get an empty store rather than an error.

Error conditions (XEP-0049 §2.3 and §3):
  - a get or set addressed to anyone but the sender's own account:
    C{forbidden} (§2.3 prefers it to C{service-unavailable}; §4 forbids any
    other entity to touch the data);
  - a query without a child element: C{not-acceptable} (the MUST of §2.3,
    shown in its example for exactly this case);
  - a get naming more than one namespace: C{bad-request} (§2.3: a client
    MUST NOT query for more than one namespace at a time; RFC 6120
    §8.3.3.1);
  - a child in a reserved namespace: C{not-acceptable} (§2.3 allows the
    refusal).  We refuse the namespaces that would make the stored document
    ambiguous: none at all, C{jabber:client} and C{jabber:server} (the
    stanza namespaces) and C{jabber:iq:private} itself.  Other C{jabber:}
    namespaces stay allowed: refusing them is optional, and harmless data
    is better stored than refused;
  - more than C{[private] max_size} bytes for one namespace, or a new
    namespace beyond C{[private] max_namespaces}: C{not-acceptable} with a
    text, the condition XEP-0049 already uses for data the server will not
    store, so clients of this protocol handle it, and of type C{modify}
    (RFC 6120 §8.3.3.9): the client can send less.

After a set is stored, the hook L{PRIVATE_STORED} (C{"private/stored"})
is fired once per namespace written, so a feature can mirror a namespace
elsewhere (bookmarks conversion, XEP-0402 §5.3); the set is answered once
its callbacks are done, which must therefore never fail.  L{readPrivate} and
L{writePrivate} read and write one namespace for such a feature; a write
through them fires no hook, so a mirror never echoes back.

The stored text is our own serialization of elements the hardened stream
parser accepted; it is read back with L{xmppd.stream.xmlparser.parseStored},
which uses that same hardened parser (no DTDs, no entities) rather than
trusting the database.

Implements: XEP-0049 v1.2 (Private XML Storage)
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.config import integer, option, section
from xmppd.core.events import declare
from xmppd.core.stanzas import NS_CLIENT, NS_SERVER, addresses
from xmppd.stream.xmlparser import parseStored

__all__ = ["NS_PRIVATE", "PRIVATE_STORED", "PrivateHandler", "PrivateStoredEvent",
           "makeHandler", "readPrivate", "writePrivate"]

NS_PRIVATE = "jabber:iq:private"

PRIVATE_GET = "/iq[@type='get']/query[@xmlns='%s']" % NS_PRIVATE
PRIVATE_SET = "/iq[@type='set']/query[@xmlns='%s']" % NS_PRIVATE

#: Account-data keys are this prefix plus the namespace.
KEY_PREFIX = "private:"

#: Namespaces never stored: see the module docstring.
RESERVED = frozenset(("", NS_CLIENT, NS_SERVER, NS_PRIVATE))


@dataclasses.dataclass(frozen=True)
class PrivateStoredEvent:
    """Payload of L{PRIVATE_STORED}: C{owner} (a bare JID) stored C{elements}."""

    owner: JID
    namespace: str
    elements: tuple[domish.Element, ...]


PRIVATE_STORED = declare(
    "private/stored", PrivateStoredEvent, False,
    "a user's own set of private XML (XEP-0049) was stored, one event per "
    "namespace; PrivateStoredEvent")


async def readPrivate(storage, owner: JID, namespace: str) -> list[domish.Element] | None:
    """The elements C{owner} keeps in C{namespace}, or C{None} if never stored."""
    stored = await storage.accountData.get(owner.user, owner.host, KEY_PREFIX + namespace)
    if stored is None:
        return None
    return parseStored(stored, NS_PRIVATE)


async def writePrivate(storage, owner: JID, namespace: str, elements) -> None:
    """
    Replace what C{owner} keeps in C{namespace} by C{elements}, as a set
    would, without firing L{PRIVATE_STORED}.  The size limits of a client's
    set are not applied: the caller converts what the user already stored.
    """
    await storage.accountData.set(owner.user, owner.host, KEY_PREFIX + namespace,
                                  "".join(element.toXml() for element in elements))


@section("private")
@dataclasses.dataclass(frozen=True)
class PrivateConfig:
    max_size: int = option(
        65536, integer(minimum=1),
        "largest private XML stored for one namespace, in bytes of XML; "
        "larger sets get not-acceptable")
    max_namespaces: int = option(
        100, integer(minimum=1),
        "namespaces one account may keep private XML in; a set of one more "
        "gets not-acceptable")


def makeHandler(domain) -> "PrivateHandler":
    return PrivateHandler(domain)


@implementer(IDisco)
class PrivateHandler(XMPPHandler, IQHandlerMixin):
    """jabber:iq:private get and set for the user's own account."""

    iqHandlers = {PRIVATE_GET: "onGet", PRIVATE_SET: "onSet"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.maxSize = domain.config.private.max_size
        self.maxNamespaces = domain.config.private.max_namespaces

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(PRIVATE_GET, self.handleRequest)
        self.xmlstream.addObserver(PRIVATE_SET, self.handleRequest)


    def owner(self, iq: domish.Element) -> JID:
        """The account, when the sender is that account; else C{forbidden}."""
        sender, owner = addresses(iq)
        if owner.user is None or sender.userhostJID() != owner:
            raise StanzaError("forbidden")  # XEP-0049 §2.3, §3, §4
        return owner

    def payload(self, iq: domish.Element) -> list[domish.Element]:
        """The query's child elements, refusing an empty query and reserved namespaces."""
        query = next(iq.elements(NS_PRIVATE, "query"))
        children = list(query.elements())
        if not children:
            raise StanzaError("not-acceptable", text="the query needs a child element")
        for child in children:
            if (child.uri or "") in RESERVED:
                raise StanzaError("not-acceptable",
                                  text="namespace %r is reserved" % (child.uri or "",))
        return children

    async def onGet(self, iq: domish.Element) -> domish.Element:
        owner = self.owner(iq)
        children = self.payload(iq)
        namespaces = {child.uri for child in children}
        if len(namespaces) > 1:
            raise StanzaError("bad-request", text="ask for one namespace at a time")
        [namespace] = namespaces
        stored = await self.domain.storage.accountData.get(
            owner.user, owner.host, KEY_PREFIX + namespace)
        query = domish.Element((NS_PRIVATE, "query"))
        if stored is None:
            for child in children:
                query.addElement((child.uri, child.name))
        else:
            for element in parseStored(stored, NS_PRIVATE):
                query.addChild(element)
        return query

    async def onSet(self, iq: domish.Element) -> None:
        owner = self.owner(iq)
        byNamespace: dict[str, list[str]] = {}
        elements: dict[str, list[domish.Element]] = {}
        for child in self.payload(iq):
            byNamespace.setdefault(child.uri, []).append(child.toXml())
            elements.setdefault(child.uri, []).append(child)
        values = {}
        for namespace, parts in byNamespace.items():
            value = "".join(parts)
            if len(value.encode("utf-8")) > self.maxSize:
                raise StanzaError("not-acceptable", text="private XML larger than %d bytes"
                                  % (self.maxSize,))
            values[KEY_PREFIX + namespace] = value
        accountData = self.domain.storage.accountData
        stored = await accountData.getAll(owner.user, owner.host, KEY_PREFIX)
        if len(stored.keys() | values.keys()) > self.maxNamespaces:
            raise StanzaError("not-acceptable", text="no more than %d namespaces of private XML"
                              % (self.maxNamespaces,))
        for key, value in values.items():
            await accountData.set(owner.user, owner.host, key, value)
        for namespace, children in elements.items():
            # The answer waits for whoever mirrors the data, so the client's
            # next read anywhere sees its write.
            waited = self.domain.hooks.notify(
                PRIVATE_STORED, PrivateStoredEvent(owner, namespace, tuple(children)))
            if isinstance(waited, defer.Deferred):
                await waited

    # -- IDisco ------------------------------------------------------------

    def getDiscoInfo(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        # XEP-0049 has no discovery section; like ejabberd, announce the
        # feature on the server and to the account itself, the only one
        # allowed to use it.
        if nodeIdentifier or target.resource is not None:
            return []
        if target.user is None or requestor.userhostJID() == target:
            return [DiscoFeature(NS_PRIVATE)]
        return []

    def getDiscoItems(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        return []
