"""
Issue 17, item 3: each metric driven by the code that counts it
(L{xmppd.core.metrics}), the scrape-time gauges of the services, the
reactor lag meter, storage timing, and who may read C{/metrics}
(L{xmppd.http.metrics}).  The end-to-end check after real traffic is
tests/test_e2e_metrics.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import pytest_twisted
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.web.test.requesthelper import DummyRequest

from muc.service import MUCService
from tests.muchelpers import roomWithRomeo
from tests.streamhelpers import DOMAIN, Node, plain
from xmppd.c2s.listeners import C2SService
from xmppd.core.metrics import Histogram, Metrics
from xmppd.core.stanzas import StanzaText
from xmppd.http.metrics import LagMeter, MetricsResource
from xmppd.s2s.service import S2SService
from xmppd.storage.sqlite.backend import SQLiteStorage


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path, features=("messages",))


def metricsOf(node) -> Metrics:
    return node.server.metrics


def test_login(node):
    """A login counts under its mechanism, and its bound session under its transport."""
    node.connect().login("juliet", "balcony")
    assert metricsOf(node).logins == {"PLAIN": 1}
    assert metricsOf(node).sessionsOpened == {"tcp": 1}
    assert metricsOf(node).loginFailures == {}


def test_loginFailureAndItsLogLine(node):
    """
    A wrong password counts as a failure of its mechanism and as an auth
    failure rejected (answered late); its log line names the account and
    the address, never the password.
    """
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        client = node.connect("10.1.2.3")
        client.start()
        client.exchange(plain("juliet", "hunter2-not-hers"))
        node.clock.advance(10)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert metricsOf(node).loginFailures == {"PLAIN": 1}
    assert metricsOf(node).rejected == {"auth_failures": 1}
    [line] = [e for e in events if e.get("event") == "login-failure"]
    assert (line["user"], line["peer"], line["mechanism"]) == ("juliet", "10.1.2.3", "PLAIN")
    assert not any("hunter2" in repr(e) for e in events)


def test_tooManyFailures(tmp_path):
    """Closing a stream after sasl_max_attempts failures is a rejection of that limit."""
    node = Node(tmp_path, limits={"sasl_max_attempts": 3, "auth_failure_delay": 0})
    client = node.connect()
    client.start()
    for n in range(3):
        client.exchange(plain("juliet", "wrong %d" % n))
    assert metricsOf(node).loginFailures == {"PLAIN": 3}
    assert metricsOf(node).rejected["sasl_max_attempts"] == 1


def test_stanzasInOutAndDeliveries(node):
    """
    A message between two bound clients is one message in, one delivery,
    one message out; an IQ nobody serves is one IQ in and its error one IQ
    out.
    """
    juliet = node.connect().login("juliet", "balcony")
    romeo = node.connect("5.6.7.8").login("romeo", "orchard")
    # Each bind's result was an IQ out.
    assert metricsOf(node).stanzasOut == {"message": 0, "presence": 0, "iq": 2}
    juliet.exchange("<message to='romeo@%s/orchard' type='chat'><body>hi</body></message>"
                    % DOMAIN)
    assert romeo.received().names == ["message"]
    metrics = metricsOf(node)
    assert metrics.stanzasIn == {"message": 1, "presence": 0, "iq": 0}
    assert metrics.stanzasOut == {"message": 1, "presence": 0, "iq": 2}
    assert metrics.deliveries["message"] == 1
    reply = juliet.exchange("<iq type='get' id='q1' to='%s'><query xmlns='urn:example'/></iq>"
                            % DOMAIN)
    assert reply.names == ["iq"]
    assert metrics.stanzasIn["iq"] == 1
    assert metrics.stanzasOut["iq"] == 3


def test_serializedStanzaCounted(node):
    """A stanza serialized once for many (MUC fan-out) counts by the kind its text starts with."""
    juliet = node.connect().login("juliet", "balcony")
    juliet.stream.send(StanzaText("<presence from='room@muc.example.org/x'/>"))
    juliet.stream.send(StanzaText("<message from='room@muc.example.org/x'/>"))
    assert metricsOf(node).stanzasOut == {"message": 1, "presence": 1, "iq": 1}


def test_connectionsPerIP(tmp_path):
    """A connection over limits.connections_per_ip counts under that limit."""
    node = Node(tmp_path, limits={"connections_per_ip": 1})
    node.connect("10.0.0.1")
    node.connect("10.0.0.1")
    assert metricsOf(node).rejected == {"connections_per_ip": 1}


def test_newConnectionsPerSecond(tmp_path):
    """A connection over limits.new_connections_per_second counts under that limit."""
    node = Node(tmp_path, limits={"new_connections_per_second": 1})
    for n in range(10):
        node.connect("10.0.0.%d" % n)
    assert metricsOf(node).rejected["new_connections_per_second"] >= 1


def test_stanzaTooLarge(node):
    """A stanza over the size limit counts under max_stanza_size."""
    client = node.connect()
    client.start()
    client.exchange("<message><body>%s</body></message>" % ("x" * 20000))
    assert metricsOf(node).rejected == {"max_stanza_size": 1}


def test_tooDeep(node):
    """Nesting over the depth limit counts under max_depth."""
    client = node.connect()
    client.start()
    client.exchange("<message>" + "<a>" * 60)
    assert metricsOf(node).rejected == {"max_depth": 1}


def test_trafficShaping(tmp_path):
    """A client reading paused by limits.bytes_per_second counts under traffic_shaping."""
    node = Node(tmp_path, limits={"bytes_per_second": 1024})
    client = node.connect().login("juliet", "balcony")
    node.clock.advance(10)
    client.exchange("<message to='juliet@%s/balcony'><body>%s</body></message>"
                    % (DOMAIN, "x" * 4000))
    assert client.transport.producerState == "paused"
    assert metricsOf(node).rejected == {"traffic_shaping": 1}


def test_sessionGauge(node):
    """Bound sessions are counted by transport when scraped, and go when they end."""
    service = C2SService(node.server, None)
    service.factories.append(node.factory)
    websocket = service.transportFactory("websocket")
    juliet = node.connect().login("juliet", "balcony")
    node.connect("5.6.7.8").start()  # connected, never bound

    def sessions():
        return {s.labels["transport"]: s.value for s in service.metricSamples()}

    assert sessions() == {"tcp": 1, "websocket": 0, "bosh": 0}
    assert websocket.transport == "websocket"
    juliet.disconnect()
    assert sessions()["tcp"] == 0


def test_mucGauges():
    """Rooms and occupants are read from the MUC service when scraped."""
    m = roomWithRomeo()
    samples = {s.name: (s.labels, s.value) for s in m.service.metricSamples()}
    assert samples == {"xmppd_muc_rooms": ({"domain": m.service.domain}, 1),
                       "xmppd_muc_occupants": ({"domain": m.service.domain}, 2)}
    assert isinstance(m.service, MUCService)


def test_s2sGauges():
    """S2S streams by direction and the stanzas queued for routes without one."""
    route = SimpleNamespace(queue=[object(), object()])
    idle = SimpleNamespace(queue=[])
    state = SimpleNamespace(incoming={object()}, outgoing={object(), object()},
                            routes={("a", "b"): route, ("a", "c"): idle})
    samples = [(s.name, s.labels, s.value) for s in S2SService.metricSamples(state)]
    assert samples == [("xmppd_s2s_streams", {"direction": "in"}, 1),
                       ("xmppd_s2s_streams", {"direction": "out"}, 2),
                       ("xmppd_s2s_queued_stanzas", {}, 2),
                       ("xmppd_s2s_queues", {}, 1)]


def test_reactorLag():
    """The lag is how late the timer fired; the largest one is kept."""
    metrics, clock = Metrics(), Clock()
    meter = LagMeter(metrics, clock, 1.0)
    meter.startService()
    clock.advance(1.0)
    assert metrics.reactorLag == 0.0
    clock.advance(1.5)
    assert metrics.reactorLag == 0.5
    clock.advance(1.0)
    assert (metrics.reactorLag, metrics.reactorLagMax) == (0.0, 0.5)
    meter.stopService()
    assert not clock.getDelayedCalls()


def test_histogram():
    """Cumulative buckets, sum and count, as Prometheus reads them."""
    histogram = Histogram((1, 4))
    for value in (0.5, 1, 3, 9):
        histogram.observe(value)
    assert histogram.buckets() == [("1.0", 2), ("4.0", 3), ("+Inf", 4)]
    assert (histogram.count, histogram.sum) == (4, 13.5)


@pytest_twisted.ensureDeferred
async def test_storageTimedAndGroupCommits(tmp_path):
    """Every SQLite job is timed; a group commit records how many writes it carried."""
    from twisted.internet import reactor
    storage = SQLiteStorage(str(tmp_path / "x.sqlite"), reactor)
    storage.metrics = metrics = Metrics()
    await storage.open()
    try:
        await storage.runGrouped(lambda connection: connection.execute("SELECT 1"))
    finally:
        await storage.close()
    assert metrics.groupCommitSize.count == 1
    assert metrics.groupCommitSize.sum == 1
    assert metrics.storageLatency.count >= 2


def request(host: str | None, headers: dict | None = None) -> DummyRequest:
    req = DummyRequest([b""])
    req.client = UNIXAddress(None) if host is None else IPv4Address("TCP", host, 4321)
    req.clientHost = host or "local"
    req.directTLS = False
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name, [value])
    return req


def page(node, token: str = "") -> MetricsResource:
    site = SimpleNamespace(trusts=lambda host: host in ("127.0.0.1", "::1"))
    if token:
        node.server.config = SimpleNamespace(**{**vars(node.server.config)},
                                             metrics=SimpleNamespace(token=token))
    return MetricsResource(node.server, site)


def test_loopbackOnly(node):
    """Without a token: loopback and a UNIX socket may read, another address gets 403."""
    resource = page(node)
    refused = request("10.0.0.9")
    resource.render_GET(refused)
    assert refused.responseCode == 403
    for host in ("127.0.0.1", "::1", None):
        allowed = request(host)
        body = resource.render_GET(allowed)
        assert allowed.responseCode is None or allowed.responseCode == 200
        assert b"xmppd_c2s_stanzas_in_total" in body


def test_relayedRequestCountsByTheClient(node):
    """A trusted proxy's loopback connection is not a loopback client: its X-Forwarded-For is."""
    resource = page(node)
    outside = request("127.0.0.1", {"x-forwarded-for": "198.51.100.4"})
    outside.clientHost = "198.51.100.4"
    resource.render_GET(outside)
    assert outside.responseCode == 403
    local = request("127.0.0.1", {"x-forwarded-for": "127.0.0.1"})
    resource.render_GET(local)
    assert local.responseCode is None


def test_token(node):
    """With a token, only a request carrying it reads the page, from anywhere."""
    resource = page(node, token="t0k3n")
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic t0k3n"}):
        refused = request("127.0.0.1", headers)
        resource.render_GET(refused)
        assert refused.responseCode == 401
    allowed = request("203.0.113.9", {"authorization": "Bearer t0k3n"})
    assert b"xmppd_" in resource.render_GET(allowed)
    assert allowed.responseCode is None


def test_everyNameIsXmppd(node):
    """The page parses with prometheus-client's parser and every family starts with xmppd_."""
    node.connect().login("juliet", "balcony")
    text = generate_latest(page(node).registry).decode()
    names = [family.name for family in text_string_to_metric_families(text)]
    assert names and all(name.startswith("xmppd_") for name in names)
    assert "xmppd_logins" in names and "xmppd_storage_latency_seconds" in names


def test_tokenNeverShown(tmp_path):
    """The configuration's repr (what could reach a log) hides the token."""
    from xmppd.config.sections import MetricsConfig
    assert "sekrit" not in repr(MetricsConfig(token="sekrit"))
