"""
Tests for L{xmppd.features.extdisco}: external service discovery
(XEP-0215) answered from the configuration, TURN REST credentials,
the configuration's checks, and bad requests.  Time from a L{Clock}.
"""

from __future__ import annotations

import pytest

from tests.domainhelpers import Domain, errorCondition
from tests.test_push import AppServer
from xmppd.config import ConfigError, configFromDict
from xmppd.features.extdisco import NS_EXTDISCO, credentials

JULIET = "juliet@example.org/balcony"

SERVICES = [
    {"type": "stun", "host": "stun.shakespeare.lit", "port": 9998, "transport": "udp"},
    {"type": "turn", "host": "turn.shakespeare.lit", "port": 3478, "transport": "udp",
     "name": "relay", "secret": "north"},
    {"type": "turns", "host": "turn.shakespeare.lit", "secret": "north"},
]


@pytest.fixture
def domain(tmp_path):
    domain = Domain(tmp_path, features=("disco", "extdisco"),
                    sections={"extdisco": {"services": SERVICES, "ttl": 86400}})
    domain.clock.advance(1700000000)
    return domain


def query(domain, payload, sender=JULIET, to="example.org"):
    """Send a get from C{sender} (bound on first use); its one answer."""
    streams = domain.__dict__.setdefault("streams", {})
    if sender not in streams:
        streams[sender] = domain.bind(sender)
    domain.send("<iq type='get' id='ul2bc7y6' from='%s' to='%s'>%s</iq>" % (sender, to, payload))
    [reply] = streams[sender].take()
    return reply


def services(reply):
    [answer] = [e for e in reply.elements() if e.uri == NS_EXTDISCO]
    return [dict(s.attributes) for s in answer.elements(NS_EXTDISCO, "service")]


def test_credentialsScheme():
    """TURN REST credentials: "expiry:user" and base64 HMAC-SHA1 of it (as openssl computes it)."""
    assert credentials("north", "juliet@example.org", 1700086400) == (
        "1700086400:juliet@example.org", "1xz9DgzK1IIdAFkCNgkhHFRa0Tc=")


def test_allServices(domain):
    """Example 1 and 2: every service, TURN with temporary credentials, expiry and restricted."""
    reply = query(domain, "<services xmlns='urn:xmpp:extdisco:2'/>")
    assert reply["type"] == "result"
    stun, turn, turns = services(reply)
    assert stun == {"type": "stun", "host": "stun.shakespeare.lit", "port": "9998",
                    "transport": "udp"}
    assert turn == {"type": "turn", "host": "turn.shakespeare.lit", "port": "3478",
                    "transport": "udp", "name": "relay",
                    "username": "1700086400:juliet@example.org",
                    "password": "1xz9DgzK1IIdAFkCNgkhHFRa0Tc=",
                    "expires": "2023-11-15T22:13:20Z", "restricted": "1"}
    assert turns["port"] == "5349" and turns["transport"] == "tcp"


def test_servicesByType(domain):
    """Example 3 and 4: only the services of the requested type; a type nobody runs, none."""
    reply = query(domain, "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>")
    assert [s["type"] for s in services(reply)] == ["turn"]
    reply = query(domain, "<services xmlns='urn:xmpp:extdisco:2' type='ftp'/>")
    assert reply["type"] == "result" and services(reply) == []


def test_credentialsRequest(domain):
    """Example 5 and 6: credentials for one service."""
    domain.clock.advance(100)
    reply = query(domain, "<credentials xmlns='urn:xmpp:extdisco:2'>"
                          "<service host='turn.shakespeare.lit' type='turn'/></credentials>")
    [service] = services(reply)
    assert service["username"] == "1700086500:juliet@example.org"
    assert service["port"] == "3478"


@pytest.mark.parametrize("payload, condition", [
    ("<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.net' type='turn'/>"
     "</credentials>", "item-not-found"),
    ("<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.shakespeare.lit' "
     "type='unknown'/></credentials>", "item-not-found"),
    ("<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.shakespeare.lit' "
     "type='turn' port='4000'/></credentials>", "item-not-found"),
    ("<credentials xmlns='urn:xmpp:extdisco:2'/>", "bad-request"),
    ("<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn'/></credentials>",
     "bad-request"),
    ("<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.shakespeare.lit' "
     "type='turn' port='x'/></credentials>", "bad-request"),
    ("<services xmlns='urn:xmpp:extdisco:2' type=''/>", "bad-request"),
])
def test_badRequests(domain, payload, condition):
    """Malformed requests get bad-request, services that are not configured item-not-found."""
    assert errorCondition(query(domain, payload)) == condition


def test_strangersRefused(domain):
    """Only the domain's own users get relays."""
    remote = AppServer()
    domain.router.addRoute("example.net", remote)
    domain.send("<iq type='get' id='s' from='romeo@example.net/orchard' to='example.org'>"
                "<services xmlns='urn:xmpp:extdisco:2'/></iq>")
    [reply] = remote.take()
    assert errorCondition(reply) == "service-unavailable"


def test_disco(domain):
    """The domain announces urn:xmpp:extdisco:2 (§4)."""
    reply = query(domain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    assert NS_EXTDISCO in [f["var"] for f in reply.query.elements() if f.name == "feature"]


def test_nothingWithoutServices(tmp_path):
    """With no services configured the feature is not announced and the query is unanswered."""
    domain = Domain(tmp_path, features=("disco", "extdisco"))
    reply = query(domain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    assert NS_EXTDISCO not in [f["var"] for f in reply.query.elements() if f.name == "feature"]
    reply = query(domain, "<services xmlns='urn:xmpp:extdisco:2'/>")
    assert errorCondition(reply) == "service-unavailable"


@pytest.mark.parametrize("service, message", [
    ({"type": "ftp", "host": "h"},
     'extdisco.services[1].type: expected one of stun, stuns, turn, turns, got "ftp"'),
    ({"type": "turn"}, "extdisco.services[1].host: expected a host name or address, got None"),
    ({"type": "turn", "host": "h", "port": 0},
     "extdisco.services[1].port: expected a port from 1 to 65535, got 0"),
    ({"type": "turn", "host": "h", "transport": "sctp"},
     'extdisco.services[1].transport: expected "udp" or "tcp", got "sctp"'),
    ({"type": "stun", "host": "h", "secret": "s"},
     "extdisco.services[1].secret: only TURN services (turn, turns) take credentials"),
    ({"type": "turn", "host": "h", "sekret": "s"},
     "extdisco.services[1].sekret: unknown key (known: type, host, port, transport, name, "
     "secret)"),
])
def test_configErrors(service, message):
    """Each bad service is named in a one-line error."""
    with pytest.raises(ConfigError) as raised:
        configFromDict({"extdisco": {"services": [service]}})
    assert str(raised.value) == message


def test_configDuplicate():
    """One service listed twice is an error."""
    with pytest.raises(ConfigError) as raised:
        configFromDict({"extdisco": {"services": [{"type": "turn", "host": "h"}] * 2}})
    assert "listed twice" in str(raised.value)
