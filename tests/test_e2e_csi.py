"""
End-to-end: client state indication (XEP-0352) with slixmpp's C{xep_0352}
plugin against a real node.  An inactive client is not sent its contacts'
presence updates and chat states until a message with a body comes, which
arrives at once with what was held before it, in order; <active/> sends
the rest.
"""

from __future__ import annotations

import asyncio

import pytest_twisted
from twisted.internet import defer

from slixmpp.plugins.xep_0198.stanza import RequestAck

from tests.e2e import DOMAIN, TIMEOUT, contacts

ensureDeferred = pytest_twisted.ensureDeferred

CHATSTATES = "http://jabber.org/protocol/chatstates"


def asDeferred(coroutine) -> defer.Deferred:
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


class Seen:
    """
    Every presence and message a client receives from others, in the order
    it received them, as short words; L{until} waits for one.
    """

    def __init__(self, client):
        self.jid = client.jid
        self.words: list[str] = []
        self.waiting: list[tuple[str, asyncio.Future]] = []
        client.xmpp.add_event_handler("presence", self.onPresence)
        client.xmpp.add_event_handler("message", self.onMessage)
        # slixmpp's "message" is for messages with a body; chat states come
        # through its xep_0085 plugin.
        client.xmpp.add_event_handler("chatstate", self.onChatState)

    def add(self, word: str) -> None:
        self.words.append(word)
        for entry in list(self.waiting):
            if entry[0] == word and not entry[1].done():
                entry[1].set_result(None)
                self.waiting.remove(entry)

    def onPresence(self, presence) -> None:
        if presence["from"].bare == self.jid.bare:
            return
        show = presence["show"] or presence["type"]
        self.add("presence %s %s" % (presence["from"].user, show))

    def onMessage(self, message) -> None:
        self.add("body " + message["body"])

    def onChatState(self, message) -> None:
        if not message["body"]:
            self.add("state " + message["chat_state"])

    def until(self, word: str) -> defer.Deferred:
        """Fires once C{word} was seen (at most L{TIMEOUT})."""
        if word in self.words:
            return defer.succeed(None)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((word, future))
        return asDeferred(asyncio.wait_for(future, TIMEOUT))


def nextEvent(xmpp, name: str) -> defer.Deferred:
    future = asyncio.get_running_loop().create_future()

    def handler(data):
        if not future.done():
            future.set_result(data)

    xmpp.add_event_handler(name, handler, disposable=True)
    return asDeferred(asyncio.wait_for(future, TIMEOUT))


async def roundTrip(client) -> None:
    """A ping to the server and its answer: what the client sent before it was processed."""
    await asDeferred(asyncio.wait_for(
        client.xmpp.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT), TIMEOUT))


async def allReceived(client, witness) -> None:
    """
    Everything the server wrote to C{client} so far has arrived: the client
    sends a message (to C{witness}) and waits for stream management's
    acknowledgement of it, a nonza that does not wake an inactive client.
    """
    sm = client.xmpp.plugin["xep_0198"]
    done = asyncio.get_running_loop().create_future()

    def onAcked(stanza):
        if not sm.unacked_queue and not done.done():
            done.set_result(None)

    client.xmpp.add_event_handler("stanza_acked", onAcked)
    try:
        client.send(witness, "are you there?")
        # Through slixmpp's send queue, behind the message (request_ack()
        # writes at once, and could overtake it).
        client.xmpp.send(RequestAck(client.xmpp))
        await asDeferred(asyncio.wait_for(done, TIMEOUT))
    finally:
        client.xmpp.del_event_handler("stanza_acked", onAcked)


async def login(server, user: str, resource: str, *plugins: str):
    client = server.client(user, resource)
    for plugin in ("xep_0199", "xep_0085") + plugins:
        client.xmpp.register_plugin(plugin)
    # Stream features after bind are handled once the session started.
    waits = [nextEvent(client.xmpp, event) for plugin, event in
             (("xep_0198", "sm_enabled"), ("xep_0352", "csi_enabled")) if plugin in plugins]
    await client.login()
    for wait in waits:
        await wait
    client.seen = Seen(client)
    return client


@ensureDeferred
async def test_inactiveClientGetsBodyAtOnceAfterWhatWasHeld(server):
    """
    While Juliet's phone says it is inactive, Romeo's and the nurse's
    presence changes and Romeo's typing notification do not reach it; Romeo's
    message does, at once, right after them in the order they happened; and
    when the phone is active again it gets what came since.
    """
    await contacts(server, "romeo", "juliet", "nurse")
    juliet = await login(server, "juliet", "phone", "xep_0352", "xep_0198")
    assert juliet.xmpp.plugin["xep_0352"].enabled
    romeo = await login(server, "romeo", "orchard")
    nurse = await login(server, "nurse", "chamber")
    for client in (juliet, romeo, nurse):
        client.xmpp.send_presence()
    await juliet.seen.until("presence romeo available")
    await juliet.seen.until("presence nurse available")
    await nurse.seen.until("presence romeo available")
    await romeo.seen.until("presence nurse available")

    juliet.xmpp.plugin["xep_0352"].send_inactive()
    await roundTrip(juliet)
    juliet.seen.words.clear()

    romeo.xmpp.send_presence(pshow="away")
    await nurse.seen.until("presence romeo away")
    nurse.xmpp.send_presence(pshow="dnd")
    await romeo.seen.until("presence nurse dnd")
    romeo.xmpp.send_raw("<message to='%s' type='chat'><composing xmlns='%s'/></message>"
                        % (juliet.jid.full, CHATSTATES))
    await roundTrip(romeo)
    await allReceived(juliet, "nurse@" + DOMAIN)
    assert juliet.seen.words == []

    romeo.send(juliet.jid.full, "wake up")
    await juliet.seen.until("body wake up")
    assert juliet.seen.words == [
        "presence romeo away", "presence nurse dnd", "state composing", "body wake up"]

    juliet.seen.words.clear()
    romeo.xmpp.send_presence(pshow="xa")
    await nurse.seen.until("presence romeo xa")
    await allReceived(juliet, "nurse@" + DOMAIN)
    assert juliet.seen.words == []
    juliet.xmpp.plugin["xep_0352"].send_active()
    await juliet.seen.until("presence romeo xa")
    assert juliet.seen.words == ["presence romeo xa"]
