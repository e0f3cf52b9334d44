# -*- test-case-name: tests.test_vcard -*-
"""
vcard-temp: each account's vCard, stored by the server and answered on the
account's behalf (XEP-0054 §3).

  - §3.1: an IQ get with no C{to} (or to the user's own bare JID) returns the
    user's vCard, or an empty C{<vCard/>} when there is none (the XEP allows
    that or C{item-not-found}; clients asking for their own card at login
    take the empty one more gracefully).
  - §3.2: an IQ set with no C{to} (or to the own bare JID) replaces the whole
    vCard; a set addressed to anyone else is C{forbidden}.  A set of an
    empty C{<vCard/>} is kept as it is: a card its owner cleared reads back
    empty, to the owner and to others alike.
  - §3.3: an IQ get to another account's bare JID is answered by the server,
    never forwarded to the user's resources.  When that account has no
    vCard, or does not exist, the answer is C{service-unavailable}, the
    error of the XEP's own example: the same error for both, so vCard
    queries do not tell strangers which accounts exist (RFC 6121 §8.5.1
    answers IQs to non-existent accounts with it too).  An account that
    cleared its card has one, empty, and that is the answer.
  - The server itself has no vCard: a get to the domain is C{item-not-found}
    (§3.1's condition for "no vCard"), a set to it C{forbidden} (§3.2).
  - A vCard larger than C{[vcard] max_size} bytes of XML is refused with
    C{not-acceptable} (RFC 6120 §8.3.3.9, type C{modify}: the request does
    not meet a criterion of the server and the client can send a smaller
    one), with a text giving the limit.

The vCard is kept in the account data under C{"vcard"} as its own
serialization (C{toXml()}), and read back with the hardened parser (see
L{xmppd.stream.xmlparser.parseStored}).  Disco announces C{vcard-temp} for the
server and for accounts (§4).

For features that keep something in step with the vCard (avatars,
XEP-0398), the module declares L{VCARD_CHANGED} (C{"vcard/changed"}, a
L{VCardChangedEvent}, C{notify}), fired after an account's vCard was
stored or deleted, and offers L{loadVCard} and L{storeVCard} (which fires
it too).

Implements: XEP-0054 v1.2 (vcard-temp)
"""

from __future__ import annotations

import dataclasses

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.config import integer, option, section
from xmppd.core.events import declare
from xmppd.core.jid import makeJID
from xmppd.core.stanzas import addresses
from xmppd.stream.xmlparser import parseStored

__all__ = ["NS_VCARD", "VCARD_CHANGED", "VCardChangedEvent", "loadVCard", "makeHandler",
           "storeVCard"]

NS_VCARD = "vcard-temp"

VCARD_GET = "/iq[@type='get']/vCard[@xmlns='%s']" % NS_VCARD
VCARD_SET = "/iq[@type='set']/vCard[@xmlns='%s']" % NS_VCARD

#: The account-data key of the stored vCard.
KEY = "vcard"


@dataclasses.dataclass
class VCardChangedEvent:
    """Payload of L{VCARD_CHANGED}."""

    #: The account's bare JID.
    owner: JID
    #: The vCard now stored, or C{None} when it was deleted.
    vcard: domish.Element | None


#: An account's vCard was stored or deleted (L{VCardChangedEvent}).
VCARD_CHANGED = declare("vcard/changed", VCardChangedEvent, False,
                        "an account's vCard was stored or deleted")


async def loadVCard(domain, user: str, host: str) -> domish.Element | None:
    """The stored vCard of C{user@host} on C{domain}, or C{None}."""
    stored = await domain.storage.accountData.get(user, host, KEY)
    if stored is None:
        return None
    return parseStored(stored, NS_VCARD)[0]


async def storeVCard(domain, user: str, host: str, vcard: domish.Element | None) -> None:
    """
    Store C{vcard} (C{None}: delete it) as C{user@host}'s and fire
    L{VCARD_CHANGED}.  No size check: callers store what they built.
    """
    accountData = domain.storage.accountData
    if vcard is None:
        await accountData.delete(user, host, KEY)
    else:
        await accountData.set(user, host, KEY, vcard.toXml())
    domain.hooks.notify(VCARD_CHANGED, VCardChangedEvent(makeJID(user, host), vcard))


@section("vcard")
@dataclasses.dataclass(frozen=True)
class VCardConfig:
    max_size: int = option(
        65536, integer(minimum=1),
        "largest vCard stored, in bytes of XML (photos included); larger "
        "ones get not-acceptable")


def makeHandler(domain) -> "VCardHandler":
    return VCardHandler(domain)


@implementer(IDisco)
class VCardHandler(XMPPHandler, IQHandlerMixin):
    """Stores and serves vCards; see the module docstring."""

    iqHandlers = {VCARD_GET: "onGet", VCARD_SET: "onSet"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.maxSize = domain.config.vcard.max_size

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(VCARD_GET, self.handleRequest)
        self.xmlstream.addObserver(VCARD_SET, self.handleRequest)


    async def onGet(self, iq: domish.Element) -> domish.Element:
        sender, owner = addresses(iq)
        if owner.user is None:
            raise StanzaError("item-not-found")
        stored = await loadVCard(self.domain, owner.user, owner.host)
        if stored is not None:
            return stored
        if sender.userhostJID() == owner:
            return domish.Element((NS_VCARD, "vCard"))
        raise StanzaError("service-unavailable")

    async def onSet(self, iq: domish.Element) -> None:
        sender, owner = addresses(iq)
        if owner.user is None or sender.userhostJID() != owner:
            raise StanzaError("forbidden")
        vcard = next(iq.elements(NS_VCARD, "vCard"))
        if len(vcard.toXml().encode("utf-8")) > self.maxSize:
            raise StanzaError("not-acceptable",
                              text="vCard larger than %d bytes" % (self.maxSize,))
        await storeVCard(self.domain, owner.user, owner.host, vcard)

    # -- IDisco ------------------------------------------------------------

    def getDiscoInfo(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        if nodeIdentifier or target.resource is not None:
            return []
        return [DiscoFeature(NS_VCARD)]

    def getDiscoItems(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        return []
