# -*- test-case-name: tests.test_cluster -*-
"""
The cluster's names in Redis, all under C{xmppd:c:} (storage has
C{xmppd:s:}, leases C{xmppd:lease:}), in one place so the schema can be
read at a glance:

  - C{xmppd:c:nodes}: set of the node names that joined.
  - C{xmppd:c:node:NODE}: NODE's heartbeat, a string with a TTL of the
    lease; its absence means NODE is dead.
  - C{xmppd:c:sessions}: hash, full JID -> C{"NODE TOKEN AVAILABLE
    PRIORITY CARBONS"}: the session directory's truth (CARBONS: 1 when
    the resource enabled XEP-0280 message carbons).
  - C{xmppd:c:held:NODE}: set of the full JIDs NODE holds, so that
    removing a dead node's sessions costs its own sessions, not a scan.
  - C{xmppd:c:seq}: counter of directory changes, so a node that
    (re)subscribes can tell which notifications its snapshot already holds.
  - C{xmppd:c:inbox:NODE}: stream of the stanzas other nodes send to
    NODE's sessions: one entry per sending node and reactor turn, its field
    C{m} the stanzas packed (L{xmppd.cluster.transport.pack}).
  - channels C{xmppd:c:directory} (changes of the directory) and
    C{xmppd:c:invalidate} (cached account data changed on some node).
  - C{xmppd:c:address:NODE}: the public client address (C{"host:port"})
    of NODE, where a draining node sends its clients (RFC 6120
    §4.9.3.19 see-other-host); C{xmppd:c:draining}: set of the nodes
    draining (L{xmppd.admin.control}).
  - C{xmppd:c:api_tokens}: hash, an HTTP API token's name -> JSON
    C{{"sha256", "scope", "created"}} (L{xmppd.admin.clustertokens}); a
    change is published on C{xmppd:c:invalidate} as C{"(xmppctl)
    api_tokens NAME"}.  Never a token itself.
  - channel C{xmppd:c:control:NODE}: operations for NODE (C{xmppctl
    drain}); each request names a list C{xmppd:c:reply:TOKEN} where NODE
    pushes its answer.
"""

from __future__ import annotations

PREFIX = "xmppd:c:"
NODES = PREFIX + "nodes"
SESSIONS = PREFIX + "sessions"
SEQ = PREFIX + "seq"
DIRECTORY_CHANNEL = PREFIX + "directory"
INVALIDATE_CHANNEL = PREFIX + "invalidate"
API_TOKENS = PREFIX + "api_tokens"


def heartbeatKey(node: str) -> str:
    return PREFIX + "node:" + node


def heldKey(node: str) -> str:
    return PREFIX + "held:" + node


def inboxKey(node: str) -> str:
    return PREFIX + "inbox:" + node


DRAINING = PREFIX + "draining"


def addressKey(node: str) -> str:
    return PREFIX + "address:" + node


def controlChannel(node: str) -> str:
    return PREFIX + "control:" + node


def replyKey(token: str) -> str:
    return PREFIX + "reply:" + token
