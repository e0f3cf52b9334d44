"""
Tests for the HTTP API (L{xmppd.admin.api}), its tokens
(L{xmppd.admin.apitokens}) and C{xmppctl api token} (L{xmppd.cli.api}):
the resource over the admin operations of a whole node in memory
(L{tests.streamhelpers.Node}), requests from C{twisted.web}'s
C{DummyRequest}.
"""

from __future__ import annotations

import dataclasses
import io
import json
import stat

import pytest
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from tests.test_adminops import (
    C2S, HALL, SERVICE, addMUC, destroyPresence, persistentHall, succeed)
from tests.streamhelpers import DOMAIN, Node
from tests.test_http import connect
from xmppd.admin.api import APIResource
from xmppd.admin.apitokens import TOKENS_FILE, TokenError, TokenFile, digestOf
from xmppd.admin.service import AdminService
from xmppd.cli import ctl
from xmppd.config import configFromDict
from xmppd.http.service import WebSite


@pytest.fixture
def node(tmp_path):
    node = Node(tmp_path, features=("disco",))
    C2S(node.factory).setServiceParent(node.server)
    node.ops = AdminService(node.server, reactor=node.clock).operations
    node.tokens = TokenFile(str(tmp_path / "data"))
    node.api = APIResource(node.ops, node.tokens)
    node.send = node.tokens.create("sender", "send")
    node.admin = node.tokens.create("ops", "admin")
    return node


def call(node, method: str, path: str, body=None, token: str | None = None,
         raw: bytes | None = None) -> tuple[int, dict, DummyRequest]:
    """One request to C{/api/<path>}: (status, JSON answer, request)."""
    request = DummyRequest([p.encode() for p in path.split("/")])
    request.method = method.encode()
    request.uri = b"/api/" + path.encode()
    if token is not None:
        request.requestHeaders.addRawHeader(b"authorization", b"Bearer " + token.encode())
    request.content = io.BytesIO(raw if raw is not None else
                                 json.dumps(body or {}).encode())
    node.api.render(request)
    assert request.finished, "the API answered synchronously over memory storage"
    return request.responseCode or 200, json.loads(b"".join(request.written)), request


def test_sendChatMessage(node):
    """POST /api/send with a send token: the message reaches the user's session."""
    romeo = node.connect().login("romeo", "phone")
    status, answer, request = call(node, "POST", "send", {
        "to": f"romeo@{DOMAIN}", "body": "Your parcel is here", "type": "headline",
        "subject": "Parcel"}, token=node.send)
    assert (status, answer) == (200, {"sent": True})
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    [message] = romeo.received().elements
    assert (message["from"], message["type"]) == (DOMAIN, "headline")
    assert (str(message.body), str(message.subject)) == ("Your parcel is here", "Parcel")


def test_sendFromAccount(node):
    """C{from} may be a local account; the default type is chat."""
    romeo = node.connect().login("romeo", "phone")
    status, _, _ = call(node, "POST", "send", {
        "to": f"romeo@{DOMAIN}", "body": "hi", "from": f"juliet@{DOMAIN}"}, token=node.admin)
    assert status == 200
    [message] = romeo.received().elements
    assert (message["from"], message["type"]) == (f"juliet@{DOMAIN}", "chat")


@pytest.mark.parametrize("body, message", [
    ({"body": "x"}, "missing field 'to'"),
    ({"to": f"romeo@{DOMAIN}"}, "missing field 'body'"),
    ({"to": f"romeo@{DOMAIN}", "body": "x", "type": "groupchat"}, "type is one of"),
    ({"to": f"romeo@{DOMAIN}", "body": 3}, "must be a string"),
    ({"to": "@@", "body": "x"}, "not a valid JID"),
    ({"to": f"romeo@{DOMAIN}", "body": "x", "from": "elsewhere.example"}, "not served"),
])
def test_sendBadFields(node, body, message):
    status, answer, _ = call(node, "POST", "send", body, token=node.send)
    assert status == 400 and message in answer["error"]


def test_badJSON(node):
    for raw in (b"{not json", b"[1, 2]", b"\xff"):
        status, answer, _ = call(node, "POST", "send", raw=raw, token=node.send)
        assert (status, answer) == (400, {"error": "the body must be a JSON object"})


def test_tokens(node):
    """No token or an unknown one: 401; a send token on an admin call: 403."""
    status, answer, request = call(node, "GET", "sessions")
    assert status == 401 and "Bearer" in answer["error"]
    assert request.responseHeaders.getRawHeaders(b"www-authenticate")
    status, answer, _ = call(node, "GET", "sessions", token="guessed")
    assert (status, answer) == (401, {"error": "unknown token"})
    for method, path, body in (("GET", "sessions", None),
                               ("POST", "users", {"jid": f"eve@{DOMAIN}", "password": "pw"}),
                               ("DELETE", f"users/romeo@{DOMAIN}", None),
                               ("POST", "announce", {"domain": DOMAIN, "text": "x"})):
        status, answer, _ = call(node, method, path, body, token=node.send)
        assert status == 403 and "needs an admin token" in answer["error"]
    assert not succeed(node.ops.storage.users.userExists("eve", DOMAIN))
    node.tokens.revoke("sender")
    status, _, _ = call(node, "POST", "send", {"to": f"romeo@{DOMAIN}", "body": "x"},
                        token=node.send)
    assert status == 401


def test_unknownPathAndMethod(node):
    status, answer, _ = call(node, "GET", "nothing", token=node.admin)
    assert (status, answer) == (404, {"error": "no such endpoint"})
    status, _, _ = call(node, "GET", "users/a/b", token=node.admin)
    assert status == 404
    status, answer, request = call(node, "GET", "send", token=node.admin)
    assert (status, answer) == (405, {"error": "use POST"})
    assert request.responseHeaders.getRawHeaders(b"allow") == [b"POST"]


def test_usersAndSessions(node):
    """Create, refuse a duplicate, delete (ending the session), list sessions."""
    status, answer, _ = call(node, "POST", "users",
                             {"jid": f"eve@{DOMAIN}", "password": "apple pie"}, token=node.admin)
    assert (status, answer) == (200, {"created": f"eve@{DOMAIN}"})
    status, answer, _ = call(node, "POST", "users",
                             {"jid": f"eve@{DOMAIN}", "password": "apple pie"}, token=node.admin)
    assert status == 400 and "exists already" in answer["error"]
    status, answer, _ = call(node, "POST", "users", {"jid": "eve@elsewhere.example",
                                                     "password": "x"}, token=node.admin)
    assert status == 400 and "not served" in answer["error"]
    romeo = node.connect().login("romeo", "phone")
    status, answer, _ = call(node, "GET", "sessions", token=node.admin)
    assert status == 200
    assert [row["jid"] for row in answer["sessions"]] == [f"romeo@{DOMAIN}/phone"]
    status, answer, _ = call(node, "DELETE", f"users/romeo%40{DOMAIN}", token=node.admin)
    assert (status, answer) == (200, {"deleted": f"romeo@{DOMAIN}"})
    assert romeo.received().streamError == "not-authorized"
    status, answer, _ = call(node, "DELETE", f"users/romeo@{DOMAIN}", token=node.admin)
    assert status == 400 and "no account" in answer["error"]


def test_destroyRoom(node):
    """DELETE /api/rooms/<jid> destroys the room with the reason; a send token may not."""
    addMUC(node)
    [romeo] = persistentHall(node)
    status, _, _ = call(node, "DELETE", f"rooms/{HALL}", token=node.send)
    assert status == 403
    status, answer, _ = call(node, "DELETE", f"rooms/hall%40{SERVICE}", {"reason": "closed"},
                             token=node.admin)
    assert (status, answer) == (200, {"destroyed": HALL, "occupants": 1})
    destroy = destroyPresence(romeo, "Romeo")
    assert [str(r) for r in destroy.elements(destroy.uri, "reason")] == ["closed"]
    status, answer, _ = call(node, "DELETE", f"rooms/{HALL}", raw=b"", token=node.admin)
    assert (status, answer) == (400, {"error": f"there is no room {HALL}"})
    status, answer, _ = call(node, "DELETE", f"rooms/{HALL}", raw=b"[1]", token=node.admin)
    assert (status, answer) == (400, {"error": "the body must be a JSON object"})


def test_announce(node):
    romeo = node.connect().login("romeo", "phone")
    status, answer, _ = call(node, "POST", "announce",
                             {"domain": DOMAIN, "text": "Maintenance"}, token=node.admin)
    assert (status, answer) == (200, {"sent": 1})
    [message] = romeo.received().elements
    assert (message["type"], str(message.body)) == ("headline", "Maintenance")


def test_tokenFile(tmp_path):
    """Only hashes are kept, in an owner-only file; names are unique; scopes are checked."""
    tokens = TokenFile(str(tmp_path))
    token = tokens.create("crm", "send")
    assert len(token) >= 43
    path = tmp_path / TOKENS_FILE
    text = path.read_text()
    assert token not in text and digestOf(token) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenFile(str(tmp_path)).check(token).scope == "send"
    assert tokens.check(token + "x") is None
    with pytest.raises(TokenError, match="already"):
        tokens.create("crm", "admin")
    with pytest.raises(TokenError, match="scope"):
        tokens.create("other", "root")
    with pytest.raises(TokenError, match="no token"):
        tokens.revoke("nope")
    path.write_text("{broken")
    with pytest.raises(TokenError, match="not a token list"):
        tokens.check(token)


@pytest.mark.parametrize("argv", [["api", "token", "list"]])
def test_ctlParses(argv):
    assert ctl.buildParser().parse_args(argv).command == "api"


def test_overTheWire(node):
    """
    Through the HTTP service's own site (L{xmppd.http.service.WebSite}): a
    call is answered, a body over C{http.max_request_size} gets 413 before
    it is read, and the token never reaches the log.
    """
    config = dataclasses.replace(configFromDict({}).http, max_request_size=1024)
    root = Resource()
    root.putChild(b"api", node.api)
    site = WebSite(root, config, 2, reactor=Clock())
    romeo = node.connect().login("romeo", "phone")
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        channel, transport = connect(site)
        body = json.dumps({"to": f"romeo@{DOMAIN}/phone", "body": "hi"}).encode()
        channel.dataReceived(b"POST /api/send HTTP/1.1\r\nHost: localhost\r\n"
                             b"Authorization: Bearer " + node.send.encode() + b"\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b'{"sent": true}\n')
    assert [str(m.body) for m in romeo.received().elements] == ["hi"]
    assert any("by token sender" in formatEvent(e) for e in logged)
    assert not any(node.send in repr(e) for e in logged)
    channel, transport = connect(site)
    channel.dataReceived(b"POST /api/send HTTP/1.1\r\nHost: localhost\r\n"
                         b"Authorization: Bearer " + node.send.encode() + b"\r\n"
                         b"Content-Length: 1025\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
