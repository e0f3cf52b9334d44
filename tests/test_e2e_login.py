"""
End-to-end: slixmpp clients log in to a real node over STARTTLS and direct
TLS (RFC 6120 §5-§7, XEP-0368), with accounts managed by C{xmppctl}.
"""

import ssl

import pytest
import pytest_twisted

from tests.e2e import LoginFailed

ensureDeferred = pytest_twisted.ensureDeferred


@ensureDeferred
async def test_scramSHA256OverStartTLS(server):
    """Romeo logs in with SCRAM-SHA-256 on an encrypted stream after STARTTLS and gets his resource."""
    await server.addUser("romeo")
    romeo = server.client("romeo", resource="orchard", mechanism="SCRAM-SHA-256")

    jid = await romeo.login()

    assert jid.full == "romeo@localhost/orchard"
    assert romeo.mechanism == "SCRAM-SHA-256"
    assert "starttls" in romeo.xmpp.features
    assert romeo.tls is not None and romeo.tls.version() in ("TLSv1.2", "TLSv1.3")


@ensureDeferred
async def test_scramSHA256OverDirectTLS(server):
    """Romeo logs in with SCRAM-SHA-256 on the direct TLS port (XEP-0368), with no STARTTLS step."""
    await server.addUser("romeo")
    romeo = server.client("romeo", resource="orchard", mechanism="SCRAM-SHA-256",
                          directTLS=True)

    jid = await romeo.login()

    assert jid.full == "romeo@localhost/orchard"
    assert romeo.mechanism == "SCRAM-SHA-256"
    assert "starttls" not in romeo.xmpp.features
    assert romeo.tls is not None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
@pytest.mark.parametrize("directTLS", [False, True])
@ensureDeferred
async def test_scramPlusOverTLS12(server, mechanism, directTLS):
    """On TLS 1.2 Romeo logs in with SCRAM-PLUS, bound to the connection by tls-unique."""
    await server.addUser("romeo")
    romeo = server.client("romeo", resource="orchard", mechanism=mechanism,
                          directTLS=directTLS)
    # Python's ssl offers only tls-unique, which exists up to TLS 1.2.
    romeo.xmpp.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2

    jid = await romeo.login()

    assert jid.full == "romeo@localhost/orchard"
    assert romeo.mechanism == mechanism
    assert romeo.tls.version() == "TLSv1.2"


@ensureDeferred
async def test_serverChoosesResource(server):
    """A client that asks for no resource is bound to one the server made up."""
    await server.addUser("romeo")
    romeo = server.client("romeo")

    jid = await romeo.login()

    assert jid.bare == "romeo@localhost"
    assert jid.resource


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-1"])
@ensureDeferred
async def test_otherMechanisms(server, mechanism):
    """PLAIN (over TLS) and SCRAM-SHA-1 log Romeo in as well."""
    await server.addUser("romeo")
    romeo = server.client("romeo", resource="orchard", mechanism=mechanism)

    jid = await romeo.login()

    assert jid.full == "romeo@localhost/orchard"
    assert romeo.mechanism == mechanism
    assert romeo.tls is not None


@ensureDeferred
async def test_wrongPasswordRefused(server):
    """A wrong password is refused with not-authorized, and the right one works on a new connection."""
    await server.addUser("romeo")
    intruder = server.client("romeo", secret="not romeo's", mechanism="SCRAM-SHA-256")

    with pytest.raises(LoginFailed) as failed:
        await intruder.login()

    assert failed.value.condition == "not-authorized"
    assert not intruder.sessionStarted
    romeo = await server.login("romeo", "orchard")
    assert romeo.jid.full == "romeo@localhost/orchard"


@ensureDeferred
async def test_resourceConflictReplacesOlderSession(server):
    """When Juliet binds the same resource twice, the older connection is closed with conflict and the newer one gets her messages."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    first = await server.login("juliet", "balcony")

    second = await server.login("juliet", "balcony")

    assert await first.closedByServer() == ["conflict"]
    assert second.jid.full == "juliet@localhost/balcony"
    romeo = await server.login("romeo", "orchard")
    romeo.send("juliet@localhost/balcony", "Are you still there?")
    message = await second.nextMessage()
    assert message["body"] == "Are you still there?"


@ensureDeferred
async def test_messageToFullJID(server):
    """Juliet receives Romeo's message to her full JID, from his full JID as the server stamped it."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await server.login("romeo", "orchard")
    juliet = await server.login("juliet", "balcony")

    romeo.send("juliet@localhost/balcony", "But soft!")
    message = await juliet.nextMessage()

    assert message["from"].full == "romeo@localhost/orchard"
    assert message["to"].full == "juliet@localhost/balcony"
    assert message["type"] == "chat"
    assert message["body"] == "But soft!"


@ensureDeferred
async def test_accountAddedWhileStopped(server):
    """An account added with xmppctl while the server is stopped can log in once it is started again."""
    await server.stop()
    result = await server.xmppctl("adduser", "romeo@localhost", "--password", "capulet")
    assert result.status == 0, result

    await server.start()
    romeo = server.client("romeo", "orchard", secret="capulet")

    assert (await romeo.login()).full == "romeo@localhost/orchard"


@ensureDeferred
async def test_accountAddedWhileRunning(server):
    """An account added with xmppctl while the server runs can log in at once."""
    result = await server.xmppctl("adduser", "romeo@localhost", "--password", "capulet")
    assert result.status == 0, result

    romeo = server.client("romeo", "orchard", secret="capulet")

    assert (await romeo.login()).full == "romeo@localhost/orchard"


@ensureDeferred
async def test_passwdReplacesPassword(server):
    """After xmppctl passwd the old password is refused and the new one works."""
    await server.addUser("romeo", "old secret")
    result = await server.xmppctl("passwd", "romeo@localhost", "--password", "new secret")
    assert result.status == 0, result

    with pytest.raises(LoginFailed) as failed:
        await server.login("romeo", secret="old secret", mechanism="SCRAM-SHA-256")
    romeo = await server.login("romeo", "orchard", secret="new secret")

    assert failed.value.condition == "not-authorized"
    assert romeo.jid.full == "romeo@localhost/orchard"


@ensureDeferred
async def test_deluserRefusesLogin(server):
    """After xmppctl deluser the account can no longer log in."""
    await server.addUser("romeo")
    result = await server.xmppctl("deluser", "romeo@localhost")
    assert result.status == 0, result

    with pytest.raises(LoginFailed) as failed:
        await server.login("romeo", mechanism="SCRAM-SHA-256")

    assert failed.value.condition == "not-authorized"


@ensureDeferred
async def test_selfSignedCertificate(stoppedServer):
    """On first start the server makes a self-signed certificate in data_dir/tls, and clients complete TLS with it."""
    server = stoppedServer
    assert not server.certificatePath.exists()
    await server.addUser("romeo")

    await server.start()
    romeo = await server.login("romeo", "orchard")

    assert server.certificatePath.exists()
    presented = romeo.tls.getpeercert(binary_form=True)
    assert presented == ssl.PEM_cert_to_DER_cert(server.certificatePath.read_text())


@ensureDeferred
async def test_serverStopSaysSystemShutdown(server):
    """When the server stops, a connected client is told system-shutdown instead of being cut off."""
    await server.addUser("juliet")
    juliet = await server.login("juliet", "balcony")

    await server.stop()

    assert await juliet.closedByServer() == ["system-shutdown"]


@ensureDeferred
async def test_restartSameTree(server):
    """A node's service tree can be stopped and started again and serves logins after."""
    await server.addUser("juliet")
    node = server.service
    await node.stopService()
    node.startService()
    ports = await node.getServiceNamed("c2s").ready
    server.starttlsPort = ports[0].getHost().port
    juliet = await server.login("juliet", "balcony")
    assert juliet.jid.full == "juliet@localhost/balcony"
