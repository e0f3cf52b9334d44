"""
Tests for virtual hosts (L{xmppd.config.hosts}, the C{[hosts."domain"]} tables of
L{xmppd.config}): the one-line errors, the effective settings of a domain,
and what clients of two domains of one node see differently: registration,
TLS before authentication, the account limit (in-band and with xmppctl),
and SASL ANONYMOUS (RFC 4505, XEP-0175).
"""

import base64
import dataclasses
import os
import re
import tomllib
import uuid

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from tests.helpers import toml
from tests.streamhelpers import (NS_SASL, TLS_CONTEXT, UNSHAPED, Client, FakeTransport,
                                 plain)
from xmppd.cli import ctl
from xmppd.config import ConfigError, loadConfig, options
from xmppd.config.hosts import HostConfig, HostSettings, hostSettings
from xmppd.core.jid import parseJID
from xmppd.stream.limits import AuthFailureTracker, PeerCounter
from xmppd.c2s.listeners import C2SFactory
from xmppd.core.local import LocalDomain
from xmppd.features.register import NS_FEATURE_REGISTER, NS_REGISTER
from xmppd.core.scram import makeCredentials
from xmppd.core.server import XMPPServer
from xmppd.storage.memory import MemoryStorage
from xmppd.storage.service import StorageService

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "xmppd.example.toml")
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
#: Two domains of one node: "open" and "closed" only by their tables.
OPEN, CLOSED = "open.example", "closed.example"
PASSWORD = "a good password"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def writeConfig(tmp_path, hosts: dict | None = None, sections: dict | None = None,
                domains=(OPEN, CLOSED), raw: str = "", top: str = "") -> str:
    """A configuration file serving C{domains} with C{hosts} tables ({domain: {key: value}})."""
    sections = dict(sections or {})
    lines = ["[server]", "domains = %s" % toml(list(domains)),
             "data_dir = %s" % toml(str(tmp_path / "data"))]
    lines.extend("%s = %s" % (k, toml(v)) for k, v in sections.pop("server", {}).items())
    for name, keys in sections.items():
        lines.append("[%s]" % name)
        lines.extend("%s = %s" % (k, toml(v)) for k, v in keys.items())
    for domain, keys in (hosts or {}).items():
        lines.append("[hosts.%s]" % toml(domain))
        lines.extend("%s = %s" % (k, toml(v)) for k, v in keys.items())
    path = tmp_path / "xmppd.toml"
    path.write_text(top + "\n".join(lines) + "\n" + raw, encoding="utf-8")
    return str(path)


def configError(tmp_path, **kwargs) -> str:
    with pytest.raises(ConfigError) as raised:
        loadConfig(writeConfig(tmp_path, **kwargs))
    return str(raised.value)


# -- configuration -------------------------------------------------------------


def test_hostTables(tmp_path):
    """A domain's table is read under the domain's canonical name, keys it leaves out stay unset."""
    config = loadConfig(writeConfig(tmp_path, {"Open.Example": {
        "register": True, "max_users": 10, "anonymous": True}}))
    assert set(config.hosts) == {OPEN}
    assert config.hosts[OPEN] == HostConfig(register=True, max_users=10, anonymous=True)
    assert config.hosts[OPEN].require_tls is None


def test_noHostTables():
    """Without tables every domain runs with the node-wide settings."""
    config = loadConfig(None)
    assert dict(config.hosts) == {}
    assert hostSettings(config, "localhost") == HostSettings(
        "localhost", register=False, requireTLS=True, maxUsers=0, anonymous=False)


@pytest.mark.parametrize("kwargs,message", [
    ({"hosts": {OPEN: {"register": "yes"}}},
     'hosts."open.example".register: expected true or false, got "yes"'),
    ({"hosts": {OPEN: {"require_tls": 1}}},
     'hosts."open.example".require_tls: expected true or false, got 1'),
    ({"hosts": {OPEN: {"anonymous": "true"}}},
     'hosts."open.example".anonymous: expected true or false, got "true"'),
    ({"hosts": {OPEN: {"max_users": -1}}},
     'hosts."open.example".max_users: expected 0 (off) or an integer >= 1, got -1'),
    ({"hosts": {OPEN: {"max_users": 1.5}}},
     'hosts."open.example".max_users: expected 0 (off) or an integer >= 1, got 1.5'),
    ({"hosts": {OPEN: {"certificate": 3}}},
     'hosts."open.example".certificate: expected a path (a string), got 3'),
    ({"hosts": {OPEN: {"certificate": "/etc/x.pem"}}},
     'hosts."open.example".private_key: must be set when '
     'hosts."open.example".certificate is'),
    ({"hosts": {OPEN: {"private_key": "/etc/x.key"}}},
     'hosts."open.example".certificate: must be set when '
     'hosts."open.example".private_key is'),
    ({"hosts": {OPEN: {"requiretls": True}}},
     'hosts."open.example".requiretls: unknown key '
     '(did you mean hosts."open.example".require_tls?)'),
    ({"hosts": {"other.example": {"register": True}}},
     'hosts."other.example": "other.example" is not in server.domains; add it to '
     'server.domains or remove [hosts."other.example"]'),
    ({"hosts": {"bad..name": {"register": True}}},
     'hosts."bad..name": not a valid domain name: Empty Label'),
    ({"hosts": {OPEN: {"register": True}},
      "sections": {"server": {"modules": ["presence", "roster", "messages"]}}},
     'hosts."open.example".register: needs the feature "register" in server.modules'),
    ({"raw": "[hosts]\nregister = true\n"},
     'hosts."register": expected a table of settings for a served domain, '
     'like [hosts."example.org"], got true'),
    ({"top": "hosts = 3\n"},
     'hosts: expected tables like [hosts."example.org"], got 3'),
    ({"raw": "[hosts.open.example]\nregister = true\n"},
     'hosts."open": "open" is not in server.domains; quote domain names that '
     'contain dots, like [hosts."example.org"]'),
    ({"raw": '[hosts."open.example"]\nregister = true\n'
             '[hosts."OPEN.example"]\nregister = false\n'},
     'hosts."OPEN.example": this domain has two tables'),
    ({"raw": '[host."open.example"]\nregister = true\n'},
     'host: unknown section (did you mean hosts?)'),
], ids=["register", "require_tls", "anonymous", "max_users-negative", "max_users-float",
        "certificate-type", "certificate-alone", "key-alone", "unknown-key",
        "unserved-domain", "invalid-domain", "register-not-loaded", "table-missing",
        "not-a-table", "unquoted-domain", "twice", "misspelt-section"])
def test_hostErrors(tmp_path, kwargs, message):
    """Every mistake in a domain's table is one line naming the key, and the node does not start."""
    assert configError(tmp_path, **kwargs) == message


def test_certificatePathsAbsolute(tmp_path, monkeypatch):
    """A domain's certificate paths are made absolute like every path of the file."""
    monkeypatch.chdir(tmp_path)
    config = loadConfig(writeConfig(tmp_path, {OPEN: {
        "certificate": "open.pem", "private_key": "open.key"}}))
    settings = hostSettings(config, OPEN)
    assert (settings.certificate, settings.privateKey) == (
        str(tmp_path / "open.pem"), str(tmp_path / "open.key"))
    assert hostSettings(config, CLOSED).certificate == ""


def test_defaultsFromNodeWideSettings(tmp_path):
    """A domain without a key of its own follows [register] and [c2s] require_tls."""
    config = loadConfig(writeConfig(tmp_path, {OPEN: {"anonymous": True}}, sections={
        "register": {"allow": True, "domains": [CLOSED]}, "c2s": {"require_tls": False}}))
    assert hostSettings(config, OPEN) == HostSettings(
        OPEN, register=False, requireTLS=False, maxUsers=0, anonymous=True)
    assert hostSettings(config, CLOSED) == HostSettings(
        CLOSED, register=True, requireTLS=False, maxUsers=0, anonymous=False)


def test_hostSettingWins(tmp_path):
    """A domain's own register and require_tls win over the node-wide ones, both ways."""
    config = loadConfig(writeConfig(
        tmp_path, {OPEN: {"register": True, "require_tls": False},
                   CLOSED: {"register": False, "require_tls": True}},
        sections={"register": {"allow": True, "domains": [CLOSED]},
                  "c2s": {"require_tls": True}}))
    assert (hostSettings(config, OPEN).register, hostSettings(config, OPEN).requireTLS) == (
        True, False)
    assert (hostSettings(config, CLOSED).register,
            hostSettings(config, CLOSED).requireTLS) == (False, True)


def test_hostOptionsDocumented():
    """Every key of a domain's table carries a check and one line of documentation."""
    for field in options(HostConfig):
        assert callable(field.metadata["check"]), field.name
        doc = field.metadata["doc"]
        assert doc and "\n" not in doc, field.name


def exampleHostTable() -> tuple[str, list[str]]:
    """The commented [hosts."..."] example of xmppd.example.toml, uncommented, and its lines."""
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [hosts."))
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    return "\n".join(block) + "\n", block


def test_exampleDocumentsHostKeys(tmp_path):
    """
    The shipped example shows, commented out, a domain's table with every
    key, each with a comment line above it, and uncommented it is valid.

    (tests/test_config.py compares the example's active keys with the
    declared sections; a table per domain has no place among the defaults,
    so it is checked here, as the commented example it is.)
    """
    text, block = exampleHostTable()
    document = tomllib.loads(text)
    [(domain, table)] = document["hosts"].items()
    assert set(table) == {f.name for f in options(HostConfig)}
    for number, line in enumerate(block):
        if "=" in line and not line.startswith("#"):
            assert block[number - 1].startswith("#"), line
    config = loadConfig(writeConfig(tmp_path, domains=[domain], raw=text))
    # Lists (admins) are kept as tuples once checked.
    assert config.hosts[domain] == HostConfig(
        **{key: tuple(value) if isinstance(value, list) else value
           for key, value in table.items()})


def test_exampleServesNoHostTable():
    """Loading the shipped example as it is gives no domain a table of its own."""
    with open(EXAMPLE, "rb") as f:
        assert "hosts" not in tomllib.load(f)
    assert dataclasses.replace(loadConfig(None), path=None).hosts == {}


# -- two domains on one node, over in-memory streams -----------------------------


class VHostNode:
    """
    A node in memory serving L{OPEN} and L{CLOSED} with C{hosts} tables, the
    messages, offline and register features, memory storage, and a C2S
    factory; juliet has an account on each domain.  TLS is not required
    node-wide unless C{requireTLS}.
    """

    def __init__(self, tmp_path, hosts: dict, requireTLS: bool = False,
                 secure: bool = False, register: dict | None = None):
        sections = {"storage": {"backend": "memory"},
                    "c2s": {"require_tls": requireTLS, "plain_without_tls": True},
                    "limits": dict(UNSHAPED),
                    "register": {"interval_per_ip": 0, **(register or {})}}
        self.config = loadConfig(writeConfig(tmp_path, hosts, sections))
        self.clock = Clock()
        self.server = XMPPServer(self.config, clock=self.clock)
        self.server.storageService = StorageService(MemoryStorage())
        self.server.storageService.startService()
        self.users = self.server.storage.users
        for domain in (OPEN, CLOSED):
            self.users.addUser("juliet", domain, makeCredentials(PASSWORD))
            LocalDomain(domain, self.server,
                        features=("messages", "offline", "register")).startService()
        limits = self.config.limits
        self.factory = C2SFactory(
            self.server, TLS_CONTEXT, secure, PeerCounter(limits.connections_per_ip),
            AuthFailureTracker(limits.auth_failure_delay, limits.auth_failure_delay_max,
                               self.clock))

    def connect(self, host: str = "1.2.3.4") -> Client:
        address = IPv4Address("TCP", host, 1234)
        stream = self.factory.buildProtocol(address)
        transport = FakeTransport(address)
        stream.makeConnection(transport)
        return Client(self, stream, transport)

    def exists(self, user: str, domain: str) -> bool:
        return self.users.userExists(user, domain).result

    def login(self, domain: str, user: str = "juliet", resource: str = "r") -> Client:
        client = self.connect()
        client.start(to=domain)
        assert client.exchange(plain(user, PASSWORD)).names == ["success"]
        client.start(to=domain)
        bindTo(client, resource)
        return client


def bindTo(client: Client, resource: str | None = "r") -> str:
    """Bind on an authenticated, restarted stream; the bound full JID."""
    payload = "<resource>%s</resource>" % resource if resource else ""
    reply = client.exchange("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
                            "ns:xmpp-bind'>%s</bind></iq>" % payload)
    [result] = reply.elements
    assert result["type"] == "result", reply
    client.jid = str(result.bind.jid)
    return client.jid


def anonymousAuth(trace: bytes | None = b"") -> bytes:
    """An ANONYMOUS <auth/>: with trace information, "=" for an empty one, or none."""
    if trace is None:
        content = ""
    elif trace == b"":
        content = "="
    else:
        content = base64.b64encode(trace).decode()
    return ("<auth xmlns='%s' mechanism='ANONYMOUS'>%s</auth>" % (NS_SASL, content)).encode()


def loginAnonymously(node: VHostNode, domain: str = OPEN, resource: str | None = "r") -> Client:
    client = node.connect()
    client.start(to=domain)
    assert client.exchange(anonymousAuth(b"Anonymous, Suelta")).names == ["success"]
    client.start(to=domain)
    bindTo(client, resource)
    return client


def saslFailure(reply) -> str:
    [failure] = reply.elements
    assert (failure.uri, failure.name) == (NS_SASL, "failure"), reply
    return [c.name for c in failure.elements() if c.name != "text"][0]


def stanzaError(stanza) -> str:
    assert stanza.getAttribute("type") == "error", stanza.toXml()
    [error] = [c for c in stanza.elements() if c.name == "error"]
    return [c.name for c in error.elements(NS_STANZAS) if c.name != "text"][0]


def only(reply):
    [element] = reply.elements
    return element


def registration(username: str, password: str = PASSWORD, id: str = "reg1") -> str:
    return ("<iq type='set' id='%s'><query xmlns='%s'><username>%s</username>"
            "<password>%s</password></query></iq>" % (id, NS_REGISTER, username, password))


def message(to: str, body: str = "hello", id: str = "m1") -> str:
    return "<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, id, body)


# -- registration per domain -------------------------------------------------------


def test_registrationOnOneDomainOnly(tmp_path):
    """Registration open on one domain and closed on the other: each stream sees its own domain's."""
    node = VHostNode(tmp_path, {OPEN: {"register": True}, CLOSED: {"register": False}},
                     register={"allow": True})
    opened = node.connect()
    assert (NS_FEATURE_REGISTER, "register") in opened.start(to=OPEN).featureNames()
    assert only(opened.exchange(registration("mercutio")))["type"] == "result"
    assert node.exists("mercutio", OPEN)

    closed = node.connect()
    assert (NS_FEATURE_REGISTER, "register") not in closed.start(to=CLOSED).featureNames()
    assert stanzaError(only(closed.exchange(registration("tybalt")))) == "service-unavailable"
    assert not node.exists("tybalt", CLOSED)


def test_registrationNodeWideStillWorks(tmp_path):
    """Without tables, [register] allow and domains still open registration where they say."""
    node = VHostNode(tmp_path, {}, register={"allow": True, "domains": [CLOSED]})
    assert (NS_FEATURE_REGISTER, "register") not in node.connect().start(
        to=OPEN).featureNames()
    assert (NS_FEATURE_REGISTER, "register") in node.connect().start(
        to=CLOSED).featureNames()


# -- TLS before authentication per domain -------------------------------------------


def test_requireTLSPerDomain(tmp_path):
    """One domain refuses to authenticate before TLS, the other (its own setting) does not."""
    node = VHostNode(tmp_path, {OPEN: {"require_tls": False}}, requireTLS=True)
    strict = node.connect()
    reply = strict.start(to=CLOSED)
    starttls = reply.features().starttls
    assert starttls is not None and starttls.required is not None
    assert reply.mechanisms() == []
    assert saslFailure(strict.exchange(plain("juliet", PASSWORD))) == "encryption-required"

    relaxed = node.connect()
    reply = relaxed.start(to=OPEN)
    assert reply.features().starttls.required is None
    assert "SCRAM-SHA-256" in reply.mechanisms()
    assert relaxed.exchange(plain("juliet", PASSWORD)).names == ["success"]


def test_requireTLSStopsRegistrationToo(tmp_path):
    """A domain that requires TLS offers no registration before it, even with registration open."""
    node = VHostNode(tmp_path, {CLOSED: {"register": True, "require_tls": True}})
    assert (NS_FEATURE_REGISTER, "register") not in node.connect().start(
        to=CLOSED).featureNames()
    (tmp_path / "tls").mkdir()
    secure = VHostNode(tmp_path / "tls", {CLOSED: {"register": True, "require_tls": True}},
                       secure=True)
    assert (NS_FEATURE_REGISTER, "register") in secure.connect().start(
        to=CLOSED).featureNames()


# -- the account limit ---------------------------------------------------------------


def test_maxUsersRegistration(tmp_path):
    """At its max_users a domain refuses registration with not-allowed; the other domain is not limited."""
    node = VHostNode(tmp_path, {OPEN: {"register": True, "max_users": 2},
                                CLOSED: {"register": True}})
    first = node.connect()
    first.start(to=OPEN)
    assert only(first.exchange(registration("mercutio")))["type"] == "result"

    second = node.connect()
    second.start(to=OPEN)
    error = only(second.exchange(registration("benvolio")))
    assert stanzaError(error) == "not-allowed"
    assert error.error["type"] == "cancel"
    assert PASSWORD not in error.toXml()
    assert not node.exists("benvolio", OPEN)
    assert second.exchange(plain("juliet", PASSWORD)).names == ["success"]

    for name in ("benvolio", "tybalt"):
        client = node.connect()
        client.start(to=CLOSED)
        assert only(client.exchange(registration(name)))["type"] == "result"


def test_maxUsersFreedByRemoval(tmp_path):
    """Once an account of a full domain is removed, one more can register."""
    node = VHostNode(tmp_path, {OPEN: {"register": True, "max_users": 1}})
    client = node.connect()
    client.start(to=OPEN)
    assert stanzaError(only(client.exchange(registration("mercutio")))) == "not-allowed"
    node.users.removeUser("juliet", OPEN)
    client = node.connect()
    client.start(to=OPEN)
    assert only(client.exchange(registration("mercutio")))["type"] == "result"


def test_maxUsersConcurrentRegistrations(tmp_path, monkeypatch):
    """Two clients registering at once for the last place: one gets it, the other not-allowed."""
    node = VHostNode(tmp_path, {OPEN: {"register": True, "max_users": 2}})
    addUser = node.users.addUser

    def slowAddUser(*args):
        return task.deferLater(node.clock, 1, lambda: None).addCallback(
            lambda _: addUser(*args))

    monkeypatch.setattr(node.users, "addUser", slowAddUser)
    clients = [node.connect(), node.connect()]
    for number, (client, name) in enumerate(zip(clients, ("mercutio", "benvolio"))):
        client.start(to=OPEN)
        client.send(registration(name, id=f"reg{number}"))
    node.clock.advance(1)
    node.clock.advance(1)
    answers = [only(client.received()) for client in clients]
    assert answers[0]["type"] == "result" and stanzaError(answers[1]) == "not-allowed"
    assert len(node.users.listUsers(OPEN).result) == 2


def writeCtlConfig(tmp_path, maxUsers: int) -> str:
    return writeConfig(tmp_path, {OPEN: {"max_users": maxUsers}},
                       sections={"c2s": {"endpoint": "tcp:0:interface=127.0.0.1",
                                         "direct_tls_endpoint": ""}})


async def xmppctl(configPath: str, *argv: str) -> int:
    args = ctl.buildParser().parse_args(["--config", configPath, *argv])
    return await ctl.runCommand(args, loadConfig(configPath), reactor)


@pytest_twisted.ensureDeferred
async def test_maxUsersXmppctl(tmp_path, capsys):
    """xmppctl adduser stops at a domain's max_users with one line and exit status 1; other domains go on."""
    configPath = writeCtlConfig(tmp_path, 2)
    for user in ("romeo", "juliet"):
        assert await xmppctl(configPath, "adduser", f"{user}@{OPEN}", "--password", "x") == 0
    capsys.readouterr()
    assert await xmppctl(configPath, "adduser", f"benvolio@{OPEN}", "--password", "x") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f'xmppctl: {OPEN} has 2 accounts, its limit '
                   f'(hosts."{OPEN}".max_users); nothing changed\n')
    assert await xmppctl(configPath, "adduser", f"benvolio@{CLOSED}", "--password", "x") == 0
    capsys.readouterr()
    assert await xmppctl(configPath, "users", OPEN) == 0
    assert capsys.readouterr().out.split() == [f"juliet@{OPEN}", f"romeo@{OPEN}"]


# -- SASL ANONYMOUS ------------------------------------------------------------------


def test_anonymousOfferedOnlyWhereEnabled(tmp_path):
    """ANONYMOUS is offered, last, on the domain that enables it, and refused as unknown on the other."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    mechanisms = node.connect().start(to=OPEN).mechanisms()
    assert mechanisms[-1] == "ANONYMOUS"
    client = node.connect()
    assert "ANONYMOUS" not in client.start(to=CLOSED).mechanisms()
    assert saslFailure(client.exchange(anonymousAuth(b"x"))) == "invalid-mechanism"
    assert client.exchange(plain("juliet", PASSWORD)).names == ["success"]


def test_anonymousOffByDefault(tmp_path):
    """Without a table saying so, no domain offers ANONYMOUS (XEP-0175 §3)."""
    node = VHostNode(tmp_path, {})
    for domain in (OPEN, CLOSED):
        assert "ANONYMOUS" not in node.connect().start(to=domain).mechanisms()


def test_anonymousNeedsTLSWhereRequired(tmp_path):
    """On a domain that requires TLS, ANONYMOUS waits for TLS like every mechanism."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True, "require_tls": True}})
    client = node.connect()
    assert client.start(to=OPEN).mechanisms() == []
    assert saslFailure(client.exchange(anonymousAuth())) == "encryption-required"


def test_anonymousLogin(tmp_path):
    """An anonymous login binds a random UUID account on the domain, different for each login, never stored."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    first = loginAnonymously(node)
    second = loginAnonymously(node, resource=None)
    firstJID, secondJID = parseJID(first.jid), parseJID(second.jid)
    assert firstJID.host == secondJID.host == OPEN
    assert firstJID.resource == "r"
    assert UUID.match(firstJID.user) and UUID.match(secondJID.user)
    assert firstJID.user != secondJID.user
    assert first.stream.anonymous and not node.login(OPEN).stream.anonymous
    assert not node.exists(firstJID.user, OPEN)
    assert node.users.listUsers(OPEN).result == [("juliet", OPEN)]


@pytest.mark.parametrize("auth", [anonymousAuth(None), anonymousAuth(b""),
                                  anonymousAuth("sirhc@example.org".encode()),
                                  anonymousAuth("tracé".encode())],
                         ids=["no-initial-response", "empty", "email", "token"])
def test_anonymousTrace(tmp_path, auth):
    """ANONYMOUS succeeds with or without trace information, or after an empty challenge."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    client = node.connect()
    client.start(to=OPEN)
    reply = client.exchange(auth)
    if reply.names == ["challenge"]:
        reply = client.exchange(b"<response xmlns='%s'/>" % NS_SASL.encode())
    assert reply.names == ["success"]
    client.start(to=OPEN)
    assert UUID.match(parseJID(bindTo(client)).user)


@pytest.mark.parametrize("trace", [b"x" * 256, b"bad\x00trace", b"\xff\xfe"],
                         ids=["too-long", "control", "not-utf8"])
def test_anonymousBadTrace(tmp_path, trace):
    """Trace information that RFC 4505 does not allow fails with malformed-request."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    client = node.connect()
    client.start(to=OPEN)
    assert saslFailure(client.exchange(anonymousAuth(trace))) == "malformed-request"


def test_anonymousGoneAfterLogout(tmp_path):
    """Once an anonymous session ends, its JID is nobody's: messages to it bounce, nothing was stored."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    anonymous = loginAnonymously(node)
    bare = parseJID(anonymous.jid).userhost()
    juliet = node.login(CLOSED)
    assert juliet.exchange(message(anonymous.jid)).elements == []
    assert [e.getAttribute("from") for e in anonymous.received().elements] == [juliet.jid]

    anonymous.exchange("</stream:stream>")
    anonymous.disconnect()
    assert node.server.sessions.sessionsOf(parseJID(bare)) == []
    assert stanzaError(only(juliet.exchange(message(bare, id="m2")))) == "service-unavailable"
    assert not node.exists(parseJID(bare).user, OPEN)


def test_anonymousNoOfflineStorage(tmp_path):
    """A message to an anonymous account none of whose sessions is available is refused, not stored."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True}})
    anonymous = loginAnonymously(node)  # bound, but no presence sent
    bare = parseJID(anonymous.jid)
    juliet = node.login(CLOSED)
    error = only(juliet.exchange(message(bare.userhost())))
    assert stanzaError(error) == "service-unavailable"
    assert node.server.storage.offline.count(bare.user, OPEN).result == 0
    assert anonymous.received().elements == []


def test_anonymousCannotRegister(tmp_path):
    """An anonymous session cannot read, change or remove a registration: not-allowed."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True, "register": True}})
    anonymous = loginAnonymously(node)
    user = parseJID(anonymous.jid).user
    requests = [
        "<iq type='get' id='g1'><query xmlns='%s'/></iq>" % NS_REGISTER,
        registration(user, id="s1"),
        "<iq type='set' id='d1'><query xmlns='%s'><remove/></query></iq>" % NS_REGISTER,
    ]
    for request in requests:
        assert stanzaError(only(anonymous.exchange(request))) == "not-allowed"
    assert not node.exists(user, OPEN)
    assert not anonymous.transport.disconnecting


def test_registerCannotTakeAnonymousName(tmp_path):
    """Registering the name of a live anonymous session is refused with conflict."""
    node = VHostNode(tmp_path, {OPEN: {"anonymous": True, "register": True}})
    user = parseJID(loginAnonymously(node).jid).user
    client = node.connect()
    client.start(to=OPEN)
    assert stanzaError(only(client.exchange(registration(user)))) == "conflict"
    assert not node.exists(user, OPEN)


def test_anonymousNamesAreUUIDs():
    """The names given are version 4 UUIDs (XEP-0175 §3 recommends RFC 4122)."""
    from xmppd.c2s.sasl import newAnonymousName
    names = {newAnonymousName() for _ in range(100)}
    assert len(names) == 100
    assert all(uuid.UUID(name).version == 4 for name in names)
