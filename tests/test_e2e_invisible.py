"""
End-to-end: a slixmpp client with the XEP-0186 plugin goes invisible and
visible again on a real node (L{xmppd.features.invisible}).
"""

import pytest_twisted

from tests.e2e import contacts, wait
from tests.test_e2e_blocking import presenceFrom, seesOnline

ensureDeferred = pytest_twisted.ensureDeferred


@ensureDeferred
async def test_invisibleThenVisible(server):
    """Juliet sees Romeo go offline when he turns invisible, still gets his replies to her messages, and sees him again when he is visible."""
    await contacts(server, "romeo", "juliet")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0186")
    await romeo.login()
    juliet = await server.login("juliet", "balcony")
    await seesOnline(juliet, romeo, "in the orchard")

    gone = presenceFrom(juliet, "romeo@localhost/orchard", "unavailable")
    await wait(romeo.xmpp.plugin["xep_0186"].set_invisible())
    await wait(gone)
    juliet.send("romeo@localhost", "Art thou there?")
    arrived = await romeo.nextMessage()
    assert arrived["body"] == "Art thou there?"

    back = presenceFrom(juliet, "romeo@localhost/orchard", "available")
    await wait(romeo.xmpp.plugin["xep_0186"].set_visible())
    presence = await wait(back)
    assert presence["status"] == "in the orchard"


@ensureDeferred
async def test_serverAnnouncesInvisible(server):
    """Service discovery on the server lists urn:xmpp:invisible:0 (XEP-0186 §4)."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost"))
    assert "urn:xmpp:invisible:0" in info["disco_info"]["features"]
