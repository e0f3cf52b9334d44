"""
Issue 18, item 3: the node's in-memory caches and queues on C{/metrics}
(L{xmppd.core.bounds}), read at scrape time.  In memory with a Clock:
stream management's unacknowledged stanzas (resumable sessions and
others, summed, the longest, the bound), presence state, MUC history.
End to end: real slixmpp traffic on a real node, the page scraped over
HTTP and parsed with C{prometheus-client}'s own parser.
"""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pytest_twisted import ensureDeferred

from tests.muchelpers import ROMEO, roomWithRomeo
from tests.smhelpers import FEATURES, SMNode
from tests.test_e2e_metrics import scrapeUntil
from tests.test_metrics import page
from xmppd.c2s.listeners import C2SService
from xmppd.core.bounds import Tally, boundSamples, c2sStructures, domainStructures, mucStructures

BALCONY = "juliet@example.org/balcony"
ORCHARD = "romeo@example.org/orchard"


def family(values: dict, name: str, label: str) -> dict:
    """{label value: value} of one family of a scrape."""
    return {dict(labels)[label]: v for (sample, labels), v in values.items() if sample == name}


def tallied(tally: Tally) -> dict:
    """{(name, label value): value} of a tally's samples."""
    return {(s.name, next(iter(s.labels.values()))): s.value for s in tally.samples()}


def smNode(tmp_path):
    node = SMNode(tmp_path, features=FEATURES, max_unacked=50)
    service = C2SService(node.server, None)
    service.factories.append(node.base.factory)
    return node, service


def scan(node, service) -> dict:
    tally = Tally()
    domainStructures(tally, node.domain)
    c2sStructures(tally, service)
    return tallied(tally)


def test_smUnackedSummedOverSessions(tmp_path):
    """
    Unacknowledged stanzas of a resumable session (in the SM handler's
    table) and of one without resumption (found on its stream) are summed;
    the longest queue and the bound (C{max_unacked}) are there too, and an
    ack empties them.
    """
    node, service = smNode(tmp_path)
    juliet = node.login(available=False)
    juliet.enable(resume=True)
    romeo = node.login("romeo", "orchard", available=False)
    romeo.enable(resume=False)
    for n in range(2):
        node.message(BALCONY, "j%d" % n)
    for n in range(3):
        node.message(ORCHARD, "r%d" % n, sender=BALCONY)
    juliet.received()
    romeo.received()
    values = scan(node, service)
    assert values[("xmppd_queue_items", "sm_unacked")] == 5
    assert values[("xmppd_queue_longest", "sm_unacked")] == 3
    assert values[("xmppd_queue_capacity", "sm_unacked")] == 50
    assert values[("xmppd_cache_entries", "sm_resumable")] == 1
    juliet.ack(2)
    romeo.ack(3)
    values = scan(node, service)
    assert values[("xmppd_queue_items", "sm_unacked")] == 0
    assert values[("xmppd_queue_longest", "sm_unacked")] == 0


def test_presenceResources(tmp_path):
    """Each available resource has a presence entry; it goes with the session."""
    node, service = smNode(tmp_path)
    juliet = node.login()
    node.login("romeo", "orchard")
    assert scan(node, service)[("xmppd_cache_entries", "presence_resources")] == 2
    juliet.close()
    assert scan(node, service)[("xmppd_cache_entries", "presence_resources")] == 1


def test_mucHistory():
    """Room history is summed over rooms, with the longest and the configured length."""
    m = roomWithRomeo()
    for n in range(3):
        m.say(ROMEO, "line %d" % n)
    tally = Tally()
    mucStructures(tally, m.service)
    values = tallied(tally)
    assert values[("xmppd_queue_items", "muc_history")] == 3
    assert values[("xmppd_queue_longest", "muc_history")] == 3
    assert values[("xmppd_queue_capacity", "muc_history")] == m.service.settings.history_length
    assert values[("xmppd_queue_items", "muc_loading")] == 0


def test_onThePage(tmp_path):
    """
    The families are on the page, parse with prometheus-client's parser,
    and the JID cache is reported with its bound.
    """
    node, _ = smNode(tmp_path)
    node.login()
    text = generate_latest(page(node.base).registry).decode()
    values = {}
    for found in text_string_to_metric_families(text):
        for sample in found.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    caches = family(values, "xmppd_cache_entries", "cache")
    capacity = family(values, "xmppd_cache_capacity", "cache")
    assert 0 < caches["jid_parse"] <= capacity["jid_parse"] == 65536
    assert "presence_resources" in caches
    assert all(name.startswith("xmppd_") for name, _ in values)
    assert [s.name for s in boundSamples(node.server)] == sorted(
        (s.name for s in boundSamples(node.server)),
        key=["xmppd_cache_entries", "xmppd_cache_capacity", "xmppd_queue_items",
             "xmppd_queue_longest", "xmppd_queue_capacity"].index)


@ensureDeferred
async def test_cachesAndQueuesAfterTraffic(makeServer):
    """
    On a real node after two logins, presence and a message: the account
    caches hold the two accounts with a session, presence state their two
    resources, every bounded cache is within its capacity, and the queues
    (SQLite, SM, CSI, MUC, PEP...) are reported and drained.
    """
    server = await makeServer()
    for user in ("romeo", "juliet"):
        await server.addUser(user)
    romeo = await server.login("romeo", "orchard")
    juliet = await server.login("juliet", "balcony")
    romeo.xmpp.send_presence()
    juliet.xmpp.send_presence()
    romeo.send("juliet@localhost/balcony", "hello")
    assert (await juliet.nextMessage())["body"] == "hello"
    perAccount = ("roster", "blocklist_sessions", "mam_prefs_sessions", "presence_resources")
    # the rosters and account data load while the sessions start: wait for them
    values = await scrapeUntil(
        server, lambda v: all(family(v, "xmppd_cache_entries", "cache").get(name) == 2
                              for name in perAccount))
    caches = family(values, "xmppd_cache_entries", "cache")
    capacity = family(values, "xmppd_cache_capacity", "cache")
    queues = family(values, "xmppd_queue_items", "queue")
    longest = family(values, "xmppd_queue_longest", "queue")
    assert caches["jid_parse"] > 0
    for name, bound in capacity.items():
        assert caches[name] <= bound, name
    for name in ("sm_unacked", "csi_held", "sqlite_writes", "sqlite_reads", "muc_history",
                 "mam_decisions", "pep_fanout", "bosh_outbox", "c2s_input_backlog",
                 "message_lookups"):
        assert name in queues, name
    assert set(longest) == set(queues)
    assert all(longest[name] <= queues[name] for name in queues)


def test_unreadableOwnerCostsOnlyItsGauges(tmp_path):
    """
    A domain whose structures cannot be read (a feature that changed its
    internals) is logged once; the other gauges are still reported.
    """
    from twisted.logger import globalLogPublisher

    from xmppd.core import bounds
    bounds._failed.clear()
    node, _ = smNode(tmp_path)
    node.base.local.presence = None  # not a PresenceState any more
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        samples = {(s.name, next(iter(s.labels.values()))) for s in boundSamples(node.server)}
        boundSamples(node.server)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert ("xmppd_cache_entries", "jid_parse") in samples
    assert ("xmppd_cache_entries", "presence_resources") not in samples
    failures = [e for e in seen if "log_failure" in e]
    assert len(failures) == 1
    for event in failures:
        event["log_failure"].cleanFailure()
