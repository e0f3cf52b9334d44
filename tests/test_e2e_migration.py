"""
End-to-end tests of accounts moved in from ejabberd: a real C{export_piefxis}
of ejabberd 23.01 (SCRAM-SHA-1 keys only, base64-encoded twice) imported with
C{xmppctl import}, then logged into on the first connection by slixmpp
(SCRAM-SHA-256 refused with invalid-mechanism, then its next mechanism) and
by Debian's C{go-sendxmpp} (0.5.7 speaks PLAIN only; skipped with a reason
when it is not installed).
"""

import os
import shutil

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests.e2e import TIMEOUT, LoginFailed, reactor
from tests.test_pie import EJABBERD_23_01_SCRAM

ensureDeferred = pytest_twisted.ensureDeferred

GO_SENDXMPP = shutil.which("go-sendxmpp")
needsGoSendxmpp = pytest.mark.skipif(GO_SENDXMPP is None,
                                     reason="go-sendxmpp is not installed (apt install "
                                     "go-sendxmpp; tools/install-test-deps does)")


async def importEjabberdExport(node) -> None:
    """Import the ejabberd 23.01 export (alice: "wonderland", bob: "s3cret pass") into C{node}'s domain."""
    directory = node.directory / "export"
    directory.mkdir()
    (directory / "main.xml").write_text(
        "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0' "
        "xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='host.xml'/>"
        "</server-data>")
    (directory / "host.xml").write_text(
        EJABBERD_23_01_SCRAM.replace("jid='pie.example'", f"jid='{node.domain}'"))
    result = await node.xmppctl("import", str(directory / "main.xml"))
    assert result.status == 0, result
    assert "2 accounts: SCRAM values were base64-encoded twice" in result.out


def fallingBack(client) -> list[str]:
    """
    Let C{client} (an e2e kit client) retry another mechanism after a
    failure, as slixmpp does by itself, instead of the kit reporting the
    first failure; the returned list collects each failure's condition.
    """
    failures: list[str] = []
    xmpp = client.xmpp
    xmpp.del_event_handler("failed_auth", client._onFailedAuth)
    xmpp.add_event_handler("failed_auth", lambda failure: failures.append(failure["condition"]))
    xmpp.add_event_handler("failed_all_auth", lambda event: client._settle(
        LoginFailed("failed_all_auth", ", ".join(failures))))
    return failures


@ensureDeferred
async def test_slixmppLogsInOnFirstConnection(stoppedServer):
    """slixmpp logs into an imported SCRAM-SHA-1-only account on its first connection: SCRAM-SHA-256 is answered with invalid-mechanism and it falls back."""
    await importEjabberdExport(stoppedServer)
    await stoppedServer.start()

    alice = stoppedServer.client("alice", "first", secret="wonderland")
    failures = fallingBack(alice)
    assert (await alice.login()).full == f"alice@{stoppedServer.domain}/first"
    assert failures and set(failures) == {"invalid-mechanism"}
    assert "SHA-256" not in alice.mechanism


@ensureDeferred
async def test_plainLoginEnablesSCRAMSHA256(stoppedServer):
    """After one PLAIN login of an imported SCRAM-SHA-1-only account, SCRAM-SHA-256 works for it, and xmppctl check no longer counts it."""
    await importEjabberdExport(stoppedServer)
    await stoppedServer.start()
    check = await stoppedServer.xmppctl("check")
    assert "warning  sasl: 2 of 2 accounts have no SCRAM-SHA-256 keys yet" in check.out

    with pytest.raises(LoginFailed) as failed:
        await stoppedServer.login("bob", "scram", secret="s3cret pass",
                                  mechanism="SCRAM-SHA-256")
    assert failed.value.condition == "invalid-mechanism"
    await stoppedServer.login("bob", "plain", secret="s3cret pass", mechanism="PLAIN")
    bob = await stoppedServer.login("bob", "again", secret="s3cret pass",
                                    mechanism="SCRAM-SHA-256")
    assert bob.mechanism == "SCRAM-SHA-256"
    check = await stoppedServer.xmppctl("check")
    assert "warning  sasl: 1 of 2 accounts has no SCRAM-SHA-256 keys yet" in check.out


async def goSendxmpp(node, user: str, secret: str, to: str, body: str):
    """Run go-sendxmpp as C{user} against C{node}'s STARTTLS port; (status, output)."""
    messageFile = node.directory / "message.txt"
    messageFile.write_text(body)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(node.directory)}
    args = ["-u", f"{user}@{node.domain}", "-p", secret, "-j",
            f"127.0.0.1:{node.starttlsPort}", "-n", "--timeout", str(int(TIMEOUT)),
            "-m", str(messageFile), to]
    d = getProcessOutputAndValue(GO_SENDXMPP, args, env=env, path=str(node.directory),
                                 reactor=reactor())
    out, err, status = await d.addTimeout(TIMEOUT + 5, reactor())
    return status, (out + err).decode("utf-8", "replace")


@needsGoSendxmpp
@ensureDeferred
async def test_goSendxmppLogsIn(makeServer):
    """go-sendxmpp logs into an imported SCRAM-SHA-1-only account on the first try and its message arrives; its login (PLAIN) adds SCRAM-SHA-256 keys, which slixmpp then uses."""
    node = await makeServer(start=False)
    await importEjabberdExport(node)
    await node.addUser("juliet")
    await node.start()
    juliet = await node.login("juliet")
    juliet.xmpp.send_presence()

    status, output = await goSendxmpp(node, "alice", "wonderland",
                                      f"juliet@{node.domain}", "from ejabberd")

    assert status == 0, output
    message = await juliet.nextMessage()
    assert (message["body"], message["from"].bare) == ("from ejabberd",
                                                       f"alice@{node.domain}")
    alice = await node.login("alice", "scram", secret="wonderland", mechanism="SCRAM-SHA-256")
    assert alice.mechanism == "SCRAM-SHA-256"


@needsGoSendxmpp
@ensureDeferred
async def test_goSendxmppWithConfiguredMechanisms(makeServer):
    """go-sendxmpp logs in and sends with sasl.mechanisms leaving SCRAM-SHA-256 out, the setting for clients that never retry."""
    node = await makeServer({"sasl": {"mechanisms": ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
                                                     "PLAIN"]}}, start=False)
    await importEjabberdExport(node)
    await node.start()
    bob = await node.login("bob", secret="s3cret pass")
    bob.xmpp.send_presence()

    status, output = await goSendxmpp(node, "alice", "wonderland", f"bob@{node.domain}",
                                      "hello bob")

    assert status == 0, output
    assert (await bob.nextMessage())["body"] == "hello bob"
