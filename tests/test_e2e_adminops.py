"""
End to end: an administrator runs the XEP-0133 commands (L{xmppd.admin.adhoc})
from slixmpp with its C{xep_0050} and C{xep_0133} plugins against a real
node, and sees what a user sees; a user who is not an admin is refused
with C{forbidden} and sees no commands.
"""

from __future__ import annotations

import asyncio

import pytest_twisted
import slixmpp.exceptions
from twisted.internet import defer

from tests.e2e import DOMAIN, TIMEOUT, LoginFailed, wait

ADMIN_NS = "http://jabber.org/protocol/admin"
PLUGINS = ("xep_0030", "xep_0004", "xep_0050", "xep_0133")
ADMIN = f"admin@{DOMAIN}"


async def adminNode(makeServer):
    server = await makeServer({"server": {"admins": [ADMIN]}})
    for user in ("admin", "romeo", "juliet"):
        await server.addUser(user)
    return server


async def commandClient(server, user: str, resource: str = "console"):
    client = server.client(user, resource)
    for plugin in PLUGINS:
        client.xmpp.register_plugin(plugin)
    await client.login()
    return client


def run(client, name: str, **fields) -> defer.Deferred:
    """
    Run the XEP-0133 command C{name} with slixmpp's command workflow
    (C{xep_0133.<name>}, then C{xep_0050.complete_command} with a form of
    C{fields}); fires with the completed answer's <command/>, or fails with
    the error's condition.
    """
    xmpp = client.xmpp

    async def go():
        done = asyncio.get_running_loop().create_future()

        def onNext(iq, session):
            command = iq["command"]
            if command["status"] != "executing":
                if not done.done():
                    done.set_result(command)
                return
            form = xmpp.plugin["xep_0004"].make_form(ftype="submit")
            form.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN_NS)
            for var, value in fields.items():
                form.add_field(var=var.replace("_", "-") if var != "max_items" else var,
                               value=value)
            session["payload"] = form
            session["next"] = onNext
            xmpp.plugin["xep_0050"].complete_command(session)

        def onError(iq, session):
            if not done.done():
                done.set_exception(LoginFailed(iq["error"]["condition"]))

        getattr(xmpp.plugin["xep_0133"], name.replace("-", "_"))(
            session={"next": onNext, "error": onError})
        return await asyncio.wait_for(done, TIMEOUT)

    return wait(go())


def noteOf(command) -> str:
    return command.xml.find("{http://jabber.org/protocol/commands}note").text


def values(command, var: str) -> list[str]:
    form = command["form"]
    value = form.get_fields()[var]["value"]
    return value if isinstance(value, list) else [value]


@pytest_twisted.ensureDeferred
async def test_adminRunsEachCommand(makeServer):
    """Every XEP-0133 command xmppd offers, run by an admin, does what it says."""
    server = await adminNode(makeServer)
    admin = await commandClient(server, "admin")
    romeo = await server.login("romeo", "orchard")

    items = await wait(admin.xmpp.plugin["xep_0133"].get_commands())
    nodes = {item[1] for item in items["disco_items"]["items"]}
    for name in ("add-user", "delete-user", "disable-user", "reenable-user",
                 "change-user-password", "end-user-session", "get-online-users-list",
                 "get-online-users-num", "get-active-users", "get-registered-users-num",
                 "announce", "set-motd", "edit-motd", "delete-motd", "user-stats"):
        assert f"{ADMIN_NS}#{name}" in nodes

    assert noteOf(await run(admin, "add-user", accountjid=f"tybalt@{DOMAIN}",
                            password="pr1nce-of-cats", password_verify="pr1nce-of-cats")
                  ) == f"added tybalt@{DOMAIN}"
    await server.login("tybalt", secret="pr1nce-of-cats")
    await run(admin, "change-user-password", accountjid=f"tybalt@{DOMAIN}",
              password="n3w-cat-pass")
    await server.login("tybalt", "again", secret="n3w-cat-pass")

    assert values(await run(admin, "get-registered-users-num"), "registeredusersnum") == ["4"]
    assert values(await run(admin, "get-online-users-num"), "onlineusersnum") == ["3"]
    online = values(await run(admin, "get-online-users-list", max_items="none"),
                    "onlineuserjids")
    assert sorted(str(j) for j in online) == [ADMIN, f"romeo@{DOMAIN}", f"tybalt@{DOMAIN}"]
    active = values(await run(admin, "get-active-users", max_items="none"), "activeuserjids")
    assert f"romeo@{DOMAIN}/orchard" in [str(j) for j in active]
    stats = await run(admin, "user-stats", accountjid=f"romeo@{DOMAIN}")
    assert values(stats, "onlineresources") == ["orchard"]

    assert noteOf(await run(admin, "announce", subject="Notice",
                            announcement="Maintenance at noon")) == "sent to 4 sessions"
    message = await romeo.nextMessage()
    assert (message["from"], message["type"], message["body"]) == (
        DOMAIN, "headline", "Maintenance at noon")

    await run(admin, "set-motd", motd="Welcome to Verona")
    juliet = await server.login("juliet", "balcony")
    motd = await juliet.nextMessage()
    assert (motd["from"], motd["body"]) == (DOMAIN, "Welcome to Verona")
    await run(admin, "edit-motd", motd="Welcome back to Verona")
    await run(admin, "delete-motd")

    assert noteOf(await run(admin, "end-user-session", accountjids=[f"romeo@{DOMAIN}"])
                  ) == "ended 1 session"
    assert await romeo.closedByServer() == ["policy-violation"]

    await run(admin, "disable-user", accountjids=[f"juliet@{DOMAIN}"])
    assert await juliet.closedByServer() == ["not-authorized"]
    try:
        await server.login("juliet", "tomb")
        raise AssertionError("a disabled account logged in")
    except LoginFailed as e:
        assert e.condition == "account-disabled"
    await run(admin, "reenable-user", accountjids=[f"juliet@{DOMAIN}"])
    await server.login("juliet", "tomb")

    await run(admin, "delete-user", accountjids=[f"tybalt@{DOMAIN}"])
    assert values(await run(admin, "get-registered-users-num"), "registeredusersnum") == ["3"]


@pytest_twisted.ensureDeferred
async def test_nonAdminIsForbidden(makeServer):
    """A user who is not an admin is shown no commands and is refused with forbidden."""
    server = await adminNode(makeServer)
    romeo = await commandClient(server, "romeo")
    try:
        await wait(romeo.xmpp.plugin["xep_0133"].get_commands())
        raise AssertionError("a non-admin was shown the commands")
    except slixmpp.exceptions.IqError as e:
        # A node with nothing in it for the asker (XEP-0030 §4.1).
        assert e.condition == "item-not-found"
    try:
        await run(romeo, "add-user", accountjid=f"evil@{DOMAIN}", password="x1234567")
        raise AssertionError("a non-admin ran add-user")
    except LoginFailed as e:
        assert e.condition == "forbidden"
