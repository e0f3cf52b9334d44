"""
Tests for L{xmppd.features.bookmarks}: group-chat bookmarks kept in sync
between XEP-0048 private XML storage and XEP-0402 PEP items (XEP-0402
§5.3), over one in-memory domain with private, pep and bookmarks.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID

from tests.domainhelpers import DOMAIN, Domain
from tests.test_pep import JULIET, JULIET2, ROMEO, PEPDomain, answer, events
from xmppd.core.local import LocalDomain
from xmppd.features.bookmarks import NS_BOOKMARKS, Bookmark, BookmarksHandler
from xmppd.features.clientcaps.tracker import capsOf
from xmppd.features.pep.engine import PEP_CHANGED
from xmppd.features.private import PRIVATE_STORED
from xmppd.storage.interfaces import RosterItem
from xmppd.stream.xmlparser import parseStored

NS_PRIVATE = "jabber:iq:private"
NS_LEGACY = "storage:bookmarks"
NS_INFO = "http://jabber.org/protocol/disco#info"
OWNER = "juliet@example.org"

OPTIONS = {"FORM_TYPE": "http://jabber.org/protocol/pubsub#publish-options",
           "pubsub#persist_items": "true", "pubsub#max_items": "max",
           "pubsub#send_last_published_item": "never",
           "pubsub#access_model": "whitelist"}

# XEP-0048 §3.2 Example 3, with a URL bookmark next to the conference.
LEGACY = """<storage xmlns='storage:bookmarks'>
  <conference name='Council of Oberon' autojoin='true' jid='council@conference.underhill.org'>
    <nick>Puck</nick><password>titania</password>
  </conference>
  <conference jid='orchard@conference.example.org'/>
  <url name='Complete Works' url='http://the-tech.mit.edu/Shakespeare/'/>
</storage>"""


class BookmarksDomain(PEPDomain):
    """A PEP domain that also runs private XML storage and bookmarks conversion."""

    def __init__(self, tmp_path, features=("disco", "clientcaps", "private", "pep",
                                           "bookmarks")):
        Domain.__init__(self, tmp_path, features=features,
                        users=("juliet", "romeo", "tybalt"))
        self.caps = capsOf(self.domain)
        self.storage.rosters.setItem("juliet", DOMAIN, RosterItem("romeo@example.org",
                                                                  subscription="both"))
        self.storage.rosters.setItem("romeo", DOMAIN, RosterItem("juliet@example.org",
                                                                 subscription="both"))
        self.ids = iter(range(1, 10000))

    def setLegacy(self, sender, xml=LEGACY):
        return self.iq(sender, "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, xml))

    def legacy(self, owner=OWNER):
        """The XEP-0048 <storage/> the owner keeps in private XML, or None."""
        stored = self.storage.accountData.get(owner.split("@")[0], DOMAIN,
                                              "private:" + NS_LEGACY).result
        if stored is None:
            return None
        [storage] = parseStored(stored, NS_PRIVATE)
        return storage

    def bookmarks(self, owner=OWNER):
        """The XEP-0402 bookmarks in the owner's PEP node, by room JID."""
        found = self.storage.pubsub.getItems(owner, NS_BOOKMARKS).result
        return {item.id: Bookmark.fromItem(item.id, parseStored(item.payload, NS_BOOKMARKS)[0])
                for item in found}

    def publishBookmark(self, sender, room, conference="<conference xmlns='%s' name='Room' "
                        "autojoin='true'><nick>Jule</nick></conference>" % NS_BOOKMARKS,
                        options=OPTIONS):
        return self.publish(sender, node=NS_BOOKMARKS, item=conference, itemId=room,
                            options=options)

    def retractBookmark(self, sender, room):
        return self.iq(sender, "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                               "<retract node='%s' notify='true'><item id='%s'/></retract>"
                               "</pubsub>" % (NS_BOOKMARKS, room))


def conferences(storage):
    return {c["jid"]: c for c in storage.elements(NS_LEGACY, "conference")}


# -- XEP-0402 §5.3.2: publishing via the old specification ---------------------------

def test_legacySetPublishesOneItemPerRoom(tmp_path):
    """Bookmarks saved in private XML appear as one XEP-0402 item per room, fields carried over."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.setLegacy(JULIET)
    assert answer(juliet, ident)["type"] == "result"
    items = domain.bookmarks()
    assert set(items) == {"council@conference.underhill.org", "orchard@conference.example.org"}
    council = items["council@conference.underhill.org"]
    assert (council.name, council.autojoin, council.nick, council.password) == \
        ("Council of Oberon", True, "Puck", "titania")
    assert items["orchard@conference.example.org"].autojoin is False


def test_legacySetCreatesNodeWithXEP0402Options(tmp_path):
    """The node made for converted bookmarks is private, keeps every item and sends no last item."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.setLegacy(JULIET)
    node = domain.storage.pubsub.getNode(OWNER, NS_BOOKMARKS).result
    assert node.config["pubsub#access_model"] == "whitelist"
    assert node.config["pubsub#send_last_published_item"] == "never"
    assert node.config["pubsub#persist_items"] in ("1", "true")
    assert node.config["pubsub#max_items"] == "max"
    # A XEP-0402 client's later publish with the same options meets its preconditions.
    juliet2 = domain.online(JULIET2)
    assert answer(juliet2, domain.publishBookmark(JULIET2, "a@b.c"))["type"] == "result"


def test_legacySetNotifiesOwnResources(tmp_path):
    """Another client of the account that wants bookmarks hears of each converted room."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    modern = domain.online(JULIET2, interests=[NS_BOOKMARKS])
    domain.setLegacy(JULIET)
    ids = sorted(i for _, found in events(modern, NS_BOOKMARKS) for i in found)
    assert ids == ["council@conference.underhill.org", "orchard@conference.example.org"]


def test_legacyRemovalRetracts(tmp_path):
    """A room left out of a new private XML list is retracted, with a notification."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    modern = domain.online(JULIET2, interests=[NS_BOOKMARKS])
    domain.setLegacy(JULIET)
    domain.setLegacy(JULIET, "<storage xmlns='storage:bookmarks'>"
                             "<conference jid='orchard@conference.example.org'/></storage>")
    assert set(domain.bookmarks()) == {"orchard@conference.example.org"}
    retracted = [r["id"] for m in modern.sent for e in m.elements(
        "http://jabber.org/protocol/pubsub#event", "event") for i in e.elements()
        for r in i.elements("http://jabber.org/protocol/pubsub#event", "retract")]
    assert retracted == ["council@conference.underhill.org"]


def test_legacyUnchangedRoomNotRepublished(tmp_path):
    """Saving the same list again sends the other clients no notification."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    modern = domain.online(JULIET2, interests=[NS_BOOKMARKS])
    domain.setLegacy(JULIET)
    before = len(events(modern, NS_BOOKMARKS))
    domain.setLegacy(JULIET)
    assert len(events(modern, NS_BOOKMARKS)) == before


def test_legacyBadConferenceSkipped(tmp_path):
    """A conference without a valid room JID is stored in private XML but not converted."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.setLegacy(JULIET, "<storage xmlns='storage:bookmarks'><conference name='x'/>"
                                     "<conference jid='a@b/c'/><conference jid='@@'/>"
                                     "<conference jid='ok@muc.example.org'/></storage>")
    assert answer(juliet, ident)["type"] == "result"
    assert set(domain.bookmarks()) == {"ok@muc.example.org"}
    assert len(list(domain.legacy().elements(NS_LEGACY, "conference"))) == 4


def test_legacyExtensionsKept(tmp_path):
    """Unknown children of an old conference go into the new item's extensions and come back."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.setLegacy(JULIET, "<storage xmlns='storage:bookmarks'><conference jid='r@m.org'>"
                             "<minimize xmlns='urn:example'/></conference></storage>")
    [bookmark] = domain.bookmarks().values()
    assert bookmark.extensions and "urn:example" in bookmark.extensions[0]
    conference = Bookmark.fromLegacy(bookmark.toLegacy())
    assert conference == bookmark


# -- XEP-0402 §5.3.1: publishing via this specification ------------------------------

def test_publishUpdatesPrivateXML(tmp_path):
    """A bookmark published as XEP-0402 shows in the old private XML list, URLs kept."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.setLegacy(JULIET)
    ident = domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    assert answer(juliet, ident)["type"] == "result"
    storage = domain.legacy()
    rooms = conferences(storage)
    assert set(rooms) == {"council@conference.underhill.org", "orchard@conference.example.org",
                          "coven@chat.shakespeare.lit"}
    coven = rooms["coven@chat.shakespeare.lit"]
    assert coven["name"] == "Room" and coven["autojoin"] == "true"
    assert str(next(coven.elements(NS_LEGACY, "nick"))) == "Jule"
    assert len(list(storage.elements(NS_LEGACY, "url"))) == 1


def test_publishWithoutLegacyStoreCreatesIt(tmp_path):
    """A first XEP-0402 bookmark of an account makes the old list too, read back by a get."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    ident = domain.iq(JULIET, "<query xmlns='%s'><storage xmlns='%s'/></query>"
                      % (NS_PRIVATE, NS_LEGACY), type="get")
    reply = answer(juliet, ident)
    [storage] = next(reply.elements(NS_PRIVATE, "query")).elements()
    assert set(conferences(storage)) == {"coven@chat.shakespeare.lit"}


def test_retractUpdatesPrivateXML(tmp_path):
    """A XEP-0402 bookmark retracted disappears from the old private XML list."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    domain.setLegacy(JULIET)
    ident = domain.retractBookmark(JULIET, "council@conference.underhill.org")
    assert answer(juliet, ident)["type"] == "result"
    assert set(conferences(domain.legacy())) == {"orchard@conference.example.org"}


def test_badItemIgnored(tmp_path):
    """An item that is no XEP-0402 conference is published as asked and left out of the old list."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.publishBookmark(JULIET, "not a jid@@", "<other xmlns='urn:example'/>")
    assert answer(juliet, ident)["type"] == "result"
    domain.publishBookmark(JULIET, "good@muc.example.org")
    assert set(conferences(domain.legacy())) == {"good@muc.example.org"}
    # A later old-style write does not retract what it could not read.
    domain.setLegacy(JULIET, "<storage xmlns='storage:bookmarks'/>")
    assert [i.id for i in domain.storage.pubsub.getItems(OWNER, NS_BOOKMARKS).result] == \
        ["not a jid@@"]


# -- no loops, no lost writes ----------------------------------------------------------

def test_conversionsDoNotEcho(tmp_path):
    """Each write is converted once: a legacy set publishes without rewriting private XML."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    seen = []
    domain.hooks.add(PRIVATE_STORED, lambda e: seen.append(("private", e.namespace)))
    domain.hooks.add(PEP_CHANGED, lambda e: seen.append((e.node, e.origin)))
    domain.setLegacy(JULIET)
    assert seen == [("private", NS_LEGACY), (NS_BOOKMARKS, "bookmarks"),
                    (NS_BOOKMARKS, "bookmarks"), (NS_LEGACY, "bookmarks")]
    del seen[:]
    domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    assert seen == [(NS_BOOKMARKS, None), (NS_LEGACY, "bookmarks")]
    # The legacy list kept the URL and was not re-converted.
    assert len(list(domain.legacy().elements(NS_LEGACY, "url"))) == 1


def test_failedConversionKeepsWrite(tmp_path):
    """When the PEP side cannot take the bookmarks, the private XML set still succeeds."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    failures = []

    def broken(*args, **kwargs):
        failures.append(args)
        raise RuntimeError("the disk is full")
    domain.storage.pubsub.publish = broken
    ident = domain.setLegacy(JULIET)
    assert answer(juliet, ident)["type"] == "result"
    assert failures
    assert len(list(domain.legacy().elements(NS_LEGACY, "conference"))) == 2
    # The next conversion of the account still runs.
    del domain.storage.pubsub.publish
    domain.setLegacy(JULIET)
    assert len(domain.bookmarks()) == 2


def test_otherNamespaceNotConverted(tmp_path):
    """Private XML of other namespaces never touches the bookmarks node."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.setLegacy(JULIET, "<exodus xmlns='exodus:prefs'/>")
    assert domain.storage.pubsub.getNode(OWNER, NS_BOOKMARKS).result is None


def test_othersBookmarksUntouched(tmp_path):
    """One account's bookmarks never reach another account's storage."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.online(ROMEO)
    domain.setLegacy(JULIET)
    assert domain.storage.pubsub.getNode("romeo@example.org", NS_BOOKMARKS).result is None


# -- XEP-0411: XEP-0048 in PEP (storage:bookmarks, XEP-0223) ----------------------

def legacyPEP(domain, owner=OWNER):
    """The <storage/> of the owner's PEP node storage:bookmarks, or None."""
    found = domain.storage.pubsub.getItems(owner, NS_LEGACY).result
    if not found:
        return None
    assert [item.id for item in found] == ["current"]
    [storage] = parseStored(found[0].payload, NS_LEGACY)
    return storage


def test_privateSetPublishedToLegacyPEP(tmp_path):
    """XEP-0411 §3: a private XML list is published to the legacy PEP node, whose subscribers hear it."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    legacy = domain.online(JULIET2, interests=[NS_LEGACY])
    domain.setLegacy(JULIET)
    storage = legacyPEP(domain)
    assert set(conferences(storage)) == {"council@conference.underhill.org",
                                         "orchard@conference.example.org"}
    assert len(list(storage.elements(NS_LEGACY, "url"))) == 1
    assert events(legacy, NS_LEGACY) == [(OWNER, ["current"])]
    node = domain.storage.pubsub.getNode(OWNER, NS_LEGACY).result
    assert node.config["pubsub#access_model"] == "whitelist"
    # The same list again: nobody is told again.
    domain.setLegacy(JULIET)
    assert len(events(legacy, NS_LEGACY)) == 1


def test_legacyPEPPublishConverted(tmp_path):
    """XEP-0411 §3: a list published to the legacy PEP node reaches private XML and XEP-0402."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.publish(JULIET, node=NS_LEGACY, item=LEGACY, itemId="current",
                           options={"FORM_TYPE": OPTIONS["FORM_TYPE"],
                                    "pubsub#persist_items": "true",
                                    "pubsub#access_model": "whitelist"})
    assert answer(juliet, ident)["type"] == "result"
    assert set(conferences(domain.legacy())) == {"council@conference.underhill.org",
                                                 "orchard@conference.example.org"}
    assert set(domain.bookmarks()) == {"council@conference.underhill.org",
                                   "orchard@conference.example.org"}


def test_xep0402PublishReachesLegacyPEP(tmp_path):
    """A XEP-0402 bookmark shows in the legacy PEP list too."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    assert set(conferences(legacyPEP(domain))) == {"coven@chat.shakespeare.lit"}
    domain.retractBookmark(JULIET, "coven@chat.shakespeare.lit")
    assert conferences(legacyPEP(domain)) == {}


# -- XEP-0411 §4: bookmarks stored before the feature ran --------------------------

def storeOldStyle(domain, key, xml):
    domain.storage.accountData.set("juliet", DOMAIN, key, xml)


def test_oldPrivateBookmarksConvertedOnFirstBind(tmp_path):
    """Bookmarks kept in private XML from before are XEP-0402 items once the user logs in."""
    domain = BookmarksDomain(tmp_path)
    storeOldStyle(domain, "private:" + NS_LEGACY, LEGACY)
    domain.online(JULIET)
    assert set(domain.bookmarks()) == {"council@conference.underhill.org",
                                   "orchard@conference.example.org"}
    assert set(conferences(legacyPEP(domain))) == set(domain.bookmarks())


def test_oldPEPBookmarksConvertedOnFirstBind(tmp_path):
    """Bookmarks kept only in the XEP-0048 PEP node from before reach XEP-0402 and private XML."""
    domain = BookmarksDomain(tmp_path, features=("disco", "clientcaps", "private", "pep"))
    juliet = domain.online(JULIET)
    ident = domain.publish(JULIET, node=NS_LEGACY, item=LEGACY, itemId="current")
    assert answer(juliet, ident)["type"] == "result"
    # The same storage, now served with the bookmarks feature: the account logs in again.
    domain.domain.stopService()
    domain.domain = LocalDomain(DOMAIN, domain.server, features=(
        "disco", "clientcaps", "private", "pep", "bookmarks"))
    domain.domain.startService()
    domain.online(JULIET2)
    assert set(domain.bookmarks()) == {"council@conference.underhill.org",
                                   "orchard@conference.example.org"}
    assert set(conferences(domain.legacy())) == set(domain.bookmarks())


def test_noOldBookmarksNoNode(tmp_path):
    """An account without bookmarks gets no bookmarks node by logging in."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    assert domain.storage.pubsub.getNode(OWNER, NS_BOOKMARKS).result is None


def test_existingNodeNotMigratedAgain(tmp_path):
    """Once XEP-0402 bookmarks exist, a login never brings back rooms from the old list."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    storeOldStyle(domain, "private:" + NS_LEGACY, LEGACY)
    domain.handler(BookmarksHandler).checked.clear()  # as after a restart
    domain.online(JULIET2)
    assert set(domain.bookmarks()) == {"coven@chat.shakespeare.lit"}


# -- §5.3 discovery ------------------------------------------------------------------

def test_compatFeatureOnOwnAccount(tmp_path):
    """The account's own disco#info says the server converts bookmarks (#compat)."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.iq(JULIET, "<query xmlns='%s'/>" % NS_INFO, to=OWNER, type="get")
    query = next(answer(juliet, ident).elements(NS_INFO, "query"))
    features = {f["var"] for f in query.elements(NS_INFO, "feature")}
    assert NS_BOOKMARKS + "#compat" in features
    assert NS_BOOKMARKS + "#compat-pep" in features
    assert "urn:xmpp:bookmarks-conversion:0" in features


def test_compatFeatureNotToOthers(tmp_path):
    """A contact asking the account's disco#info is not told about its bookmarks."""
    domain = BookmarksDomain(tmp_path)
    domain.online(JULIET)
    romeo = domain.online(ROMEO)
    ident = domain.iq(ROMEO, "<query xmlns='%s'/>" % NS_INFO, to=OWNER, type="get")
    reply = answer(romeo, ident)
    features = {f["var"] for q in reply.elements(NS_INFO, "query")
                for f in q.elements(NS_INFO, "feature")}
    assert NS_BOOKMARKS + "#compat" not in features


def test_noCompatWithoutPEP(tmp_path):
    """Without PEP the server announces no conversion and private XML works as before."""
    domain = BookmarksDomain(tmp_path, features=("disco", "private", "bookmarks"))
    juliet = domain.bind(JULIET)
    ident = domain.setLegacy(JULIET)
    assert answer(juliet, ident)["type"] == "result"
    ident = domain.iq(JULIET, "<query xmlns='%s'/>" % NS_INFO, to=OWNER, type="get")
    features = {f["var"] for q in answer(juliet, ident).elements(NS_INFO, "query")
                for f in q.elements(NS_INFO, "feature")}
    assert NS_BOOKMARKS + "#compat" not in features


def test_roomJIDNormalized():
    """Room JIDs in either form are compared the way XMPP compares them."""
    assert Bookmark.fromItem("Coven@Chat.Shakespeare.lit", parseStored(
        "<conference xmlns='%s'/>" % NS_BOOKMARKS, NS_BOOKMARKS)[0]).jid == \
        JID("coven@chat.shakespeare.lit").userhost()


def test_accountAnnouncesWhatBookmarkClientsCheck(tmp_path):
    """The account's disco#info has the PEP features clients want before using XEP-0402 (max, many items)."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    ident = domain.iq(JULIET, "<query xmlns='%s'/>" % NS_INFO, to=OWNER, type="get")
    query = next(answer(juliet, ident).elements(NS_INFO, "query"))
    features = {f["var"] for f in query.elements(NS_INFO, "feature")}
    for name in ("config-node-max", "multi-items", "publish-options", "item-ids"):
        assert "http://jabber.org/protocol/pubsub#" + name in features


def test_nodePurgedOrDeletedEmptiesOldList(tmp_path):
    """A client purging or deleting its XEP-0402 node leaves no rooms in the old lists either."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    owner = "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>%s</pubsub>"
    for request in ("<purge node='%s'/>", "<delete node='%s'/>"):
        domain.setLegacy(JULIET)
        ident = domain.iq(JULIET, owner % (request % NS_BOOKMARKS))
        assert answer(juliet, ident)["type"] == "result"
        assert conferences(domain.legacy()) == {}
        assert conferences(legacyPEP(domain)) == {}
        assert len(list(domain.legacy().elements(NS_LEGACY, "url"))) == 1


def test_nodeKeepingOneItemGrows(tmp_path):
    """Old-style bookmarks converted into a node a client made with one item are all kept."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    # No publish-options: PEP's defaults, one item.
    ident = domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit", options=None)
    assert answer(juliet, ident)["type"] == "result"
    domain.setLegacy(JULIET)
    assert set(domain.bookmarks()) == {"council@conference.underhill.org",
                                   "orchard@conference.example.org"}
    node = domain.storage.pubsub.getNode(OWNER, NS_BOOKMARKS).result
    assert node.config["pubsub#max_items"] == "max"


def test_contactsNeverSeeBookmarks(tmp_path):
    """A contact whose caps want bookmarks hears nothing of the user's: the node is whitelist."""
    domain = BookmarksDomain(tmp_path)
    juliet = domain.online(JULIET)
    own = domain.online(JULIET2, interests=[NS_BOOKMARKS])
    romeo = domain.online(ROMEO, interests=[NS_BOOKMARKS, NS_LEGACY])
    domain.publishBookmark(JULIET, "coven@chat.shakespeare.lit")
    domain.retractBookmark(JULIET, "coven@chat.shakespeare.lit")
    domain.setLegacy(JULIET)
    assert events(romeo, NS_BOOKMARKS) == [] and events(romeo, NS_LEGACY) == []
    assert events(own, NS_BOOKMARKS)
    ident = domain.items(ROMEO, OWNER, node=NS_BOOKMARKS)
    assert answer(romeo, ident)["type"] == "error"
    ident = domain.items(JULIET, OWNER, node=NS_BOOKMARKS)
    assert answer(juliet, ident)["type"] == "result"
