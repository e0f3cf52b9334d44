# -*- test-case-name: tests.test_redisclient,tests.test_cluster -*-
"""
Several xmppd nodes serving the same domains, on Redis (issue 14): the
session directory shared by the nodes, stanzas between nodes, leases (who
owns a room), and the cluster's operations.

A layer of its own, above storage (it keeps its state in Redis through
L{xmppd.storage.redisclient}) and below the stream kinds and features,
which use it through the core's interfaces (C{ISessionDirectory}, the
router); L{xmppd.tap} plugs it in when the configuration has a
C{[cluster]} section.  Without one, nothing here is imported.

The design (DESIGN §6), in short:

  - L{xmppd.cluster.directory}: the session directory's truth is a hash
    in Redis changed only by Lua scripts, each of which publishes the
    change on a channel; every node keeps a replica from those
    notifications, so look-ups stay synchronous and local, and Redis's
    order of scripts is the order every node sees.
  - L{xmppd.cluster.transport}: a stanza for a binding on another node
    goes to that node's inbox, a Redis stream, and the node reads it with
    a blocking C{XREAD} and deletes an entry once each of its stanzas is
    settled (acknowledged by the client's stream management, or handed
    on), so a node's crash loses nothing it had accepted (at least once);
    the sender's stream management counts a forwarded stanza only once
    Redis has it.  Chosen over direct
    node-to-node streams because the stanzas of a dead node stay where a
    survivor can take them and route them again (never lost, never
    silently dropped), and because, batched per reactor turn, the
    measured cost of a cross-node message is within noise of a same-node
    one (README, "A cluster"); a TCP mesh would save the Redis hop but
    not the parsing, and would lose what was in flight when a node died.
  - L{xmppd.cluster.service}: heartbeat (a key with a TTL), the watch
    over the other nodes' heartbeats, the subscription, the inbox reader.
  - L{xmppd.cluster.lease}: who owns a room (a lease in Redis), and which
    node should claim a free one (rendezvous hashing over the live nodes).
  - L{xmppd.cluster.invalidation}: caches of account data dropped on the
    other nodes when one node writes.
"""
