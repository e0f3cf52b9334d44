"""
End to end (issue 17, items 3 and 7): real slixmpp traffic on a real node,
then C{/metrics} scraped over HTTP and parsed with C{prometheus-client}'s
own parser; the values match the traffic.  Who may scrape: loopback
clients, not a client a trusted proxy relays from outside; with a token,
only a scraper that sends it.  The JSON log lines of that traffic parse and
never contain a password.
"""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_twisted import ensureDeferred
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from xmppd.core.logformat import JSONLineObserver
from tests.e2e import TIMEOUT, LoginFailed, password, reactor, sleep


async def scrape(server, headers: dict | None = None) -> tuple[int, bytes]:
    """GET /metrics on the node's plain HTTP listener: (status, body)."""
    port = server.node.httpPort
    response = await Agent(reactor()).request(
        b"GET", b"http://127.0.0.1:%d/metrics" % port,
        Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    ).addTimeout(TIMEOUT, reactor())
    return response.code, await readBody(response).addTimeout(TIMEOUT, reactor())


def samples(body: bytes) -> dict:
    """{(sample name, frozenset of labels): value} of a scraped page; every family is xmppd_."""
    values = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        assert family.name.startswith("xmppd_"), family.name
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def value(values: dict, name: str, **labels) -> float:
    return values[(name, frozenset(labels.items()))]


async def scrapeUntil(server, condition) -> dict:
    """Scrape until C{condition(values)} holds (storage writes land a little later); bounded."""
    for _ in range(int(TIMEOUT / 0.05)):
        status, body = await scrape(server)
        assert status == 200
        values = samples(body)
        if condition(values):
            return values
        await sleep(0.05)
    raise AssertionError("the metrics never showed the traffic: %r" % (values,))


@ensureDeferred
async def test_metricsMatchTraffic(makeServer):
    """
    After a failed login, three logins, three messages between two online
    users and one to an offline user delivered at its login, the scraped
    counters say exactly that; gauges show three TCP sessions.  The JSON
    log of it has a line per login and per failure, with the account and
    address, and no password anywhere.
    """
    lines = io.StringIO()
    observer = JSONLineObserver(lines)
    globalLogPublisher.addObserver(observer)
    try:
        server = await makeServer()
        for user in ("romeo", "juliet", "nurse"):
            await server.addUser(user)
        wrong = server.client("juliet", secret="not her password at all",
                              mechanism="SCRAM-SHA-256")
        with pytest.raises(LoginFailed):
            await wrong.login()
        romeo = await server.login("romeo", "orchard")
        juliet = await server.login("juliet", "balcony")
        for n in range(3):
            romeo.send("juliet@localhost/balcony", "message %d" % n)
        for n in range(3):
            assert (await juliet.nextMessage())["body"] == "message %d" % n
        romeo.send("nurse@localhost", "for later")
        await scrapeUntil(server, lambda v: value(v, "xmppd_offline_stored_total") == 1)
        nurse = await server.login("nurse", "chamber")
        nurse.xmpp.send_presence()
        assert (await nurse.nextMessage())["body"] == "for later"
        values = await scrapeUntil(
            server, lambda v: value(v, "xmppd_offline_delivered_total") == 1)
    finally:
        globalLogPublisher.removeObserver(observer)

    assert value(values, "xmppd_c2s_stanzas_in_total", kind="message") == 4
    assert value(values, "xmppd_c2s_stanzas_out_total", kind="message") == 4
    assert value(values, "xmppd_deliveries_total", kind="message") == 4
    assert value(values, "xmppd_c2s_sessions", transport="tcp") == 3
    assert value(values, "xmppd_c2s_sessions", transport="websocket") == 0
    assert value(values, "xmppd_c2s_sessions", transport="bosh") == 0
    assert value(values, "xmppd_c2s_sessions_opened_total", transport="tcp") == 3
    logins = {dict(labels)["mechanism"]: v for (name, labels), v in values.items()
              if name == "xmppd_logins_total"}
    assert sum(logins.values()) == 3
    failures = {dict(labels)["mechanism"]: v for (name, labels), v in values.items()
                if name == "xmppd_login_failures_total"}
    assert failures == {"SCRAM-SHA-256": 1.0}
    assert value(values, "xmppd_rejected_total", limit="auth_failures") == 1
    assert value(values, "xmppd_offline_stored_total") == 1
    assert value(values, "xmppd_storage_latency_seconds_count") > 0
    assert value(values, "xmppd_storage_group_commit_size_count") >= 1
    assert value(values, "xmppd_resident_memory_bytes") > 0
    assert ("xmppd_reactor_lag_seconds", frozenset()) in values

    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    text = lines.getvalue()
    for secret in ("not her password at all", password("juliet"), password("romeo"),
                   password("nurse")):
        assert secret not in text
    loginLines = [r for r in records if r.get("event") == "login"]
    assert sorted(r["user"] for r in loginLines) == ["juliet", "nurse", "romeo"]
    assert all(r["peer"] == "127.0.0.1" and r["transport"] == "tcp" for r in loginLines)
    failed = [r for r in records if r.get("event") == "login-failure"]
    assert [(r["user"], r["peer"], r["mechanism"]) for r in failed] == [
        ("juliet", "127.0.0.1", "SCRAM-SHA-256")]


@ensureDeferred
async def test_relayedFromOutsideIsRefused(makeServer):
    """
    Without a token a loopback client reads /metrics, but a request a
    trusted proxy (127.0.0.1 by default) relays from elsewhere gets 403,
    and so does one with a forwarding header nobody vouches for in a form
    not read.
    """
    server = await makeServer()
    status, _ = await scrape(server)
    assert status == 200
    status, _ = await scrape(server, {"X-Forwarded-For": "203.0.113.7"})
    assert status == 403
    status, _ = await scrape(server, {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"})
    assert status == 403
    status, _ = await scrape(server, {"Forwarded": "for=203.0.113.7"})
    assert status == 403
    status, _ = await scrape(server, {"X-Forwarded-For": "not an address"})
    assert status == 403
    status, body = await scrape(server, {"X-Forwarded-For": "127.0.0.1"})
    assert status == 200 and samples(body)


@ensureDeferred
async def test_tokenRequired(makeServer):
    """With metrics.token set, only a scraper sending it reads the page, loopback or not."""
    server = await makeServer({"metrics": {"token": "scrape-me-8f3a"}})
    status, _ = await scrape(server)
    assert status == 401
    status, _ = await scrape(server, {"Authorization": "Bearer wrong"})
    assert status == 401
    status, body = await scrape(server, {"Authorization": "Bearer scrape-me-8f3a"})
    assert status == 200
    assert ("xmppd_c2s_sessions", frozenset({("transport", "tcp")})) in samples(body)


@ensureDeferred
async def test_websocketSessionCounted(makeServer):
    """A session over the WebSocket counts under its transport, beside a TCP one."""
    from tests.wshelpers import connectWebSocket, openElement, plainAuth
    server = await makeServer()
    await server.addUser("alice")
    await server.addUser("bob")
    await server.login("bob")
    ws = await connectWebSocket(server.node.httpsPort, tls=True)
    ws.send(openElement())
    await ws.expect("^<open ")
    await ws.expect("^<stream:features")
    ws.send(plainAuth("alice", password("alice")))
    await ws.expect("^<success ")
    ws.send(openElement())
    await ws.expect("^<open ")
    await ws.expect("^<stream:features")
    ws.send("<iq type='set' id='b1' xmlns='jabber:client'>"
            "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    await ws.expect("type='result'")
    values = await scrapeUntil(
        server, lambda v: value(v, "xmppd_c2s_sessions", transport="websocket") == 1)
    assert value(values, "xmppd_c2s_sessions", transport="tcp") == 1
    assert value(values, "xmppd_c2s_sessions_opened_total", transport="websocket") == 1
    assert value(values, "xmppd_logins_total", mechanism="PLAIN") >= 1
    ws.transport.loseConnection()
    await ws.waitClosed()
    await scrapeUntil(server, lambda v: value(v, "xmppd_c2s_sessions", transport="websocket") == 0)
