"""
End to end (issue 17, item 6): tokens made with C{xmppctl api token} in a
process of its own, then the HTTP API (L{xmppd.admin.api}) called over
real HTTP on a real node: a message sent with a send-only token reaches a
slixmpp client, an admin call with that token is refused, and an account
made with an admin token logs in with slixmpp.  On a cluster, a token made
once works on both nodes and a revoke reaches both.
"""

from __future__ import annotations

import io
import json

from pytest_twisted import ensureDeferred
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from tests.clusterhelpers import clusterServer
from tests.e2e import TIMEOUT, reactor, sleep
from tests.redisserver import redisServer, _moduleRedis  # noqa: F401  (fixtures)
from tests.test_e2e_messages import available


async def call(server, method: str, path: str, token: str | None, body=None,
               raw: bytes | None = None) -> tuple[int, dict]:
    """One request to the node's plain HTTP listener: (status, JSON answer)."""
    headers = Headers({b"content-type": [b"application/json"]})
    if token is not None:
        headers.addRawHeader(b"authorization", b"Bearer " + token.encode())
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    producer = FileBodyProducer(io.BytesIO(data)) if data is not None else None
    url = b"http://127.0.0.1:%d/api/%s" % (server.node.httpPort, path.encode())
    response = await Agent(reactor()).request(method.encode(), url, headers, producer
                                              ).addTimeout(TIMEOUT, reactor())
    answer = await readBody(response).addTimeout(TIMEOUT, reactor())
    return response.code, json.loads(answer) if answer else {}


async def token(server, name: str, scope: str) -> str:
    made = await server.xmppctl("api", "token", "create", name, "--scope", scope)
    assert made.status == 0, made.err
    [line] = made.out.splitlines()
    return line


@ensureDeferred
async def test_sendOnlyTokenSendsAndIsRefusedAdminCalls(makeServer):
    server = await makeServer()
    await server.addUser("romeo")
    romeo = await server.login("romeo", "phone")
    # A chat to the bare JID goes to the available resources (RFC 6121 §8.5.2).
    await available(romeo)
    send = await token(server, "crm", "send")
    listed = await server.xmppctl("api", "token", "list", "--json")
    assert listed.status == 0
    [row] = json.loads(listed.out)["tokens"]
    assert (row["name"], row["scope"]) == ("crm", "send") and send not in listed.out

    status, answer = await call(server, "POST", "send", send, {
        "to": f"romeo@{server.domain}", "body": "Your order has shipped",
        "type": "chat"})
    assert (status, answer) == (200, {"sent": True})
    message = await romeo.nextMessage()
    assert str(message["from"]) == server.domain
    assert (message["type"], message["body"]) == ("chat", "Your order has shipped")

    status, answer = await call(server, "POST", "users", send,
                                {"jid": f"eve@{server.domain}", "password": "apple pie 7"})
    assert status == 403 and "admin" in answer["error"]
    status, answer = await call(server, "GET", "sessions", None)
    assert status == 401
    status, answer = await call(server, "POST", "send", send, raw=b"{oops")
    assert status == 400 and answer["error"] == "the body must be a JSON object"

    revoked = await server.xmppctl("api", "token", "revoke", "crm")
    assert revoked.status == 0
    status, _ = await call(server, "POST", "send", send,
                          {"to": f"romeo@{server.domain}", "body": "again"})
    assert status == 401


@ensureDeferred
async def test_adminTokenCreatesAUserWhoLogsIn(makeServer):
    server = await makeServer()
    admin = await token(server, "ops", "admin")
    status, answer = await call(server, "POST", "users", admin,
                                {"jid": f"eve@{server.domain}", "password": "apple pie 7"})
    assert (status, answer) == (200, {"created": f"eve@{server.domain}"})
    eve = await server.login("eve", "laptop", secret="apple pie 7")
    status, answer = await call(server, "GET", "sessions", admin)
    assert status == 200
    assert [row["jid"] for row in answer["sessions"]] == [str(eve.jid)]
    status, answer = await call(server, "POST", "announce", admin,
                                {"domain": server.domain, "text": "Maintenance at noon"})
    assert (status, answer) == (200, {"sent": 1})
    message = await eve.nextMessage()
    assert (message["type"], message["body"]) == ("headline", "Maintenance at noon")


@ensureDeferred
async def test_clusterTokensOnEveryNode(makeServer, redisServer):
    """
    On a cluster of two nodes, tokens made with the real C{xmppctl} against
    the cluster's Redis work on both nodes' C{/api}: a send-only token on
    node b sends a message to a slixmpp client on node a; once revoked
    (with the other node's C{xmppctl}), both nodes refuse it.
    """
    a = await clusterServer(makeServer, redisServer, "a", users=("romeo",))
    b = await clusterServer(makeServer, redisServer, "b")
    await a.start()
    await b.start()
    made = await a.xmppctl("api", "token", "create", "crm", "--scope", "send")
    assert made.status == 0, made.err
    [send] = made.out.splitlines()
    assert "the cluster's Redis" in made.err
    admin = await token(a, "ops", "admin")
    for server in (a, b):
        assert (await eventually(server, "GET", "sessions", admin, 200))[0] == 200
        status, answer = await call(server, "GET", "sessions", send)
        assert status == 403
    romeo = await a.login("romeo", "phone")
    await available(romeo)
    status, answer = await call(b, "POST", "send", send, {
        "to": f"romeo@{a.domain}", "body": "Sent through node b"})
    assert (status, answer) == (200, {"sent": True})
    message = await romeo.nextMessage()
    assert message["body"] == "Sent through node b"

    revoked = await b.xmppctl("api", "token", "revoke", "ops")
    assert (revoked.status, revoked.out) == (0, "revoked API token 'ops' on every node\n")
    for server in (a, b):
        await eventually(server, "GET", "sessions", admin, 401)


async def eventually(server, method: str, path: str, token: str, expected: int):
    """Call until the answer has status C{expected} (bounded): pub/sub is asynchronous."""
    for _ in range(200):
        status, answer = await call(server, method, path, token)
        if status == expected:
            return status, answer
        await sleep(0.02)
    raise AssertionError(f"{method} /api/{path} still answers {status}, not {expected}")
