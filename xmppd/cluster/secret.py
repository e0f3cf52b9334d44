# -*- test-case-name: tests.test_clustersecret -*-
"""
One secret for the whole cluster.

A node's secret (L{xmppd.core.server.loadSecret}, a file in its data
directory) keys two things that must agree on every node of a cluster:
dialback keys (XEP-0185: a key one node wrote for a remote server must
verify on whichever node that server asks, issue 14 item 7), and the fake
SCRAM salts of unknown users (the same unknown user must get the same salt
from every node, or asking two nodes tells who exists).

The first node to start puts its own secret in Redis (C{SET NX}); every
node then uses what Redis has.  A lone node keeps its file's secret, so a
node that becomes the first of a cluster keeps its dialback keys valid.
A node's listeners wait until it uses the cluster's secret
(L{xmppd.cluster.service.ClusterService.whenSecretKnown}): before, it would
make keys no other node verifies and call theirs invalid.
"""

from __future__ import annotations

#: The cluster's secret, hex-encoded (the connections decode replies as text).
SECRET_KEY = "xmppd:c:secret"


async def clusterSecret(redis, local: bytes) -> bytes:
    """The cluster's secret: C{local} if this node is the first, else the first node's."""
    await redis.execute_command("SET", SECRET_KEY, local.hex(), "NX")
    stored = await redis.get(SECRET_KEY)
    try:
        return bytes.fromhex(stored)
    except (TypeError, ValueError):
        # A key someone else wrote (or removed meanwhile): say so in one line.
        raise ValueError("%s is not a hex-encoded secret (%r)"
                         % (SECRET_KEY, (stored or "")[:20])) from None
