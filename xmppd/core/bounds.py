# -*- test-case-name: tests.test_metrics_bounds -*-
"""
The node's in-memory caches and queues as gauges (issue 18, item 3: "no
growth in any queue or cache beyond its bound" must be visible on
C{/metrics}, not only through a flat resident memory).

Read at scrape time only: L{boundSamples} walks the structures and takes
their C{len()}; nothing is counted on the hot paths.  Per-session queues
(stream management's unacknowledged stanzas, client state indication,
BOSH) are summed by a scan over the node's client streams and sessions,
once per scrape: a few milliseconds at 10,000 sessions, paid by the
scraper, never by a stanza.  Per-room MUC history is summed the same way
over the loaded rooms.

Four families, every value summed over the node's domains:

  - C{xmppd_cache_entries{cache}}: entries a cache holds now;
  - C{xmppd_cache_capacity{cache}}: the most it keeps, for caches bounded
    by a number (caches that hold one entry per bound session, such as
    the rosters, are bounded by the sessions and have none);
  - C{xmppd_queue_items{queue}}: items waiting now, over all queues of
    that kind (one per session, room, account or route);
  - C{xmppd_queue_longest{queue}}: the longest single queue of that kind;
  - C{xmppd_queue_capacity{queue}}: the most one queue of that kind may
    hold, when it is bounded by a number.

This module knows where each structure lives (the owners stay free of
metrics code); a feature that is not running on the node is simply not
reported.  It imports no feature, listener or MUC module (the core sits
below them, C{setup.cfg}'s layers): it reads their objects by duck typing
and their constants from the modules already loaded (L{_ownConstant}).  The README's metrics table lists every name and its bound.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from twisted.logger import Logger

from xmppd.core.metrics import Sample

log = Logger()

CACHE_HELP = "Entries an in-memory cache holds now, by cache"
CAPACITY_HELP = "The most entries an in-memory cache keeps, by cache"
QUEUE_HELP = "Items waiting in in-memory queues of one kind, summed, by queue"
LONGEST_HELP = "The longest single in-memory queue of one kind, by queue"
QUEUE_CAPACITY_HELP = "The most items one in-memory queue of this kind holds, by queue"


class Tally:
    """Caches and queues as they are found, summed over domains and owners."""

    def __init__(self):
        self.entries: dict[str, int] = defaultdict(int)
        self.capacity: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)
        self.longest: dict[str, int] = defaultdict(int)
        self.queueCapacity: dict[str, int] = {}

    def cache(self, name: str, entries: int, capacity: int | None = None) -> None:
        self.entries[name] += entries
        if capacity is not None:
            self.capacity[name] += capacity

    def queue(self, name: str, lengths, capacity: int | None = None) -> None:
        """C{lengths}: the length of each queue of the kind (an iterable of ints)."""
        total = self.items[name]
        longest = self.longest[name]
        for n in lengths:
            total += n
            if n > longest:
                longest = n
        self.items[name], self.longest[name] = total, longest
        if capacity is not None:
            self.queueCapacity[name] = max(capacity, self.queueCapacity.get(name, 0))

    def samples(self):
        for name in sorted(self.entries):
            yield Sample("xmppd_cache_entries", "gauge", CACHE_HELP, {"cache": name},
                         self.entries[name])
        for name in sorted(self.capacity):
            yield Sample("xmppd_cache_capacity", "gauge", CAPACITY_HELP, {"cache": name},
                         self.capacity[name])
        for name in sorted(self.items):
            yield Sample("xmppd_queue_items", "gauge", QUEUE_HELP, {"queue": name},
                         self.items[name])
        for name in sorted(self.longest):
            yield Sample("xmppd_queue_longest", "gauge", LONGEST_HELP, {"queue": name},
                         self.longest[name])
        for name in sorted(self.queueCapacity):
            yield Sample("xmppd_queue_capacity", "gauge", QUEUE_CAPACITY_HELP, {"queue": name},
                         self.queueCapacity[name])


def boundSamples(server):
    """The L{Sample}s of every cache and queue of C{server} (see the module docstring)."""
    tally = Tally()
    processWide(tally)
    for child in list(server):
        if hasattr(child, "presence") and hasattr(child, "handlers"):
            _guarded(domainStructures, tally, child)
        else:
            _guarded(serviceStructures, tally, child)
    storage = server.storageService
    if storage is not None and hasattr(storage.storage, "_group"):
        _guarded(sqliteStructures, tally, storage.storage)
    return list(tally.samples())


#: The owners whose reading failed once (logged once, not at every scrape).
_failed: set[str] = set()


def _guarded(read, tally: Tally, owner) -> None:
    """
    C{read(tally, owner)}; a structure that cannot be read (a feature
    changed its internals) costs its own gauges, never the page: logged
    once per kind of owner.
    """
    try:
        read(tally, owner)
    except Exception:  # noqa: BLE001 - logged; the rest of the page is still served
        kind = "%s %s" % (read.__name__, type(owner).__name__)
        if kind not in _failed:
            _failed.add(kind)
            log.failure("Cannot read the caches and queues of {owner}", owner=kind)


def processWide(tally: Tally) -> None:
    """The C{functools.lru_cache}s, shared by every node of the process."""
    from xmppd.core.jid import parseJID
    info = parseJID.cache_info()
    tally.cache("jid_parse", info.currsize, info.maxsize)
    nickname = sys.modules.get("muc.nickname")
    if nickname is not None:
        for name, function in (("muc_nick_enforce", nickname.enforce),
                               ("muc_nick_compare", nickname.comparisonKey)):
            info = function.cache_info()
            tally.cache(name, info.currsize, info.maxsize)


def _accountData(tally: Tally, name: str, cache) -> None:
    """An L{xmppd.core.accountcache.AccountDataCache}: kept per session, and recent others."""
    if cache is None:
        return
    tally.cache(name + "_sessions", len(cache.pinned))
    tally.cache(name + "_recent", len(cache.recent), cache.size)


def domainStructures(tally: Tally, domain) -> None:
    """One served domain's caches and queues."""
    presence = domain.presence
    tally.cache("presence_resources", len(presence.resources))
    tally.cache("presence_invisible", len(presence.invisible))
    tally.queue("presence_heard", (len(s) for s in list(presence.heard.values())),
                _constant("xmppd.core.presencestate", "MAX_HEARD"))
    roster = _registered("xmppd.features.roster", "_managers", domain)
    if roster is not None:
        tally.cache("roster", len(roster._cache))
    caps = _registered("xmppd.features.clientcaps.tracker", "_tracked", domain)
    if caps is not None:
        tally.cache("caps", len(caps.cache), caps.config.cache_size)
        tally.cache("caps_remote", len(caps.remote), caps.config.max_remote)
        tally.queue("caps_queries", (len(caps.pending),), caps.config.max_pending)
    policy = _registered("xmppd.features.privacy.policy", "_policies", domain)
    if policy is not None:
        _accountData(tally, "blocklist", policy.blocklists)
        _accountData(tally, "privacy", policy.privacy)
    pep = _registered("xmppd.features.pep.handler", "_running", domain)
    if pep is not None:
        settings = pep.pepSettings
        tally.cache("pep_engines", len(pep.engines), settings.engines_cached)
        tally.cache("pep_nodes", len(pep.store._entries), pep.store.services)
        tally.cache("pep_remote", len(pep.remote), settings.max_remote_resources)
        tally.queue("pep_fanout", (len(pep.fanout.queue),))
    for handler in list(domain.handlers):
        handlerStructures(tally, handler)


def handlerStructures(tally: Tally, handler) -> None:
    """The caches and queues of one feature handler of a domain, by its class."""
    kind = type(handler).__name__
    if kind == "MAMHandler":
        _accountData(tally, "mam_prefs", handler.cache)
        tally.queue("mam_decisions", (len(q) for q in list(handler.queues.values())),
                    _ownConstant(handler, "MAX_WAITING"))
    elif kind == "AvatarsHandler":
        tally.cache("avatar_hashes", len(handler.hashes), handler.maxCached)
    elif kind == "NicknameHandler":
        tally.cache("nicknames", len(handler.nicks), handler.maxCached)
    elif kind == "BookmarksHandler":
        tally.cache("bookmarks_checked", len(handler.checked),
                    _ownConstant(handler, "REMEMBERED"))
    elif kind == "PushHandler":
        tally.queue("push_pending", (len(handler.pending),), _ownConstant(handler, "MAX_PENDING"))
        tally.cache("push_rates", len(handler.rates), _ownConstant(handler, "MAX_RATE_ENTRIES"))
    elif kind == "MessageHandler":
        tally.queue("message_lookups", (len(w) for w in list(handler.waiting.values())),
                    _ownConstant(handler, "MAX_WAITING"))
    elif kind == "StreamManagementHandler":
        smStructures(tally, handler)


def smStructures(tally: Tally, handler) -> None:
    """
    Stream management's queues of the sessions resumable on the domain
    (attached or detached); sessions without resumption are counted with
    their stream (L{c2sStructures}).
    """
    resumable = list(handler.resumable.values())
    tally.cache("sm_resumable", len(resumable))
    bound = handler.maxUnacked
    tally.queue("sm_unacked", (len(sm.unacked) for sm in resumable), bound)
    tally.queue("sm_pending", (len(sm.pending) for sm in resumable))


def serviceStructures(tally: Tally, child) -> None:
    """The caches and queues of one service of the node, by what it is."""
    name = getattr(child, "name", None)
    if name == "c2s" and hasattr(child, "transports"):
        c2sStructures(tally, child)
    elif name == "cluster":
        transport = getattr(child, "transport", None)
        if transport is not None:
            tally.queue("cluster_forward", (len(q) for q in list(transport.queued.values())))
            tally.queue("cluster_inbox_holding", (transport.holding,), transport.inboxLimit)
    elif hasattr(child, "routes") and hasattr(child, "outgoing"):
        tally.queue("s2s_route", (len(route.queue) for route in list(child.routes.values())),
                    getattr(child, "maxQueue", None))
    elif hasattr(child, "rooms") and hasattr(child, "loading"):
        mucStructures(tally, child)


def c2sStructures(tally: Tally, c2s) -> None:
    """The client listeners: stream features, login failures, and per-stream queues."""
    featuresCacheSize = _constant("xmppd.c2s.stream", "FEATURES_CACHE_SIZE")
    factories = list({id(f): f for f in list(c2s.factories) + list(c2s.transports)}.values())
    for factory in factories:
        tally.cache("c2s_features", len(factory.featuresCache), featuresCacheSize)
    failures = getattr(c2s, "authFailures", None)
    if failures is not None:
        tally.cache("auth_failures", len(failures._failures), failures.maxEntries)
    from xmppd.core.ordering import MAX_BACKLOG
    unacked, pending, csi, backlog = [], [], [], []
    smLimit = None
    backlogLimit = MAX_BACKLOG
    try:
        csiLimit = c2s.server.config.csi.queue_size
    except AttributeError:
        csiLimit = None
    for factory in factories:
        for stream in list(factory.streams):
            waiting = stream.backlog
            if waiting is not None:
                backlog.append(len(waiting.queue))
                backlogLimit = waiting.limit
            sm = stream.sm
            if sm is not None and sm.id is None:
                # not resumable: not in the SM handler's table
                unacked.append(len(sm.unacked))
                pending.append(len(sm.pending))
                smLimit = sm.handler.maxUnacked
            state = stream.csi
            if state is not None:
                csi.append(len(state.held))
                csiLimit = state.limit
    tally.queue("sm_unacked", unacked, smLimit)
    tally.queue("sm_pending", pending)
    tally.queue("csi_held", csi, csiLimit)
    tally.queue("c2s_input_backlog", backlog, backlogLimit)
    for factory in factories:
        bosh = getattr(factory, "bosh", None)
        if bosh is not None:
            boshStructures(tally, bosh)


def boshStructures(tally: Tally, resource) -> None:
    """The BOSH sessions of this node and what waits in each."""
    sessions = list(resource.sessions.values())
    tally.cache("bosh_sessions", len(sessions))
    tally.queue("bosh_outbox", (len(s.outbox) for s in sessions))
    tally.queue("bosh_inbox", (len(s.inbox) for s in sessions))
    tally.queue("bosh_held_requests", (len(s.held) for s in sessions))
    tally.queue("bosh_answers", (len(s.answers) for s in sessions))


def mucStructures(tally: Tally, muc) -> None:
    """A MUC service: the rooms' history and the stanzas waiting for a room to load."""
    rooms = list(muc.rooms.values())
    tally.queue("muc_history", (len(room.history.entries) for room in rooms),
                muc.settings.history_length)
    tally.queue("muc_loading", (len(w) for w in list(muc.loading.values())),
                _ownConstant(muc, "MAX_WAITING"))


def sqliteStructures(tally: Tally, engine) -> None:
    """
    The SQLite engine's jobs waiting: writes for the next group commit,
    reads for the next batch, and jobs queued for its thread.
    """
    tally.queue("sqlite_writes", (len(engine._group),))
    tally.queue("sqlite_reads", (len(engine._readBatch or ()),))
    pool = engine._pool
    tally.queue("sqlite_thread_jobs", (pool.q.qsize() if pool is not None else 0,))


def _registered(module: str, table: str, domain):
    """What a feature keeps beside C{domain} in its module's table, if it is loaded."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return None
    return getattr(loaded, table).get(domain)


def _constant(module: str, name: str):
    """A module's constant, read from the loaded module (see the module docstring)."""
    return getattr(sys.modules[module], name)


def _ownConstant(owner, name: str):
    """A constant of the module that defines C{owner}'s class."""
    return getattr(sys.modules[type(owner).__module__], name)
