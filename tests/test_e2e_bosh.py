"""
End-to-end: XMPP over BOSH (XEP-0124, XEP-0206) on a real node, with a
real browser client library, Strophe.js (the BOSH of Converse.js and
JSXC) run by node with xhr2 as its XMLHttpRequest
(C{tests/js/boshclient.mjs}, installed by C{scripts/install-test-deps}),
talking to a slixmpp user on TCP; and a raw HTTP client (Twisted's
C{Agent}) that logs in step by step, sees its answers sent again, and
meets the errors of bad requests while the TCP user is not disturbed.
"""

from __future__ import annotations

import os

import pytest_twisted
from twisted.internet import defer
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.boshhelpers import Answer, bindIQ, body, plainAuth
from tests.e2e import TIMEOUT, password, reactor
from tests.test_e2e_websocket import JS, NODE, NodeClient, needNode

ensureDeferred = pytest_twisted.ensureDeferred
STROPHE = os.path.join(JS, "node_modules", "strophe.js")


def needStrophe():
    needNode()
    if not os.path.isdir(STROPHE):
        import pytest
        pytest.skip("npm's strophe.js is not installed in tests/js "
                    "(scripts/install-test-deps runs npm ci there)")


def spawnStrophe(port: int, jid: str, secret: str, peer: str, text: str) -> NodeClient:
    client = NodeClient()
    env = dict(os.environ)
    # The node's certificate is self-signed.
    env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
    reactor().spawnProcess(
        client, NODE, [NODE, os.path.join(JS, "boshclient.mjs"),
                       "https://localhost:%d/http-bind" % (port,), jid, secret, peer, text],
        env=env, path=JS)
    return client


@ensureDeferred
async def test_stropheOverBOSHChatsWithTCPUser(makeServer):
    """
    Strophe.js logs in over BOSH on the HTTPS listener (SASL, restart,
    bind), sends a message to a slixmpp user on TCP, receives the answer
    and logs out: the same session code, routing and features as TCP.
    """
    needStrophe()
    server = await makeServer()
    await server.addUser("alice")
    await server.addUser("bob")
    bob = await server.login("bob", "desk")
    client = spawnStrophe(server.node.httpsPort, "alice@localhost/web", password("alice"),
                          "bob@localhost/desk", "hello over BOSH")
    try:
        online = await client.next()
        assert online["event"] == "online", online
        assert online["jid"] == "alice@localhost/web"
        assert (await client.next())["event"] == "sent"
        message = await bob.nextMessage()
        assert message["body"] == "hello over BOSH"
        assert str(message["from"]) == "alice@localhost/web"
        bob.send("alice@localhost/web", "hello from TCP")
        received = await client.next()
        assert received == {"event": "message", "from": "bob@localhost/desk",
                            "body": "hello from TCP"}
        assert (await client.next())["event"] == "offline"
        assert await client.ended.addTimeout(TIMEOUT, reactor()) == 0
    finally:
        if not client.ended.called:
            client.transport.signalProcess("KILL")
            await client.ended.addTimeout(TIMEOUT, reactor())


@implementer(IPolicyForHTTPS)
class _Unverified:
    """The test node's certificate is self-signed: not checked here."""

    def creatorForNetloc(self, hostname, port):
        from twisted.internet import ssl
        return ssl.CertificateOptions(verify=False)


class RawBOSH:
    """A BOSH client made of bare HTTP requests, each awaited with a bound."""

    def __init__(self, port: int, rid: int = 7000):
        self.agent = Agent(reactor(), contextFactory=_Unverified())
        self.url = b"https://127.0.0.1:%d/http-bind" % (port,)
        self.rid = rid
        self.sid = None

    def post(self, payload: str = "", rid: int | None = None, **attrs) -> defer.Deferred:
        if rid is None:
            self.rid += 1
            rid = self.rid
        if self.sid is not None:
            attrs.setdefault("sid", self.sid)
        return self.send(body(payload, rid=rid, **attrs))

    def send(self, data: str) -> defer.Deferred:
        from twisted.web.client import FileBodyProducer
        from io import BytesIO

        async def exchange():
            response = await self.agent.request(
                b"POST", self.url, Headers({b"content-type": [b"text/xml; charset=utf-8"],
                                            b"host": [b"localhost"]}),
                FileBodyProducer(BytesIO(data.encode("utf-8")))).addTimeout(TIMEOUT, reactor())
            text = await readBody(response).addTimeout(TIMEOUT, reactor())
            headers = {k.decode().lower(): v[0].decode()
                       for k, v in response.headers.getAllRawHeaders()}
            return Answer(response.code, headers, text)
        return defer.Deferred.fromCoroutine(exchange())


@ensureDeferred
async def test_rawLoginRetransmissionAndErrors(makeServer):
    """
    Over bare HTTP: a session, PLAIN, restart and bind, a message to a
    slixmpp user, a lost answer sent again unchanged (the message is not
    sent twice), then an unknown session and a rid out of the window get
    item-not-found, and the TCP user goes on undisturbed.
    """
    server = await makeServer()
    await server.addUser("alice")
    await server.addUser("bob")
    bob = await server.login("bob", "desk")
    client = RawBOSH(server.node.httpsPort)
    created = await client.post(to="localhost", wait="10", hold="1", ver="1.11",
                                xmpp_version="1.0", xml_lang="en")
    client.sid = created.get("sid")
    assert created.status == 200 and client.sid, created
    assert "PLAIN" in created.text and "SCRAM-SHA-256-PLUS" not in created.text
    assert (await client.post(plainAuth("alice", password("alice")))).names() == ["success"]
    assert (await client.post(xmpp_restart="true")).names() == ["features"]
    bound = await client.post(bindIQ("raw"))
    assert "<jid>alice@localhost/raw</jid>" in bound.text
    message = ("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'>"
               "<body>once only</body></message><iq xmlns='jabber:client' type='get' "
               "id='v1'><query xmlns='jabber:iq:version'/></iq>")
    first = await client.post(message)
    assert (await bob.nextMessage())["body"] == "once only"
    again = await client.post(message, rid=client.rid)
    assert again.raw == first.raw
    # A held request, answered when bob writes.
    held = client.post()
    bob.send("alice@localhost/raw", "over the held request")
    answer = await held
    assert "over the held request" in answer.text
    unknown = await client.post(sid="nosuchsession")
    assert unknown.status == 200 and unknown.terminate == "item-not-found"
    beyond = await client.post(rid=client.rid + 10)
    assert beyond.terminate == "item-not-found"
    gone = await client.post()
    assert gone.terminate == "item-not-found"
    bob.send(str(bob.jid), "still here")
    assert (await bob.nextMessage())["body"] == "still here"


@ensureDeferred
async def test_hostMetaListsBOSH(makeServer):
    """XEP-0156: host-meta names the BOSH URL of the listener used."""
    import json
    server = await makeServer()
    agent = Agent(reactor())
    port = server.node.httpPort
    response = await agent.request(
        b"GET", b"http://127.0.0.1:%d/.well-known/host-meta.json" % port,
        Headers({b"host": [b"localhost:%d" % port]})).addTimeout(TIMEOUT, reactor())
    links = json.loads(await readBody(response))["links"]
    assert {"rel": "urn:xmpp:alt-connections:xbosh",
            "href": "http://localhost:%d/http-bind" % port} in links
