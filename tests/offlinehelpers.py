"""
Helpers for the offline-message tests that use slixmpp: knowing, as a
client can, that the server has taken responsibility for what it sent
(XEP-0198 acknowledgements), and coming online.
"""

from __future__ import annotations

import asyncio

from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT


def asDeferred(coroutine) -> defer.Deferred:
    """Run an asyncio coroutine as a task; a Deferred of its result."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


def useStreamManagement(client) -> None:
    """Register what L{acknowledged} needs; call before logging in."""
    client.xmpp.register_plugin("xep_0198")
    client.xmpp.register_plugin("xep_0199")


async def _enabled(xmpp) -> None:
    """Wait for <enabled/>: slixmpp starts the session at bind, before it."""
    if "stream_management" in xmpp.features:
        return
    enabled = asyncio.get_running_loop().create_future()

    def onEnabled(stanza) -> None:
        if not enabled.done():
            enabled.set_result(None)

    xmpp.add_event_handler("sm_enabled", onEnabled)
    try:
        await asyncio.wait_for(enabled, TIMEOUT)
    finally:
        xmpp.del_event_handler("sm_enabled", onEnabled)


async def _acknowledged(client) -> int:
    xmpp = client.xmpp
    sm = xmpp.plugin["xep_0198"]
    await _enabled(xmpp)
    # slixmpp writes stanzas from a queue; once the answer to this ping is
    # in, everything queued before it has been written, so the <r/> below
    # (written at once) follows all of it.
    await asyncio.wait_for(xmpp.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT),
                           TIMEOUT)
    done = asyncio.get_running_loop().create_future()

    def onAcked(stanza) -> None:
        if not sm.unacked_queue and not done.done():
            done.set_result(None)

    xmpp.add_event_handler("stanza_acked", onAcked)
    try:
        if sm.unacked_queue:
            sm.request_ack()
            await asyncio.wait_for(done, TIMEOUT)
    finally:
        xmpp.del_event_handler("stanza_acked", onAcked)
    return sm.last_ack


def acknowledged(client) -> defer.Deferred:
    """
    Fires (with the server's last 'h') once the server has acknowledged
    every stanza C{client} sent so far: for a message to an offline
    account, once it is stored on disk (issue 5's rule).
    """
    return asDeferred(_acknowledged(client))


async def _available(client) -> None:
    echoed = asyncio.get_running_loop().create_future()

    def onPresence(presence) -> None:
        if presence["from"] == client.xmpp.boundjid and not echoed.done():
            echoed.set_result(None)

    client.xmpp.add_event_handler("presence_available", onPresence)
    try:
        client.xmpp.send_presence()
        # RFC 6121 §4.2.2: the server reflects initial presence to its sender.
        await asyncio.wait_for(echoed, TIMEOUT)
    finally:
        client.xmpp.del_event_handler("presence_available", onPresence)


def available(client) -> defer.Deferred:
    """Send initial presence; fires once the server has reflected it."""
    return asDeferred(_available(client))
