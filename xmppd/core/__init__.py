"""
The core of a node: the service root, the router, the served domains, the
session directory, hooks and their catalogue, dispatch, in-order processing
of each sender's stanzas (L{xmppd.core.ordering}), feature loading, stanza
helpers (L{xmppd.core.stanzas}, L{xmppd.core.delivery}: what several
features need and none owns) and JIDs.  The core knows no feature and no stream kind:
features plug in through hooks (L{xmppd.core.events}) and streams through
the router and the session directory.
"""
