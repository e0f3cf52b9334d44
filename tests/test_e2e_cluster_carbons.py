"""
End to end, message carbons (XEP-0280) in a cluster of two real C{twistd}
nodes on one redis-server (issue 14 item 5): a user with one device on
each node, both with slixmpp's XEP-0280 plugin, sees both sides of every
conversation on both devices, as on one node, and a device that disabled
carbons gets no more copies.
"""

from __future__ import annotations

import pytest_twisted

from tests.clusterhelpers import clusterServer, startProcess
from tests.e2e import wait
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_e2e_carbons import carbonsClient

ensureDeferred = pytest_twisted.ensureDeferred


@ensureDeferred
async def test_carbonsAcrossNodes(makeServer, redisServer):
    """
    Juliet's phone is on node a, her laptop on node b, both with carbons:
    what Romeo (node a) sends to her phone, and what either device sends,
    shows up on the other device as a received or sent copy, once; after
    the laptop disables carbons it gets no more copies.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo", "juliet"))
    b = await clusterServer(makeServer, redisServer, "b")
    processes = []
    try:
        processes.append(await startProcess(a))
        processes.append(await startProcess(b))
        phone = await carbonsClient(a, "juliet", "phone")
        laptop = await carbonsClient(b, "juliet", "laptop")
        # Romeo logs in after both enabled carbons: node a knows by then.
        romeo = await a.login("romeo", "orchard")

        # Received (§7): handled on node a, copied to the laptop on node b.
        romeo.send("juliet@localhost/phone", "But soft!")
        assert (await phone.client.nextMessage())["body"] == "But soft!"
        copy = await laptop.nextReceived()
        assert copy["body"] == "But soft!"
        assert copy["from"] == "romeo@localhost/orchard"
        assert copy["to"] == "juliet@localhost/phone"

        # Sent (§8), from node a to node b, and from node b to node a.
        phone.client.send("romeo@localhost/orchard", "Ay me!")
        assert (await romeo.nextMessage())["body"] == "Ay me!"
        copy = await laptop.nextSent()
        assert (copy["body"], copy["from"], copy["to"]) == (
            "Ay me!", "juliet@localhost/phone", "romeo@localhost/orchard")
        laptop.client.send("romeo@localhost/orchard", "Romeo, Romeo!")
        assert (await romeo.nextMessage())["body"] == "Romeo, Romeo!"
        copy = await phone.nextSent()
        assert (copy["body"], copy["from"]) == ("Romeo, Romeo!", "juliet@localhost/laptop")

        # Received the other way: to the laptop, copied to the phone.
        romeo.send("juliet@localhost/laptop", "She speaks")
        assert (await laptop.client.nextMessage())["body"] == "She speaks"
        assert (await phone.nextReceived())["body"] == "She speaks"

        # The laptop disables carbons.  Its own message after that, once
        # Romeo has it, shows that node a handled what came before it.
        await wait(laptop.client.xmpp.plugin["xep_0280"].disable())
        laptop.client.send("romeo@localhost/orchard", "Deny thy father")
        assert (await romeo.nextMessage())["body"] == "Deny thy father"
        assert (await phone.nextSent())["body"] == "Deny thy father"
        romeo.send("juliet@localhost/phone", "Shall I hear more?")
        assert (await phone.client.nextMessage())["body"] == "Shall I hear more?"
        phone.client.send("romeo@localhost/orchard", "Refuse thy name")
        assert (await romeo.nextMessage())["body"] == "Refuse thy name"
        # Node a forwards to node b in order: this comes after any copy.
        romeo.send("juliet@localhost/laptop", "last")
        assert (await laptop.client.nextMessage())["body"] == "last"
        assert laptop.received.empty() and laptop.sent.empty()
        # The phone still has carbons: one copy of that, and of nothing twice.
        assert (await phone.nextReceived())["body"] == "last"
        assert phone.received.empty() and phone.sent.empty()
    finally:
        for process in processes:
            await process.kill("TERM")
