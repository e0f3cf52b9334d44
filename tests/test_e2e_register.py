"""
End-to-end: in-band registration, password change and account removal with
slixmpp's XEP-0077 plugin on a real node (L{xmppd.features.register}).
"""


import pytest
import pytest_twisted
from slixmpp.exceptions import IqError

from tests.e2e import DOMAIN, TIMEOUT, LoginFailed, password, wait

ensureDeferred = pytest_twisted.ensureDeferred


def registeringClient(server, user, resource):
    """
    A client that creates its account in-band when the server offers it,
    with the password it then logs in with; C{outcomes} records what the
    server answered.
    """
    return registersInBand(server.client(user, resource))


def registersInBand(client):
    """Make C{client} register in-band (see L{registeringClient}); returns it."""
    xmpp = client.xmpp
    xmpp.register_plugin("xep_0077")
    client.outcomes = []

    async def onRegister(form):
        iq = xmpp.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = xmpp.boundjid.user
        iq["register"]["password"] = xmpp.password
        try:
            await iq.send(timeout=TIMEOUT)
            client.outcomes.append("registered")
        except IqError as e:
            client.outcomes.append(e.iq["error"]["condition"])

    xmpp.add_event_handler("register", onRegister)
    return client


@ensureDeferred
async def test_registerThenLogin(makeServer):
    """With registration allowed, a new client creates its account in-band and logs in with it."""
    server = await makeServer({"register": {"allow": True}})
    mercutio = registeringClient(server, "mercutio", "tavern")

    jid = await mercutio.login()

    assert mercutio.outcomes == ["registered"]
    assert jid.full == "mercutio@localhost/tavern"
    assert await server.service.storage.users.userExists("mercutio", DOMAIN)


@ensureDeferred
async def test_registerTakenName(makeServer):
    """Registering a taken username is refused with conflict and the login then fails."""
    server = await makeServer({"register": {"allow": True}})
    await server.addUser("romeo")
    impostor = registeringClient(server, "romeo", "orchard")
    impostor.xmpp.password = "not romeo's password"

    with pytest.raises(LoginFailed) as failed:
        await impostor.login()

    assert impostor.outcomes == ["conflict"]
    assert failed.value.condition == "not-authorized"


@ensureDeferred
async def test_registrationOffByDefault(server):
    """By default the server offers no registration: the client goes straight to SASL and is refused."""
    mercutio = registeringClient(server, "mercutio", "tavern")

    with pytest.raises(LoginFailed) as failed:
        await mercutio.login()

    assert failed.value.condition == "not-authorized"
    assert mercutio.outcomes == []
    assert "register" not in mercutio.xmpp.features
    assert not await server.service.storage.users.userExists("mercutio", DOMAIN)


@ensureDeferred
async def test_changePassword(server):
    """A logged-in user changes their password in-band; then only the new one logs in."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0077")
    await romeo.login()

    await wait(romeo.xmpp.plugin["xep_0077"].change_password("a new secret"))
    await romeo.disconnect()

    with pytest.raises(LoginFailed) as failed:
        await server.login("romeo", "orchard", mechanism="SCRAM-SHA-256")
    again = await server.login("romeo", "orchard", secret="a new secret")
    assert failed.value.condition == "not-authorized"
    assert again.jid.full == "romeo@localhost/orchard"


@ensureDeferred
async def test_removeAccount(server):
    """A user removes their account: the server confirms, closes the stream with not-authorized, and the account and its data are gone."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0077")
    romeo.xmpp.register_plugin("xep_0191")
    await romeo.login()
    await wait(romeo.xmpp.plugin["xep_0191"].block("tybalt@localhost"))
    storage = server.service.storage
    assert await storage.accountData.get("romeo", DOMAIN, "blocklist") is not None

    await wait(romeo.xmpp.plugin["xep_0077"].cancel_registration())

    assert await romeo.closedByServer() == ["not-authorized"]
    with pytest.raises(LoginFailed) as failed:
        await server.login("romeo", "orchard", mechanism="SCRAM-SHA-256")
    assert failed.value.condition == "not-authorized"
    assert not await storage.users.userExists("romeo", DOMAIN)
    assert await storage.accountData.get("romeo", DOMAIN, "blocklist") is None
    # The account can be created again from scratch with the same name.
    await server.addUser("romeo", password("romeo"))


@ensureDeferred
async def test_serverAnnouncesRegister(server):
    """Service discovery on the server lists jabber:iq:register (XEP-0077 §10)."""
    await server.addUser("romeo")
    romeo = server.client("romeo", "orchard")
    romeo.xmpp.register_plugin("xep_0030")
    await romeo.login()
    info = await wait(romeo.xmpp.plugin["xep_0030"].get_info(jid="localhost"))
    assert "jabber:iq:register" in info["disco_info"]["features"]
