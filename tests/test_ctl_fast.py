"""
Tests for C{xmppctl fast} (L{xmppd.cli.fast}): listing and revoking the
FAST tokens (XEP-0484) of an account in the server's own store.
"""

import json

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.test_ctl import configPath, runXmppctl, writeConfig, xmppctl  # noqa: F401
from xmppd.c2s.fast import FastTokens
from xmppd.config import loadConfig
from xmppd.core.scram import makeCredentials
from xmppd.storage import makeStorage

PHONE = "d4565fa7-4d72-4749-b3d3-740edbf87770"


async def withStore(configPath, operation):
    config = loadConfig(configPath)
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor,
                          config.storage.redis)
    await storage.open()
    try:
        return await operation(storage)
    finally:
        await storage.close()


async def romeoWithTokens(configPath):
    """romeo@example.org with a token on his phone and one on his laptop."""
    async def setUp(storage):
        await storage.users.addUser("romeo", "example.org", makeCredentials("x", iterations=2))
        fast = FastTokens(storage.fast, 86400, 3600, lambda: 1_700_000_000.0)
        await fast.issue("romeo", "example.org", PHONE, "HT-SHA-256-NONE")
        await fast.issue("romeo", "example.org", "laptop", "HT-SHA-256-EXPR")
    await withStore(configPath, setUp)


@pytest_twisted.ensureDeferred
async def test_list(configPath, capsys):
    """fast list shows one line per token: client, slot, mechanism, dates, expired."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "fast", "list", "Romeo@example.org") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{PHONE}\tnew\tHT-SHA-256-NONE\tissued 2023-11-14T22:13:20Z"
        "\texpires 2023-11-15T22:13:20Z\texpired",
        "laptop\tnew\tHT-SHA-256-EXPR\tissued 2023-11-14T22:13:20Z"
        "\texpires 2023-11-15T22:13:20Z\texpired"]


@pytest_twisted.ensureDeferred
async def test_listJSON(configPath, capsys):
    """fast list --json prints one JSON object with every token, and never a token."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "fast", "list", "romeo@example.org", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["account"] == "romeo@example.org"
    assert [t["user_agent"] for t in answer["tokens"]] == [PHONE, "laptop"]
    assert set(answer["tokens"][0]) == {"user_agent", "slot", "mechanism", "issued",
                                        "expiry", "expired"}


@pytest_twisted.ensureDeferred
async def test_listNone(configPath, capsys):
    """An account without tokens says so."""
    await withStore(configPath, lambda s: s.users.addUser("juliet", "example.org", {}))
    assert await xmppctl(configPath, "fast", "list", "juliet@example.org") == 0
    assert capsys.readouterr().out == "juliet@example.org has no FAST tokens\n"


@pytest_twisted.ensureDeferred
async def test_revokeOne(configPath, capsys):
    """fast revoke with a user agent id removes that client's tokens only."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "fast", "revoke", "romeo@example.org", PHONE) == 0
    assert capsys.readouterr().out == (f"revoked 1 FAST token of romeo@example.org "
                                       f"(client {PHONE!r})\n")
    left = await withStore(configPath, lambda s: s.fast.list("romeo", "example.org"))
    assert [t.userAgent for t in left] == ["laptop"]


@pytest_twisted.ensureDeferred
async def test_revokeAll(configPath, capsys):
    """fast revoke --all removes every token of the account; --json says how many."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "fast", "revoke", "romeo@example.org", "--all",
                         "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "account": "romeo@example.org", "user_agent": None, "revoked": 2}
    assert await withStore(configPath, lambda s: s.fast.list("romeo", "example.org")) == []


@pytest_twisted.ensureDeferred
async def test_revokeNeedsOneTarget(configPath, capsys):
    """Neither a user agent nor --all, or both, is a usage error that changes nothing."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "fast", "revoke", "romeo@example.org") == 2
    assert await xmppctl(configPath, "fast", "revoke", "romeo@example.org", PHONE,
                         "--all") == 2
    assert capsys.readouterr().err.count("name one USER-AGENT-ID or give --all") == 2
    left = await withStore(configPath, lambda s: s.fast.list("romeo", "example.org"))
    assert len(left) == 2


@pytest.mark.parametrize("argv", [["list", "nobody@example.org"],
                                  ["revoke", "nobody@example.org", "--all"]])
@pytest_twisted.ensureDeferred
async def test_unknownAccount(configPath, capsys, argv):
    """An account that does not exist is one error line and status 1."""
    assert await xmppctl(configPath, "fast", *argv) == 1
    assert capsys.readouterr().err == "xmppctl: there is no account nobody@example.org\n"


def test_badAddress(tmp_path):
    """An address of a domain not served here is refused in one line, as an operator sees it."""
    result = runXmppctl(tmp_path, "--config", writeConfig(tmp_path), "fast", "list",
                        "romeo@example.net")
    assert result.returncode == 1
    assert result.stderr.startswith("xmppctl: example.net is not served here")
    assert "Traceback" not in result.stderr


@pytest_twisted.ensureDeferred
async def test_passwdRevokes(configPath, capsys):
    """xmppctl passwd gives the account a new password and takes its FAST tokens away."""
    await romeoWithTokens(configPath)
    assert await xmppctl(configPath, "passwd", "romeo@example.org", "--password", "new") == 0
    assert await withStore(configPath, lambda s: s.fast.list("romeo", "example.org")) == []
