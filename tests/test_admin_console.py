"""
The web console (L{xmppd.admin.console}) in memory: a whole node
(L{tests.streamhelpers.Node}) with its admin operations, the HTTP service
on fake connections, time from a L{Clock}.  Login (admins only, the same
answer for every refusal, failures delayed), the session cookie's flags,
CSRF (token, Origin), each action reaching its admin operation, and
escaping of hostile names.  The browser is L{tests.test_e2e_admin_console}.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from twisted.application import service
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from xmppd.admin.console import COOKIE, PATH, REFUSED, SESSION_IDLE, AdminConsole
from xmppd.admin.service import AdminService
from xmppd.http.service import HTTPService
from tests.streamhelpers import DOMAIN, PASSWORDS, Node
from tests.test_adminops import HALL, SERVICE, addMUC, destroyPresence, persistentHall, succeed
from tests.test_http import connect

ADMIN = f"juliet@{DOMAIN}"
HOST = b"example.org:5280"


class C2S(service.Service):
    """Stands in for the c2s service: the node's one factory, found by name."""

    name = "c2s"

    def __init__(self, factory):
        self.factories = [factory]


def dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            break
        body, data = body + data[:length], data[length + 2:]
    return body


class Response:
    def __init__(self, raw: bytes):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.code = int(lines[0].split()[1])
        self.headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.lower(), []).append(value.strip())
        if "chunked" in (self.header("transfer-encoding") or ""):
            self.body = dechunk(self.body)
        self.text = self.body.decode("utf-8")

    def header(self, name):
        return self.headers.get(name, [None])[0]


class Console:
    """The node and a browser of the console: its cookie and its CSRF token."""

    def __init__(self, node):
        self.node = node
        self.web = HTTPService(node.server, None, reactor=node.clock)
        self.console = AdminConsole(node.server)
        self.web.putChild(PATH, self.console)
        self.cookie = None

    def request(self, method, path, fields=None, host="127.0.0.1", https=False,
                origin="default", cookie="default"):
        channel, transport = connect(self.web.site, host)
        if https:
            channel.isSecure = lambda: True
        headers = [b"Host: " + HOST]
        if origin == "default":
            origin = ("https://" if https else "http://") + HOST.decode()
        if origin is not None and method == "POST":
            headers.append(b"Origin: " + origin.encode())
        cookie = self.cookie if cookie == "default" else cookie
        if cookie:
            headers.append(b"Cookie: %s=%s" % (COOKIE, cookie.encode()))
        body = urlencode(fields or {}).encode()
        if method == "POST":
            headers += [b"Content-Type: application/x-www-form-urlencoded",
                        b"Content-Length: %d" % len(body)]
        channel.dataReceived(b"%s %s HTTP/1.1\r\n%s\r\n\r\n%s" % (
            method.encode(), path.encode(), b"\r\n".join(headers), body if method == "POST" else b""))
        response = Response(transport.value())
        # The browser goes: no idle connection left for the Clock to time out.
        channel.connectionLost(Failure(ConnectionDone()))
        return response

    def logIn(self, jid=ADMIN, password=PASSWORDS["juliet"], **kw):
        response = self.request("POST", "/admin/login", {"jid": jid, "password": password}, **kw)
        for cookie in response.headers.get("set-cookie", []):
            self.cookie = cookie.split(";")[0].partition("=")[2]
        return response

    def token(self, page="/admin/"):
        return re.search(r'name="csrf" value="([^"]+)"', self.request("GET", page).text).group(1)

    def post(self, path, **fields):
        return self.request("POST", path, dict(fields, csrf=self.token()))


@pytest.fixture
def node(tmp_path):
    node = Node(tmp_path, features=("disco",), server={"admins": [ADMIN]})
    C2S(node.factory).setServiceParent(node.server)
    node.admin = AdminService(node.server, reactor=node.clock)
    node.admin.serveDomain(node.local)
    node.ops = node.admin.operations
    return node


@pytest.fixture
def browser(node):
    return Console(node)


def test_loginAdmin(browser):
    """An admin's JID and password open a session: a cookie, then the status page."""
    assert browser.request("GET", "/admin/").code == 303
    response = browser.logIn()
    assert response.code == 303
    assert response.header("location") == "/admin/"
    page = browser.request("GET", "/admin/")
    assert page.code == 200
    assert 'id="graph"' in page.text and "juliet@example.org" in page.text
    assert "default-src 'self'" in page.header("content-security-policy")
    assert "script-src 'self';" in page.header("content-security-policy")


def test_cookieFlags(browser):
    """HttpOnly, SameSite=Strict and Path always; Secure over TLS (not over loopback HTTP)."""
    plain = browser.logIn().header("set-cookie")
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Path=/admin" in plain
    assert "Secure" not in plain
    secure = browser.logIn(https=True, host="192.0.2.7").header("set-cookie")
    assert "Secure" in secure and "HttpOnly" in secure and "SameSite=Strict" in secure


def test_plainHTTPFromElsewhere(browser):
    """Over plain HTTP only loopback clients get the console: a password is never sent in clear."""
    response = browser.request("GET", "/admin/login", host="192.0.2.7")
    assert response.code == 403 and b"HTTPS" in response.body
    assert browser.request("GET", "/admin/login", host="192.0.2.7", https=True).code == 200


@pytest.mark.parametrize("jid,password", [
    (ADMIN, "wrong"),                               # wrong password
    (f"romeo@{DOMAIN}", PASSWORDS["romeo"]),        # not an admin
    (f"nobody@{DOMAIN}", "whatever"),               # no such account
    ("juliet@elsewhere.test", PASSWORDS["juliet"]),  # not served
    ("@@", "x"),                                    # not a JID
])
def test_loginRefused(browser, jid, password):
    """Every refusal is the same 403 page and sets no cookie."""
    response = browser.logIn(jid, password)
    assert response.code == 403
    assert REFUSED.replace(",", "") in response.text.replace(",", "")
    assert "set-cookie" not in response.headers
    assert browser.console.sessions == {}


def test_failedLoginsDelayed(browser):
    """After a failure the next attempt from that address waits (the Clock), then is answered."""
    assert browser.logIn(password="wrong").code == 403
    channel, transport = connect(browser.web.site, "127.0.0.1")
    body = urlencode({"jid": ADMIN, "password": PASSWORDS["juliet"]}).encode()
    channel.dataReceived(b"POST /admin/login HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                         b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                         % (HOST, len(body), body))
    assert transport.value() == b""
    browser.node.clock.advance(1)
    assert Response(transport.value()).code == 303


def test_sessionExpires(browser):
    """A session unused for SESSION_IDLE seconds is gone; logout ends it at once."""
    browser.logIn()
    assert browser.request("GET", "/admin/").code == 200
    browser.node.clock.advance(SESSION_IDLE + 1)
    assert browser.request("GET", "/admin/").code == 303
    browser.logIn()
    response = browser.post("/admin/logout")
    assert response.code == 303 and "Max-Age=0" in response.header("set-cookie")
    assert browser.request("GET", "/admin/").code == 303


def test_csrfRefused(browser):
    """A POST without the token, or with a wrong one, does nothing."""
    browser.logIn()
    for fields in ({}, {"csrf": "wrong"}):
        response = browser.request("POST", "/admin/users/add",
                                   dict(fields, jid=f"mallory@{DOMAIN}", password="p"))
        assert response.code == 403
    assert ("mallory", DOMAIN) not in browser.node.server.storage.users._accounts


def test_originChecked(browser):
    """A POST from another origin is refused even with the token; login too."""
    browser.logIn()
    token = browser.token()
    response = browser.request("POST", "/admin/users/add", {
        "csrf": token, "jid": f"mallory@{DOMAIN}", "password": "p"},
        origin="https://evil.example")
    assert response.code == 403 and b"cross-origin" in response.body
    assert browser.request("POST", "/admin/login", {"jid": ADMIN, "password": "x"},
                           origin="null").code == 403
    # A POST with the token and without an Origin (not a browser) is served.
    response = browser.request("POST", "/admin/users/add", {
        "csrf": token, "jid": f"mallory@{DOMAIN}", "password": "p"}, origin=None)
    assert response.code == 303


def test_statusJSON(browser):
    """status.json: counters for the graph; for a logged-in admin only."""
    assert browser.request("GET", "/admin/status.json").code == 403
    browser.logIn()
    browser.node.server.metrics.reactorLag = 0.25
    response = browser.request("GET", "/admin/status.json")
    import json
    sample = json.loads(response.body)
    assert sample["lag"] == 0.25 and sample["sessions"] == 0 and "stanzas" in sample
    script = browser.request("GET", "/admin/console.js")
    assert b"/admin/status.json" in script.body and b"2000" in script.body


def spy(monkeypatch, ops, name):
    calls = []
    original = getattr(ops, name)

    def recorder(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)
    monkeypatch.setattr(ops, name, recorder)
    return calls


def test_actionsCallOperations(browser, monkeypatch):
    """Each form reaches its admin operation, and the page says what happened."""
    ops = browser.node.ops
    browser.logIn()
    added = spy(monkeypatch, ops, "addUser")
    assert browser.post("/admin/users/add", jid=f"tybalt@{DOMAIN}", password="pw").code == 303
    assert [str(a[0]) for a in added] == [f"tybalt@{DOMAIN}"]
    assert "Added tybalt@example.org." in browser.request("GET", "/admin/users").text
    changed = spy(monkeypatch, ops, "changePassword")
    browser.post("/admin/users/password", jid=f"tybalt@{DOMAIN}", password="new")
    assert [(str(a[0]), a[1]) for a in changed] == [(f"tybalt@{DOMAIN}", "new")]
    deleted = spy(monkeypatch, ops, "deleteUser")
    browser.post("/admin/users/delete", jid=f"tybalt@{DOMAIN}")
    assert [str(a[0]) for a in deleted] == [f"tybalt@{DOMAIN}"]
    assert ("tybalt", DOMAIN) not in browser.node.server.storage.users._accounts
    ended = spy(monkeypatch, ops, "endSessions")
    browser.post("/admin/sessions/kick", jid=f"romeo@{DOMAIN}/phone")
    assert [a[0].full() for a in ended] == [f"romeo@{DOMAIN}/phone"]
    announced = spy(monkeypatch, ops, "announce")
    browser.post("/admin/announce", domain=DOMAIN, text="maintenance", subject="")
    assert announced == [(DOMAIN, "maintenance", None)]
    assert "Sent to 0 session(s)" in browser.request("GET", "/admin/announce").text


def test_kickEndsSession(browser):
    """Kick on the sessions page ends a bound client's session."""
    client = browser.node.connect()
    client.login("romeo", "phone")
    browser.logIn()
    assert f"romeo@{DOMAIN}/phone" in browser.request("GET", "/admin/sessions").text
    browser.post("/admin/sessions/kick", jid=f"romeo@{DOMAIN}/phone")
    page = browser.request("GET", "/admin/sessions").text
    assert f"Ended 1 session(s) of romeo@{DOMAIN}/phone." in page
    assert client.transport.disconnecting


def test_operationErrorShown(browser):
    """A refused operation is a message on the page, not an error."""
    browser.logIn()
    browser.post("/admin/users/add", jid="not a jid", password="p")
    assert "Refused:" in browser.request("GET", "/admin/users").text
    browser.post("/admin/users/add", jid="x@elsewhere.test", password="p")
    assert "not served here" in browser.request("GET", "/admin/users").text


def test_hostileNamesEscaped(browser):
    """A JID or room name with markup in it is shown as text."""
    hostile = "<script>alert(1)</script>"
    browser.node.server.storage.users._accounts[("x\"><img src=x>", DOMAIN)] = {}
    browser.logIn()
    users = browser.request("GET", "/admin/users?q=" + "%3Cscript%3E").text
    assert "<script>alert" not in users and "&lt;script&gt;" in users
    users = browser.request("GET", "/admin/users").text
    assert "<img src=x>" not in users and "&lt;img src=x&gt;" in users
    browser.post("/admin/users/add", jid=hostile + "@" + DOMAIN, password="p")
    page = browser.request("GET", "/admin/users").text
    assert "<script>alert" not in page


def test_roomsListed(browser, monkeypatch):
    """Rooms of the admin's domains are listed (escaped), each with a Destroy form."""
    monkeypatch.setattr(browser.node.ops, "rooms", lambda: [
        {"jid": "<b>bad</b>@conference.example.org", "occupants": 2, "persistent": True,
         "domain": DOMAIN},
        {"jid": "hidden@conference.elsewhere.test", "occupants": 1, "persistent": False,
         "domain": "elsewhere.test"}])
    browser.logIn()
    page = browser.request("GET", "/admin/rooms").text
    assert "&lt;b&gt;bad&lt;/b&gt;@conference.example.org" in page and "<b>bad" not in page
    assert "hidden@" not in page
    assert page.count('action="/admin/rooms/destroy"') == 2  # The row's, and by address.


def test_destroyRoom(browser):
    """Destroy sends the occupants out with the reason and removes the room; CSRF-checked."""
    node = browser.node
    muc = addMUC(node)
    [romeo] = persistentHall(node)
    browser.logIn()
    assert HALL in browser.request("GET", "/admin/rooms").text
    for fields in ({}, {"csrf": "wrong"}):
        response = browser.request("POST", "/admin/rooms/destroy", dict(fields, room=HALL))
        assert response.code == 403
    response = browser.request("POST", "/admin/rooms/destroy", {"room": HALL},
                               origin="https://evil.example")
    assert response.code == 403
    assert "hall" in muc.rooms and romeo.received().elements == []
    assert browser.post("/admin/rooms/destroy", room=HALL, reason="curtain").code == 303
    destroy = destroyPresence(romeo, "Romeo")
    assert [str(r) for r in destroy.elements(destroy.uri, "reason")] == ["curtain"]
    page = browser.request("GET", "/admin/rooms").text
    assert f"Destroyed {HALL} (1 occupant(s) told)." in page
    assert "hall" not in muc.rooms
    assert succeed(node.server.storage.rooms.get(SERVICE, "hall")) is None
    browser.post("/admin/rooms/destroy", room=HALL)
    assert f"Refused: there is no room {HALL}" in browser.request("GET", "/admin/rooms").text


def test_destroyRoomRefused(browser):
    """Logged out, or not an admin of the room's domain: the room stays."""
    node = browser.node
    muc = addMUC(node)
    persistentHall(node)
    response = browser.request("POST", "/admin/rooms/destroy", {"room": HALL, "csrf": "x"})
    assert response.code == 403 and b"log in first" in response.body
    # The service beside a domain this admin does not administer.
    muc.servedDomain = "elsewhere.test"
    browser.logIn()
    browser.post("/admin/rooms/destroy", room=HALL)
    page = browser.request("GET", "/admin/rooms").text
    assert f"Refused: you do not administer the rooms of {SERVICE}" in page
    browser.post("/admin/logout")
    # A user who is no admin gets no session to post with.
    assert browser.logIn(f"romeo@{DOMAIN}", PASSWORDS["romeo"]).code == 403
    response = browser.request("POST", "/admin/rooms/destroy", {"room": HALL, "csrf": "x"})
    assert response.code == 403 and b"log in first" in response.body
    assert "hall" in muc.rooms


def test_connectionsPage(browser):
    """The s2s streams and components, as xmppctl connections lists them, escaped."""

    class S2S(service.Service):
        name = "s2s"

        def connections(self):
            return [{"direction": "in", "local": DOMAIN, "remote": "<i>x</i>.example",
                     "method": "EXTERNAL", "peer": "192.0.2.7:5269", "since": 0.0,
                     "encrypted": True, "bidi": False},
                    {"direction": "out", "local": DOMAIN, "remote": "example.net",
                     "method": "dialback", "peer": "192.0.2.8:5269", "since": 60.0,
                     "encrypted": True, "bidi": True}]

    class Components(service.Service):
        name = "components"

        def connections(self):
            return [("muc.example.org", "127.0.0.1:4000", 0.0)]

    S2S().setServiceParent(browser.node.server)
    Components().setServiceParent(browser.node.server)
    assert browser.request("GET", "/admin/connections").code == 303
    browser.logIn()
    page = browser.request("GET", "/admin/connections").text
    assert 'href="/admin/connections"' in page
    rows = re.findall(r'<tr class="s2s">(.*?)</tr>', page)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert cells == [
        ["in", DOMAIN, "&lt;i&gt;x&lt;/i&gt;.example", "EXTERNAL", "yes", "no",
         "192.0.2.7:5269", "1970-01-01 00:00:00"],
        ["out", DOMAIN, "example.net", "dialback", "yes", "yes", "192.0.2.8:5269",
         "1970-01-01 00:01:00"]]
    assert re.findall(r'<tr class="component"><td class="domain">(.*?)</td>', page) == [
        "muc.example.org"]
