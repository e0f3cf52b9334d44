# -*- test-case-name: tests.test_redisclient -*-
"""
Several xmppd nodes serving the same domains, on Redis (issue 14): the
session directory shared by the nodes, stanzas between nodes, leases (who
owns a room), and the cluster's operations.

A layer of its own, above storage (it keeps its state in Redis through
L{xmppd.storage.redisclient}) and below the stream kinds and features,
which use it through the core's interfaces (C{ISessionDirectory}, the
router); L{xmppd.tap} plugs it in when the configuration has a
C{[cluster]} section.  Without one, nothing here is imported.
"""
