"""
End-to-end: in-order processing (RFC 6120 §10.1) as clients that do not
wait notice it.  A client that sends a room join and a groupchat message
in one go (Debian's C{go-sendxmpp -c}, or any pipelining client) gets the
message into the room even when the join waits on storage first, and a
command-line client's one-shot chat message reaches its recipient.

C{go-sendxmpp} runs as a process of its own against the node's STARTTLS
port, with certificate checks off (the node's certificate is self-signed)
and C{HOME} in the test's directory so no user configuration is read; its
tests are skipped, saying why, where it is not installed.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET

import pytest
import pytest_twisted
from twisted.internet import defer, protocol

from tests.e2e import DOMAIN, TIMEOUT, password, reactor
from tests.test_e2e_muc import available, cast, createRoom, roomJID

ensureDeferred = pytest_twisted.ensureDeferred

NS_MUC = "http://jabber.org/protocol/muc"
GO_SENDXMPP = shutil.which("go-sendxmpp")
needsGoSendxmpp = pytest.mark.skipif(
    GO_SENDXMPP is None, reason="Debian's go-sendxmpp is not installed "
    "(scripts/install-test-deps installs it)")


async def goSendxmpp(server, user: str, body: str, *argv: str) -> tuple[int, str]:
    """
    Run C{go-sendxmpp} as C{user} with C{body} on its standard input and
    C{argv} after the login options; its exit status and what it printed.
    """
    home = server.directory / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    args = ["-u", "%s@%s" % (user, DOMAIN), "-p", password(user),
            "-j", "127.0.0.1:%d" % (server.starttlsPort,), "-n",
            "--timeout", str(int(TIMEOUT)), *argv]
    d = _withInput(GO_SENDXMPP, args, env, str(home), body)
    out, err, status = await d.addTimeout(TIMEOUT * 2, reactor())
    return status, (out + err).decode("utf-8", "replace")


class _Feeding(protocol.ProcessProtocol):
    """Writes C{text} to the child's standard input; fires with (out, err, status) at its end."""

    def __init__(self, text: str):
        self.text = text
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.ended = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.text.encode("utf-8"))
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason) -> None:
        self.ended.callback((b"".join(self.out), b"".join(self.err), reason.value.exitCode))


def _withInput(executable, args, env, path, text) -> defer.Deferred:
    """Run C{executable} with C{text} on its standard input; (out, err, status)."""
    feeding = _Feeding(text)
    reactor().spawnProcess(feeding, executable, [executable, *args], env=env, path=path)
    return feeding.ended


@ensureDeferred
async def test_pipelinedJoinAndMessage(server):
    """
    A client that sends its join and a groupchat message without waiting
    for the join gets the message to the other occupants, not refused.
    """
    juliet, romeo = await cast(server, "juliet", "romeo")
    room = roomJID("pipeline")
    await createRoom(juliet, room, "juliet")
    # The join presence and the message go out in one write, without
    # waiting for the join (slixmpp's join_muc would send the presence
    # from a task of its own, after the message).  The join is romeo's
    # first available presence, so the server reads his vCard for its
    # avatar hash (XEP-0398) before the join can go on: it waits on storage.
    join = romeo.xmpp.make_presence(pto=room + "/romeo")
    join.append(ET.Element("{%s}x" % NS_MUC))
    message = romeo.xmpp.make_message(mto=room, mbody="at once", mtype="groupchat")
    romeo.xmpp.send_raw(str(join) + str(message))
    message = await juliet.inbox.message(room + "/romeo", "groupchat")
    assert message["body"] == "at once"
    errors = [s for s in romeo.inbox.unclaimed if s["type"] == "error"]
    assert errors == []


@needsGoSendxmpp
@ensureDeferred
async def test_goSendxmppToRoom(server):
    """C{go-sendxmpp -c ROOM} joins the room and its message reaches an occupant."""
    await server.addUser("romeo")
    [juliet] = await cast(server, "juliet")
    room = roomJID("cli")
    await createRoom(juliet, room, "juliet")

    status, output = await goSendxmpp(server, "romeo", "from the command line\n",
                                      "-c", "-a", "romeo", room)

    assert status == 0, output
    message = await juliet.inbox.message(room + "/romeo", "groupchat")
    assert message["body"].strip() == "from the command line"


@needsGoSendxmpp
@ensureDeferred
async def test_goSendxmppChat(server):
    """C{go-sendxmpp USER} sends a chat message that the user's client receives."""
    await server.addUser("romeo")
    [juliet] = await cast(server, "juliet")
    await available(juliet)

    status, output = await goSendxmpp(server, "romeo", "a note\n", "juliet@" + DOMAIN)

    assert status == 0, output
    message = await juliet.nextMessage()
    assert str(message["from"].bare) == "romeo@" + DOMAIN
    assert message["body"].strip() == "a note"
