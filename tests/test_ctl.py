"""
Tests for L{xmppd.cli.ctl}, the C{xmppctl} command: account management on the
server's own store, C{check}, and the promise of one readable line and the
right exit status for every error.

Most tests call L{xmppd.cli.ctl.runCommand} inside the test reactor; a few run
C{python -m xmppd.cli.ctl} in a subprocess to see what an operator sees.
"""

import io
import os
import socket
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor

from xmppd.cli import accounts, ctl
from xmppd.config import CONFIG_ENVIRONMENT, findConfigFile, loadConfig
from xmppd.core.scram import checkPassword
from xmppd.storage import makeStorage

from tests.redisserver import redisServer, _moduleRedis  # noqa: E402,F401  (fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def writeConfig(tmp_path, extra="", endpoint="tcp:0:interface=127.0.0.1"):
    """A configuration serving example.org and localhost, with data under tmp_path."""
    path = tmp_path / "xmppd.toml"
    path.write_text(
        '[server]\ndomains = ["example.org", "localhost"]\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[c2s]\nendpoint = "{endpoint}"\n'
        'direct_tls_endpoint = "tcp:0:interface=127.0.0.1:backlog=10"\n'
        '[http]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
        'tls_endpoint = "tcp:0:interface=127.0.0.1"\n' + extra)
    return str(path)


@pytest.fixture
def configPath(tmp_path):
    return writeConfig(tmp_path)


async def xmppctl(configPath, *argv):
    """Run one command in the test reactor; return its exit status."""
    args = ctl.buildParser().parse_args(list(argv))
    return await ctl.runCommand(args, loadConfig(configPath), reactor)


def runXmppctl(tmp_path, *argv, input=None):
    """Run C{python -m xmppd.cli.ctl} as an operator would, from C{tmp_path}."""
    env = dict(os.environ)
    env.pop(CONFIG_ENVIRONMENT, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "xmppd.cli.ctl", *argv], cwd=tmp_path,
                          env=env, input=input, capture_output=True, text=True,
                          timeout=60)


async def storedCredentials(configPath, username, domain):
    config = loadConfig(configPath)
    storage = makeStorage(config.storage.backend, config.server.data_dir, reactor,
                          config.storage.redis)
    await storage.open()
    try:
        return await storage.users.getCredentials(username, domain)
    finally:
        await storage.close()


def passwordWorks(credentials, password):
    return checkPassword("SCRAM-SHA-256", credentials["SCRAM-SHA-256"], password)


@pytest_twisted.ensureDeferred
async def test_accountRoundTrip(configPath, capsys):
    """Accounts are added, listed, given a new password and removed."""
    assert await xmppctl(configPath, "adduser", "Romeo@example.org", "--password", "a") == 0
    assert await xmppctl(configPath, "adduser", "juliet@localhost", "--password", "b") == 0
    assert await xmppctl(configPath, "adduser", "benvolio@example.org",
                         "--password", "c") == 0
    assert capsys.readouterr().out.splitlines() == [
        "added romeo@example.org", "added juliet@localhost", "added benvolio@example.org"]

    assert await xmppctl(configPath, "users") == 0
    assert capsys.readouterr().out.splitlines() == [
        "benvolio@example.org", "juliet@localhost", "romeo@example.org"]
    assert await xmppctl(configPath, "users", "example.org") == 0
    assert capsys.readouterr().out.splitlines() == [
        "benvolio@example.org", "romeo@example.org"]

    assert await xmppctl(configPath, "passwd", "romeo@example.org", "--password", "new") == 0
    credentials = await storedCredentials(configPath, "romeo", "example.org")
    assert passwordWorks(credentials, "new")
    assert not passwordWorks(credentials, "a")

    assert await xmppctl(configPath, "deluser", "romeo@example.org") == 0
    assert await storedCredentials(configPath, "romeo", "example.org") is None
    capsys.readouterr()
    assert await xmppctl(configPath, "users", "example.org") == 0
    assert capsys.readouterr().out.splitlines() == ["benvolio@example.org"]


@pytest_twisted.ensureDeferred
async def test_duplicateAccount(configPath, capsys):
    """Adding an account twice fails and keeps the first password."""
    await xmppctl(configPath, "adduser", "romeo@example.org", "--password", "first")
    capsys.readouterr()
    assert await xmppctl(configPath, "adduser", "ROMEO@example.org",
                         "--password", "second") == 1
    assert capsys.readouterr().err == "xmppctl: romeo@example.org exists already\n"
    credentials = await storedCredentials(configPath, "romeo", "example.org")
    assert passwordWorks(credentials, "first")


@pytest_twisted.ensureDeferred
async def test_missingAccount(configPath, capsys):
    """Changing or removing an account that does not exist fails with its name."""
    assert await xmppctl(configPath, "passwd", "nobody@example.org", "--password", "x") == 1
    assert await xmppctl(configPath, "deluser", "nobody@example.org") == 1
    assert capsys.readouterr().err.splitlines() == [
        "xmppctl: there is no account nobody@example.org"] * 2


@pytest_twisted.ensureDeferred
async def test_unknownDomain(configPath, capsys):
    """An account on a domain this server does not serve is refused, naming the served ones."""
    assert await xmppctl(configPath, "adduser", "romeo@example.com", "--password", "x") == 1
    assert capsys.readouterr().err == (
        "xmppctl: example.com is not served here (server.domains: example.org, localhost)\n")


@pytest.mark.parametrize("jid, message", [
    ("romeo", "'romeo' is not an account address like romeo@example.org"),
    ("romeo@example.org/balcony",
     "'romeo@example.org/balcony' is not an account address like romeo@example.org"),
    ("ro meo@example.org", "'ro meo' is not a valid username (RFC 7622 localpart)"),
    ("ro:meo@example.org", "'ro:meo' is not a valid username (RFC 7622 localpart)"),
])
@pytest_twisted.ensureDeferred
async def test_invalidAddress(configPath, capsys, jid, message):
    """An address that is not a valid account JID is refused before anything is stored."""
    assert await xmppctl(configPath, "adduser", jid, "--password", "x") == 1
    assert capsys.readouterr().err == f"xmppctl: {message}\n"


@pytest_twisted.ensureDeferred
async def test_invalidPassword(configPath, capsys):
    """An empty password is refused and no account is created."""
    assert await xmppctl(configPath, "adduser", "romeo@example.org", "--password", "") == 1
    assert capsys.readouterr().err == (
        "xmppctl: password is empty or has forbidden characters; nothing changed\n")
    assert await storedCredentials(configPath, "romeo", "example.org") is None


@pytest_twisted.ensureDeferred
async def test_memoryBackendRefused(tmp_path, capsys):
    """Managing accounts in a store that vanishes with the process is refused."""
    configPath = writeConfig(tmp_path, '[storage]\nbackend = "memory"\n')
    assert await xmppctl(configPath, "users") == 2
    assert capsys.readouterr().err == (
        'xmppctl: storage.backend = "memory" keeps no data between processes; '
        'xmppctl needs a persistent backend\n')


def test_passwordFromTerminal(monkeypatch):
    """On a terminal the password is asked twice, and must be typed the same."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["secret", "secret", "secret", "typo"])
    monkeypatch.setattr(accounts.getpass, "getpass", lambda prompt: next(answers))
    assert accounts.readPassword("romeo@example.org", Terminal()) == "secret"
    with pytest.raises(ctl.CtlError) as raised:
        accounts.readPassword("romeo@example.org", Terminal())
    assert str(raised.value) == "the passwords do not match; nothing changed"


def test_passwordPromptInterrupted(monkeypatch):
    """Ctrl-C or Ctrl-D at the prompt ends with a message and changes nothing."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def interrupt(prompt):
        raise KeyboardInterrupt()

    monkeypatch.setattr(accounts.getpass, "getpass", interrupt)
    with pytest.raises(ctl.CtlError) as raised:
        accounts.readPassword("romeo@example.org", Terminal())
    assert str(raised.value) == "no password given; nothing changed"


def test_passwordFromPipe():
    """Without a terminal the first line of input is the password, spaces included."""
    assert accounts.readPassword("romeo@example.org", io.StringIO(" s3 cret \nmore\n")) == " s3 cret "
    with pytest.raises(ctl.CtlError):
        accounts.readPassword("romeo@example.org", io.StringIO(""))


def test_findConfig(tmp_path, monkeypatch):
    """--config wins over XMPPD_CONFIG, which wins over ./xmppd.toml, else defaults."""
    monkeypatch.chdir(tmp_path)
    assert findConfigFile(None, {}) is None
    (tmp_path / "xmppd.toml").write_text("")
    assert findConfigFile(None, {}) == "xmppd.toml"
    assert findConfigFile(None, {"XMPPD_CONFIG": "/etc/x.toml"}) == "/etc/x.toml"
    assert findConfigFile("mine.toml", {"XMPPD_CONFIG": "/etc/x.toml"}) == "mine.toml"


@pytest_twisted.ensureDeferred
async def test_checkGoodConfig(configPath, capsys):
    """check reports every part of a good configuration as ok."""
    assert await xmppctl(configPath, "check") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * len(lines)
    checked = [line.split()[1] for line in lines]
    assert checked == ["config:", "server.data_dir:", "tls", "storage:",
                       "c2s.endpoint", "c2s.direct_tls_endpoint", "http.endpoint",
                       "http.tls_endpoint", "upload:"]
    assert "will be generated" in lines[2]


@pytest_twisted.ensureDeferred
async def test_checkBadCertificate(tmp_path, capsys):
    """check reports a configured certificate that cannot be read as an error."""
    missing = tmp_path / "missing.pem"
    configPath = writeConfig(tmp_path, f'[tls]\ncertificate = "{missing}"\n'
                                       f'private_key = "{missing}"\n')
    assert await xmppctl(configPath, "check") == 1
    assert (f"error    tls: tls.certificate: cannot read {missing}: No such file or "
            f"directory") in capsys.readouterr().out.splitlines()


@pytest_twisted.ensureDeferred
async def test_checkCertificateForOtherDomains(tmp_path, capsys):
    """check warns when the certificate does not name a served domain."""
    from xmppd.stream.tls import generateSelfSigned
    certPath, keyPath = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    generateSelfSigned(["example.org"], certPath, keyPath)
    configPath = writeConfig(tmp_path, f'[tls]\ncertificate = "{certPath}"\n'
                                       f'private_key = "{keyPath}"\n')
    assert await xmppctl(configPath, "check") == 0
    assert ("warning  tls: tls.certificate: does not cover localhost (it names "
            "example.org)") in capsys.readouterr().out.splitlines()


@pytest_twisted.ensureDeferred
async def test_checkPortInUse(tmp_path, capsys):
    """A port already taken, by the running server perhaps, is a warning, not an error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        configPath = writeConfig(tmp_path, endpoint=f"tcp:{port}:interface=127.0.0.1")
        assert await xmppctl(configPath, "check") == 0
    assert (f"warning  c2s.endpoint tcp:{port}:interface=127.0.0.1: port in use "
            f"(is the server already running?)") in capsys.readouterr().out.splitlines()


# What an operator sees.


def test_commandLineRoundTrip(tmp_path):
    """xmppctl adds an account with a password piped in, then refuses a duplicate with status 1."""
    writeConfig(tmp_path)  # ./xmppd.toml, found without --config
    result = runXmppctl(tmp_path, "adduser", "romeo@example.org", input="s3cret\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "added romeo@example.org\n", "")
    result = runXmppctl(tmp_path, "adduser", "romeo@example.org", "--password", "x")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "xmppctl: romeo@example.org exists already\n")
    result = runXmppctl(tmp_path, "users")
    assert (result.returncode, result.stdout) == (0, "romeo@example.org\n")


def test_readerGoneQuietly(tmp_path):
    """Piped into a reader that has already gone (| head), xmppctl does its work and exits 0 without an error line."""
    writeConfig(tmp_path)
    env = dict(os.environ)
    env.pop(CONFIG_ENVIRONMENT, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    readEnd, writeEnd = os.pipe()
    os.close(readEnd)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "xmppd.cli.ctl", "adduser", "romeo@example.org",
             "--password", "x"], cwd=tmp_path, env=env, stdout=writeEnd,
            stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writeEnd)
    assert (result.returncode, result.stderr) == (0, "")
    assert runXmppctl(tmp_path, "users").stdout == "romeo@example.org\n"


@pytest_twisted.ensureDeferred
async def test_pipedPasswordStored(tmp_path):
    """The password piped into xmppctl is the one the account logs in with."""
    configPath = writeConfig(tmp_path)
    result = runXmppctl(tmp_path, "adduser", "romeo@example.org", input="s3cret\n")
    assert result.returncode == 0, result.stderr
    credentials = await storedCredentials(configPath, "romeo", "example.org")
    assert passwordWorks(credentials, "s3cret")


@pytest.mark.parametrize("configText, message", [
    ('[c2s]\nendpoint = 5222\n',
     'xmppctl: c2s.endpoint: expected a Twisted endpoint string like "tcp:5222", got 5222'),
    ('[server\n', None),
])
def test_invalidConfigOneLine(tmp_path, configText, message):
    """A broken configuration gives status 2 and one line naming the problem, no traceback."""
    (tmp_path / "broken.toml").write_text(configText)
    result = runXmppctl(tmp_path, "--config", "broken.toml", "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("xmppctl: ")
    if message:
        assert result.stderr == message + "\n"


def test_environmentNamesConfig(tmp_path):
    """XMPPD_CONFIG names the configuration when --config is not given."""
    (tmp_path / "elsewhere.toml").write_text("[srever]\n")
    env = {CONFIG_ENVIRONMENT: str(tmp_path / "elsewhere.toml")}
    result = subprocess.run(
        [sys.executable, "-m", "xmppd.cli.ctl", "users"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env={**os.environ, **env, "PYTHONPATH": REPO})
    assert (result.returncode, result.stderr) == (
        2, "xmppctl: srever: unknown section (did you mean server?)\n")


def test_checkFailsWithStatus1(tmp_path):
    """check exits with status 1 when it finds an error."""
    missing = tmp_path / "missing.pem"
    writeConfig(tmp_path, f'[tls]\ncertificate = "{missing}"\nprivate_key = "{missing}"\n')
    result = runXmppctl(tmp_path, "check")
    assert result.returncode == 1
    assert "error    tls: " in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest_twisted.ensureDeferred
async def test_checkSelfSignedForNewDomain(tmp_path, capsys):
    """check says the self-signed certificate will be replaced when a domain was added."""
    from xmppd.stream.tls import ensureCertificate
    configPath = writeConfig(tmp_path)
    ensureCertificate(loadConfig(configPath))
    assert await xmppctl(configPath, "check") == 0
    assert "names example.org, localhost; valid until" in capsys.readouterr().out
    (tmp_path / "xmppd.toml").write_text((tmp_path / "xmppd.toml").read_text().replace(
        '"localhost"]', '"localhost", "example.net"]'))
    assert await xmppctl(configPath, "check") == 0
    assert ("will be replaced on next start (it does not name example.net)"
            in capsys.readouterr().out)


# The shared Redis store (storage.backend = "redis").

def redisConfig(tmp_path, redisServer, extra=""):
    return writeConfig(tmp_path, f'[storage]\nbackend = "redis"\nredis = "{redisServer.url}"\n'
                       + extra)


@pytest_twisted.ensureDeferred
async def test_redisAccounts(tmp_path, redisServer, capsys):
    """Accounts made with xmppctl on the Redis backend are in Redis, with working SCRAM keys."""
    configPath = redisConfig(tmp_path, redisServer)
    assert await xmppctl(configPath, "adduser", "romeo@example.org", "--password", "a") == 0
    credentials = await storedCredentials(configPath, "romeo", "example.org")
    assert passwordWorks(credentials, "a")
    assert await xmppctl(configPath, "users") == 0
    assert "romeo@example.org" in capsys.readouterr().out


@pytest_twisted.ensureDeferred
async def test_checkRedisDurable(tmp_path, redisServer, capsys):
    """check says a Redis with appendfsync always keeps every acknowledged write."""
    configPath = redisConfig(tmp_path, redisServer)
    assert await xmppctl(configPath, "check") == 0
    lines = capsys.readouterr().out.splitlines()
    assert (f"ok       storage: Redis at {redisServer.url} (appendonly=yes "
            f"appendfsync=always: every write is on disk before it is acknowledged; "
            f"0 accounts)") in lines


@pytest_twisted.ensureDeferred
async def test_checkRedisNotDurable(tmp_path, redisServer, capsys):
    """check reports a Redis that fsyncs once a second as an error saying what to set."""
    configPath = redisConfig(tmp_path, redisServer)
    redisServer.command("CONFIG", "SET", "appendfsync", "everysec")
    try:
        assert await xmppctl(configPath, "check") == 1
    finally:
        redisServer.command("CONFIG", "SET", "appendfsync", "always")
    [line] = [line for line in capsys.readouterr().out.splitlines() if " storage:" in line]
    assert line.startswith(f"error    storage: Redis at {redisServer.url} has appendonly=yes "
                           "appendfsync=everysec: acknowledged messages could be lost")
    assert "appendfsync always" in line and "storage.redis_unsafe" in line


@pytest_twisted.ensureDeferred
async def test_checkRedisUnsafe(tmp_path, redisServer, capsys):
    """With storage.redis_unsafe, check still warns that acknowledged messages may be lost."""
    configPath = redisConfig(tmp_path, redisServer, "redis_unsafe = true\n")
    redisServer.command("CONFIG", "SET", "appendfsync", "everysec")
    try:
        assert await xmppctl(configPath, "check") == 0
    finally:
        redisServer.command("CONFIG", "SET", "appendfsync", "always")
    assert (f"warning  storage: Redis at {redisServer.url} appendonly=yes "
            f"appendfsync=everysec: acknowledged messages may be lost on a crash or power "
            f"failure (storage.redis_unsafe is set); set appendonly yes and appendfsync "
            f"always") in capsys.readouterr().out.splitlines()


@pytest_twisted.ensureDeferred
async def test_checkRedisAway(tmp_path, capsys, monkeypatch):
    """check reports a Redis that does not answer as an error naming its address."""
    from tests.foreignserver import freePort
    from xmppd.storage.redis import engine
    monkeypatch.setattr(engine, "OPEN_TIMEOUT", 0.3)
    url = f"redis://127.0.0.1:{freePort()}/0"
    configPath = writeConfig(tmp_path, f'[storage]\nbackend = "redis"\nredis = "{url}"\n')
    assert await xmppctl(configPath, "check") == 1
    assert (f"error    storage: Redis at {url} did not answer within 0.3 s (is it running? "
            f"storage.redis)") in capsys.readouterr().out.splitlines()
