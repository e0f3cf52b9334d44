"""
Several MUC component processes balanced per room (issue 14, item 6): a
real node lists the MUC domain in C{components.balance}, two real
C{twistd -n xmppd-muc} processes connect to it, and slixmpp clients use
rooms that the node spreads over both; when one process is killed, its
rooms are served by the other.

Each process keeps rooms in SQLite of its own, so a room that moves starts
afresh on the process that takes it over: that is what shows which process
served it.  (Shared rooms across processes need the Redis backend.)
"""

from __future__ import annotations

import os
import sys

import pytest_twisted
from twisted.internet import defer, protocol

from tests.e2e import DOMAIN, TIMEOUT, REPO, reactor, sleep, wait, writeConfig
from tests.test_e2e_muc_component import SECRET, mucClient
from xmppd.components.balance import choose, instanceSalt
from xmppd.config.registry import DEFAULT_FEATURES

MUC = "conference." + DOMAIN

#: A twistd process takes a few seconds to import and connect on a busy machine.
START_TIMEOUT = 60.0


class Process(protocol.ProcessProtocol):
    """One C{twistd -n xmppd-muc} process: its output, for the failure message, and its end."""

    def __init__(self, name: str):
        self.name = name
        self.output = bytearray()
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(None)

    def stop(self, signal: str = "TERM") -> defer.Deferred:
        if not self.ended.called:
            try:
                self.transport.signalProcess(signal)
            except Exception:  # noqa: BLE001 - it ended meanwhile
                pass
        return self.ended


def startComponent(tmp_path, name: str, port: int) -> Process:
    directory = tmp_path / name
    directory.mkdir()
    writeConfig(directory / "muc.toml", {
        "server": {"domains": [DOMAIN], "data_dir": str(directory / "data")},
        "storage": {"backend": "sqlite"},
        "muc_component": {"connect": ["tcp:host=127.0.0.1:port=%d" % port],
                          "secret": SECRET, "instance": name},
    })
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = Process(name)
    reactor().spawnProcess(
        process, os.path.join(os.path.dirname(sys.executable), "twistd"),
        ["twistd", "-n", "--pidfile=", "xmppd-muc", "--config", str(directory / "muc.toml")],
        env=env, path=str(directory))
    return process


async def connectedCount(components, count: int, processes) -> None:
    """Wait, boundedly, until the node has C{count} component connections."""
    deadline = reactor().seconds() + START_TIMEOUT
    while len(components.connections()) != count:
        if reactor().seconds() > deadline:
            raise AssertionError("components connected: %r; output: %r" % (
                components.connections(), {p.name: bytes(p.output[-2000:]) for p in processes}))
        await sleep(0.05)


def roomOf(instance: str, others: list[str]) -> str:
    """A room name that the node's hashing gives to C{instance}."""
    pool = [(name, instanceSalt(name)) for name in [instance, *others]]
    for i in range(100):
        room = "room%d@%s" % (i, MUC)
        if choose(room, pool) == instance:
            return room
    raise AssertionError("no room for %s" % (instance,))


def others(occupants, own: str) -> list[str]:
    """The occupants' JIDs in a join's occupant presences, but for the joiner's own."""
    return [str(p["from"]) for p in occupants if str(p["from"]) != own]


def statusCodes(presence) -> set[str]:
    return {str(code) for code in presence["muc"]["status_codes"]}


@pytest_twisted.ensureDeferred
async def test_roomsSplitOverComponentsAndMoveWhenOneDies(makeServer, tmp_path):
    """Rooms live on two MUC processes; after one is killed its rooms are joined through the other."""
    node = await makeServer({
        "server": {"modules": [m for m in DEFAULT_FEATURES if m != "muc"]},
        "components": {"listen": "tcp:0:interface=127.0.0.1", "secrets": {MUC: SECRET},
                       "balance": [MUC]},
    })
    components = node.service.getServiceNamed("components")
    port = (await components.ready).getHost().port
    processes = [startComponent(tmp_path, name, port) for name in ("muc-a", "muc-b")]
    try:
        await connectedCount(components, 2, processes)
        roomA, roomB = roomOf("muc-a", ["muc-b"]), roomOf("muc-b", ["muc-a"])
        romeo = await mucClient(node, "romeo")
        juliet = await mucClient(node, "juliet")
        romeoMUC = romeo.xmpp.plugin["xep_0045"]
        julietMUC = juliet.xmpp.plugin["xep_0045"]

        for room in (roomA, roomB):
            own = (await wait(romeoMUC.join_muc_wait(room, "romeo", timeout=TIMEOUT)))[0]
            assert "201" in statusCodes(own), room
            form = await wait(romeoMUC.get_room_config(room))
            form["type"] = "submit"
            await wait(romeoMUC.set_room_config(room, form))
        # roomA has romeo in it, as a room on a live process does.
        own, _, occupants, _ = await wait(julietMUC.join_muc_wait(roomA, "juliet",
                                                                  timeout=TIMEOUT))
        assert "201" not in statusCodes(own)
        assert others(occupants, roomA + "/juliet") == [roomA + "/romeo"]

        # Kill muc-a: the node hands its rooms to muc-b.
        await processes[0].stop("KILL").addTimeout(TIMEOUT, reactor())
        await connectedCount(components, 1, processes)

        # roomB, on muc-b all along, still has romeo in it.
        own, _, occupants, _ = await wait(julietMUC.join_muc_wait(roomB, "juliet",
                                                                  timeout=TIMEOUT))
        assert "201" not in statusCodes(own)
        assert others(occupants, roomB + "/juliet") == [roomB + "/romeo"]
        # roomA was on muc-a; joining it again now works through muc-b, which
        # never had it: a fresh room (each process has SQLite of its own).
        own, _, occupants, _ = await wait(julietMUC.join_muc_wait(roomA, "juliet2",
                                                                  timeout=TIMEOUT))
        assert "201" in statusCodes(own)
        assert others(occupants, roomA + "/juliet2") == []
    finally:
        for process in processes:
            await process.stop().addTimeout(TIMEOUT, reactor())
