# -*- test-case-name: tests.test_bookmarks -*-
"""
Bookmarks of group chats kept in sync between the three places clients keep
them (XEP-0402 §5.3 "Compatibility", XEP-0411):

  - the old XEP-0048 form, one C{<storage xmlns='storage:bookmarks'/>} in
    private XML storage (XEP-0049, L{xmppd.features.private}), still what
    most older clients read and write;
  - the same element as the one item (id C{current}) of the PEP node
    C{storage:bookmarks} (XEP-0048 §3.3 over XEP-0223; XEP-0411);
  - the XEP-0402 form, one item per room in the account's PEP node
    C{urn:xmpp:bookmarks:1} (L{xmppd.features.pep}), item id the room JID.

An XEP-0048 list written to one of its two places (hook C{"private/stored"},
or a publish to the C{storage:bookmarks} node seen through C{"pep/changed"})
is copied to the other one (XEP-0411 §3: the PEP node's subscribers are
told, unless the list did not change) and converted into the XEP-0402 node: a conference that is new or changed is
published (with the publish-options of XEP-0402 §3 when the node does not
exist yet: C{persist_items}, C{max_items} C{max}, C{send_last_published_item}
C{never}, C{access_model} C{whitelist}), and an item whose room is no longer
in the list is retracted with a notification (§3.3, XEP-0060 §7.2.2.1), so
the user's other clients hear of it.  A publish or retract on the XEP-0402
node (hook C{"pep/changed"}; a purge or deletion of the node counts as a
retract of every item) rewrites both XEP-0048 places: the conferences
of every item, after the C{<url/>} bookmarks and other children of the old
storage element, which XEP-0402 does not carry and which must not be lost.
A retract of the legacy PEP item converts nothing (XEP-0411 defines none).
Bookmarks stored before the feature ran are converted when the account
first binds a resource after start (C{"session/bound"}, XEP-0411 §4), if it
has no XEP-0402 node yet.

Conversion rules (XEP-0402 §5.3.1-§5.3.2, as Prosody's mod_bookmarks does):
the C{jid} attribute and the item id are the same room JID; C{name} and
C{autojoin} (C{"1"} and C{"true"} are true) carry over; C{nick} and
C{password} carry over; other children of an old conference go into the new
one's C{<extensions/>} and come back out of it, so a round trip keeps them.
A conference without a valid room JID, and an item that is not a
C{<conference/>} of XEP-0402, are skipped (logged): private XML is stored
as the client sent it (XEP-0049 does not validate payloads), and PEP has
already answered the publish.

No loops: a conversion writes private XML through
L{xmppd.features.private.writePrivate}, which fires no hook, and publishes
with C{origin="bookmarks"}, which this feature ignores.  No lost writes: the
user's own write has succeeded before its hook fires; a conversion that
fails is logged and leaves the other form as it was.  The write is answered
once its conversion is done, so the client's next read of either form sees
it.  Conversions of one account run one at a time, in the order the writes
were made.

The server announces C{urn:xmpp:bookmarks:1#compat} and C{#compat-pep}
(XEP-0402 §5.3) and C{urn:xmpp:bookmarks-conversion:0} (XEP-0411 §2) on
the account's bare JID, to the account itself.

Implements: XEP-0402 1.2.0 (§5.3), XEP-0411 1.1.0, XEP-0048 1.2
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import OBSERVE
from xmppd.features.pep.engine import PEP_CHANGED
from xmppd.features.pep.handler import PEPHandler
from xmppd.features.private import PRIVATE_STORED, readPrivate, writePrivate
from xmppd.stream.xmlparser import XMLPolicyError, parseStored

__all__ = ["BookmarksHandler", "NS_BOOKMARKS", "NS_BOOKMARKS_COMPAT",
           "NS_BOOKMARKS_COMPAT_PEP", "NS_CONVERSION", "NS_LEGACY", "makeHandler"]

NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_BOOKMARKS_COMPAT = NS_BOOKMARKS + "#compat"
NS_BOOKMARKS_COMPAT_PEP = NS_BOOKMARKS + "#compat-pep"
NS_CONVERSION = "urn:xmpp:bookmarks-conversion:0"
NS_LEGACY = "storage:bookmarks"

#: Where XEP-0048 bookmarks were written (L{BookmarksHandler.legacyChanged}).
PRIVATE, LEGACY_PEP = "private", "pep"

#: The origin this feature's own PEP writes carry (L{PEP_CHANGED}).
ORIGIN = "bookmarks"

#: Accounts whose old bookmarks are remembered as looked at (a few bytes each).
REMEMBERED = 10000

#: XEP-0402 §3 "publish-options" for a node this feature creates.
PUBLISH_OPTIONS = {
    "pubsub#persist_items": "true",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
    "pubsub#access_model": "whitelist",
}

#: XEP-0048 §3.3 / XEP-0223 publish-options of the legacy PEP node.
LEGACY_OPTIONS = {
    "pubsub#persist_items": "true",
    "pubsub#access_model": "whitelist",
    "pubsub#send_last_published_item": "never",
}


@dataclasses.dataclass(frozen=True)
class Bookmark:
    """One conference bookmark, whichever form it came from."""

    jid: str
    name: str | None = None
    autojoin: bool = False
    nick: str | None = None
    password: str | None = None
    #: Other children, serialized (XEP-0402 C{<extensions/>}).
    extensions: tuple[str, ...] = ()

    # -- XEP-0048 ---------------------------------------------------------------

    @classmethod
    def fromLegacy(cls, conference: domish.Element) -> "Bookmark":
        """A bookmark from an XEP-0048 C{<conference/>}; C{ValueError} if it names no room."""
        nick = password = None
        extensions = []
        for child in conference.elements():
            if child.uri == NS_LEGACY and child.name == "nick":
                nick = str(child)
            elif child.uri == NS_LEGACY and child.name == "password":
                password = str(child)
            else:
                extensions.append(child.toXml())
        return cls(roomJID(conference.getAttribute("jid")), conference.getAttribute("name"),
                   isTrue(conference.getAttribute("autojoin")), nick, password,
                   tuple(extensions))

    def toLegacy(self) -> domish.Element:
        conference = domish.Element((NS_LEGACY, "conference"))
        conference["jid"] = self.jid
        if self.name is not None:
            conference["name"] = self.name
        conference["autojoin"] = "true" if self.autojoin else "false"
        self.addChildren(conference, NS_LEGACY)
        return conference

    # -- XEP-0402 ---------------------------------------------------------------

    @classmethod
    def fromItem(cls, itemId: str, conference: domish.Element) -> "Bookmark":
        """A bookmark from an XEP-0402 item; C{ValueError} if it is not one."""
        if (conference.uri, conference.name) != (NS_BOOKMARKS, "conference"):
            raise ValueError("not a conference of %s" % (NS_BOOKMARKS,))
        nick = password = None
        extensions: list[str] = []
        for child in conference.elements():
            if child.uri != NS_BOOKMARKS:
                continue
            if child.name == "nick":
                nick = str(child)
            elif child.name == "password":
                password = str(child)
            elif child.name == "extensions":
                extensions.extend(e.toXml() for e in child.elements())
        return cls(roomJID(itemId), conference.getAttribute("name"),
                   isTrue(conference.getAttribute("autojoin")), nick, password,
                   tuple(extensions))

    def toItem(self) -> domish.Element:
        item = domish.Element((None, "item"))
        item["id"] = self.jid
        conference = item.addElement((NS_BOOKMARKS, "conference"))
        if self.name is not None:
            conference["name"] = self.name
        conference["autojoin"] = "true" if self.autojoin else "false"
        self.addChildren(conference, NS_BOOKMARKS)
        if self.extensions:
            extensions = conference.addElement((NS_BOOKMARKS, "extensions"))
            for element in parseStored("".join(self.extensions), NS_BOOKMARKS):
                extensions.addChild(element)
        return item

    def addChildren(self, conference: domish.Element, uri: str) -> None:
        if self.nick is not None:
            conference.addElement((uri, "nick"), content=self.nick)
        if self.password is not None:
            conference.addElement((uri, "password"), content=self.password)
        if uri == NS_LEGACY:
            for element in parseStored("".join(self.extensions), NS_LEGACY):
                conference.addChild(element)


def sameXML(stored: str, element: domish.Element) -> bool:
    """Whether the stored payload C{stored} serializes as C{element} does."""
    try:
        [parsed] = parseStored(stored, NS_LEGACY)
    except (ValueError, XMLPolicyError):
        return False
    return parsed.toXml() == element.toXml()


def isTrue(value: str | None) -> bool:
    return value in ("1", "true")


def roomJID(value: str | None) -> str:
    """The normalized bare JID C{value}; C{ValueError} if it is not one."""
    if not value:
        raise ValueError("no room JID")
    try:
        jid = JID(value)
    except InvalidFormat as e:
        raise ValueError("bad room JID %r" % (value,)) from e
    if jid.resource is not None:
        raise ValueError("a room JID has no resource: %r" % (value,))
    return jid.userhost()


@implementer(IDisco)
class BookmarksHandler(XMPPHandler):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        #: Bare JID -> the Deferred of that account's last conversion.
        self.pending: dict[str, defer.Deferred] = {}
        #: Accounts whose old bookmarks were looked at since start, least
        #: recently bound first (L{REMEMBERED} at most).
        self.checked: OrderedDict[str, None] = OrderedDict()
        self.running = False

    def connectionInitialized(self) -> None:
        self.running = True
        self.domain.hooks.add(PRIVATE_STORED, self.onPrivateStored, OBSERVE)
        self.domain.hooks.add(PEP_CHANGED, self.onPEPChanged, OBSERVE)
        self.domain.hooks.add("session/bound", self.onSessionBound, OBSERVE)

    def connectionLost(self, reason) -> None:
        # Conversions still queued would find the storage closed.
        self.running = False

    def pep(self) -> PEPHandler | None:
        for handler in self.domain.handlers:
            if isinstance(handler, PEPHandler):
                return handler
        return None

    # -- events ----------------------------------------------------------------

    # Both return the conversion's Deferred (which never fails), so the
    # user's write is answered once the other form is written too.

    def onPrivateStored(self, event) -> defer.Deferred | None:
        if event.namespace == NS_LEGACY:
            return self.serialize(event.owner, self.legacyChanged, event.owner,
                                  event.elements, PRIVATE)
        return None

    def onPEPChanged(self, event) -> defer.Deferred | None:
        if event.origin == ORIGIN:
            return None
        if event.node == NS_BOOKMARKS:
            return self.serialize(event.owner, self.pepToLegacy, event.owner)
        if event.node == NS_LEGACY and event.published:
            storages = [child for item in event.published for child in item.elements()
                        if (child.uri, child.name) == (NS_LEGACY, "storage")]
            if storages:
                return self.serialize(event.owner, self.legacyChanged, event.owner,
                                      storages[-1:], LEGACY_PEP)
        return None

    def onSessionBound(self, session) -> None:
        """
        XEP-0411 §4: bookmarks stored before this feature ran are converted
        when the account first binds a resource, before its client reads them.
        """
        owner = session.jid.userhostJID()
        key = owner.userhost()
        if key in self.checked:
            self.checked.move_to_end(key)
            return None
        self.checked[key] = None
        while len(self.checked) > REMEMBERED:
            self.checked.popitem(last=False)
        self.serialize(owner, self.migrate, owner, background=True)
        return None

    async def migrate(self, owner: JID) -> None:
        """Convert the XEP-0048 list of an account that has no XEP-0402 node yet."""
        pep = self.pep()
        if pep is None:
            return
        engine = pep.engineFor(owner)
        if await engine.store.getNode(engine.serviceText, NS_BOOKMARKS) is not None:
            return
        source, stored = PRIVATE, await readPrivate(self.domain.storage, owner, NS_LEGACY)
        if not any(True for e in stored or () for _ in e.elements(NS_LEGACY, "conference")):
            found = []
            if await engine.store.getNode(engine.serviceText, NS_LEGACY) is not None:
                found = await engine.store.getItems(engine.serviceText, NS_LEGACY, maxItems=1)
            if not found or not found[0].payload:
                return
            source, stored = LEGACY_PEP, parseStored(found[0].payload, NS_LEGACY)
        self.log.info("Bookmarks of {owner}: converting the XEP-0048 list kept in {source}",
                      owner=owner.userhost(), source=source)
        await self.legacyChanged(owner, stored, source)

    def serialize(self, owner: JID, convert, *args, background: bool = False) -> defer.Deferred:
        """
        Run C{convert(*args)} after the account's earlier conversions.  A
        C{background} one (nobody waits for it; it may still run when the
        node stops) that fails is logged as a warning, not as a failure.
        """
        key = owner.userhost()
        previous = self.pending.get(key)

        async def run():
            if previous is not None:
                try:
                    await previous
                except Exception:  # logged where it failed; this one still runs
                    pass
            if self.running:
                await convert(*args)

        def failed(failure):
            if background:
                self.log.warn("Bookmarks of {owner} not converted at login: {error}",
                              owner=key, error=failure.getErrorMessage())
            else:
                self.log.failure("Bookmarks conversion for {owner} failed", failure, owner=key)

        d = defer.ensureDeferred(run())
        d.addErrback(failed)
        self.pending[key] = d

        def done(result):
            if self.pending.get(key) is d:
                del self.pending[key]
            return result
        d.addBoth(done)
        return d

    # -- XEP-0048 (private XML or PEP) -> XEP-0402 and the other XEP-0048 form --

    async def legacyChanged(self, owner: JID, elements, source: str) -> None:
        """XEP-0048 bookmarks were written to C{source}: the two other places follow."""
        await self.legacyToPEP(owner, elements)
        storage = next((e for e in elements if (e.uri, e.name) == (NS_LEGACY, "storage")),
                       None)
        if storage is None:
            return
        if source != PRIVATE:
            await writePrivate(self.domain.storage, owner, NS_LEGACY, [storage])
        if source != LEGACY_PEP:
            await self.publishLegacyPEP(owner, storage)

    async def publishLegacyPEP(self, owner: JID, storage: domish.Element) -> None:
        """
        XEP-0411 §3: the XEP-0048 list as the one item of the PEP node
        C{storage:bookmarks} (XEP-0048 §3.3, XEP-0223 options), so its
        subscribers are told; nothing is sent when the list is unchanged.
        """
        pep = self.pep()
        if pep is None:
            return
        engine = pep.engineFor(owner)
        record = await engine.store.getNode(engine.serviceText, NS_LEGACY)
        if record is not None:
            found = await engine.store.getItems(engine.serviceText, NS_LEGACY)
            if found and found[0].payload and sameXML(found[0].payload, storage):
                return
        item = domish.Element((None, "item"))
        item["id"] = "current"
        item.addChild(storage)
        await engine.publish(owner, NS_LEGACY, [item],
                             None if record is not None else dict(LEGACY_OPTIONS),
                             origin=ORIGIN)

    async def legacyToPEP(self, owner: JID, elements) -> None:
        pep = self.pep()
        if pep is None:
            return
        wanted: dict[str, Bookmark] = {}
        for storage in elements:
            if storage.name != "storage":
                continue
            for conference in storage.elements(NS_LEGACY, "conference"):
                try:
                    bookmark = Bookmark.fromLegacy(conference)
                except ValueError as e:
                    self.log.info("Bookmarks of {owner}: a conference skipped: {why}",
                                  owner=owner.userhost(), why=str(e))
                    continue
                wanted[bookmark.jid] = bookmark
        engine = pep.engineFor(owner)
        current = await self.currentItems(engine)
        exists = current is not None
        current = current or {}
        if exists:
            await self.makeRoom(engine, owner, len(set(wanted) | set(current)))
        for jid, bookmark in wanted.items():
            if current.get(jid) == bookmark:
                continue
            await engine.publish(owner, NS_BOOKMARKS, [bookmark.toItem()],
                                 None if exists else dict(PUBLISH_OPTIONS), origin=ORIGIN)
            exists = True
        # An item this feature cannot read was never in the old list: kept.
        gone = [itemId for itemId, bookmark in current.items()
                if bookmark is not None and itemId not in wanted]
        if gone:
            await engine.retract(owner, NS_BOOKMARKS, gone, notify=True, origin=ORIGIN)

    async def makeRoom(self, engine, owner: JID, count: int) -> None:
        """
        A node made by a client without XEP-0402's publish-options keeps
        PEP's default of one item: converting a list of several rooms into
        it would drop all but the last, so it is set to keep C{max} first
        (as Prosody does), rather than lose bookmarks.
        """
        record = await engine.store.getNode(engine.serviceText, NS_BOOKMARKS)
        if record is None or engine.config(record).maxItems >= count:
            return
        self.log.info("Bookmarks of {owner}: the node kept too few items; now max",
                      owner=owner.userhost())
        await engine.configureNode(owner, NS_BOOKMARKS, {"pubsub#max_items": "max"})

    async def currentItems(self, engine) -> dict | None:
        """The node's items by id (C{None}: no node), bad ones as C{None} values."""
        record = await engine.store.getNode(engine.serviceText, NS_BOOKMARKS)
        if record is None:
            return None
        found: dict[str, Bookmark | None] = {}
        for item in await engine.store.getItems(engine.serviceText, NS_BOOKMARKS):
            found[item.id] = self.parseItem(engine.serviceText, item)
        return found

    def parseItem(self, owner: str, item) -> Bookmark | None:
        try:
            [payload] = parseStored(item.payload, NS_BOOKMARKS)
            return Bookmark.fromItem(item.id, payload)
        except (ValueError, XMLPolicyError) as e:
            self.log.info("Bookmarks of {owner}: item {id} skipped: {why}",
                          owner=owner, id=item.id, why=str(e))
            return None

    # -- XEP-0402 -> XEP-0048 in private XML ------------------------------------

    async def pepToLegacy(self, owner: JID) -> None:
        pep = self.pep()
        if pep is None:
            return
        engine = pep.engineFor(owner)
        current = await self.currentItems(engine) or {}
        storage = domish.Element((NS_LEGACY, "storage"))
        stored = await readPrivate(self.domain.storage, owner, NS_LEGACY) or []
        # Keep what XEP-0402 does not carry (<url/> bookmarks, other children).
        for old in stored:
            if old.name != "storage":
                continue
            for child in old.elements():
                if (child.uri, child.name) != (NS_LEGACY, "conference"):
                    storage.addChild(child)
        # Oldest first, as the items were published.
        for bookmark in reversed([b for b in current.values() if b is not None]):
            storage.addChild(bookmark.toLegacy())
        await writePrivate(self.domain.storage, owner, NS_LEGACY, [storage])
        await self.publishLegacyPEP(owner, storage)

    # -- IDisco (XEP-0402 §5.3) -------------------------------------------------

    def getDiscoInfo(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        if (nodeIdentifier or target.user is None or target.resource is not None
                or requestor.userhostJID() != target or self.pep() is None):
            return []
        return [DiscoFeature(NS_BOOKMARKS_COMPAT), DiscoFeature(NS_BOOKMARKS_COMPAT_PEP),
                DiscoFeature(NS_CONVERSION)]

    def getDiscoItems(self, requestor: JID, target: JID, nodeIdentifier: str = ""):
        return []


def makeHandler(domain) -> BookmarksHandler:
    return BookmarksHandler(domain)
