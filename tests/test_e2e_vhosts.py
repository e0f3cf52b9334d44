"""
End-to-end: one node serving two domains with different settings
(virtual hosts, L{xmppd.config.hosts}), with slixmpp clients over real TLS:

  - C{localhost}: the e2e kit's domain, registration closed, no anonymous
    access, and a certificate of its own, picked by SNI;
  - C{guests.example}: registration open, SASL ANONYMOUS (XEP-0175), and
    the node's self-signed certificate.
"""

import re
import ssl

import pytest
import pytest_twisted

from tests.e2e import DOMAIN, Client, LoginFailed, password
from tests.test_e2e_messages import available
from tests.test_e2e_register import registersInBand
from xmppd.stream import tls
from xmppd.core.jid import parseJID

ensureDeferred = pytest_twisted.ensureDeferred

GUESTS = "guests.example"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def twoDomains(makeServer, tmp_path):
    """The node of the module docstring, started; C{node.ownCertificate} is localhost's."""
    certPath, keyPath = str(tmp_path / "localhost.crt"), str(tmp_path / "localhost.key")
    tls.generateSelfSigned([DOMAIN], certPath, keyPath)
    node = await makeServer({
        "server": {"domains": [DOMAIN, GUESTS]},
        "register": {"interval_per_ip": 0},
        f'hosts."{DOMAIN}"': {"register": False, "certificate": certPath,
                              "private_key": keyPath},
        f'hosts."{GUESTS}"': {"register": True, "anonymous": True},
    })
    node.ownCertificate = certPath
    return node


def client(node, jid: str, secret: str, **kwargs) -> Client:
    """A client for any JID (the kit's own are for localhost); closed with the node."""
    made = Client(node, jid, secret, **kwargs)
    node.clients.append(made)
    return made


def registering(node, jid: str) -> Client:
    """A client registering in-band (as in test_e2e_register) for any domain."""
    return registersInBand(client(node, jid, password(jid.partition("@")[0])))


def certificateOf(path: str) -> bytes:
    with open(path, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode("ascii"))


@ensureDeferred
async def test_messagesAcrossDomains(makeServer, tmp_path):
    """A user of each domain logs in, and their messages reach each other both ways."""
    node = await twoDomains(makeServer, tmp_path)
    await node.addUser("romeo", domain=DOMAIN)
    await node.addUser("juliet", domain=GUESTS)
    romeo = await node.login("romeo", "orchard")
    await available(romeo)
    juliet = client(node, f"juliet@{GUESTS}/balcony", password("juliet"))
    await juliet.login()

    romeo.send(f"juliet@{GUESTS}/balcony", "Lady, by yonder blessed moon I vow")
    received = await juliet.nextMessage()
    assert received["from"] == f"romeo@{DOMAIN}/orchard"
    assert received["body"] == "Lady, by yonder blessed moon I vow"

    juliet.send(f"romeo@{DOMAIN}", "O, swear not by the moon")
    received = await romeo.nextMessage()
    assert received["from"] == f"juliet@{GUESTS}/balcony"
    assert received["body"] == "O, swear not by the moon"


@ensureDeferred
async def test_anonymousLoginWhereAllowed(makeServer, tmp_path):
    """With an empty localpart a client logs in anonymously on the guests domain and can talk to a user."""
    node = await twoDomains(makeServer, tmp_path)
    await node.addUser("romeo", domain=DOMAIN)
    romeo = await node.login("romeo", "orchard")
    await available(romeo)
    guest = client(node, GUESTS, "")
    jid = await guest.login()

    assert guest.mechanism == "ANONYMOUS"
    assert jid.domain == GUESTS and UUID.match(jid.user)
    assert not await node.service.storage.users.userExists(jid.user, GUESTS)
    guest.send(f"romeo@{DOMAIN}", "who is there?")
    received = await romeo.nextMessage()
    assert received["from"] == jid.full and received["body"] == "who is there?"

    await guest.disconnect()
    assert node.service.sessions.sessionsOf(parseJID(jid.bare)) == []
    assert not await node.service.storage.users.userExists(jid.user, GUESTS)


@ensureDeferred
async def test_noAnonymousLoginElsewhere(makeServer, tmp_path):
    """On the domain without anonymous access, a client with no account cannot log in."""
    node = await twoDomains(makeServer, tmp_path)
    guest = client(node, DOMAIN, "", mechanism="ANONYMOUS")
    with pytest.raises(LoginFailed):
        await guest.login()
    assert not guest.sessionStarted


@ensureDeferred
async def test_registrationOnOneDomainOnly(makeServer, tmp_path):
    """A new user registers in-band on the guests domain; on localhost no registration is offered."""
    node = await twoDomains(makeServer, tmp_path)
    guest = registering(node, f"mercutio@{GUESTS}/tavern")
    jid = await guest.login()
    assert guest.outcomes == ["registered"] and jid.full == f"mercutio@{GUESTS}/tavern"
    assert await node.service.storage.users.userExists("mercutio", GUESTS)

    local = registering(node, f"tybalt@{DOMAIN}/street")
    with pytest.raises(LoginFailed) as failed:
        await local.login()
    assert local.outcomes == [] and failed.value.condition == "not-authorized"
    assert not await node.service.storage.users.userExists("tybalt", DOMAIN)


@pytest.mark.parametrize("directTLS", [False, True], ids=["starttls", "direct-tls"])
@ensureDeferred
async def test_certificateBySNI(makeServer, tmp_path, directTLS):
    """Over STARTTLS and direct TLS, each domain's clients are shown that domain's certificate."""
    node = await twoDomains(makeServer, tmp_path)
    await node.addUser("romeo", domain=DOMAIN)
    romeo = await node.login("romeo", "orchard", directTLS=directTLS)
    guest = client(node, GUESTS, "", directTLS=directTLS)
    await guest.login()

    assert romeo.tls.getpeercert(binary_form=True) == certificateOf(node.ownCertificate)
    assert guest.tls.getpeercert(binary_form=True) == certificateOf(str(node.certificatePath))


@ensureDeferred
async def test_httpsCertificateBySNI(makeServer, tmp_path):
    """
    The HTTPS listener (C{http.tls_endpoint}: WebSocket, BOSH, uploads, the
    chat page) has the client listeners' certificates and SNI: a browser of
    each domain is shown that domain's certificate, and is answered.
    """
    import asyncio
    from tests.e2e import wait
    node = await twoDomains(makeServer, tmp_path)

    async def certificateFor(name: str) -> tuple[bytes, bytes]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", node.node.httpsPort, ssl=context, server_hostname=name)
        try:
            certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.write(b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: %s\r\n"
                         b"Connection: close\r\n\r\n" % (name.encode("ascii"),))
            return certificate, await reader.read()
        finally:
            writer.close()

    certificate, answer = await wait(certificateFor(DOMAIN))
    assert certificate == certificateOf(node.ownCertificate)
    assert answer.startswith(b"HTTP/1.1 200 ")
    certificate, answer = await wait(certificateFor(GUESTS))
    assert certificate == certificateOf(str(node.certificatePath))
    assert b'"wss://%s/xmpp-websocket"' % (GUESTS.encode(),) in answer
