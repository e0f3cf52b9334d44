# -*- test-case-name: tests.test_metrics -*-
"""
C{/metrics} (issue 17, item 3): the node's counters and gauges in the
Prometheus text format, or OpenMetrics when the scraper asks for it, on
the HTTP service.

What is counted lives in L{xmppd.core.metrics.Metrics} (plain integers the
hot paths increment); what already exists as state is read when scraped
from each service of the node that has a C{metricSamples()} (client
sessions by transport, s2s streams and queues, MUC rooms and occupants),
and the sizes of its caches and queues from L{xmppd.core.bounds}.
C{prometheus-client} only formats: a L{NodeCollector} in a
C{CollectorRegistry} of this node's own (never the library's global
C{REGISTRY}, so two nodes in one process never mix), turned into text by
its C{choose_encoder}.  Its C{Counter} objects are not used because their
C{inc()} takes a lock, about ten times the cost of the increment a stanza
pays here.

Who may read it: with C{metrics.token} set, anyone sending
C{Authorization: Bearer TOKEN} (401 otherwise); without one, loopback
clients only (403 otherwise).  Behind a trusted proxy the client is the
address the proxy reports (C{X-Forwarded-For}), so a request the proxy
relays from outside is not a loopback one; a forwarding header the proxy
does not vouch for, or cannot be read, is refused.

L{LagMeter} measures the reactor's lag: how late a timer of
C{metrics.reactor_lag_interval} seconds fires, the time a stanza waits
behind whatever blocks the reactor.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import choose_encoder
from twisted.application import service
from twisted.logger import Logger
from twisted.web import resource

from xmppd.core.bounds import boundSamples

#: Where the page is served.
PATH = "metrics"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def residentMemory() -> int | None:
    """This process's resident set size in bytes (Linux C{/proc}); C{None} elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class NodeCollector:
    """Turns one node's L{xmppd.core.metrics.Metrics} and its services' samples into families."""

    def __init__(self, server):
        self.server = server

    def collect(self):
        metrics = self.server.metrics

        def counter(name, documentation, label, table):
            family = CounterMetricFamily(name, documentation, labels=[label])
            for key in sorted(table):
                family.add_metric([key], table[key])
            return family

        yield counter("xmppd_c2s_stanzas_in", "Stanzas read from bound clients, by kind",
                      "kind", metrics.stanzasIn)
        yield counter("xmppd_c2s_stanzas_out", "Stanzas written to bound clients, by kind",
                      "kind", metrics.stanzasOut)
        yield counter("xmppd_deliveries", "Stanzas a local domain delivered to a session, by kind",
                      "kind", metrics.deliveries)
        yield counter("xmppd_logins", "Successful logins by SASL mechanism",
                      "mechanism", metrics.logins)
        yield counter("xmppd_login_failures", "Failed login attempts by SASL mechanism",
                      "mechanism", metrics.loginFailures)
        yield counter("xmppd_c2s_sessions_opened", "Client sessions bound since start, by transport",
                      "transport", metrics.sessionsOpened)
        yield counter("xmppd_rejected", "Abuse refused or slowed down, by the limit that caught it",
                      "limit", metrics.rejected)
        yield CounterMetricFamily("xmppd_offline_stored", "Messages stored for offline users",
                                  value=metrics.offlineStored)
        yield CounterMetricFamily("xmppd_offline_delivered",
                                  "Stored offline messages delivered at login",
                                  value=metrics.offlineDelivered)
        for name, documentation, histogram in (
                ("xmppd_storage_latency_seconds",
                 "Time of a storage job as the reactor sees it (SQLite)", metrics.storageLatency),
                ("xmppd_storage_group_commit_size",
                 "Writes sharing one group commit (SQLite)", metrics.groupCommitSize)):
            yield HistogramMetricFamily(name, documentation, buckets=histogram.buckets(),
                                        sum_value=histogram.sum)
        yield GaugeMetricFamily("xmppd_reactor_lag_seconds",
                                "How late the last reactor timer fired", value=metrics.reactorLag)
        yield GaugeMetricFamily("xmppd_reactor_lag_max_seconds",
                                "The largest reactor lag measured since start",
                                value=metrics.reactorLagMax)
        rss = residentMemory()
        if rss is not None:
            yield GaugeMetricFamily("xmppd_resident_memory_bytes",
                                    "Resident memory of the process", value=rss)
        yield from self.serviceFamilies()

    def serviceFamilies(self):
        """
        The samples of every service of the node that reports some, and of
        its caches and queues (L{xmppd.core.bounds}), grouped by name.
        """
        families: dict[str, object] = {}
        sources = [getattr(child, "metricSamples", None) for child in self.server]
        sources.append(lambda: boundSamples(self.server))
        for samples in sources:
            if samples is None:
                continue
            for sample in samples():
                family = families.get(sample.name)
                if family is None:
                    kind = CounterMetricFamily if sample.kind == "counter" else GaugeMetricFamily
                    family = families[sample.name] = kind(
                        sample.name, sample.help, labels=sorted(sample.labels))
                family.add_metric([sample.labels[k] for k in sorted(sample.labels)],
                                  sample.value)
        return families.values()


class MetricsResource(resource.Resource):
    """The page; see the module docstring for who may read it."""

    isLeaf = True
    log = Logger()

    def __init__(self, server, site):
        super().__init__()
        self.site = site
        self.token = server.config.metrics.token.encode("utf-8")
        #: This node's own registry (no global state).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(server))

    def refusal(self, request) -> tuple[int, bytes] | None:
        """Why C{request} may not read the page (status, text), or C{None}."""
        if self.token:
            header = request.getHeader(b"authorization") or b""
            scheme, _, given = header.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                return None
            request.setHeader(b"www-authenticate", b'Bearer realm="xmppd metrics"')
            return 401, b"a bearer token is needed\n"
        if not self.fromLoopback(request):
            return 403, b"only loopback clients may read /metrics (or set metrics.token)\n"
        return None

    def fromLoopback(self, request) -> bool:
        """
        Whether the client, not only the connection, is on this machine: a
        relayed request counts by the address its trusted proxy reports.
        """
        peer = getattr(request.getClientAddress(), "host", None)
        if peer is None:
            # A UNIX socket: its file's permissions decide who connects.
            return True
        if not _loopback(peer):
            return False
        relayed = any(request.getHeader(h) is not None
                      for h in (b"x-forwarded-for", b"forwarded", b"x-real-ip"))
        if not relayed:
            return True
        if request.directTLS or not self.site.trusts(peer) \
                or request.getHeader(b"x-forwarded-for") is None:
            # Forwarded by something we do not believe, or in a form we
            # do not read: the client may be anywhere.
            return False
        return _forwardedLoopback(request)

    def render_GET(self, request):
        refused = self.refusal(request)
        if refused is not None:
            status, text = refused
            self.log.info("Refused /metrics to {peer} ({status})", peer=request.clientHost,
                          status=status, event="abuse", limit="metrics_access")
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return text
        encoder, contentType = choose_encoder(
            (request.getHeader(b"accept") or b"").decode("latin-1"))
        request.setHeader(b"content-type", contentType.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return encoder(self.registry)

    render_HEAD = render_GET


def _forwardedLoopback(request) -> bool:
    """The proxy's own address for the client (the last of X-Forwarded-For) is loopback."""
    forwarded = request.getHeader(b"x-forwarded-for") or b""
    claimed = forwarded.split(b",")[-1].strip().decode("ascii", "replace")
    return _loopback(claimed)


class LagMeter(service.Service):
    """
    Measures the reactor's lag every C{interval} seconds: how much later
    than asked a timer fired (see the module docstring).
    """

    name = "metrics-lag"

    def __init__(self, metrics, clock, interval: float):
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.call = None
        self.expected = 0.0

    def startService(self):
        super().startService()
        self.schedule()

    def schedule(self) -> None:
        self.expected = self.clock.seconds() + self.interval
        self.call = self.clock.callLater(self.interval, self.tick)

    def tick(self) -> None:
        lag = max(0.0, self.clock.seconds() - self.expected)
        self.metrics.reactorLag = lag
        if lag > self.metrics.reactorLagMax:
            self.metrics.reactorLagMax = lag
        self.schedule()

    def stopService(self):
        super().stopService()
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None


def addMetrics(server, web) -> None:
    """Serve C{/metrics} on the HTTP service C{web} and measure the reactor's lag."""
    config = server.config.metrics
    web.putChild(PATH, MetricsResource(server, web.site))
    web.site.metrics = server.metrics
    LagMeter(server.metrics, server.clock, config.reactor_lag_interval).setServiceParent(server)
