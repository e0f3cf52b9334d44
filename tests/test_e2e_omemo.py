"""
End-to-end: OMEMO (XEP-0384) through a real node (SQLite storage) with
C{slixmpp-omemo}: each account publishes its device lists and bundles
with publish-options C{access_model=open} for both OMEMO versions
(C{urn:xmpp:omemo:2}, and C{eu.siacs.conversations.axolotl}, which
Conversations still speaks), the sender fetches the recipient's device
list and bundle, and the recipient decrypts the message to its plaintext:
between strangers (the nodes are C{open}; the sender subscribes to the
device list explicitly) and between contacts (device lists arrive through
C{+notify}), and for a device that was offline across a restart of the node.

slixmpp-omemo 2.2.0 encrypts a message's body only with the old version
(it has no XEP-0420 envelope yet); the C{urn:xmpp:omemo:2} message is
made and read with the library's session manager directly, which is what
the server sees in either case: PEP nodes, items by id, and a message.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted
from slixmpp.jid import JID
from slixmpp.plugins.base import register_plugin

from tests.e2e import DOMAIN, wait
from tests.omemohelpers import OLD, OMEMO, TWO, MemoryStorage, twomemo
from xmppd.storage.interfaces import RosterItem

ensureDeferred = pytest_twisted.ensureDeferred

#: slixmpp-omemo 2.2.0 reaches other plugins the way slixmpp 1.17 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing plugins through the XMPP object:DeprecationWarning")

PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")


async def login(server, user: str, resource: str, memory: MemoryStorage | None = None):
    """
    C{user} logs in with slixmpp-omemo (on the OMEMO storage C{memory} of an
    earlier login, or a new one), is available with its caps (device lists
    +notify), and has published its device lists and bundles.
    """
    register_plugin(OMEMO)
    client = server.client(user, resource)
    for plugin in PLUGINS:
        client.xmpp.register_plugin(plugin)
    client.xmpp.register_plugin("xep_0384", {"memory": memory})
    client.omemo = client.xmpp.plugin["xep_0384"]
    client.encrypted = asyncio.Queue()
    client.deviceLists = asyncio.Queue()
    client.xmpp.add_event_handler("twomemo_device_list_publish", client.deviceLists.put_nowait)
    ready = asyncio.get_running_loop().create_future()
    client.xmpp.add_event_handler(
        "omemo_initialized", lambda event: ready.done() or ready.set_result(None))
    client.xmpp.add_event_handler(
        "message", lambda message: client.omemo.is_encrypted(message)
        and client.encrypted.put_nowait(message))
    await client.login()
    await wait(client.xmpp.plugin["xep_0115"].update_caps(broadcast=False))
    client.xmpp.send_presence()
    await wait(ready)
    return client


async def shutdown(*clients) -> None:
    """Stop each client's OMEMO session manager (its key rotation task) before teardown."""
    for client in clients:
        manager = await wait(client.omemo.get_session_manager())
        await wait(manager.shutdown())


async def deviceListFrom(client, bare: str):
    """The next urn:xmpp:omemo:2 device list notification C{client} gets from C{bare}."""
    while True:
        message = await client.deviceLists.get()
        if message["from"] == bare:
            return message


async def deviceId(client) -> int:
    """The client's own OMEMO device id."""
    manager = await wait(client.omemo.get_session_manager())
    own = await wait(manager.get_own_device_information())
    return own[0].device_id


@ensureDeferred
async def test_oldmemoMessageBetweenStrangers(server):
    """Romeo, not Juliet's contact, sends her an eu.siacs.conversations.axolotl message she reads."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    juliet = await login(server, "juliet", "balcony")
    romeo = await login(server, "romeo", "orchard")
    try:
        await exchangeOldmemo(romeo, juliet)
    finally:
        await shutdown(romeo, juliet)


async def exchangeOldmemo(romeo, juliet) -> None:
    """Romeo sends Juliet a body through slixmpp-omemo (the old version) and she reads it."""
    plain = romeo.xmpp.make_message(mto=JID("juliet@" + DOMAIN), mtype="chat",
                                    mbody="But soft, what light")
    encrypted, errors = await wait(romeo.omemo.encrypt_message(plain, JID("juliet@" + DOMAIN)))
    assert not errors
    assert romeo.omemo.is_encrypted(encrypted) == {OLD}
    assert "But soft" not in str(encrypted)
    encrypted.send()
    received = await wait(juliet.encrypted.get())
    decrypted, sender = await wait(juliet.omemo.decrypt_message(received))
    assert decrypted["body"] == "But soft, what light"
    assert sender.bare_jid == "romeo@" + DOMAIN
    assert sender.device_id == await deviceId(romeo)


@pytest.mark.parametrize("contacts", [True, False], ids=["contacts", "strangers"])
@ensureDeferred
async def test_twomemoMessage(server, contacts):
    """
    Romeo sends Juliet a urn:xmpp:omemo:2 message she decrypts; as her
    contact, his new device list reaches her through her caps' +notify.
    """
    await server.addUser("romeo")
    await server.addUser("juliet")
    if contacts:
        rosters = server.service.storage.rosters
        for user, other in (("romeo", "juliet"), ("juliet", "romeo")):
            await rosters.setItem(user, DOMAIN, RosterItem(f"{other}@{DOMAIN}",
                                                           subscription="both"))
    juliet = await login(server, "juliet", "balcony")
    romeo = await login(server, "romeo", "orchard")
    try:
        if contacts:
            notified = await wait(deviceListFrom(juliet, "romeo@" + DOMAIN))
            assert f"id=\"{await deviceId(romeo)}\"" in str(notified)
        await exchangeTwomemo(romeo, juliet)
    finally:
        await shutdown(romeo, juliet)


async def exchangeTwomemo(romeo, juliet) -> None:
    """Romeo encrypts bytes for Juliet's urn:xmpp:omemo:2 device and she decrypts them."""
    manager = await wait(romeo.omemo.get_session_manager())
    await wait(manager.refresh_device_list(TWO, "juliet@" + DOMAIN))
    messages, errors = await wait(manager.encrypt(
        frozenset({"juliet@" + DOMAIN}), {TWO: b"It is the east"},
        backend_priority_order=[TWO]))
    assert not errors
    [message] = messages
    assert message.namespace == TWO
    # A fallback body, as clients send (slixmpp's "message" event wants a body too).
    stanza = romeo.xmpp.make_message(mto=JID("juliet@" + DOMAIN), mtype="chat",
                                     mbody="This message is OMEMO encrypted.")
    stanza.append(twomemo.etree.serialize_message(message))
    stanza.send()
    received = await wait(juliet.encrypted.get())
    assert juliet.omemo.is_encrypted(received) == {TWO}
    parsed = twomemo.etree.parse_message(
        received.xml.find(f"{{{TWO}}}encrypted"), "romeo@" + DOMAIN)
    theirs = await wait(juliet.omemo.get_session_manager())
    plaintext, sender, _ = await wait(theirs.decrypt(parsed))
    assert plaintext == b"It is the east"
    assert sender.device_id == await deviceId(romeo)


@ensureDeferred
async def test_offlineMessageAfterRestart(server):
    """
    Juliet sets OMEMO up and leaves; after a restart of the node Romeo, a
    stranger, finds her keys and writes; she logs in again and reads it.
    """
    await server.addUser("romeo")
    await server.addUser("juliet")
    juliet = await login(server, "juliet", "balcony")
    keys = juliet.omemo.memory
    julietDevice = await deviceId(juliet)
    await shutdown(juliet)
    await juliet.disconnect()
    await server.stop()
    await server.start()
    romeo = await login(server, "romeo", "orchard")
    try:
        plain = romeo.xmpp.make_message(mto=JID("juliet@" + DOMAIN), mtype="chat",
                                        mbody="Wherefore art thou")
        encrypted, errors = await wait(romeo.omemo.encrypt_message(plain, JID("juliet@" + DOMAIN)))
        assert not errors
        encrypted.send()
        # A round trip after the message: the node has stored it for Juliet.
        await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid=DOMAIN))
        again = await login(server, "juliet", "balcony", memory=keys)
        try:
            assert await deviceId(again) == julietDevice
            received = await wait(again.encrypted.get())
            decrypted, sender = await wait(again.omemo.decrypt_message(received))
            assert decrypted["body"] == "Wherefore art thou"
            assert sender.bare_jid == "romeo@" + DOMAIN
        finally:
            await shutdown(again)
    finally:
        await shutdown(romeo)
