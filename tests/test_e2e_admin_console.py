"""
The web console (L{xmppd.admin.console}) in a real browser: headless
Chromium through Debian's chromedriver, the same set-up as
L{tests.test_e2e_browser}, on the node's HTTPS listener.  The admin logs
in, watches the status graph update, adds an account (which slixmpp then
logs in with), sends an announcement a slixmpp client receives, destroys a
room a slixmpp occupant is in (it gets the destroy presence with the
reason), sees a slixmpp component on the s2s and components page, and
kicks a client's session (slixmpp sees its stream end).  Screenshots are
kept under the test's C{tmp_path} (their paths printed): C{connections.png}
and C{console.png} when all passed, C{failure.png} (with the browser's
console) when a step failed.

Skips, saying why, only when Chromium, chromedriver or Selenium is not
installed.
"""

from __future__ import annotations

import os

import pytest
import pytest_twisted

from tests.e2e import DOMAIN, _deferred, password
from tests.test_e2e_browser import CHROMEDRIVER, CHROMIUM, Browser, failed, step
from tests.test_e2e_components import COMPONENT, SECRET, Component
from tests.test_e2e_muc import NS_MUC_USER, createRoom, mucClient

ensureDeferred = pytest_twisted.ensureDeferred

ADMIN = f"admin@{DOMAIN}"
ROOM = f"chapel@conference.{DOMAIN}"


def needBrowser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        pytest.skip("chromedriver is not installed (Debian: apt-get install chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("Selenium is not installed (pip install '.[test]')")


class Console(Browser):
    """What an admin does in the console."""

    def logIn(self, jid: str, secret: str) -> None:
        self.visible("#jid").send_keys(jid)
        self.visible("#password").send_keys(secret)
        self.visible("form#login button[type=submit]").click()

    def graphUpdated(self, samples: int) -> None:
        """The status graph drew at least C{samples} polls of status.json."""
        canvas = self.visible("canvas#graph")
        self.until(lambda driver: int(canvas.get_attribute("data-samples")) >= samples,
                   "the graph did not update %d times" % (samples,))

    def addUser(self, jid: str, secret: str) -> None:
        self.visible("#add-jid").send_keys(jid)
        self.visible("#add-password").send_keys(secret)
        self.visible("form[action='/admin/users/add'] button").click()
        self.visible("#flash", "Added %s." % (jid,))

    def destroyRoom(self, room: str, reason: str) -> None:
        from selenium.webdriver.common.by import By
        self.visible("td.jid", room)
        row = "//tr[td[@class='jid' and text()='%s']]" % (room,)
        self.driver.find_element(By.XPATH, row + "//input[@name='reason']").send_keys(reason)
        self.driver.find_element(By.XPATH, row + "//button").click()
        self.visible("#flash", "Destroyed %s (1 occupant(s) told)." % (room,))

    def connections(self, component: str) -> None:
        """The s2s and components page lists the connected C{component}."""
        self.visible("table#s2s")
        self.visible("table#components td.domain", component)

    def announce(self, text: str) -> None:
        self.visible("#announce-text").send_keys(text)
        self.visible("form[action='/admin/announce'] button").click()
        self.visible("#flash", "Sent to")

    def kick(self, jid: str) -> None:
        from selenium.webdriver.common.by import By
        self.visible("td.jid", jid)
        self.driver.find_element(
            By.XPATH, "//tr[td[@class='jid' and text()='%s']]//button" % (jid,)).click()
        self.visible("#flash", "Ended 1 session(s) of %s." % (jid,))


@ensureDeferred
async def test_adminConsole(makeServer, tmp_path):
    """The admin's tour of the console (see the module docstring)."""
    needBrowser()
    server = await makeServer({"server": {"admins": [ADMIN]}, "components": {
        "listen": "tcp:0:interface=127.0.0.1", "secrets": {COMPONENT: SECRET}}})
    for user in ("admin", "romeo", "juliet"):
        await server.addUser(user)
    romeo = server.client("romeo", "desk")
    await romeo.login()
    juliet = await mucClient(server, "juliet", "balcony")
    await createRoom(juliet, ROOM, "Juliet")
    port = (await server.node.service.getServiceNamed("components").ready).getHost().port
    component = Component(port)
    await component.connect()
    base = "https://localhost:%d/admin" % (server.node.httpsPort,)
    browser = await step(Console, tmp_path)
    try:
        await step(browser.open, base + "/login")
        await step(browser.logIn, ADMIN, password("admin"))
        await step(browser.graphUpdated, 2)

        await step(browser.open, base + "/users")
        await step(browser.addUser, f"newbie@{DOMAIN}", "fresh secret")
        newbie = server.client("newbie", secret="fresh secret")
        await newbie.login()

        await step(browser.open, base + "/announce")
        await step(browser.announce, "maintenance at noon")
        message = await romeo.nextMessage()
        assert message["body"] == "maintenance at noon"
        assert message["type"] == "headline"

        await step(browser.open, base + "/rooms")
        await step(browser.destroyRoom, ROOM, "the chapel closes")
        gone = await juliet.inbox.presence(ROOM + "/Juliet", "unavailable")
        destroy = gone.xml.find("{%s}x/{%s}destroy" % (NS_MUC_USER, NS_MUC_USER))
        assert destroy.findtext("{%s}reason" % NS_MUC_USER) == "the chapel closes"

        await step(browser.open, base + "/connections")
        await step(browser.connections, COMPONENT)
        print("\nscreenshot of the s2s and components page: %s" % (
            await step(browser.screenshot, "connections.png"),))

        await step(browser.open, base + "/sessions")
        await step(browser.kick, f"romeo@{DOMAIN}/desk")
        await romeo.closedByServer()

        await step(browser.open, base + "/")
        # A few polls, so the screenshot shows lines, not a point.
        await step(browser.graphUpdated, 3)
        console = await step(browser.console)
        with open(console, encoding="utf-8") as f:
            violations = [line for line in f if "Content Security Policy" in line]
        assert violations == [], "the console broke its own CSP; see %s" % (console,)
        print("\nscreenshot of the console: %s" % (await step(browser.screenshot,
                                                                "console.png"),))
    except BaseException:
        await failed(browser)
        raise
    finally:
        await step(browser.quit)
        await _deferred(component.close)()
