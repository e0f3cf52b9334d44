# -*- test-case-name: tests.test_httpapi -*-
"""
The HTTP API for integrators (issue 17 item 6, like ejabberd's
C{mod_http_api} and Prosody's C{mod_rest}): JSON endpoints under C{/api}
on the node's HTTP service (L{xmppd.http.service}) that call the admin
operations (L{xmppd.admin.operations}), as the ad-hoc commands and
C{xmppctl} do:

  - C{POST /api/send} C{{"to", "body", "type"?, "subject"?, "from"?}}
    (scope C{send}): a message (C{chat}, C{headline} or C{normal});
  - C{POST /api/users} C{{"jid", "password"}}: make an account;
  - C{DELETE /api/users/<jid>}: remove one;
  - C{GET /api/sessions}: the client sessions of this node;
  - C{POST /api/announce} C{{"domain", "text", "subject"?}}: a headline to
    every session of the domain;
  - C{DELETE /api/rooms/<room JID>} with an optional body
    C{{"reason"}}: destroy a MUC room of this node as its owner would
    (XEP-0045 §10.9), answered C{{"destroyed", "occupants"}} (how many
    were told); a room of an external component or of another cluster node
    is a 400 saying where to destroy it.

Every call but C{send} needs an C{admin} token.  A request carries its
token as C{Authorization: Bearer <token>}; tokens are made and revoked
with C{xmppctl api token} and kept hashed (L{xmppd.admin.apitokens}; on a
cluster in its Redis, L{xmppd.admin.clustertokens}).
Answers are JSON objects; a refusal is C{{"error": "<one line>"}} with
401 (no token, or an unknown one), 403 (the token's scope does not allow
the call), 400 (bad JSON or fields), 404, 405 or 413 (the HTTP service's
C{http.max_request_size}).  The token is never logged: only its name.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from xmppd.admin.apitokens import TokenError, TokenFile
from xmppd.admin.operations import OperationError

#: Where the API is, under the HTTP service's root.
PATH = "api"


class APIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _field(data: dict, name: str, required: bool = True):
    value = data.get(name)
    if value is None:
        if required:
            raise APIError(400, f"missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise APIError(400, f"field {name!r} must be a string")
    return value


class APIResource(resource.Resource):
    """C{/api} (see the module docstring) over the operations C{operations}."""

    isLeaf = True
    log = Logger()

    def __init__(self, operations, tokens):
        super().__init__()
        self.operations = operations
        self.tokens = tokens
        #: (method, path) -> (scope needed, handler of (request, body)).
        self.routes = {
            (b"POST", "send"): ("send", self.send),
            (b"POST", "users"): ("admin", self.addUser),
            (b"DELETE", "users/*"): ("admin", self.deleteUser),
            (b"GET", "sessions"): ("admin", self.sessions),
            (b"POST", "announce"): ("admin", self.announce),
            (b"DELETE", "rooms/*"): ("admin", self.destroyRoom),
        }

    def render(self, request):
        d = defer.ensureDeferred(self.answer(request))
        d.addCallback(lambda answer: self.finish(request, 200, answer))
        d.addErrback(self.failed, request)
        return server.NOT_DONE_YET

    def finish(self, request, status: int, answer: dict) -> None:
        if getattr(request, "_disconnected", False) or request.finished:
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        data = json.dumps(answer).encode("utf-8") + b"\n"
        request.setHeader(b"content-length", b"%d" % len(data))
        request.write(data)
        request.finish()

    def failed(self, failure, request) -> None:
        error = failure.value
        if isinstance(error, APIError):
            if error.status == 401:
                request.setHeader(b"www-authenticate", b'Bearer realm="xmppd api"')
            self.finish(request, error.status, {"error": str(error)})
        elif isinstance(error, OperationError):
            self.finish(request, 400, {"error": str(error)})
        else:
            self.log.failure("api: {method} {path} failed", failure,
                             method=request.method, path=request.uri)
            self.finish(request, 500, {"error": "internal error; see the server's log"})

    def route(self, request):
        parts = [unquote(p.decode("utf-8", "replace")) for p in request.postpath]
        while parts and parts[-1] == "":
            parts.pop()
        if len(parts) == 2 and parts[0] in ("users", "rooms"):
            key, argument = parts[0] + "/*", parts[1]
        elif len(parts) == 1:
            key, argument = parts[0], None
        else:
            raise APIError(404, "no such endpoint")
        methods = {method for method, path in self.routes if path == key}
        if not methods:
            raise APIError(404, "no such endpoint")
        if request.method not in methods:
            request.setHeader(b"allow", b", ".join(sorted(methods)))
            raise APIError(405, f"use {' or '.join(m.decode() for m in sorted(methods))}")
        return self.routes[(request.method, key)], argument

    def authorize(self, request, scope: str) -> str:
        header = request.getHeader(b"authorization") or b""
        kind, _, token = header.partition(b" ")
        if kind.lower() != b"bearer" or not token.strip():
            raise APIError(401, "send Authorization: Bearer <token>")
        try:
            found = self.tokens.check(token.strip().decode("ascii", "replace"))
        except TokenError as e:
            self.log.error("api: {error}", error=str(e))
            raise APIError(500, "the token file cannot be read; see the server's log") from None
        if found is None:
            raise APIError(401, "unknown token")
        if scope == "admin" and found.scope != "admin":
            raise APIError(403, f"token {found.name!r} has scope {found.scope!r}; "
                           "this call needs an admin token")
        return found.name

    async def answer(self, request) -> dict:
        (scope, handler), argument = self.route(request)
        name = self.authorize(request, scope)
        body = {}
        request.content.seek(0)
        raw = request.content.read()
        # A DELETE may carry a JSON object too (a room's reason), or nothing.
        if request.method == b"POST" or (request.method == b"DELETE" and raw.strip()):
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise APIError(400, "the body must be a JSON object") from None
            if not isinstance(body, dict):
                raise APIError(400, "the body must be a JSON object")
        self.log.info("api: {method} {path} by token {name}", method=request.method.decode(),
                      path=request.uri.decode("utf-8", "replace"), name=name)
        return await handler(body, argument)

    async def send(self, body: dict, argument) -> dict:
        self.operations.sendMessage(
            _field(body, "to"), _field(body, "body"), _field(body, "type", False) or "chat",
            _field(body, "subject", False), _field(body, "from", False))
        return {"sent": True}

    async def addUser(self, body: dict, argument) -> dict:
        jid = self.operations.account(_field(body, "jid"))
        await self.operations.addUser(jid, _field(body, "password"))
        return {"created": jid.userhost()}

    async def deleteUser(self, body: dict, argument) -> dict:
        jid = self.operations.account(argument)
        await self.operations.deleteUser(jid)
        return {"deleted": jid.userhost()}

    async def sessions(self, body: dict, argument) -> dict:
        return {"sessions": self.operations.sessions()}

    async def destroyRoom(self, body: dict, argument) -> dict:
        room = self.operations.room(argument)
        told = await self.operations.destroyRoom(room, _field(body, "reason", False))
        return {"destroyed": room.full(), "occupants": told}

    async def announce(self, body: dict, argument) -> dict:
        domain = self.operations.servedDomain(_field(body, "domain"))
        sent = self.operations.announce(domain, _field(body, "text"),
                                        _field(body, "subject", False))
        return {"sent": sent}


def addAPI(server, web) -> None:
    """
    Mount C{/api} on the HTTP service C{web} of the node C{server}, with the
    tokens of its data directory's file, or, on a cluster, the cluster's
    (L{xmppd.admin.clustertokens}, a service of the node's that starts
    before the HTTP service does).
    """
    if getattr(server, "cluster", None) is not None:
        from xmppd.admin.clustertokens import ClusterTokens
        tokens = ClusterTokens(server)
        tokens.setServiceParent(server)
    else:
        tokens = TokenFile(server.config.server.data_dir)
    web.putChild(PATH, APIResource(server.adminOperations, tokens))
