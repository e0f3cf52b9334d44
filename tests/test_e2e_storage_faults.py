"""
The disk fills up under a running server (issue 18 item 4), end to end: a
real C{twistd -n xmppd} process whose data directory is a small tmpfs, a
slixmpp client with stream management, and the file system filled by a
file beside the database, as any other program could fill it.

Needs root and a working C{mount -t tmpfs}; skipped otherwise, with the
reason.  The in-process tests of every fault and store are
L{tests.test_storage_faults}.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
import pytest_twisted

from tests.e2e import TIMEOUT, sleep
from tests.offlinehelpers import acknowledged, useStreamManagement
from tests.test_fault_offline import startNode

ensureDeferred = pytest_twisted.ensureDeferred

#: The tmpfs the data directory lives on: room for the database and its
#: WAL, not for much more.
TMPFS_SIZE = "4m"

#: A message body big enough that a few fill what is left.
BODY = "x" * 3000

#: At most this many messages are sent to find the disk full (bounded).
MAX_SENT = 200


def mountTmpfs(path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the data directory")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700",
                           "tmpfs", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(path) -> None:
    """Fill the file system of C{path} with one file, down to the last byte."""
    with open(path, "wb", buffering=0) as f:
        chunk = 1 << 16
        while chunk:
            try:
                f.write(b"\0" * chunk)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EFBIG):
                    raise
                chunk //= 2


def errorOf(message):
    return message["error"]["condition"] if message["type"] == "error" else None


@ensureDeferred
async def test_diskFullRefusedNotAcknowledgedAndRecovers(stoppedServer):
    """
    With the disk full, a message for an offline account gets
    resource-constraint, its error arrives before the acknowledgement that
    counts it, a chat between two online users still works, the operator
    gets one line, not a traceback; once space returns the next message is
    stored without a restart, and the offline account later receives exactly
    the messages that were stored, none of the refused ones.
    """
    server = stoppedServer
    mountTmpfs(server.dataDir)
    node = None
    try:
        for user in ("romeo", "juliet", "benvolio"):
            await server.addUser(user)
        node = await startNode(server)
        romeo = server.client("romeo", "orchard")
        useStreamManagement(romeo)
        await romeo.login()
        benvolio = await server.login("benvolio", "square")
        await acknowledged(romeo)

        filler = server.dataDir / "filler"
        fill(filler)

        # While the WAL can reuse the room it had, writes still succeed;
        # send until one is refused.  Each is either stored (and so
        # acknowledged with no error) or refused before it is acknowledged.
        stored, refused = [], []
        for n in range(MAX_SENT):
            body = f"{n} {BODY}"
            romeo.send("juliet@localhost", body)
            await acknowledged(romeo)
            if romeo.messages.empty():
                stored.append(body)
                continue
            # The error came before the <a/> that counted the message.
            error = romeo.messages.get_nowait()
            assert errorOf(error) == "resource-constraint", error
            refused.append(body)
            break
        assert refused, f"the disk never filled in {MAX_SENT} messages"

        # More refused the same way, and a chat that needs no storage works.
        romeo.send("juliet@localhost", "refused too")
        await acknowledged(romeo)
        assert errorOf(await romeo.nextMessage()) == "resource-constraint"
        romeo.send(benvolio.jid.full, "still here")
        assert (await benvolio.nextMessage())["body"] == "still here"

        # Space returns: the next message is stored, no restart.
        os.remove(filler)
        romeo.send("juliet@localhost", "after")
        await acknowledged(romeo)
        assert romeo.messages.empty()
        stored.append("after")

        juliet = server.client("juliet", "balcony")
        await juliet.login()
        juliet.xmpp.send_presence()
        received = [(await juliet.nextMessage())["body"] for _ in stored]
        assert received == stored
        # Nothing more: a marker sent now is the next thing Juliet gets.
        benvolio.send(juliet.jid.full, "marker")
        assert (await juliet.nextMessage())["body"] == "marker"

        output = node.output
        assert output.count("writes are refused") == 1, output[-3000:]
        assert "writes succeed again" in output
        assert "Traceback" not in output, output[-3000:]
    finally:
        await server.close()
        if node is not None:
            await node.kill("TERM")
        for _ in range(int(TIMEOUT * 10)):
            if node is None or not node.running:
                break
            await sleep(0.1)
        unmount(server.dataDir)
