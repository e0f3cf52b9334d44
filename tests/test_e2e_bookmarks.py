"""
End-to-end: group-chat bookmarks on a real node (SQLite storage) with
slixmpp's plugins: a client saving XEP-0048 bookmarks in private XML
(C{xep_0048} over C{xep_0049}) and another client of the same account
reading them as XEP-0402 items (C{xep_0402} stanzas published and read
through C{xep_0060} on the own bare JID), and the reverse, with a removal;
bookmarks saved in the XEP-0048 PEP node (C{xep_0048} over C{xep_0223}) read
both other ways; the account announces C{urn:xmpp:bookmarks:1#compat} and
C{#compat-pep}.
"""

from __future__ import annotations

import pytest_twisted
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference

from tests.e2e import DOMAIN
from tests.test_e2e_pep import wait
from xmppd.features.bookmarks import BookmarksHandler

ensureDeferred = pytest_twisted.ensureDeferred

NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
PLUGINS = ("xep_0030", "xep_0004", "xep_0045", "xep_0049", "xep_0060", "xep_0163",
           "xep_0223", "xep_0048", "xep_0402")
ACCOUNT = "juliet@" + DOMAIN


async def login(server, resource: str):
    client = server.client("juliet", resource)
    for plugin in PLUGINS:
        client.xmpp.register_plugin(plugin)
    await client.login()
    return client


def publishOptions(client):
    """XEP-0402 §3's publish-options, as a client sends them."""
    form = client.xmpp.plugin["xep_0004"].make_form("submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_OPTIONS)
    for var, value in (("pubsub#persist_items", "true"), ("pubsub#max_items", "max"),
                       ("pubsub#send_last_published_item", "never"),
                       ("pubsub#access_model", "whitelist")):
        form.add_field(var=var, value=value)
    return form


async def legacyRooms(client) -> dict:
    """The conferences an XEP-0048 client reads from private XML, by room JID."""
    result = await wait(client.xmpp.plugin["xep_0048"].get_bookmarks(method="xep_0049"))
    return {str(c["jid"]): c for c in result["private"]["bookmarks"]["conferences"]}


async def modernRooms(client) -> dict:
    """The XEP-0402 items an up-to-date client reads from its own PEP node, by id."""
    result = await wait(client.xmpp.plugin["xep_0060"].get_items(ACCOUNT, NS_BOOKMARKS))
    return {item["id"]: item["conference"] for item in result["pubsub"]["items"]}


@ensureDeferred
async def test_legacyBookmarksReadAsXEP0402(server):
    """Bookmarks an old client saves in private XML are read as XEP-0402 items by a new one."""
    await server.addUser("juliet")
    old = await login(server, "old")
    new = await login(server, "new")
    bookmarks = Bookmarks()
    bookmarks.add_conference("council@conference.underhill.org", "Puck",
                             name="Council of Oberon", autojoin=True)
    bookmarks.add_conference("orchard@conference.example.org", "Jule")
    bookmarks.add_url("http://the-tech.mit.edu/Shakespeare/", name="Complete Works")
    await wait(old.xmpp.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0049"))

    rooms = await modernRooms(new)
    assert set(rooms) == {"council@conference.underhill.org", "orchard@conference.example.org"}
    council = rooms["council@conference.underhill.org"]
    assert council["name"] == "Council of Oberon" and council["autojoin"] is True
    assert council["nick"] == "Puck"


@ensureDeferred
async def test_xep0402BookmarksReadByLegacyClient(server):
    """A bookmark a new client publishes, then retracts, comes and goes in the old client's list."""
    await server.addUser("juliet")
    old = await login(server, "old")
    new = await login(server, "new")
    conference = Conference()
    conference["name"] = "The Coven"
    conference["autojoin"] = True
    conference["nick"] = "Jule"
    pubsub = new.xmpp.plugin["xep_0060"]
    await wait(pubsub.publish(ACCOUNT, NS_BOOKMARKS, id="coven@chat.shakespeare.lit",
                              payload=conference.xml, options=publishOptions(new)))

    rooms = await legacyRooms(old)
    assert set(rooms) == {"coven@chat.shakespeare.lit"}
    coven = rooms["coven@chat.shakespeare.lit"]
    assert coven["name"] == "The Coven" and coven["autojoin"] and coven["nick"] == "Jule"

    await wait(pubsub.retract(ACCOUNT, NS_BOOKMARKS, "coven@chat.shakespeare.lit",
                              notify=True))
    assert await legacyRooms(old) == {}


@ensureDeferred
async def test_compatAnnounced(server):
    """A client asking its own account learns the server keeps both bookmark forms in sync."""
    await server.addUser("juliet")
    client = await login(server, "new")
    info = await wait(client.xmpp.plugin["xep_0030"].get_info(jid=ACCOUNT))
    features = info["disco_info"]["features"]
    assert NS_BOOKMARKS + "#compat" in features and NS_BOOKMARKS + "#compat-pep" in features


@ensureDeferred
async def test_legacyPEPBookmarksReadEverywhere(server):
    """Bookmarks saved the XEP-0048 PEP way are read as XEP-0402 items and from private XML."""
    await server.addUser("juliet")
    old = await login(server, "old")
    new = await login(server, "new")
    bookmarks = Bookmarks()
    bookmarks.add_conference("council@conference.underhill.org", "Puck", autojoin=True)
    await wait(old.xmpp.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0223"))

    assert set(await modernRooms(new)) == {"council@conference.underhill.org"}
    assert set(await legacyRooms(new)) == {"council@conference.underhill.org"}


@ensureDeferred
async def test_oldBookmarksConvertedAtLogin(server):
    """Bookmarks saved in private XML before the server converted are XEP-0402 items at login."""
    await server.addUser("juliet")
    await server.service.storage.accountData.set(
        "juliet", DOMAIN, "private:storage:bookmarks",
        "<storage xmlns='storage:bookmarks'>"
        "<conference jid='council@conference.underhill.org' autojoin='true'/></storage>")
    client = await login(server, "new")
    domain = server.service.getServiceNamed(DOMAIN)
    [handler] = [h for h in domain.handlers if isinstance(h, BookmarksHandler)]
    converting = handler.pending.get(ACCOUNT)
    if converting is not None:
        await converting
    rooms = await modernRooms(client)
    assert set(rooms) == {"council@conference.underhill.org"}
    assert rooms["council@conference.underhill.org"]["autojoin"] is True
