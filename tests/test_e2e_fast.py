"""
End-to-end: FAST (XEP-0484) with a real client that speaks it, npm's
C{@xmpp/client} 0.14 run by node (C{tests/js/fastclient.mjs}), over the
HTTPS WebSocket of a real node with its SQLite store: a password login
gets a token, the next login uses it, so does one after the server
restarted, and a token revoked with C{xmppctl fast revoke} no longer logs
in.
"""

from __future__ import annotations

import json
import os

from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher

from tests.e2e import TIMEOUT, password, reactor
from tests.test_e2e_websocket import JS, NODE, ensureDeferred, needNode

AGENT = "5a0b3cf1-7d2e-4c1a-9f3e-2b6d8e4a1c70"


async def runClient(server, user: str, secret: str, tokenFile) -> list[dict]:
    """One fastclient.mjs login to its end (it exits by itself, within 20 s); its events."""
    env = dict(os.environ)
    env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"  # the node's certificate is self-signed
    d = getProcessOutputAndValue(
        NODE, ["--experimental-websocket", os.path.join(JS, "fastclient.mjs"),
               "wss://localhost:%d/xmpp-websocket" % (server.node.httpsPort,), "localhost",
               user, secret, str(tokenFile), AGENT], env=env, path=JS, reactor=reactor())
    out, err, status = await d.addTimeout(TIMEOUT + 5, reactor())
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return events


def names(events) -> list[str]:
    return [e["event"] for e in events]


@ensureDeferred
async def test_fastLoginsAcrossRestartAndRevocation(makeServer, tmp_path):
    """
    @xmpp/client's first login (SCRAM) gets a FAST token, its second uses
    the token, a login after the server restarted still does, and once the
    operator revoked the token the client is refused and drops it.
    """
    needNode()
    server = await makeServer()
    await server.addUser("alice")
    logins: list[str] = []

    def observe(event):
        if event.get("user") == "alice" and event.get("mechanism"):
            logins.append(event["mechanism"])
    globalLogPublisher.addObserver(observe)
    tokenFile = tmp_path / "alice.token"
    try:
        events = await runClient(server, "alice", password("alice"), tokenFile)
        # The client first clears the token it does not have, then asks for one.
        assert names(events)[-3:] == ["token-saved", "online", "offline"], events
        assert events[-3]["mechanism"] == "HT-SHA-256-NONE"
        assert logins[-1].startswith("SCRAM-")
        token = json.loads(tokenFile.read_text())["token"]

        events = await runClient(server, "alice", password("alice"), tokenFile)
        assert names(events) == ["online", "offline"], events
        assert events[0]["jid"].startswith("alice@localhost/")
        assert logins[-1] == "HT-SHA-256-NONE"

        listed = await server.xmppctl("fast", "list", "alice@localhost", "--json")
        assert listed.status == 0, listed
        [entry] = json.loads(listed.out)["tokens"]
        assert (entry["user_agent"], entry["slot"]) == (AGENT, "current")
        assert token not in listed.out

        await server.stop()
        await server.start()
        events = await runClient(server, "alice", password("alice"), tokenFile)
        assert names(events) == ["online", "offline"], events
        assert logins[-1] == "HT-SHA-256-NONE"

        revoked = await server.xmppctl("fast", "revoke", "alice@localhost", AGENT)
        assert (revoked.status, revoked.out) == (
            0, f"revoked 1 FAST token of alice@localhost (client '{AGENT}')\n")
        # A wrong password, so the client's fallback after the refused token
        # cannot hide the refusal.
        count = len(logins)
        events = await runClient(server, "alice", "not-her-password", tokenFile)
        assert names(events)[0] == "token-deleted", events
        assert events[-1] == {"event": "error", "reason": "not-authorized"}, events
        assert len(logins) == count
        assert not tokenFile.exists()
    finally:
        globalLogPublisher.removeObserver(observe)
