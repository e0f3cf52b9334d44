"""
End-to-end: user avatars (XEP-0084), their conversion to and from the
vCard photo (XEP-0398, XEP-0153, XEP-0054) and user nicknames (XEP-0172)
on a real node (SQLite storage), with slixmpp's plugins: a contact sees
the avatar (metadata notification through caps, data fetched by id), a
photo set by a vCard client reaches a XEP-0084 client and the other way
round, the hash in presence, a nickname notification and a subscription
request carrying the nick.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest_twisted
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT, contacts, reactor
from xmppd.core.hooks import OBSERVE
from xmppd.features.vcard import VCARD_CHANGED
from tests.test_e2e_pep import interestLearnt, wait

ensureDeferred = pytest_twisted.ensureDeferred

NS_METADATA = "urn:xmpp:avatar:metadata"
NICK = "http://jabber.org/protocol/nick"
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084",
           "xep_0054", "xep_0172")
IMAGE = b"\x89PNG\r\n\x1a\n an avatar of some bytes"
IMAGE_ID = hashlib.sha1(IMAGE).hexdigest()


async def login(server, user: str, resource: str, interest: str | None = NS_METADATA,
                plugins=PLUGINS):
    """
    C{user} logs in with C{plugins}, and is available once the node has
    learnt its caps (which say C{interest+notify}; none: no PEP interest).
    """
    client = server.client(user, resource)
    for plugin in plugins:
        client.xmpp.register_plugin(plugin)
    client.events = {name: asyncio.Queue() for name in (
        "avatar_metadata_publish", "user_nick_publish", "presence_available",
        "presence_subscribe")}
    for name, queue in client.events.items():
        client.xmpp.add_event_handler(name, queue.put_nowait)
    await client.login()
    if "xep_0115" in plugins:
        if interest != NS_METADATA and "xep_0084" in plugins:
            client.xmpp.plugin["xep_0163"].remove_interest(NS_METADATA)
        if interest != NICK and "xep_0172" in plugins:
            client.xmpp.plugin["xep_0163"].remove_interest(NICK)
        await wait(client.xmpp.plugin["xep_0115"].update_caps(broadcast=False))
    domain = server.service.getServiceNamed(DOMAIN)
    learnt = interestLearnt(domain, client.jid.full, interest) if interest else None
    client.xmpp.send_presence()
    if learnt is not None:
        await learnt
    return client


def vcardStored(server, user: str) -> defer.Deferred:
    """Fires once the node stored C{user}'s vCard (the conversion is done); at most TIMEOUT."""
    domain = server.service.getServiceNamed(DOMAIN)
    stored = defer.Deferred()

    def onChanged(event):
        if event.owner.user == user and not stored.called:
            stored.callback(None)

    domain.hooks.add(VCARD_CHANGED, onChanged, OBSERVE)
    stored.addBoth(lambda result: (domain.hooks.remove(VCARD_CHANGED, onChanged), result)[1])
    return stored.addTimeout(TIMEOUT, reactor())


async def publishAvatar(client, image: bytes = IMAGE):
    """What a XEP-0084 client does: the data, then the metadata."""
    avatars = client.xmpp.plugin["xep_0084"]
    await wait(avatars.publish_avatar(image))
    await wait(avatars.publish_avatar_metadata({
        "id": avatars.generate_id(image), "type": "image/png", "bytes": str(len(image)),
        "width": "64", "height": "64"}))


async def metadataFrom(client, sender: str):
    """The next avatar metadata notification C{client} gets from C{sender}."""
    while True:
        message = await wait(client.events["avatar_metadata_publish"].get())
        if message["from"].bare == sender:
            return message["pubsub_event"]["items"]["item"]


@ensureDeferred
async def test_contactSeesAvatar(server):
    """Romeo sets an avatar; Juliet is told through her caps and fetches the image by its id."""
    await contacts(server, "romeo", "juliet")
    juliet = await login(server, "juliet", "balcony")
    romeo = await login(server, "romeo", "orchard", interest=None)
    await publishAvatar(romeo)
    item = await metadataFrom(juliet, "romeo@" + DOMAIN)
    [info] = item["avatar_metadata"]["items"]
    assert (info["id"], str(info["bytes"]), info["type"]) == (IMAGE_ID, str(len(IMAGE)),
                                                              "image/png")
    iq = await wait(juliet.xmpp.plugin["xep_0084"].retrieve_avatar("romeo@" + DOMAIN, IMAGE_ID))
    assert iq["pubsub"]["items"]["item"]["avatar_data"]["value"] == IMAGE


@ensureDeferred
async def test_pepAvatarInVCard(server):
    """An avatar set through PEP is the vCard photo an old client fetches."""
    await contacts(server, "romeo", "juliet")
    romeo = await login(server, "romeo", "orchard", interest=None)
    juliet = await login(server, "juliet", "balcony", interest=None)
    converted = vcardStored(server, "romeo")
    await publishAvatar(romeo)
    await converted
    iq = await wait(juliet.xmpp.plugin["xep_0054"].get_vcard("romeo@" + DOMAIN, cached=False))
    photo = iq["vcard_temp"]["PHOTO"]
    assert (photo["TYPE"], photo["BINVAL"]) == ("image/png", IMAGE)


@ensureDeferred
async def test_vcardPhotoInPEP(server):
    """A photo set by an old vCard client reaches a XEP-0084 contact as an avatar."""
    await contacts(server, "romeo", "juliet")
    juliet = await login(server, "juliet", "balcony")
    romeo = await login(server, "romeo", "orchard", interest=None,
                        plugins=("xep_0030", "xep_0054", "xep_0153"))
    await wait(romeo.xmpp.plugin["xep_0153"].set_avatar(avatar=IMAGE, mtype="image/png"))
    item = await metadataFrom(juliet, "romeo@" + DOMAIN)
    [info] = item["avatar_metadata"]["items"]
    assert (info["id"], info["type"]) == (IMAGE_ID, "image/png")
    iq = await wait(juliet.xmpp.plugin["xep_0084"].retrieve_avatar("romeo@" + DOMAIN, IMAGE_ID))
    assert iq["pubsub"]["items"]["item"]["avatar_data"]["value"] == IMAGE


@ensureDeferred
async def test_presenceHash(server):
    """After Romeo sets a PEP avatar, Juliet sees its SHA-1 in his presence, whatever his client put."""
    await contacts(server, "romeo", "juliet")
    juliet = await login(server, "juliet", "balcony", interest=None)
    romeo = await login(server, "romeo", "orchard", interest=None)
    converted = vcardStored(server, "romeo")
    await publishAvatar(romeo)
    await converted
    presence = romeo.xmpp.make_presence(pstatus="with an avatar")
    presence.append(__import__("slixmpp").xmlstream.ET.fromstring(
        "<x xmlns='vcard-temp:x:update'><photo>0bad</photo></x>"))
    presence.send()
    while True:
        received = await wait(juliet.events["presence_available"].get())
        if received["from"].bare == "romeo@" + DOMAIN and received["status"] == "with an avatar":
            break
    photos = received.xml.findall("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    assert [photo.text for photo in photos] == [IMAGE_ID]


@ensureDeferred
async def test_nickNotified(server):
    """Romeo publishes a nickname and Juliet, whose caps say nick+notify, is told."""
    await contacts(server, "romeo", "juliet")
    juliet = await login(server, "juliet", "balcony", interest=NICK)
    romeo = await login(server, "romeo", "orchard", interest=None)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    message = await wait(juliet.events["user_nick_publish"].get())
    assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Romeo"


@ensureDeferred
async def test_subscriptionRequestCarriesNick(server):
    """Tybalt gets Romeo's subscription request with the nickname Romeo published, though his client left it out."""
    await contacts(server, "romeo")
    await server.addUser("tybalt")
    romeo = await login(server, "romeo", "orchard", interest=None)
    tybalt = await login(server, "tybalt", "street", interest=None)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    romeo.xmpp.send_presence(pto="tybalt@" + DOMAIN, ptype="subscribe")
    request = await wait(tybalt.events["presence_subscribe"].get())
    assert request["from"].bare == "romeo@" + DOMAIN
    assert request["nick"]["nick"] == "Romeo"


@ensureDeferred
async def test_clientNickInSubscriptionRequest(server):
    """A nick the client put in its subscription request reaches the contact as it was."""
    await contacts(server, "romeo")
    await server.addUser("tybalt")
    romeo = await login(server, "romeo", "orchard", interest=None)
    tybalt = await login(server, "tybalt", "street", interest=None)
    await wait(romeo.xmpp.plugin["xep_0172"].publish_nick("Romeo"))
    romeo.xmpp.send_presence_subscription("tybalt@" + DOMAIN, pnick="Romeo M.")
    request = await wait(tybalt.events["presence_subscribe"].get())
    assert request["nick"]["nick"] == "Romeo M."


@ensureDeferred
async def test_conversionAdvertised(server):
    """A client asking its own account's disco#info learns the server converts avatars."""
    await contacts(server, "romeo")
    romeo = await login(server, "romeo", "orchard", interest=None)
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid="romeo@" + DOMAIN))
    assert "urn:xmpp:pep-vcard-conversion:0" in info["disco_info"]["features"]
