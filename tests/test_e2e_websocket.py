"""
End-to-end: XMPP over WebSocket (RFC 7395) on a real node, with a real
browser-style client, npm's C{@xmpp/client} run by node
(C{tests/js/wsclient.mjs}, installed by C{scripts/install-test-deps}),
talking to a slixmpp user on TCP; and the framing, errors and refusals
seen by a plain WebSocket client (L{tests.wshelpers}).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import defer, protocol
from twisted.logger import globalLogPublisher

from tests.e2e import REPO, TIMEOUT, reactor
from tests.wshelpers import connectWebSocket, openElement

ensureDeferred = pytest_twisted.ensureDeferred

JS = os.path.join(REPO, "tests", "js")
NODE = shutil.which("node")
XMPP_CLIENT = os.path.join(JS, "node_modules", "@xmpp", "client")


def needNode():
    if NODE is None:
        pytest.skip("node is not installed (Debian: apt-get install nodejs)")
    if not os.path.isdir(XMPP_CLIENT):
        pytest.skip("npm's @xmpp/client is not installed in tests/js "
                    "(scripts/install-test-deps runs npm ci there)")


class NodeClient(protocol.ProcessProtocol):
    """C{tests/js/wsclient.mjs}: its JSON lines, awaited one by one, with a bound."""

    def __init__(self):
        self.buffer = b""
        self.events: list[dict] = []
        self.waiters: list[defer.Deferred] = []
        self.stderr = b""
        self.ended = defer.Deferred()
        self.status = None

    def outReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.events.append(json.loads(line))
        self.wake()

    def errReceived(self, data):
        self.stderr += data

    def processEnded(self, reason):
        self.status = reason.value.exitCode
        self.ended.callback(self.status)
        self.wake()

    def wake(self):
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(None)

    async def next(self) -> dict:
        while not self.events:
            if self.ended.called:
                raise AssertionError("wsclient.mjs ended (%s) without a word; stderr: %s"
                                     % (self.status, self.stderr.decode(errors="replace")))
            d = defer.Deferred()
            self.waiters.append(d)
            await d.addTimeout(TIMEOUT, reactor())
        event = self.events.pop(0)
        assert event["event"] != "error", event
        return event


def spawnClient(port: int, user: str, secret: str, peer: str, body: str) -> NodeClient:
    client = NodeClient()
    env = dict(os.environ)
    # The node's certificate is self-signed.
    env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
    reactor().spawnProcess(
        # Node 20 has the browser's WebSocket (undici's) behind a flag; 22 by default.
        client, NODE, [NODE, "--experimental-websocket", os.path.join(JS, "wsclient.mjs"),
                       "wss://localhost:%d/xmpp-websocket" % (port,), "localhost",
                       user, secret, peer, body], env=env, path=JS)
    return client


@ensureDeferred
async def test_xmppClientOverWebSocketChatsWithTCPUser(makeServer):
    """
    @xmpp/client logs in with SCRAM over the HTTPS WebSocket, sends a message to a slixmpp user on TCP and
    receives the answer: the same session code, routing and features as
    TCP clients.
    """
    needNode()
    server = await makeServer()
    logins = []

    def observe(event):
        if event.get("mechanism") and event.get("user") == "alice":
            logins.append(event["mechanism"])
    globalLogPublisher.addObserver(observe)
    await server.addUser("alice")
    await server.addUser("bob")
    from tests.e2e import password
    bob = await server.login("bob", "desk")
    client = spawnClient(server.node.httpsPort, "alice", password("alice"),
                         "bob@localhost/desk", "hello from the browser")
    try:
        online = await client.next()
        assert online["event"] == "online"
        # @xmpp/client prefers SASL2 with Bind 2 (XEP-0386): its resource
        # is the tag it asked for, a dot and the server's part.
        jid = online["jid"]
        assert jid.startswith("alice@localhost/web."), jid
        assert logins and logins[0].startswith("SCRAM-"), logins
        message = await bob.nextMessage()
        assert message["body"] == "hello from the browser"
        assert str(message["from"]) == jid
        bob.send(jid, "hello from TCP")
        assert (await client.next())["event"] == "sent"
        received = await client.next()
        assert received == {"event": "message", "from": "bob@localhost/desk",
                            "body": "hello from TCP"}
        assert (await client.next())["event"] == "offline"
        assert await client.ended.addTimeout(TIMEOUT, reactor()) == 0
    finally:
        globalLogPublisher.removeObserver(observe)
        if not client.ended.called:
            client.transport.signalProcess("KILL")
            await client.ended.addTimeout(TIMEOUT, reactor())


@ensureDeferred
async def test_hostMetaListsTheWebSocket(makeServer):
    """XEP-0156: host-meta of a served domain names the WebSocket URL of the listener used."""
    from twisted.web.client import Agent, readBody
    from twisted.web.http_headers import Headers
    server = await makeServer()
    agent = Agent(reactor())
    port = server.node.httpPort
    response = await agent.request(
        b"GET", b"http://127.0.0.1:%d/.well-known/host-meta.json" % port,
        Headers({b"host": [b"localhost:%d" % port]})).addTimeout(TIMEOUT, reactor())
    body = json.loads(await readBody(response))
    assert response.code == 200
    assert {"rel": "urn:xmpp:alt-connections:websocket",
            "href": "ws://localhost:%d/xmpp-websocket" % port} in body["links"]
    response = await agent.request(
        b"GET", b"http://127.0.0.1:%d/.well-known/host-meta" % port,
        Headers({b"host": [b"elsewhere.example"]})).addTimeout(TIMEOUT, reactor())
    await readBody(response)
    assert response.code == 404


@ensureDeferred
async def test_plainWebSocketFramingAndErrors(makeServer):
    """
    A WebSocket client sees RFC 7395's framing (C{<open/>}, features with
    their own namespace declarations), a stream error followed by
    C{<close/>} for a message that is not XML, and a handshake without
    the C{xmpp} subprotocol refused with 400; a client on TCP is not
    disturbed.
    """
    server = await makeServer()
    await server.addUser("bob")
    bob = await server.login("bob")
    port = server.node.httpsPort
    refused = await connectWebSocket(port, tls=True, subprotocols=())
    assert refused.status == 400
    assert b"xmpp" in refused.body
    ws = await connectWebSocket(port, tls=True)
    assert ws.subprotocol == "xmpp"
    ws.send(openElement())
    await ws.expect(r"^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='[^']+' "
                    r"from='localhost' version='1.0' xml:lang='en'/>$")
    await ws.expect(r"^<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                    r".*SCRAM-SHA-256-PLUS")
    ws.send("<message></iq>")
    await ws.expect(r"^<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                    r"<not-well-formed ")
    await ws.expect(r"^<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>$")
    await ws.waitClosed()
    bob.send(str(bob.jid), "still here")
    assert (await bob.nextMessage())["body"] == "still here"


@ensureDeferred
async def test_scramPlusBindsToTheHTTPSConnection(makeServer):
    """
    Over the HTTPS listener, SCRAM-SHA-256-PLUS binds to that TLS
    connection (tls-exporter, RFC 9266): the client's own keying material
    logs in, and the server's signature proves the server saw the same.
    """
    import base64
    from tests.e2e import password
    from tests.test_sasl import clientProof
    server = await makeServer()
    await server.addUser("alice")
    ws = await connectWebSocket(server.node.httpsPort, tls=True)
    ws.send(openElement())
    await ws.nextMessage()
    features = await ws.nextMessage()
    assert "<channel-binding type='tls-exporter'/>" in features
    binding = ws.transport.getHandle().export_keying_material(b"EXPORTER-Channel-Binding", 32)
    gs2 = "p=tls-exporter,,"
    first = "n=alice,r=webnonce"
    ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>"
            "%s</auth>" % base64.b64encode((gs2 + first).encode()).decode())
    challenge = await ws.expect("^<challenge ")
    serverFirst = base64.b64decode(challenge.split(">", 1)[1].split("<", 1)[0]).decode()
    attrs = dict(part.split("=", 1) for part in serverFirst.split(","))
    final = "c=%s,r=%s" % (base64.b64encode(gs2.encode() + binding).decode(), attrs["r"])
    proof, signature = clientProof("sha256", password("alice"), base64.b64decode(attrs["s"]),
                                   int(attrs["i"]), ",".join((first, serverFirst, final)).encode())
    ws.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>"
            % base64.b64encode((final + ",p=" + base64.b64encode(proof).decode()).encode()
                               ).decode())
    success = await ws.expect("^<success ")
    verifier = base64.b64decode(success.split(">", 1)[1].split("<", 1)[0]).decode()
    assert verifier == "v=" + base64.b64encode(signature).decode()
    ws.send(openElement())
    await ws.expect("^<open ")
    await ws.expect("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
    ws.transport.loseConnection()
    await ws.waitClosed()
