"""
Tests for L{xmppd.cli.hooks}, C{xmppctl hooks}: how the server's answer is
printed, and the command against a running node, which lists its features'
callbacks in the order they run (the admin command itself is tested in
memory in L{tests.test_admin}).
"""

from __future__ import annotations

import json

import pytest_twisted

from xmppd.cli.hooks import formatHooks, shortName
from tests.e2e import DOMAIN

ANSWER = {
    "ok": True,
    "domains": [
        {"domain": "example.org", "hooks": [
            {"hook": "message/bare", "callbacks": [
                {"callback": "xmppd.features.blocking.BlockingHandler.onStanza",
                 "band": "POLICY"},
                {"callback": "xmppd.features.mam.archive.MAMHandler.onIncoming",
                 "band": "STAMP.then(1)"},
                {"callback": "xmppd.features.messages.MessageHandler.onBareMessage",
                 "band": "DELIVER"}]},
            {"hook": "message/offline", "callbacks": [
                {"callback": "offline.handler.OfflineHandler.onOffline",
                 "band": "DELIVER"}]}]},
        {"domain": "example.net", "hooks": []}],
    "node": [
        {"hook": "disco/items", "callbacks": [
            {"callback": "xmppd.components.server.ComponentService.onDiscoItems",
             "band": "DELIVER"}]}]}


def test_formatHooks():
    """Each domain's hooks come with their callbacks in order, one a line, under a band column."""
    assert formatHooks(ANSWER) == [
        "example.org: 2 hooks",
        "  message/bare",
        "    POLICY         blocking.BlockingHandler.onStanza",
        "    STAMP.then(1)  mam.archive.MAMHandler.onIncoming",
        "    DELIVER        messages.MessageHandler.onBareMessage",
        "  message/offline",
        "    DELIVER        offline.handler.OfflineHandler.onOffline",
        "example.net: 0 hooks",
        "node-wide (also in each domain's lists): 1 hook",
        "  disco/items",
        "    DELIVER        components.server.ComponentService.onDiscoItems",
    ]


def test_formatHooksOfOneDomain():
    """Asked for one domain, the answer has no node-wide part and none is printed."""
    answer = {"ok": True, "domains": ANSWER["domains"][1:]}
    assert formatHooks(answer) == ["example.net: 0 hooks"]


def test_shortName():
    """A feature is named by its own module, the core by its folder, anything else in full."""
    assert shortName("xmppd.features.messages.MessageHandler.onBareMessage") == (
        "messages.MessageHandler.onBareMessage")
    assert shortName("xmppd.core.accountcache.AccountDataCache.onSessionBound") == (
        "core.accountcache.AccountDataCache.onSessionBound")
    assert shortName("offline.handler.OfflineHandler.onOffline") == (
        "offline.handler.OfflineHandler.onOffline")


def listening(lines: list[str], hook: str) -> list[str]:
    """The callbacks printed under C{hook} in the first section that lists it."""
    start = lines.index(f"  {hook}") + 1
    found = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        found.append(line.split()[-1])
    return found


# -- against a running node ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_xmppctlHooks(makeServer):
    """xmppctl hooks shows message/bare running blocking, archive, carbons, delivery, in order."""
    node = await makeServer()
    result = await node.xmppctl("hooks")
    asJSON = await node.xmppctl("hooks", "--json", "--domain", DOMAIN.upper())
    assert (result.status, result.err) == (0, ""), result
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{DOMAIN}: ")
    assert listening(lines, "message/bare") == [
        "privacy.policy.Policy.onStanza", "mam.archive.MAMHandler.onIncoming",
        "carbons.CarbonsHandler.onReceived", "messages.MessageHandler.onBareMessage"]
    # Push notifications hear of the message before offline storage takes it.
    assert listening(lines, "message/offline") == [
        "push.PushHandler.onOffline", "offline.handler.OfflineHandler.onOffline"]
    assert any(line.startswith("node-wide ") for line in lines)
    assert (asJSON.status, asJSON.err) == (0, ""), asJSON
    answer = json.loads(asJSON.out)
    [domain] = answer["domains"]
    assert domain["domain"] == DOMAIN and "node" not in answer
    [bare] = [hook for hook in domain["hooks"] if hook["hook"] == "message/bare"]
    assert [(c["callback"].rsplit(".", 1)[-1], c["band"]) for c in bare["callbacks"]] == [
        ("onStanza", "POLICY"), ("onIncoming", "STAMP"), ("onReceived", "COPY"),
        ("onBareMessage", "DELIVER")]


@pytest_twisted.ensureDeferred
async def test_xmppctlHooksServerNotRunning(makeServer):
    """With no server running, xmppctl hooks says so in one line and exits with 1."""
    node = await makeServer(start=False)
    result = await node.xmppctl("hooks")
    path = node.dataDir / "admin.sock"
    assert (result.status, result.out) == (1, "")
    assert result.err == f"xmppctl: xmppd is not running (no admin socket at {path})\n"


@pytest_twisted.ensureDeferred
async def test_xmppctlHooksDomainNotServed(makeServer):
    """xmppctl hooks --domain for a domain not served here names the served ones, exits with 1."""
    node = await makeServer()
    result = await node.xmppctl("hooks", "--domain", "example.com")
    assert (result.status, result.out) == (1, "")
    assert result.err == (f"xmppctl: the server refused: example.com is not served here "
                          f"(server.domains: {DOMAIN})\n")
