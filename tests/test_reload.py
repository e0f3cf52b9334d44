"""
Tests for L{xmppd.admin.reload} (live reload) and C{xmppctl reload}: the
comparison of two configurations, and end to end a node whose
configuration file changes under slixmpp clients that stay connected.
"""

import hashlib
import ssl

import pytest
import pytest_twisted

from tests.e2e import DOMAIN, E2E_CONFIG, Client, password, writeConfig
from xmppd.admin.reload import plan
from xmppd.config import ConfigError, configFromDict, loadConfig
from xmppd.stream import tls
from xmppd.testing import defaultConfig, overlay

ensureDeferred = pytest_twisted.ensureDeferred

SECOND = "second.example"


# -- the plan --------------------------------------------------------------


def config(**sections):
    return configFromDict({"server": {"domains": ["example.org"]}, **sections}, "x.toml")


def test_nothingChanged():
    """The same file again changes nothing."""
    result = plan(config(), config())
    assert (result.changes, result.restart, result.added, result.removed) == ([], [], [], [])


def test_limitsAndLogApplied():
    """Limits and log settings are changes applied, named by their keys."""
    new = config(limits={"max_stanza_size": 20000}, log={"verbose": True})
    result = plan(config(), new)
    assert result.changes == ["limits.max_stanza_size", "log.verbose"]
    assert result.restart == []
    assert result.config.limits.max_stanza_size == 20000
    assert result.config.log.verbose is True


def test_restartOnlyKeptAsTheyWere():
    """
    Listener endpoints and the storage backend need a restart: reported,
    and the running values are kept, while the rest of the section applies.
    """
    old = config(c2s={"endpoint": "tcp:5222", "direct_tls_endpoint": "tcp:5228"})
    new = config(c2s={"endpoint": "tcp:5223", "direct_tls_endpoint": "tcp:5228",
                        "require_tls": False},
                 storage={"backend": "memory"})
    result = plan(old, new)
    assert result.restart == ["needs a restart: c2s.endpoint",
                              "needs a restart: storage.backend"]
    assert result.changes == ["c2s.require_tls"]
    assert result.config.c2s.endpoint == "tcp:5222"
    assert result.config.c2s.require_tls is False
    assert result.config.storage.backend == old.storage.backend
    assert result.config.sections["storage"] is old.storage


def test_hostsAddedAndRemoved():
    """Domains added and removed are listed as such."""
    old = config()
    new = configFromDict({"server": {"domains": ["example.net", "example.com"]}})
    result = plan(old, new)
    assert result.added == ["example.net", "example.com"]
    assert result.removed == ["example.org"]
    assert result.changes == ["host added: example.net", "host added: example.com",
                              "host removed: example.org"]


def test_moduleOptions():
    """A feature's option is a change applied; enabling a feature needs a restart."""
    old = config()
    new = config(muc={"max_occupants": 7},
                 server={"domains": ["example.org"], "modules": ["roster"]})
    result = plan(old, new)
    assert result.changes == ["muc.max_occupants"]
    assert result.restart == ["needs a restart: server.modules"]
    assert result.config.server.modules == old.server.modules
    assert result.config.muc.max_occupants == 7


# -- end to end --------------------------------------------------------------


def rewrite(node, config: dict) -> None:
    """Write C{node}'s configuration file again, C{config} over the e2e defaults."""
    sections = overlay(defaultConfig(str(node.dataDir)), E2E_CONFIG)
    # The listeners stay where the running node listens.
    writeConfig(node.configPath, overlay(sections, config))


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def certificateFile(path) -> str:
    with open(path, "rb") as f:
        return fingerprint(ssl.PEM_cert_to_DER_cert(f.read().decode("ascii")))


def otherClient(node, jid: str, **kwargs) -> Client:
    made = Client(node, jid, password(jid.partition("@")[0]), **kwargs)
    node.clients.append(made)
    return made


async def stillConnected(node, sender: Client, receiver: Client) -> None:
    sender.send(receiver.jid.full, "still here?")
    message = await receiver.nextMessage()
    assert message["body"] == "still here?"


@ensureDeferred
async def test_certificateReplaced(makeServer, tmp_path):
    """
    The certificate file is replaced and C{xmppctl reload} run: a new TLS
    connection is shown the new certificate, and a client connected before
    stays connected with the old one.
    """
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    tls.generateSelfSigned([DOMAIN], str(cert), str(key))
    settings = {"tls": {"certificate": str(cert), "private_key": str(key)}}
    node = await makeServer(settings)
    await node.addUser("romeo")
    await node.addUser("juliet")
    romeo = await node.login("romeo")
    before = fingerprint(romeo.tls.getpeercert(binary_form=True))
    assert before == certificateFile(cert)

    tls.generateSelfSigned([DOMAIN], str(cert), str(key))
    assert certificateFile(cert) != before
    result = await node.xmppctl("reload")
    assert (result.status, result.err) == (0, "")
    assert result.out == "tls: new certificate\n"

    juliet = await node.login("juliet")
    assert fingerprint(juliet.tls.getpeercert(binary_form=True)) == certificateFile(cert)
    direct = otherClient(node, f"juliet@{DOMAIN}/direct", directTLS=True)
    await direct.login()
    assert fingerprint(direct.tls.getpeercert(binary_form=True)) == certificateFile(cert)
    assert fingerprint(romeo.tls.getpeercert(binary_form=True)) == before
    await stillConnected(node, romeo, juliet)
    assert romeo.streamErrors == []


@ensureDeferred
async def test_hostAddedThenRemoved(makeServer):
    """
    A virtual host added to the file serves logins after C{xmppctl reload}
    while the first host's client stays connected; removed again, its
    client is closed with C{host-gone} and the first host's is not.
    """
    node = await makeServer()
    await node.addUser("romeo")
    romeo = await node.login("romeo")

    rewrite(node, {"server": {"domains": [DOMAIN, SECOND]}})
    result = await node.xmppctl("reload")
    assert (result.status, result.err) == (0, "")
    assert f"host added: {SECOND}" in result.out.splitlines()
    await node.addUser("juliet", domain=SECOND)
    juliet = otherClient(node, f"juliet@{SECOND}")
    await juliet.login()
    await stillConnected(node, romeo, juliet)
    assert node.service.router.hasRoute(SECOND)

    rewrite(node, {"server": {"domains": [DOMAIN]}})
    result = await node.xmppctl("reload")
    assert (result.status, result.err) == (0, "")
    assert f"host removed: {SECOND}" in result.out.splitlines()
    assert await juliet.closedByServer() == ["host-gone"]
    assert not node.service.router.hasRoute(SECOND)
    assert SECOND not in node.service.domainServices
    late = otherClient(node, f"juliet@{SECOND}/late")
    with pytest.raises(Exception):
        await late.login()
    assert late.streamErrors == ["host-unknown"]
    assert romeo.streamErrors == [] and romeo.connected


@ensureDeferred
async def test_moduleOptionAndLimits(makeServer):
    """
    A MUC option and a limit change live: the MUC service's name in service
    discovery is the new one, and new streams get the new limit.
    """
    from tests.e2e import wait
    node = await makeServer()
    await node.addUser("romeo")
    romeo = await node.login("romeo")
    romeo.xmpp.register_plugin("xep_0030")
    rewrite(node, {"muc": {"name": "Balconies"}, "limits": {"max_stanza_size": 20000}})
    result = await node.xmppctl("reload")
    assert (result.status, result.out) == (0, "limits.max_stanza_size\nmuc.name\n")
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid=f"conference.{DOMAIN}"))
    names = [identity[3] for identity in info["disco_info"]["identities"]]
    assert names == ["Balconies"]
    factories = node.service.getServiceNamed("c2s").factories
    assert {factory.limits.max_stanza_size for factory in factories} == {20000}


@ensureDeferred
async def test_brokenConfigRefused(makeServer):
    """
    A file that does not validate is refused with the one-line error the
    server gives at start, exit status 1; the node keeps serving as before.
    """
    node = await makeServer()
    await node.addUser("romeo")
    await node.addUser("juliet")
    romeo = await node.login("romeo")
    rewrite(node, {"limits": {"max_stanza_size": 5}})
    result = await node.xmppctl("reload")
    assert result.status == 1
    with pytest.raises(ConfigError) as atStart:
        loadConfig(str(node.configPath))
    assert str(atStart.value) == "limits.max_stanza_size: expected an integer >= 10000, got 5"
    assert result.err == f"xmppctl: the server refused: {atStart.value}\n"
    assert result.out == ""
    assert node.service.config.limits.max_stanza_size != 5
    juliet = await node.login("juliet")
    await stillConnected(node, romeo, juliet)


@ensureDeferred
async def test_hostOfAComponentRefused(makeServer):
    """A domain that an external component serves cannot become a host."""
    node = await makeServer({"components": {"secrets": {SECOND: "a long secret"}}})
    rewrite(node, {"server": {"domains": [DOMAIN, SECOND]},
                   "components": {"secrets": {SECOND: "a long secret"}}})
    result = await node.xmppctl("reload")
    assert (result.status, result.out) == (1, "")
    assert result.err == (f"xmppctl: the server refused: components.secrets: '{SECOND}' is "
                          f"in server.domains too; a domain is served by this server or by "
                          f"a component, not both\n")
    assert SECOND not in node.service.domainServices


@ensureDeferred
async def test_restartOnlyReported(makeServer):
    """Changing a listener's endpoint is reported, not applied."""
    node = await makeServer()
    rewrite(node, {"c2s": {"endpoint": "tcp:0:interface=127.0.0.2"}})
    result = await node.xmppctl("reload")
    assert (result.status, result.out) == (0, "needs a restart: c2s.endpoint\n")
    await node.addUser("romeo")
    await node.login("romeo")


async def logged(process, text: str) -> None:
    """Wait (at most TIMEOUT) until the twistd process has logged C{text}."""
    from tests.e2e import TIMEOUT, sleep
    for _ in range(int(TIMEOUT / 0.05)):
        if text in process.output:
            return
        await sleep(0.05)
    raise AssertionError(f"{text!r} not logged:\n{process.output}")


@ensureDeferred
async def test_hangupReloads(stoppedServer):
    """
    A real C{twistd} node reloads on SIGHUP: a broken file is refused with
    its one-line error in the log and the client stays connected; a new
    virtual host then serves a login.
    """
    from tests.test_fault_offline import startNode
    node = stoppedServer
    await node.addUser("romeo")
    await node.addUser("juliet", domain=DOMAIN)
    process = await startNode(node)
    try:
        romeo = await node.login("romeo")
        rewrite(node, {"limits": {"max_stanza_size": 5}})
        process.transport.signalProcess("HUP")
        await logged(process, "Reload refused, keeping the running configuration: "
                              "limits.max_stanza_size: expected an integer >= 10000, got 5")

        rewrite(node, {"server": {"domains": [DOMAIN, SECOND]}})
        await node.addUser("juliet", domain=SECOND)
        process.transport.signalProcess("HUP")
        await logged(process, f"Reload: host added: {SECOND}")
        juliet = otherClient(node, f"juliet@{SECOND}")
        await juliet.login()
        await stillConnected(node, romeo, juliet)
    finally:
        for client in node.clients:
            await client.close()
        node.clients = []
        await process.kill("TERM")
