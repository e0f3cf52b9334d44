# -*- test-case-name: tests.test_avatars -*-
"""
The C{"avatars"} feature: user avatars (XEP-0084) kept in step with the
vCard photo (XEP-0398), and the photo's hash in presence (XEP-0153).

XEP-0084 itself needs nothing of the server beyond PEP: the data node
(C{urn:xmpp:avatar:data}, the base64 image, item id its SHA-1) and the
metadata node (C{urn:xmpp:avatar:metadata}, C{<info/>} with id, bytes,
type, width, height) are ordinary PEP nodes (L{xmppd.features.pep}).  This
feature adds, through PEP's and the vCard feature's hooks only:

  - XEP-0398 §3.1, PEP to vCard: when an account publishes metadata, the
    C{<info/>} without C{url} names an item of its data node; its image
    (checked against the SHA-1 id, as the XEP says a service SHOULD)
    becomes the vCard's C{PHOTO} (C{TYPE}, C{BINVAL}), the rest of the vCard
    untouched.  An empty C{<metadata/>} (avatar disabled, XEP-0084 §4.5)
    removes the photo.
  - XEP-0398 §3.2, vCard to PEP (the MAY of the XEP): when a vCard with a
    valid photo is stored, its image is published to the data node and then
    its metadata (id the SHA-1, bytes, type) to the metadata node, as the
    account itself, so contacts get the notification.  A vCard without a
    photo leaves PEP alone (an old client that only edits a name does not
    erase a PEP avatar).
  - No loops: each direction first compares the SHA-1 it would write with
    what the other side already holds, and does nothing when they match, so
    a conversion's own write, heard back through the other hook, stops there.
  - XEP-0398 §2: disco#info on an account lists
    C{urn:xmpp:pep-vcard-conversion:0}.
  - XEP-0398 §4, XEP-0153 §4.1: a user's available presence (broadcast and
    directed, MUC joins included) gets
    C{<x xmlns='vcard-temp:x:update'><photo>SHA1</photo></x>} in place of
    whatever the client put there (an empty C{<photo/>} when the account has
    no photo), so contacts see the current hash; except that a presence whose
    client put an empty C{<photo/>} itself goes untouched, as §4 requires.
    As §5 says, a new avatar does not make the server resend presence.  The hash
    is kept per account (bounded, least recently used out), filled from the
    stored vCard once and replaced whenever the vCard changes
    (C{"vcard/changed"}), so presence never reads the vCard; at most
    C{[avatars] accounts_cached} accounts.

Hooks used: C{"pep/published"} (L{xmppd.features.pep.handler.PEP_PUBLISHED}),
C{"vcard/changed"} (L{xmppd.features.vcard.VCARD_CHANGED}),
C{"c2s/outgoing"} (band STAMP), C{"account/removed"}.

Implements: XEP-0084 1.1.4, XEP-0153 1.1, XEP-0398 1.0.0
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.config import integer, option, section
from xmppd.core.hooks import OBSERVE, STAMP
from xmppd.features.pep.handler import PEP_PUBLISHED, pepOf
from xmppd.features.vcard import NS_VCARD, VCARD_CHANGED, loadVCard, storeVCard

__all__ = ["AvatarsConfig", "AvatarsHandler", "NS_CONVERSION", "NS_DATA", "NS_METADATA", "NS_UPDATE",
           "makeHandler", "photoOf"]

NS_DATA = "urn:xmpp:avatar:data"
NS_METADATA = "urn:xmpp:avatar:metadata"
NS_UPDATE = "vcard-temp:x:update"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"


@section("avatars")
@dataclasses.dataclass(frozen=True)
class AvatarsConfig:
    accounts_cached: int = option(
        10000, integer(1),
        "accounts whose vCard photo hash is kept in memory for their presence "
        "(XEP-0153); others read their stored vCard once when they send presence")


def photoOf(vcard: domish.Element | None) -> tuple[str, str, bytes] | None:
    """
    C{(sha1 hex, type, image bytes)} of C{vcard}'s C{PHOTO/BINVAL}, or
    C{None} when it has none or its BINVAL is not base64 (XEP-0153 §4.5:
    the hash is of the decoded image).
    """
    if vcard is None:
        return None
    for photo in vcard.elements(NS_VCARD, "PHOTO"):
        binval = next(photo.elements(NS_VCARD, "BINVAL"), None)
        if binval is None:
            continue
        try:
            image = base64.b64decode("".join(str(binval).split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        if not image:
            return None
        kind = next(photo.elements(NS_VCARD, "TYPE"), None)
        return hashlib.sha1(image).hexdigest(), str(kind or "").strip(), image
    return None


def localInfo(metadata: domish.Element | None) -> domish.Element | None:
    """XEP-0398 §3.1: the metadata's C{<info/>} that does not point to a URL."""
    if metadata is None:
        return None
    for info in metadata.elements(NS_METADATA, "info"):
        if not info.getAttribute("url") and info.getAttribute("id"):
            return info
    return None


@implementer(IDisco)
class AvatarsHandler(XMPPHandler):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.maxCached = domain.config.avatars.accounts_cached
        #: Bare JID -> SHA-1 hex of the vCard photo, "" for none.
        self.hashes: OrderedDict[str, str] = OrderedDict()

    def connectionInitialized(self) -> None:
        hooks = self.domain.hooks
        hooks.add(PEP_PUBLISHED, self.onPublished, OBSERVE)
        hooks.add(VCARD_CHANGED, self.onVCardChanged, OBSERVE)
        hooks.add("c2s/outgoing", self.onOutgoing, STAMP)
        hooks.add("account/removed", self.onAccountRemoved, OBSERVE)

    # -- the hash cache ---------------------------------------------------------

    def remember(self, owner: str, photoHash: str) -> None:
        self.hashes[owner] = photoHash
        self.hashes.move_to_end(owner)
        while len(self.hashes) > self.maxCached:
            self.hashes.popitem(last=False)

    def onAccountRemoved(self, event) -> None:
        self.hashes.pop("%s@%s" % (event.username, event.domain), None)

    # -- XEP-0398 §3.1: PEP to vCard ----------------------------------------------

    def onPublished(self, event) -> None:
        if event.node != NS_METADATA or event.owner.host != self.domain.domain:
            return
        self.run(self.pepToVCard(event.owner, event.payload))

    async def pepToVCard(self, owner: JID, metadata: domish.Element | None) -> None:
        pep = pepOf(self.domain)
        vcard = await loadVCard(self.domain, owner.user, owner.host)
        current = photoOf(vcard)
        info = localInfo(metadata)
        if info is None:
            if metadata is not None and current is not None and \
                    not any(True for _ in metadata.elements(NS_METADATA, "info")):
                # XEP-0084 §4.5: an empty <metadata/> disables the avatar.
                await storeVCard(self.domain, owner.user, owner.host,
                                 withPhoto(vcard, None, None))
            return
        itemId = info["id"]
        if current is not None and current[0] == itemId:
            self.remember(owner.userhost(), itemId)
            return
        if pep is None:
            return
        found = await pep.itemsOf(owner, NS_DATA, [itemId])
        data = found[0][1] if found else None
        if data is None:
            self.log.info("Avatar metadata {id} of {owner} names no data item",
                          id=itemId, owner=owner.userhost())
            return
        try:
            image = base64.b64decode("".join(str(data).split()), validate=True)
        except (binascii.Error, ValueError):
            return
        if hashlib.sha1(image).hexdigest() != itemId.lower():
            self.log.info("Avatar data of {owner} does not match its id {id}",
                          owner=owner.userhost(), id=itemId)
            return
        kind = info.getAttribute("type") or "image/png"
        await storeVCard(self.domain, owner.user, owner.host,
                         withPhoto(vcard, kind, base64.b64encode(image).decode("ascii")))

    # -- XEP-0398 §3.2: vCard to PEP ----------------------------------------------

    def onVCardChanged(self, event) -> None:
        owner = event.owner
        if owner.host != self.domain.domain:
            return
        photo = photoOf(event.vcard)
        self.remember(owner.userhost(), photo[0] if photo else "")
        if photo is not None:
            self.run(self.vcardToPEP(owner, photo))

    async def vcardToPEP(self, owner: JID, photo) -> None:
        pep = pepOf(self.domain)
        if pep is None:
            return
        photoHash, kind, image = photo
        current = await pep.itemsOf(owner, NS_METADATA, maxItems=1)
        info = localInfo(current[0][1]) if current else None
        if info is not None and info["id"].lower() == photoHash:
            return
        item = domish.Element((None, "item"))
        item["id"] = photoHash
        item.addElement((NS_DATA, "data"), content=base64.b64encode(image).decode("ascii"))
        await pep.publishFor(owner, NS_DATA, item)
        item = domish.Element((None, "item"))
        item["id"] = photoHash
        info = item.addElement((NS_METADATA, "metadata")).addElement("info")
        info["id"] = photoHash
        info["bytes"] = str(len(image))
        info["type"] = kind or "image/png"
        await pep.publishFor(owner, NS_METADATA, item)

    # -- XEP-0398 §4, XEP-0153 §4.1: the hash in presence ------------------------

    def onOutgoing(self, event):
        stanza, session = event.stanza, event.session
        if (stanza.name != "presence" or session is None or stanza.getAttribute("type")
                or session.jid.host != self.domain.domain):
            return None
        owner = session.jid.userhost()
        known = self.hashes.get(owner)
        if known is not None:
            self.hashes.move_to_end(owner)
            stamp(stanza, known)
            return None
        d = defer.ensureDeferred(loadVCard(self.domain, session.jid.user, session.jid.host))

        def loaded(vcard):
            photo = photoOf(vcard)
            # A change heard meanwhile wins over what was read before it.
            photoHash = self.hashes.get(owner, photo[0] if photo else "")
            self.remember(owner, photoHash)
            stamp(stanza, photoHash)

        d.addCallback(loaded)
        d.addErrback(lambda failure: self.log.failure("Avatars: reading a vCard", failure))
        return d

    def run(self, coroutine) -> None:
        d = defer.ensureDeferred(coroutine)
        d.addErrback(lambda failure: self.log.failure("Avatars: converting", failure))

    # -- IDisco (XEP-0398 §2) ------------------------------------------------------

    def getDiscoInfo(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        if nodeIdentifier or target.user is None or target.resource is not None:
            return []
        return [DiscoFeature(NS_CONVERSION)]

    def getDiscoItems(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        return []


def stamp(presence: domish.Element, photoHash: str) -> None:
    """
    Replace C{presence}'s XEP-0153 update element with one giving
    C{photoHash}, unless the client sent an empty C{<photo/>} (XEP-0398 §4:
    left as it is).
    """
    updates = list(presence.elements(NS_UPDATE, "x"))
    for update in updates:
        for photo in update.elements(NS_UPDATE, "photo"):
            if not str(photo).strip():
                return
    for child in updates:
        presence.children.remove(child)
    update = presence.addElement((NS_UPDATE, "x"))
    photo = update.addElement("photo")
    if photoHash:
        photo.addContent(photoHash)


def withPhoto(vcard: domish.Element | None, kind: str | None,
              binval: str | None) -> domish.Element:
    """A copy of C{vcard} (or a new one) whose C{PHOTO} is C{kind}/C{binval} (none: removed)."""
    fresh = domish.Element((NS_VCARD, "vCard"))
    if vcard is not None:
        for child in vcard.children:
            if isinstance(child, domish.Element) and child.name == "PHOTO" \
                    and child.uri == NS_VCARD:
                continue
            fresh.addChild(child)
    if binval is not None:
        photo = fresh.addElement("PHOTO")
        photo.addElement("TYPE", content=kind)
        photo.addElement("BINVAL", content=binval)
    return fresh


def makeHandler(domain) -> AvatarsHandler:
    return AvatarsHandler(domain)

