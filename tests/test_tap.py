"""
Wiring tests: the service tree that L{xmppd.tap.makeService} builds, and the
two ways operators start it (the twistd plugin and C{xmppd.tac}).
"""

import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from xmppd.config import configFromDict, loadConfig
from xmppd.launch import Options
from xmppd.tap import makeService

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def writeConfig(tmp_path, endpoint="tcp:0:interface=127.0.0.1",
                directTLS="tcp:0:interface=127.0.0.1", extra=""):
    path = tmp_path / "xmppd.toml"
    path.write_text(
        '[server]\ndomains = ["localhost", "example.org"]\ndata_dir = "%s"\n'
        '[s2s]\nlisten = "tcp:0:interface=127.0.0.1"\n'
        '[http]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
        'tls_endpoint = "tcp:0:interface=127.0.0.1"\n'
        '[c2s]\nendpoint = "%s"\ndirect_tls_endpoint = "%s"\n%s'
        % (tmp_path / "data", endpoint, directTLS, extra))
    return str(path)


def repoEnvironment(**extra):
    """The environment for a subprocess that must import this checkout."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_treeOrder(tmp_path):
    """
    Storage starts first, the admin socket, each served domain with its MUC,
    pubsub and upload services, the listeners; HTTP after c2s, so it stops
    before, and the sweeper of uploaded files with it.
    """
    server = makeService(loadConfig(writeConfig(tmp_path)))
    names = [child.name for child in server]
    assert names == ["storage", "admin", "localhost", "conference.localhost", "pubsub.localhost",
                     "upload.localhost", "example.org", "conference.example.org",
                     "pubsub.example.org", "upload.example.org", "s2s", "c2s", "http",
                     "metrics-lag", "upload-sweeper"]
    assert server.getServiceNamed("localhost").domain == "localhost"


def test_storageStopsLast(tmp_path):
    """
    Storage closes only once every other service has stopped: the c2s
    listeners end sessions (and write their last activity, or what a
    stream-management session never acknowledged) while they stop.
    """
    from twisted.application.service import Service
    from twisted.internet import defer
    from xmppd.core.server import XMPPServer
    from xmppd.storage.service import StorageService

    class Store:
        closed = False

        def open(self):
            return defer.succeed(None)

        def close(self):
            self.closed = True
            return defer.succeed(None)

    class Slow(Service):
        def stopService(self):
            Service.stopService(self)
            self.stopping = defer.Deferred()
            return self.stopping

    server = XMPPServer(configFromDict({"server": {"data_dir": str(tmp_path)}}))
    store = Store()
    server.storageService = StorageService(store)
    server.storageService.setServiceParent(server)
    listeners = Slow()
    listeners.setServiceParent(server)
    server.startService()
    stopped = server.stopService()
    assert not store.closed and not stopped.called
    listeners.stopping.callback(None)
    assert store.closed and stopped.called
    assert not server.running and not server.storageService.running


def test_selfSignedCertificateOnFirstBuild(tmp_path):
    """Building the server with no certificate configured generates one in data_dir/tls."""
    makeService(loadConfig(writeConfig(tmp_path)))
    files = sorted(os.listdir(tmp_path / "data" / "tls"))
    assert any(name.endswith(".crt") or name.endswith(".pem") for name in files)


def test_optionsWithoutConfigServeLocalhost(tmp_path, monkeypatch):
    """'twistd -n xmppd' with no config serves localhost from ./data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XMPPD_CONFIG", raising=False)
    options = Options()
    options.parseOptions([])
    config = options["xmppdConfig"]
    assert config.server.domains == ("localhost",)
    assert config.server.data_dir == str(tmp_path / "data")
    assert config.c2s.endpoint == "tcp:5222"


def test_optionsReadEnvironmentConfig(tmp_path, monkeypatch):
    """Without --config the server reads $XMPPD_CONFIG."""
    monkeypatch.setenv("XMPPD_CONFIG", writeConfig(tmp_path))
    options = Options()
    options.parseOptions([])
    assert options["xmppdConfig"].server.domains == ("localhost", "example.org")


def test_invalidConfigOneLine(tmp_path):
    """twistd with a broken config exits non-zero with one line naming the key."""
    path = tmp_path / "bad.toml"
    path.write_text('[storage]\nbackend = "mysql"\n')
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "xmppd", "--config", str(path)],
        capture_output=True, text=True, cwd=tmp_path, env=repoEnvironment(), timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "storage.backend" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_portInUseOneLine(tmp_path):
    """A listen port that is taken stops the server with a readable line and exit status 1."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "xmppd", "--config",
             writeConfig(tmp_path, endpoint="tcp:%d:interface=127.0.0.1" % port)],
            capture_output=True, text=True, cwd=tmp_path, env=repoEnvironment(), timeout=60)
    finally:
        busy.close()
    assert result.returncode == 1
    # One line on the real stderr (twistd sends its own stderr to the log).
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "c2s.endpoint" in lines[0] and "cannot listen" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def runUntilListening(command, tmp_path, env):
    """Start a server process, wait (bounded) until it listens, then stop it."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=tmp_path, env=env)
    lines = []
    deadline = time.monotonic() + 60
    try:
        for line in process.stdout:
            lines.append(line)
            if "c2s.direct_tls_endpoint listening" in line or time.monotonic() > deadline:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    return "".join(lines) + rest, process.returncode


def assertCleanShutdown(output, returncode):
    # twistd re-raises the signal that stopped it, after a clean shutdown.
    assert returncode in (0, -signal.SIGTERM)
    assert "Server Shut Down." in output
    assert "Traceback" not in output


def test_tacStartsServer(tmp_path):
    """'twistd -ny xmppd.tac' reads $XMPPD_CONFIG and starts both listeners."""
    output, returncode = runUntilListening(
        [TWISTD, "-ny", os.path.join(REPO, "xmppd.tac"), "--pidfile="], tmp_path,
        repoEnvironment(XMPPD_CONFIG=writeConfig(tmp_path)))
    assert re.search(r"c2s.endpoint listening on .*127\.0\.0\.1", output)
    assert "c2s.direct_tls_endpoint listening" in output
    assertCleanShutdown(output, returncode)


def installedPlugin():
    """The plugin file a real install of xmppd put next to Twisted's, if any."""
    own = os.path.join(REPO, "twisted", "plugins", "xmppd_plugin.py")
    # Every "xmppd" distribution: building from the checkout leaves an
    # xmppd.egg-info in it that shadows the installed one on sys.path, and
    # that one points at the checkout's own file, which twistd cannot see
    # without the checkout on sys.path.
    for distribution in importlib.metadata.distributions(name="xmppd"):
        for path in distribution.files or []:
            if str(path).replace(os.sep, "/").endswith("twisted/plugins/xmppd_plugin.py"):
                located = os.path.abspath(str(distribution.locate_file(path)))
                if located != own and os.path.exists(located):
                    return located
    return None


@pytest.mark.skipif(installedPlugin() is None,
                    reason="xmppd is not pip-installed here (the README's commands install it)")
def test_pluginFoundAfterInstall(tmp_path):
    """After 'pip install .', twistd lists the xmppd plugin without any PYTHONPATH help."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run([TWISTD, "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=60)
    assert re.search(r"^\s+xmppd\s", result.stdout, re.MULTILINE), result.stdout


def test_pluginRunsServer(tmp_path):
    """'twistd -n xmppd --config FILE' starts both listeners and stops cleanly on SIGTERM."""
    output, returncode = runUntilListening(
        [TWISTD, "-n", "--pidfile=", "xmppd", "--config", writeConfig(tmp_path)],
        tmp_path, repoEnvironment())
    assert "c2s.direct_tls_endpoint listening" in output
    assertCleanShutdown(output, returncode)
