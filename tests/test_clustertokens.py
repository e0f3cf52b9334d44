"""
The HTTP API's tokens on a cluster (L{xmppd.admin.clustertokens}, issue
17 item 6): made, listed, revoked and imported with C{xmppctl api token}
(its own function, L{xmppd.cli.ctl.runCommand}) in the cluster's Redis
(the test's own redis-server), and checked by two in-process nodes
(L{xmppd.testing.ServerFixture}) over real HTTP on their C{/api}.  The
node's copy when Redis does not answer is tested over a fake Redis, on a
L{Clock}.
"""

from __future__ import annotations

import json

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_cluster import TIMEOUT, Nodes, clusterConfig
from xmppd.admin import clustertokens
from xmppd.admin.apitokens import TOKENS_FILE, Token, TokenFile, digestOf
from xmppd.cli import ctl
from xmppd.cluster import keys
from xmppd.config import configFromDict
from xmppd.testing import ServerFixture


async def xmppctl(config, capsys, *argv: str) -> tuple[int, str, str]:
    """C{xmppctl ARGV} with the node's configuration, in this process: (status, out, err)."""
    capsys.readouterr()
    args = ctl.buildParser().parse_args(list(argv))
    status = await defer.Deferred.fromCoroutine(ctl.runCommand(args, config, reactor))
    out, err = capsys.readouterr()
    return status, out, err


async def status(node: ServerFixture, token: str, path: str = "sessions") -> int:
    """The HTTP status of C{GET /api/sessions} (an admin call) on C{node} with C{token}."""
    headers = Headers({b"authorization": [b"Bearer " + token.encode()]})
    url = b"http://127.0.0.1:%d/api/%s" % (node.httpPort, path.encode())
    response = await Agent(reactor).request(b"GET", url, headers).addTimeout(TIMEOUT, reactor)
    await readBody(response).addTimeout(TIMEOUT, reactor)
    return response.code


async def eventually(node, token, expected: int) -> None:
    """Wait (bounded) until C{node} answers C{token} with C{expected}: pub/sub is asynchronous."""
    seen = [await status(node, token)]
    while seen[-1] != expected:
        assert len(seen) < 500, f"still {seen[-1]}, not {expected}"
        await task.deferLater(reactor, 0.01, lambda: None)
        seen.append(await status(node, token))


async def stored(node) -> dict:
    return await node.service.getServiceNamed("cluster").directory.redis.hgetall(
        keys.API_TOKENS)


async def test_tokenWorksOnEveryNodeUntilRevoked(redisServer, capsys):
    """
    A token made with C{xmppctl api token create} on a cluster works on both
    nodes' C{/api} (a node started later reads it before it listens); only
    its digest is in Redis; revoked, it is refused (401) on both.
    """
    nodes = Nodes()
    try:
        [a] = await nodes.start(redisServer.url, "a")
        code, out, err = await xmppctl(a.config, capsys, "api", "token", "create", "ops",
                                       "--scope", "admin")
        assert code == 0, err
        [admin] = out.splitlines()
        assert err.splitlines() == [
            "API tokens of the whole cluster, in the cluster's Redis at 127.0.0.1:%d "
            "(xmppd:c:api_tokens)" % (redisServer.port,)]
        code, out, _ = await xmppctl(a.config, capsys, "api", "token", "create", "crm",
                                     "--scope", "send")
        [send] = out.splitlines()
        b = (await nodes.start(redisServer.url, "b"))[-1]
        # b read the tokens at start, before its listeners opened.
        assert await status(b, admin) == 200
        await eventually(a, admin, 200)
        for node in (a, b):
            assert await status(node, send) == 403
            assert await status(node, "guessed") == 401
        rows = await stored(a)
        assert sorted(rows) == ["crm", "ops"]
        assert json.loads(rows["ops"])["sha256"] == digestOf(admin)
        assert json.loads(rows["ops"])["scope"] == "admin"
        assert admin not in json.dumps(rows) and send not in json.dumps(rows)
        code, out, _ = await xmppctl(b.config, capsys, "api", "token", "list", "--json")
        assert code == 0
        assert [(r["name"], r["scope"]) for r in json.loads(out)["tokens"]] == [
            ("ops", "admin"), ("crm", "send")]
        code, _, err = await xmppctl(a.config, capsys, "api", "token", "create", "ops",
                                     "--scope", "send")
        assert code == 1 and "there is a token 'ops' already" in err

        code, out, _ = await xmppctl(b.config, capsys, "api", "token", "revoke", "ops")
        assert (code, out) == (0, "revoked API token 'ops' on every node\n")
        for node in (a, b):
            await eventually(node, admin, 401)
        code, _, err = await xmppctl(b.config, capsys, "api", "token", "revoke", "ops")
        assert code == 1 and "there is no token 'ops'" in err
        code, out, _ = await xmppctl(a.config, capsys, "api", "token", "list")
        assert out.startswith("crm\tsend\tcreated ")
    finally:
        await nodes.close()


async def test_missedChangesReadAgain(redisServer, capsys):
    """A change whose message was lost is read when the subscription comes back."""
    nodes = Nodes()
    try:
        [a] = await nodes.start(redisServer.url, "a")
        _, out, _ = await xmppctl(a.config, capsys, "api", "token", "create", "ops",
                                  "--scope", "admin")
        [admin] = out.splitlines()
        await eventually(a, admin, 200)
        cluster = a.service.getServiceNamed("cluster")
        # Removed behind the nodes' backs: no message.
        await cluster.directory.redis.hdel(keys.API_TOKENS, "ops")
        assert await status(a, admin) == 200
        cluster.invalidation.subscribed()
        await eventually(a, admin, 401)
    finally:
        await nodes.close()


async def test_tokenFileOfANodeImported(redisServer, capsys, tmp_path):
    """
    A cluster node whose data directory has a token file says at start, in
    one line, that it ignores it and how to move the tokens; C{xmppctl api
    token import} copies them, after which the old token works; importing
    again is harmless, a clash of names is refused.
    """
    data = tmp_path / "data"
    old = TokenFile(str(data)).create("legacy", "admin")
    logged = []
    globalLogPublisher.addObserver(logged.append)
    node = ServerFixture({}, config=clusterConfig(redisServer.url, "a"), directory=tmp_path)
    try:
        await node.start()
        lines = [formatEvent(e) for e in logged if "ignores it" in formatEvent(e)]
        assert lines == [
            f"api: {data / TOKENS_FILE} holds 1 API token but a node of a cluster ignores it: "
            "the HTTP API's tokens are the cluster's, in its Redis (xmppd:c:api_tokens); copy "
            "them there once with `xmppctl api token import` on this node (or make new ones "
            "with `xmppctl api token create`), then remove the file"]
        assert not any(e.get("log_failure") for e in logged)
        assert await status(node, old) == 401
        code, out, err = await xmppctl(node.config, capsys, "api", "token", "import")
        assert code == 0, err
        assert out.splitlines() == [
            f"copied 1 API token from {data / TOKENS_FILE}: legacy",
            f"{data / TOKENS_FILE} is not read on a cluster; remove it"]
        await eventually(node, old, 200)
        code, out, _ = await xmppctl(node.config, capsys, "api", "token", "import")
        assert code == 0 and out.startswith("copied 1 API token")
        await xmppctl(node.config, capsys, "api", "token", "revoke", "legacy")
        await xmppctl(node.config, capsys, "api", "token", "create", "legacy", "--scope",
                      "send")
        code, _, err = await xmppctl(node.config, capsys, "api", "token", "import")
        assert code == 1 and "other tokens of these names" in err and "legacy" in err
    finally:
        globalLogPublisher.removeObserver(logged.append)
        await node.close()


def test_importWithoutCluster(tmp_path, capsys):
    config = configFromDict({"server": {"data_dir": str(tmp_path)}})
    args = ctl.buildParser().parse_args(["api", "token", "import"])
    code = defer.Deferred.fromCoroutine(ctl.runCommand(args, config, reactor))
    assert code.result == 1
    assert "there is no [cluster] section" in capsys.readouterr().err


# -- the node's copy when Redis does not answer --------------------------------------


class FakeRedis:
    def __init__(self):
        self.reads: list[defer.Deferred] = []

    def hgetall(self, key):
        assert key == keys.API_TOKENS
        self.reads.append(defer.Deferred())
        return self.reads[-1]


class FakeInvalidation:
    def __init__(self):
        self.listeners, self.missed = {}, []

    def listen(self, kind, callback):
        self.listeners[kind] = callback

    def listenMissed(self, callback):
        self.missed.append(callback)


class FakeServer:
    def __init__(self, tmp_path):
        self.clock = Clock()
        self.config = configFromDict({"server": {"data_dir": str(tmp_path)}})
        self.startGates = []
        self.cluster = type("Cluster", (), {})()
        self.cluster.invalidation = FakeInvalidation()
        self.cluster.directory = type("Directory", (), {})()
        self.cluster.directory.redis = FakeRedis()
        self.cluster.address = type("Address", (), {"host": "10.0.0.7", "port": 6379})()


def row(name: str, scope: str, token: str) -> str:
    return clustertokens.encode(Token(name, scope, 1.0, digestOf(token)))


def test_redisDownKeepsTheCopy(tmp_path):
    """
    Redis does not answer: the node keeps its tokens, logs one line without
    a traceback, tries again every RETRY seconds, and logs when it reads
    them again; an older read answering after a newer one changes nothing.
    """
    server = FakeServer(tmp_path)
    redis = server.cluster.directory.redis
    tokens = clustertokens.ClusterTokens(server)
    [gate] = server.startGates
    ready = gate()
    tokens.startService()
    assert not ready.called
    redis.reads[0].callback({"ops": row("ops", "admin", "secret-1")})
    assert ready.called
    assert tokens.check("secret-1").scope == "admin" and tokens.check("nope") is None

    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        server.cluster.invalidation.listeners["api_tokens"]("ops")
        server.clock.advance(clustertokens.READ_TIMEOUT)
        assert tokens.check("secret-1").name == "ops"
        server.clock.advance(clustertokens.RETRY)
        redis.reads[-1].errback(ConnectionError("Connection refused"))
        assert tokens.check("secret-1").name == "ops"
        server.clock.advance(clustertokens.RETRY)
        redis.reads[-1].callback({"crm": row("crm", "send", "secret-2")})
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert len(redis.reads) == 4
    lines = [formatEvent(e) for e in logged]
    assert lines == [
        "api: cannot read the API tokens from the cluster's Redis at 10.0.0.7:6379 (no answer "
        "within 10 s); this node keeps the 1 token it read before and tries again every 5 s",
        "api: read the API tokens from the cluster's Redis again (1 token)"]
    assert not any(e.get("log_failure") for e in logged)
    assert tokens.check("secret-1") is None and tokens.check("secret-2").scope == "send"

    # Two reads in flight: the newer one's answer stands.
    server.cluster.invalidation.missed[0]()
    server.cluster.invalidation.missed[0]()
    redis.reads[-1].callback({})
    redis.reads[-2].callback({"crm": row("crm", "send", "secret-2")})
    assert tokens.check("secret-2") is None
    tokens.stopService()
    assert not server.clock.getDelayedCalls()


def test_stopCancelsReads(tmp_path):
    """A read in flight when the node stops is cancelled: no log line, no call left."""
    server = FakeServer(tmp_path)
    tokens = clustertokens.ClusterTokens(server)
    ready = server.startGates[0]()
    tokens.startService()
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        tokens.stopService()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert ready.called and not tokens.reading
    assert server.cluster.directory.redis.reads[0].called
    assert not server.clock.getDelayedCalls() and not logged
