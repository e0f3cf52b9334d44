"""
A C{redis-server} of the test's own (Debian's package, installed by
C{scripts/install-test-deps}), never the machine's: on 127.0.0.1, on a port
picked free just before it starts, with its files in a temporary directory,
and with the durability the cluster and the C{redis} backend require
(append-only file, C{appendfsync always}), so what a test sees is what an
operator who followed the README gets.

    def test_something(redisServer):
        url = redisServer.url            # "redis://127.0.0.1:PORT/0"
        ...
        redisServer.restart()            # kill -9 and start again on the same port and files

Fixtures: L{redisServer}, one server per test module, emptied
(C{FLUSHALL}) before each test that asks for it; tests skip, with the
reason, when C{redis-server} is not installed.  Every wait is bounded
(L{START_TIMEOUT}).  The calls here block (C{subprocess}); use them from
fixtures and between awaits, not while the reactor must serve something.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.foreignserver import freePort

#: Seconds a redis-server may take to answer PING after it was started.
START_TIMEOUT = 10.0
POLL_INTERVAL = 0.02


class RedisError(Exception):
    """The test's redis-server did not start or stop."""


class RedisServer:
    """One C{redis-server} process; see the module docstring."""

    def __init__(self, directory: Path, port: int | None = None,
                 executable: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or freePort()
        self.executable = executable or shutil.which("redis-server")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % (self.port,)

    def arguments(self) -> list[str]:
        return [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always",
                "--logfile", str(self.directory / "redis.log"),
                "--daemonize", "no", "--protected-mode", "no"]

    def start(self) -> None:
        if self.executable is None:
            raise RedisError("redis-server is not installed (scripts/install-test-deps installs it)")
        self.process = subprocess.Popen(self.arguments(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None:
                raise RedisError("redis-server exited while starting:\n" + self.logTail())
            if time.monotonic() > deadline:
                self.stop()
                raise RedisError("redis-server did not answer within %s s:\n%s"
                                 % (START_TIMEOUT, self.logTail()))
            time.sleep(POLL_INTERVAL)

    def command(self, *words: str) -> bytes:
        """One command in Redis's inline protocol; its first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall((" ".join(words) + "\r\n").encode())
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply.strip()

    def ping(self) -> bool:
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def flush(self) -> None:
        self.command("FLUSHALL")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM, or C{sig}); SIGKILL after L{START_TIMEOUT}."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(START_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: what survives is what the append-only file had."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """SIGKILL, then start again on the same port with the same files."""
        self.kill()
        self.start()

    def logTail(self, lines: int = 30) -> str:
        try:
            text = (self.directory / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def _moduleRedis(tmp_path_factory):
    if shutil.which("redis-server") is None:
        yield RedisError("redis-server is not installed (scripts/install-test-deps installs it)")
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RedisError as e:
        yield e
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redisServer(_moduleRedis):
    """The module's redis-server, emptied; skips when Redis is not installed."""
    if isinstance(_moduleRedis, RedisError):
        if shutil.which("redis-server") is None:
            pytest.skip(str(_moduleRedis))
        pytest.fail(str(_moduleRedis))
    if _moduleRedis.process is None or _moduleRedis.process.poll() is not None:
        _moduleRedis.start()
    _moduleRedis.flush()
    return _moduleRedis
