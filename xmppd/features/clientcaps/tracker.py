# -*- test-case-name: tests.test_clientcaps -*-
"""
What a served domain knows of other entities' features, from their entity
capabilities (XEP-0115): the interface other features (PEP, XEP-0163 §4)
use, through L{capsOf}.

    caps = capsOf(domain)
    caps.features(fullJID)            # frozenset, or None: not known (yet)
    caps.wantsNotify(fullJID, node)   # announces node + "+notify"
    caps.interested(bareJID, node)    # the full JIDs of an account that do
    caps.forget(fullJID)              # gone (a notification bounced)
    domain.hooks.add(CAPS_CHANGED, onCaps, OBSERVE)   # a CapsEvent

How it learns (L{EntityCaps.announced}, called by the feature's hooks in
L{xmppd.features.clientcaps.handler}): an available presence carries
C{<c hash= node= ver=/>}.  A C{(hash, ver)} already in the cache gives the
full JID its features at once, and no query.  Otherwise the domain sends
one disco#info query for C{node#ver} to that full JID, through the router
like any stanza (so a remote entity is asked over s2s); any other full JID
announcing the same C{(hash, ver)} meanwhile waits for the same answer
(§6.3: one query per unique hash).  The answer is checked against C{ver}
(L{xmppd.features.clientcaps.verify}, §5.4); a valid one is cached, hash
-> features, and every waiting full JID gets it.  An error, a timeout or an
answer that does not verify is never cached: the full JID that gave it is
treated as having no caps, and the query goes on to the next full JID
still waiting, so one lying or slow client cannot keep the others from
being learnt (each is asked at most once per C{ver}).

Left out on purpose: legacy caps without C{hash} (§1.1 "legacy format",
with C{ext}) and caps under a hash function we do not support
(L{xmppd.features.clientcaps.verify.HASHES}): both are treated as no caps
(§5.4 step 2 would allow keeping an unverified answer per JID; every
current client sends C{sha-1}).  An available presence without C{<c/>}
means no caps as well (a client includes it in every presence, §4).

When L{CAPS_CHANGED} fires: when a full JID's features become known (at
once for a known C{ver}, while the presence that announced it is being
processed and before the presence feature handles it; else when the answer
arrives), and again whenever a presence announces another C{ver} whose
features are known.  Nothing fires when features are forgotten:
L{EntityCaps.features} then answers C{None}.

Forgetting: a full JID's entry goes when it sends unavailable presence or
its session closes (local users), or when it sends unavailable presence to
one of the domain's users (others).  Everything is bounded: the cache
(C{[clientcaps] cache_size}, least recently used out), the pending queries
(C{max_pending}; half of them at most for remote entities, so a remote
flood cannot starve local clients), each query's wait
(C{query_timeout}, on the domain's clock) and the remote full JIDs tracked
(C{max_remote}, least recently heard out; local entries live only as long
as a bound session).

Implements: XEP-0115 1.6.0 §4, §5.4, §6.3
"""

from __future__ import annotations

import dataclasses
import itertools
import weakref
from collections import OrderedDict
from typing import Any

from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.config import integer, number, option, section
from xmppd.core.events import declare
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.features.clientcaps.verify import HASHES, NS_DISCO_INFO, verifiedFeatures

__all__ = ["CAPS_CHANGED", "CapsEvent", "EntityCaps", "capsOf"]

NS_CAPS = "http://jabber.org/protocol/caps"

#: Prefix of the ids of the domain's disco#info queries.
ID_PREFIX = "xmppd-caps-"


@section("clientcaps")
@dataclasses.dataclass(frozen=True)
class ClientCapsConfig:
    cache_size: int = option(
        1000, integer(1, 1000000),
        "distinct entity capabilities (hash -> features, XEP-0115) a domain keeps")
    max_pending: int = option(
        100, integer(1, 100000),
        "disco#info queries for unknown capabilities a domain may wait for at once")
    query_timeout: float = option(
        30.0, number(minimum=0, minimumExclusive=True),
        "seconds to wait for the answer to a capabilities query")
    max_remote: int = option(
        10000, integer(0, 10000000),
        "full JIDs of other domains whose capabilities a domain tracks; 0 tracks none")


@dataclasses.dataclass(frozen=True)
class CapsEvent:
    """Payload of L{CAPS_CHANGED}: C{jid}'s features are now C{features}."""

    jid: JID
    features: frozenset


#: A full JID's features became known or changed (L{CapsEvent}); fired,
#: notified, in the scope of the domain that learnt them.
CAPS_CHANGED = declare("caps/changed", CapsEvent, False,
                       "a full JID's features (entity capabilities) became known or changed")


#: What an entry's features are.
KNOWN, WAITING, FAILED, DEFERRED = "known", "waiting", "failed", "deferred"


class _Entry:
    """What one full JID announced and what we know of it."""

    __slots__ = ("key", "node", "features", "state")

    def __init__(self, key: tuple[str, str], node: str):
        self.key = key
        self.node = node
        self.features: frozenset | None = None
        self.state = DEFERRED


class _Query:
    """One disco#info query in flight for one C{(hash, ver)}."""

    __slots__ = ("key", "node", "remote", "waiting", "asked", "id", "timer")

    def __init__(self, key: tuple[str, str], node: str, remote: bool):
        self.key = key
        self.node = node
        self.remote = remote
        #: The full JIDs waiting for the answer, in the order they came.
        self.waiting: dict[JID, None] = {}
        self.asked: JID | None = None
        self.id: str | None = None
        self.timer = None


class EntityCaps:
    """One domain's knowledge of entity capabilities; see the module docstring."""

    log = Logger()

    def __init__(self, domain, config: ClientCapsConfig | None = None):
        self.domain = domain
        self.config = config if config is not None else domain.config.clientcaps
        #: (hash, ver) -> features, least recently used first.
        self.cache: OrderedDict[tuple[str, str], frozenset] = OrderedDict()
        self.local: dict[JID, _Entry] = {}
        #: Full JIDs of other domains, least recently heard first.
        self.remote: OrderedDict[JID, _Entry] = OrderedDict()
        #: Bare JID (text) -> the full JIDs above of that account.
        self.byBare: dict[str, set[JID]] = {}
        self.pending: dict[tuple[str, str], _Query] = {}
        self.byId: dict[str, _Query] = {}
        self.remotePending = 0
        self.serials = itertools.count(1)

    # -- the interface -----------------------------------------------------

    def entry(self, jid: JID | str) -> _Entry | None:
        if isinstance(jid, str):
            try:
                jid = parseJID(jid)
            except InvalidJID:
                return None
        entry = self.local.get(jid)
        return entry if entry is not None else self.remote.get(jid)

    def features(self, jid: JID | str) -> frozenset | None:
        """C{jid}'s features (a full JID), or C{None} while not known or with no caps."""
        entry = self.entry(jid)
        return entry.features if entry is not None else None

    def wantsNotify(self, jid: JID | str, node: str) -> bool:
        """Whether C{jid} announced C{node+notify} (XEP-0163 §4)."""
        features = self.features(jid)
        return features is not None and node + "+notify" in features

    def resourcesOf(self, bare: JID | str) -> list[JID]:
        """
        The full JIDs of account C{bare} whose features are known: for a
        contact of another domain, the only record of which of its
        resources are online that PEP has (XEP-0163 §4.3 notifies full JIDs).
        """
        if isinstance(bare, str):
            try:
                bare = parseJID(bare)
            except InvalidJID:
                return []
        return [jid for jid in self.byBare.get(bare.userhost(), ())
                if self.features(jid) is not None]

    def interested(self, bare: JID | str, node: str) -> list[JID]:
        """The full JIDs of account C{bare} that want C{node} notifications."""
        wanted = node + "+notify"
        return [jid for jid in self.resourcesOf(bare) if wanted in self.features(jid)]

    # -- learning ------------------------------------------------------------

    def isLocal(self, jid: JID) -> bool:
        return jid.host == self.domain.domain

    def announced(self, jid: JID, presence: domish.Element) -> None:
        """
        C{jid} (a full JID) sent available C{presence}: learn its caps.
        The cheap path: find the C{<c/>} child; an unchanged C{ver} costs
        two dict lookups.
        """
        c = None
        for child in presence.elements():
            if child.name == "c" and child.uri == NS_CAPS:
                c = child
                break
        if c is None:
            self.forget(jid)
            return
        hashName, ver, node = c.getAttribute("hash"), c.getAttribute("ver"), c.getAttribute("node")
        if not hashName or not ver or not node or hashName not in HASHES:
            self.forget(jid)  # legacy or unsupported caps: no caps
            return
        key = (hashName, ver)
        local = self.isLocal(jid)
        table = self.local if local else self.remote
        entry = table.get(jid)
        if entry is not None and entry.key == key and entry.state != DEFERRED:
            if not local:
                table.move_to_end(jid)
            return
        if entry is not None:
            self.leaveQuery(jid, entry)
        elif not local:
            if not self.config.max_remote:
                return
            while len(table) >= self.config.max_remote:
                oldJID, old = table.popitem(last=False)
                self.unindex(oldJID)
                self.leaveQuery(oldJID, old)
        entry = _Entry(key, node)
        if jid not in table:
            self.byBare.setdefault(jid.userhost(), set()).add(jid)
        table[jid] = entry
        if not local:
            table.move_to_end(jid)
        features = self.cache.get(key)
        if features is not None:
            self.cache.move_to_end(key)
            self.learnt(jid, entry, features)
        else:
            self.ask(jid, entry, remote=not local)

    def forget(self, jid: JID) -> None:
        """C{jid} went unavailable or away: nothing is known of it any more."""
        entry = self.local.pop(jid, None)
        if entry is None:
            entry = self.remote.pop(jid, None)
        if entry is not None:
            self.unindex(jid)
            self.leaveQuery(jid, entry)

    def unindex(self, jid: JID) -> None:
        bare = jid.userhost()
        resources = self.byBare.get(bare)
        if resources is not None:
            resources.discard(jid)
            if not resources:
                del self.byBare[bare]

    def learnt(self, jid: JID, entry: _Entry, features: frozenset) -> None:
        entry.features = features
        entry.state = KNOWN
        self.domain.hooks.notify(CAPS_CHANGED, CapsEvent(jid, features))

    # -- querying ------------------------------------------------------------

    def ask(self, jid: JID, entry: _Entry, remote: bool) -> None:
        query = self.pending.get(entry.key)
        if query is not None:
            query.waiting[jid] = None
            entry.state = WAITING
            return
        limit = self.config.max_pending
        if len(self.pending) >= limit or remote and self.remotePending >= max(1, limit // 2):
            # Too many questions open: no caps for now; the next presence
            # with this ver tries again.
            entry.state = DEFERRED
            return
        query = self.pending[entry.key] = _Query(entry.key, entry.node, remote)
        if remote:
            self.remotePending += 1
        query.waiting[jid] = None
        entry.state = WAITING
        self.send(query, jid)

    def send(self, query: _Query, jid: JID) -> None:
        """Ask C{jid} for C{node#ver} (XEP-0115 §6.2), from the domain."""
        query.asked = jid
        query.id = "%s%d" % (ID_PREFIX, next(self.serials))
        self.byId[query.id] = query
        query.timer = self.domain.clock.callLater(self.config.query_timeout,
                                                  self.timedOut, query)
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["id"] = query.id
        iq["from"] = self.domain.domain
        iq["to"] = jid.full()
        iq.addElement((NS_DISCO_INFO, "query"))["node"] = "%s#%s" % (query.node, query.key[1])
        self.domain.router.route(iq)

    def answered(self, stanza: domish.Element, sender: JID | None) -> bool:
        """
        An IQ result or error to the domain: True when it answers one of
        our queries (and is taken care of here).
        """
        stanzaId = stanza.getAttribute("id")
        query = self.byId.get(stanzaId) if stanzaId is not None else None
        if query is None or sender != query.asked:
            return False
        self.stopWaiting(query)
        features = None
        if stanza.getAttribute("type") == "result":
            answer = None
            for child in stanza.elements():
                answer = child
                break
            features = verifiedFeatures(answer, *query.key)
        if features is None:
            self.log.debug("Caps {ver} of {jid} not learnt: no valid answer",
                           ver=query.key[1], jid=sender.full())
            self.failed(query)
        else:
            self.resolved(query, features)
        return True

    def stopWaiting(self, query: _Query) -> None:
        """The question to C{query.asked} is over (answered, timed out or moot)."""
        self.byId.pop(query.id, None)
        if query.timer is not None and query.timer.active():
            query.timer.cancel()
        query.timer = None

    def timedOut(self, query: _Query) -> None:
        query.timer = None
        self.stopWaiting(query)
        self.failed(query)

    def resolved(self, query: _Query, features: frozenset) -> None:
        self.close(query)
        self.cache[query.key] = features
        self.cache.move_to_end(query.key)
        while len(self.cache) > self.config.cache_size:
            self.cache.popitem(last=False)
        # A copy: callbacks of the hook may send presence and come back here.
        for jid in list(query.waiting):
            entry = self.entry(jid)
            if entry is not None and entry.key == query.key:
                self.learnt(jid, entry, features)

    def failed(self, query: _Query) -> None:
        """
        C{query.asked} gave no valid answer: it has no caps, and the next
        full JID waiting for the same C{ver} is asked.
        """
        asked = query.asked
        query.waiting.pop(asked, None)
        entry = self.entry(asked)
        if entry is not None and entry.key == query.key:
            entry.state = FAILED
        self.next(query)

    def next(self, query: _Query) -> None:
        """Ask the first one still waiting, or give the query up."""
        for jid in query.waiting:
            self.send(query, jid)
            return
        self.close(query)

    def close(self, query: _Query) -> None:
        if self.pending.get(query.key) is query:
            del self.pending[query.key]
            if query.remote:
                self.remotePending -= 1

    def leaveQuery(self, jid: JID, entry: _Entry) -> None:
        """C{jid} no longer waits for C{entry}'s answer (gone, or a new C{ver})."""
        if entry.state != WAITING:
            return
        entry.state = DEFERRED
        query = self.pending.get(entry.key)
        if query is None or jid not in query.waiting:
            return
        del query.waiting[jid]
        if query.asked == jid:
            # Nobody would answer now: a late answer is ignored and the
            # next one waiting is asked.
            self.stopWaiting(query)
            self.next(query)


#: The domains' L{EntityCaps}, beside each domain rather than on it (as the
#: roster's manager): the core needs no attribute for a feature.
_tracked: "weakref.WeakKeyDictionary[Any, EntityCaps]" = weakref.WeakKeyDictionary()


def capsOf(domain) -> EntityCaps:
    """
    The L{EntityCaps} of C{domain} (a L{xmppd.core.local.LocalDomain}),
    shared by every feature.  It learns only while the C{clientcaps}
    feature runs on the domain; without it every answer is "not known".
    """
    caps = _tracked.get(domain)
    if caps is None:
        caps = _tracked[domain] = EntityCaps(domain)
    return caps
