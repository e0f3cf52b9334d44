"""
One module (or small package) per protocol area a served domain offers.
Each provides C{makeHandler(domain)} and is loaded by name from
C{server.modules} (L{xmppd.config.registry}, L{xmppd.core.modules}).

Features cooperate through hooks and through the small interfaces other
features declare, never through each other's internals.  A feature declares
its interface with C{__all__} in the module that defines it (today: the
roster's L{xmppd.features.roster.rosterManager}, disco's
L{xmppd.features.disco.gatherInfo}, carbons' L{xmppd.features.carbons.isCarbon},
MAM's query protocol in L{xmppd.features.mam.query}, what other entities'
capabilities say in L{xmppd.features.clientcaps.tracker}, and the
publish-subscribe engine in L{xmppd.features.pubsub.engine} with the
modules of that package that list C{__all__}, for PEP; PEP's
C{"pep/published"} hook and L{xmppd.features.pep.handler.pepOf}, and the
vCard's C{"vcard/changed"} hook with L{xmppd.features.vcard.loadVCard} and
L{xmppd.features.vcard.storeVCard}, for avatars and nicknames; client state
indication's L{xmppd.features.csi.setState}, for Bind 2); another feature
may import only those names, and a module without C{__all__} offers nothing.
Helpers that several features need and that belong to none (copying a
stanza, its type, its priority) live in L{xmppd.core.stanzas} instead.  The
import contract C{interfaces} in setup.cfg checks this (L{tests.importrules}).
"""
