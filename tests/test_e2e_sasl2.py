"""
End-to-end: a phone-like client that really speaks SASL2 (XEP-0388), Bind 2
(XEP-0386) and stream management (XEP-0198), npm's C{@xmpp/client} run by
node over TCP (C{tests/js/sasl2client.mjs}), logs in to a real node in one
round trip, chats with a slixmpp user, loses its connection and resumes its
session inline in SASL2 without missing the message sent meanwhile.
"""

from __future__ import annotations

import os

import pytest_twisted

from tests.e2e import TIMEOUT, password, reactor
from tests.test_e2e_websocket import JS, NODE, NodeClient, needNode

ensureDeferred = pytest_twisted.ensureDeferred

AGENT = "d4565fa7-4d72-4749-b3d3-740edbf87770"


def spawnPhone(port: int, user: str, peer: str, body: str, mode: str) -> NodeClient:
    client = NodeClient()
    env = dict(os.environ)
    # The node's certificate is self-signed.
    env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
    reactor().spawnProcess(
        client, NODE, [NODE, os.path.join(JS, "sasl2client.mjs"),
                       "xmpp://localhost:%d" % (port,), "localhost", user, password(user),
                       peer, body, AGENT, mode], env=env, path=JS)
    return client


async def settle(client: NodeClient) -> None:
    if not client.ended.called:
        client.transport.signalProcess("KILL")
        await client.ended.addTimeout(TIMEOUT, reactor())


@ensureDeferred
async def test_sasl2Bind2AndInlineSMChatWithSlixmpp(makeServer):
    """
    @xmpp/client authenticates with SASL2, binds with Bind 2 (its resource
    tag plus a server part) and has stream management enabled in the same
    round trip; its message reaches a slixmpp user and the answer comes back.
    """
    needNode()
    server = await makeServer()
    await server.addUser("alice")
    await server.addUser("bob")
    bob = await server.login("bob", "desk")
    phone = spawnPhone(server.starttlsPort, "alice", "bob@localhost/desk", "hi from SASL2",
                       "chat")
    try:
        success = await phone.next()
        assert success["event"] == "sasl2-success", success
        assert success["bound"] and success["enabled"] and not success["resumed"]
        jid = success["jid"]
        assert jid.startswith("alice@localhost/phone.")
        online = await phone.next()
        assert online == {"event": "online", "jid": jid}
        message = await bob.nextMessage()
        assert message["body"] == "hi from SASL2"
        assert str(message["from"]) == jid
        bob.send(jid, "hi from slixmpp")
        sent = await phone.next()
        assert sent["event"] == "sent" and sent["sm"] and sent["smId"]
        assert await phone.next() == {"event": "message", "from": "bob@localhost/desk",
                                      "body": "hi from slixmpp"}
        assert (await phone.next())["event"] == "offline"
        assert await phone.ended.addTimeout(TIMEOUT, reactor()) == 0
    finally:
        await settle(phone)


@ensureDeferred
async def test_brokenConnectionResumedInlineInSASL2(makeServer):
    """
    The phone's connection breaks; it reconnects, resumes its session
    inside the SASL2 <authenticate/> and gets the message a slixmpp user
    sent while it was away, on the same full JID.
    """
    needNode()
    server = await makeServer()
    await server.addUser("alice")
    await server.addUser("bob")
    bob = await server.login("bob", "desk")
    phone = spawnPhone(server.starttlsPort, "alice", "bob@localhost/desk", "before", "resume")
    try:
        success = await phone.next()
        jid = success["jid"]
        assert (await phone.next())["event"] == "online"
        assert (await bob.nextMessage())["body"] == "before"
        assert (await phone.next())["event"] == "sent"
        bob.send(jid, "first")
        assert (await phone.next())["body"] == "first"
        assert (await phone.next())["event"] == "broken"
        bob.send(jid, "while you were away")
        again = await phone.next()
        assert again["event"] == "sasl2-success", again
        assert again["resumed"] and not again["bound"] and again["jid"] == jid
        events = [await phone.next(), await phone.next()]
        names = [event["event"] for event in events]
        assert "resumed" in names, events
        message = events[names.index("message")] if "message" in names else await phone.next()
        assert message == {"event": "message", "from": "bob@localhost/desk",
                           "body": "while you were away"}
        assert await phone.ended.addTimeout(TIMEOUT, reactor()) == 0
    finally:
        await settle(phone)
