"""
End-to-end: a slixmpp client with the XEP-0016 plugin keeps privacy lists
on a real node with SQLite storage (L{xmppd.features.privacy}).
"""

import pytest_twisted

from tests.e2e import wait

ensureDeferred = pytest_twisted.ensureDeferred


async def privacyClient(server, user, resource):
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0016")
    await client.login()
    return client


@ensureDeferred
async def test_denyMessagesSurvivesRestart(server):
    """Juliet's default list denying Romeo's messages bounces them, and still does after a restart."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    juliet = await privacyClient(server, "juliet", "balcony")
    privacy = juliet.xmpp.plugin["xep_0016"]
    await wait(privacy.edit_list("quiet", [
        {"type": "jid", "value": "romeo@localhost", "action": "deny", "order": "1",
         "message": True}]))
    await wait(privacy.make_default("quiet"))
    romeo = await server.login("romeo", "orchard")
    romeo.send("juliet@localhost", "Lady, by yonder blessed moon I swear")
    bounced = await romeo.nextMessage()
    assert bounced["type"] == "error"
    assert bounced["error"]["condition"] == "service-unavailable"
    await romeo.disconnect()
    await juliet.disconnect()
    await server.stop()

    await server.start()
    again = await privacyClient(server, "juliet", "chamber")
    lists = await wait(again.xmpp.plugin["xep_0016"].get_privacy_lists())
    assert lists["privacy"]["default"]["name"] == "quiet"
    stored = await wait(again.xmpp.plugin["xep_0016"].get_list("quiet"))
    [item] = stored["privacy"]["list"]["items"]
    assert (item["value"], item["action"], item["message"]) == ("romeo@localhost", "deny", True)
    romeo = await server.login("romeo", "garden")
    romeo.send("juliet@localhost", "O, swear not by the moon")
    bounced = await romeo.nextMessage()
    assert bounced["error"]["condition"] == "service-unavailable"
    # Other senders are not concerned.
    nurse = await server.login("juliet", "nurse")
    nurse.send("juliet@localhost/chamber", "Madam!")
    arrived = await again.nextMessage()
    assert arrived["body"] == "Madam!"
