# -*- test-case-name: tests.test_admin_console -*-
"""
The web console (issue 17, item 4): C{/admin} on the node's HTTP service,
for the node's administrators (C{server.admins}, and a host's C{admins} for
that host), as Openfire's and ejabberd's web admins are.  It has no logic
of its own: every action calls L{xmppd.admin.operations.AdminOperations},
as the ad-hoc commands and C{xmppctl} do, so the three cannot disagree.

Login: the account's bare JID and password, checked against the stored
SCRAM credentials (L{xmppd.core.scram.checkPassword}, as SASL PLAIN does);
only an admin of some served domain gets in, and a refusal never says
whether the account exists or is merely not an admin.  Failures from one
address are delayed like c2s's (L{xmppd.stream.limits.AuthFailureTracker}).

A session is a random id in the cookie C{xmppd_admin} (C{HttpOnly},
C{SameSite=Strict}, C{Path=/admin}, and C{Secure} when the browser's
connection is TLS: our HTTPS listener or a trusted proxy's); the server
keeps the session, which expires L{SESSION_IDLE} seconds after its last
use (the node's clock) or at logout.  A password must not cross the
network in clear, so over plain HTTP the console answers loopback clients
only (a browser on the node itself, or an SSH tunnel); elsewhere it asks
for HTTPS.  That is also why C{Secure} is left off over plain HTTP: a
browser drops a C{Secure} cookie set over plain HTTP, and loopback traffic
never leaves the machine.

CSRF: every POST carries the session's token in a hidden field, compared
in constant time; the cookie is C{SameSite=Strict}; and a POST whose
C{Origin} (or, without one, C{Referer}) is not this very origin is refused.

Pages: the status with its live graph; users (search, add, delete, reset
a password); sessions (kick); rooms (list, and destroy one as its owner
would, XEP-0045 §10.9, for the admins of the domain the MUC service is
beside); the s2s streams and components (read-only, what C{xmppctl
connections} prints); announcements.  A page lists what the admin's
domains hold, but the s2s and components page, which is the node's.

Pages are rendered here, escaped throughout (a JID, room or nick is data,
never markup), under a Content-Security-Policy of C{default-src 'self'}
with no inline script: the live graph of the status page is
C{/admin/console.js}, which polls C{/admin/status.json} every 2 seconds.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import secrets
import time
from urllib.parse import urlsplit

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.words.protocols.jabber.jid import InvalidFormat, JID

from xmppd.admin.operations import OperationError
from xmppd.core import scram
from xmppd.stream.limits import AuthFailureTracker

#: Where the console is served.
PATH = "admin"

#: The session cookie's name.
COOKIE = b"xmppd_admin"

#: Seconds a session lives after its last request.
SESSION_IDLE = 30 * 60

#: Sessions kept at most (the oldest is dropped first): bounded memory.
MAX_SESSIONS = 1000

#: Failed logins: the delay of c2s (1 s doubling, at most 30 s).
FAILURE_DELAY = 1.0
FAILURE_DELAY_MAX = 30.0

#: What a refused login says, whatever the reason.
REFUSED = "Wrong JID or password, or not an administrator."

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'")


def esc(value) -> str:
    """Any value as HTML text or attribute (quotes too)."""
    return html.escape(str(value), quote=True)


def since(when) -> str:
    """A connection's start (the node's clock, epoch seconds) as UTC text."""
    if not isinstance(when, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSession:
    """One admin logged in: who, the CSRF token, when it expires, a message to show once."""

    def __init__(self, jid: str, token: str, expires: float):
        self.jid = jid
        self.token = token
        self.expires = expires
        self.flash = ""


class AdminConsole(resource.Resource):
    """C{/admin} and below (see the module docstring)."""

    isLeaf = True
    log = Logger()

    def __init__(self, server, clock=None):
        super().__init__()
        # Not "server": putChild sets a resource's server attribute.
        self.xmpp = server
        self.clock = clock if clock is not None else server.clock
        self.sessions: dict[str, ConsoleSession] = {}
        self.failures = AuthFailureTracker(FAILURE_DELAY, FAILURE_DELAY_MAX, clock=self.clock)

    @property
    def ops(self):
        return self.xmpp.adminOperations

    # -- sessions ----------------------------------------------------------

    def adminDomains(self, jid: str) -> list[str]:
        return [d for d in self.ops.domains if self.ops.isAdmin(jid, d)]

    def session(self, request) -> ConsoleSession | None:
        sid = request.getCookie(COOKIE)
        now = self.clock.seconds()
        for key in [k for k, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[key]
        if not sid:
            return None
        found = self.sessions.get(sid.decode("ascii", "replace"))
        # An admin removed from the configuration is out at once.
        if found is None or not self.adminDomains(found.jid):
            return None
        found.expires = now + SESSION_IDLE
        return found

    def openSession(self, request, jid: str) -> ConsoleSession:
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        sid = secrets.token_urlsafe(32)
        session = self.sessions[sid] = ConsoleSession(
            jid, secrets.token_urlsafe(32), self.clock.seconds() + SESSION_IDLE)
        self.setCookie(request, sid)
        return session

    def setCookie(self, request, value: str, maxAge: int | None = None) -> None:
        cookie = "%s=%s; Path=/admin; HttpOnly; SameSite=Strict" % (COOKIE.decode(), value)
        if maxAge is not None:
            cookie += "; Max-Age=%d" % (maxAge,)
        if getattr(request, "viaTLS", False):
            cookie += "; Secure"
        request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode("ascii"))

    # -- request checks ----------------------------------------------------

    def origin(self, request) -> str:
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
        return ("https" if getattr(request, "viaTLS", False) else "http") + "://" + host

    def sameOrigin(self, request) -> bool:
        """A POST from a page of this console (the Origin, else the Referer, is ours)."""
        expected = self.origin(request)
        origin = request.getHeader(b"origin")
        if origin is not None:
            return origin.decode("ascii", "replace") == expected
        referer = request.getHeader(b"referer")
        if referer is not None:
            parts = urlsplit(referer.decode("ascii", "replace"))
            return "%s://%s" % (parts.scheme, parts.netloc) == expected
        # Neither header (not a browser): the CSRF token still has to match.
        return True

    def field(self, request, name: str) -> str:
        value = request.args.get(name.encode(), [b""])[0]
        return value.decode("utf-8", "replace")

    # -- dispatch ----------------------------------------------------------

    def render(self, request):
        request.setHeader(b"content-security-policy", POLICY.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"same-origin")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-frame-options", b"DENY")
        if not getattr(request, "viaTLS", False) and not loopback(
                getattr(request, "clientHost", "")):
            return self.plain(request, 403, "The web console needs HTTPS "
                              "(over plain HTTP it answers loopback clients only).\n")
        path = "/".join(p.decode("utf-8", "replace") for p in request.postpath).strip("/")
        method = request.method
        if path == "console.js" and method == b"GET":
            request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
            return SCRIPT.encode("utf-8")
        if method == b"POST" and not self.sameOrigin(request):
            return self.plain(request, 403, "cross-origin request refused\n")
        if path == "login":
            if method == b"POST":
                return self.later(request, self.logIn(request))
            if method in (b"GET", b"HEAD"):
                return self.loginPage(request)
            return self.plain(request, 405, "GET or POST\n")
        session = self.session(request)
        if session is None:
            if method == b"GET" and path != "status.json":
                return self.redirect(request, "/admin/login")
            return self.plain(request, 403, "log in first\n")
        if method == b"POST":
            token = self.field(request, "csrf")
            if not hmac.compare_digest(token.encode("utf-8"), session.token.encode("ascii")):
                return self.plain(request, 403, "stale or missing form token: reload the page\n")
            action = ACTIONS.get(path)
            if action is None:
                return self.plain(request, 404, "no such action\n")
            return self.later(request, self.act(request, session, action))
        if method not in (b"GET", b"HEAD"):
            return self.plain(request, 405, "GET or POST\n")
        page = PAGES.get(path)
        if page is None:
            return self.plain(request, 404, "no such page\n")
        return self.later(request, getattr(self, page)(request, session))

    def later(self, request, coroutine):
        """Answer when C{coroutine} has the body; a failure is a 500 without its details."""
        def done(body):
            if not request._disconnected and not request.finished:
                request.write(body)
                request.finish()

        def failed(failure):
            self.log.failure("admin console: {uri}", failure, uri=request.uri)
            if not request._disconnected and not request.finished:
                request.setResponseCode(500)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.write(b"internal error (see the node's log)\n")
                request.finish()
        defer.ensureDeferred(coroutine).addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def plain(self, request, code: int, text: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return text.encode("utf-8")

    def redirect(self, request, where: str) -> bytes:
        request.setResponseCode(303)
        request.setHeader(b"location", where.encode("ascii"))
        return b""

    # -- login -------------------------------------------------------------

    def loginPage(self, request, message: str = "") -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        body = ('<h1>xmppd console</h1>%s<form method="post" action="/admin/login" id="login">'
                '<label>JID <input name="jid" id="jid" autocomplete="username" required></label> '
                '<label>Password <input type="password" name="password" id="password" '
                'autocomplete="current-password" required></label> '
                '<button type="submit">Log in</button></form>'
                % ('<p class="error">%s</p>' % esc(message) if message else ""))
        return (LAYOUT % {"title": "Log in", "nav": "", "body": body}).encode("utf-8")

    async def logIn(self, request) -> bytes:
        host = getattr(request, "clientHost", "local")
        delay = self.failures.delayFor(host)
        if delay:
            await task.deferLater(self.clock, delay, lambda: None)
        jid = self.field(request, "jid").strip()
        password = self.field(request, "password")
        if await self.checkAdmin(jid, password):
            self.failures.recordSuccess(host)
            self.openSession(request, JID(jid).userhost())
            self.log.info("admin console: {jid} logged in from {host}",
                          jid=JID(jid).userhost(), host=host)
            return self.redirect(request, "/admin/")
        self.failures.recordFailure(host)
        request.setResponseCode(403)
        return self.loginPage(request, REFUSED)

    async def checkAdmin(self, text: str, password: str) -> bool:
        """The password is the account's, and the account administers a served domain."""
        try:
            jid = JID(text)
        except (InvalidFormat, ValueError):
            jid = None
        credentials = {}
        if jid is not None and jid.user and jid.host in self.ops.domains and not jid.resource:
            credentials = await self.xmpp.storage.users.getCredentials(
                jid.user, jid.host) or {}
        for mechanism in scram.MECHANISMS:
            credential = credentials.get(mechanism)
            if credential is not None:
                break
        else:
            # The same work as a real check: timing does not tell who exists.
            scram.deriveCredential("sha256", password or "x")
            return False
        if not scram.checkPassword(mechanism, credential, password):
            return False
        return bool(self.adminDomains(jid.userhost()))

    # -- pages -------------------------------------------------------------

    def page(self, request, session, title: str, body: str) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        flash, session.flash = session.flash, ""
        nav = ('<nav><a href="/admin/">Status</a> <a href="/admin/users">Users</a> '
               '<a href="/admin/sessions">Sessions</a> <a href="/admin/rooms">Rooms</a> '
               '<a href="/admin/connections">s2s and components</a> '
               '<a href="/admin/announce">Announcements</a> '
               '<form method="post" action="/admin/logout" class="inline">%s'
               '<button type="submit">Log out %s</button></form></nav>'
               % (self.csrf(session), esc(session.jid)))
        if flash:
            body = '<p class="flash" id="flash">%s</p>' % esc(flash) + body
        return (LAYOUT % {"title": esc(title), "nav": nav, "body": body}).encode("utf-8")

    def csrf(self, session) -> str:
        return '<input type="hidden" name="csrf" value="%s">' % esc(session.token)

    def form(self, session, action: str, fields: str, button: str) -> str:
        return ('<form method="post" action="/admin/%s">%s%s <button type="submit">%s</button>'
                '</form>' % (esc(action), self.csrf(session), fields, esc(button)))

    async def statusPage(self, request, session) -> bytes:
        stats = await self.ops.stats()
        rows = "".join("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            esc(d), esc(v["registered"]), esc(v["online"]), esc(v["sessions"]))
            for d, v in sorted(stats["users"]["domains"].items()))
        body = ('<h1>Status of %s</h1>'
                '<p>Sessions <b id="sessions">%s</b>, stanzas/s <b id="rate">-</b>, '
                'reactor lag <b id="lag">-</b> ms</p>'
                '<canvas id="graph" width="720" height="200" data-samples="0"></canvas>'
                '<p class="legend"><span class="s">sessions</span> '
                '<span class="r">stanzas/s</span> <span class="l">lag (ms)</span></p>'
                '<table><tr><th>Domain</th><th>Accounts</th><th>Online</th><th>Sessions</th></tr>'
                '%s</table><p>Rooms %s (occupants %s), s2s connections %s, components %s</p>'
                '<script src="/admin/console.js"></script>'
                % (esc(stats["node"] or "this node"), esc(stats["users"]["sessions"]), rows,
                   esc(stats["rooms"]), esc(stats["occupants"]), esc(stats["s2s"]),
                   esc(stats["components"])))
        return self.page(request, session, "Status", body)

    async def statusJSON(self, request, session) -> bytes:
        """Counters, not rates: the page computes stanzas/s from two samples."""
        metrics = self.xmpp.metrics
        domains = self.adminDomains(session.jid)
        sample = {
            "time": self.clock.seconds(),
            "sessions": sum(len(self.ops.bindings(d)) for d in domains),
            "stanzas": sum(metrics.stanzasIn.values()) + sum(metrics.stanzasOut.values()),
            "lag": metrics.reactorLag,
        }
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(sample).encode("utf-8")

    async def usersPage(self, request, session) -> bytes:
        query = self.field(request, "q").strip().lower()
        rows = []
        for domain in self.adminDomains(session.jid):
            for user, host in await self.xmpp.storage.users.listUsers(domain):
                jid = "%s@%s" % (user, host)
                if query and query not in jid.lower():
                    continue
                rows.append('<tr><td class="jid">%s</td><td>%s</td><td>%s</td></tr>' % (
                    esc(jid),
                    self.form(session, "users/delete",
                              '<input type="hidden" name="jid" value="%s">' % esc(jid), "Delete"),
                    self.form(session, "users/password",
                              '<input type="hidden" name="jid" value="%s">'
                              '<input type="password" name="password" placeholder="new password"'
                              ' required>' % esc(jid), "Reset password")))
        body = ('<h1>Users</h1><form method="get" action="/admin/users">'
                '<input name="q" value="%s" placeholder="search"> <button>Search</button></form>'
                '<h2>Add</h2>%s<table id="users"><tr><th>JID</th><th></th><th></th></tr>%s</table>'
                % (esc(query), self.form(
                    session, "users/add",
                    '<input name="jid" id="add-jid" placeholder="user@domain" required> '
                    '<input type="password" name="password" id="add-password" '
                    'placeholder="password" required>', "Add"), "".join(rows)))
        return self.page(request, session, "Users", body)

    async def sessionsPage(self, request, session) -> bytes:
        rows = []
        for domain in self.adminDomains(session.jid):
            for row in self.ops.sessions(domain):
                # Another cluster node's session: only its node knows the peer.
                peer = row["peer"] if row["peer"] is not None else (
                    "on node %s" % row["node"] if row.get("node") else "-")
                rows.append('<tr><td class="jid">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                    esc(row["jid"]), esc(peer), esc(row["transport"] or "-"),
                    self.form(session, "sessions/kick",
                              '<input type="hidden" name="jid" value="%s">' % esc(row["jid"]),
                              "Kick")))
        body = ('<h1>Sessions</h1><table id="sessions-table"><tr><th>JID</th><th>Peer</th>'
                '<th>Transport</th><th></th></tr>%s</table>' % "".join(rows))
        return self.page(request, session, "Sessions", body)

    async def roomsPage(self, request, session) -> bytes:
        domains = set(self.adminDomains(session.jid))
        rows = "".join(
            '<tr><td class="jid">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(room["jid"]), esc(room["occupants"]), "yes" if room["persistent"] else "no",
                self.form(session, "rooms/destroy",
                          '<input type="hidden" name="room" value="%s">'
                          '<input name="reason" placeholder="reason (optional)">'
                          % esc(room["jid"]), "Destroy"))
            for room in self.ops.rooms() if room.get("domain") in domains)
        body = ('<h1>Rooms</h1><p>Rooms in memory on this node. Destroying a room sends its '
                'occupants out with the reason (XEP-0045 &sect;10.9) and removes it from '
                'storage.</p>'
                '<table id="rooms"><tr><th>Room</th><th>Occupants</th><th>Persistent</th>'
                '<th></th></tr>%s</table>'
                '<h2>Destroy a room by its address</h2><p>For a stored room not in memory '
                'now, too.</p>%s' % (rows, self.form(
                    session, "rooms/destroy",
                    '<input name="room" id="destroy-room" placeholder="room@conference.%s" '
                    'required> <input name="reason" id="destroy-reason" '
                    'placeholder="reason (optional)">'
                    % esc(sorted(domains)[0] if domains else "example.org"), "Destroy")))
        return self.page(request, session, "Rooms", body)

    async def connectionsPage(self, request, session) -> bytes:
        """The s2s streams and components, as C{xmppctl connections} lists them (read-only)."""
        answer = self.ops.connections()
        s2s = "".join(
            '<tr class="s2s"><td>%s</td><td>%s</td><td class="remote">%s</td><td>%s</td>'
            '<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(c.get("direction")), esc(c.get("local")), esc(c.get("remote")),
                esc(c.get("method") or "(not yet)"), "yes" if c.get("encrypted") else "no",
                "yes" if c.get("bidi") else "no", esc(c.get("peer")), esc(since(c.get("since"))))
            for c in answer["s2s"])
        components = "".join(
            '<tr class="component"><td class="domain">%s</td><td>%s</td><td>%s</td>'
            '<td>%s</td></tr>' % (esc(c["domain"]), esc(c["peer"]), esc(c["method"]),
                                  esc(since(c["since"])))
            for c in answer["components"])
        s2s = s2s or '<tr><td colspan="8">none</td></tr>'
        components = components or '<tr><td colspan="4">none</td></tr>'
        body = ('<h1>Server-to-server and components</h1>'
                '<h2>s2s streams (%d)</h2><table id="s2s"><tr><th>Direction</th><th>Local</th>'
                '<th>Remote</th><th>Auth</th><th>Encrypted</th><th>Bidi</th><th>Peer</th>'
                '<th>Since (UTC)</th></tr>%s</table>'
                '<h2>Components (%d)</h2><table id="components"><tr><th>Domain</th>'
                '<th>Peer</th><th>Auth</th><th>Since (UTC)</th></tr>%s</table>'
                '<p>Clients: %d session(s) on %d connection(s).</p>'
                % (len(answer["s2s"]), s2s, len(answer["components"]), components,
                   answer["c2s"]["sessions"], answer["c2s"]["connections"]))
        return self.page(request, session, "s2s and components", body)

    async def announcePage(self, request, session) -> bytes:
        options = "".join('<option value="%s">%s</option>' % (esc(d), esc(d))
                          for d in self.adminDomains(session.jid))
        body = ('<h1>Announcement</h1><p>Sent as a headline to every session of the domain '
                'on this node.</p>%s' % self.form(
                    session, "announce",
                    '<select name="domain">%s</select> <input name="subject" placeholder="subject">'
                    '<br><textarea name="text" id="announce-text" rows="4" cols="60" required>'
                    '</textarea><br>' % options, "Send"))
        return self.page(request, session, "Announcements", body)

    # -- actions -----------------------------------------------------------

    async def act(self, request, session, action) -> bytes:
        method, back = action
        try:
            session.flash = await getattr(self, method)(request, session)
        except OperationError as e:
            session.flash = "Refused: %s" % (e,)
        return self.redirect(request, back)

    def account(self, request, session, full: bool = False) -> JID:
        """The form's JID, of a domain this admin administers."""
        text = self.field(request, "jid")
        jid = (self.ops.fullOrBare if full else self.ops.account)(text)
        if not self.ops.isAdmin(session.jid, jid.host):
            raise OperationError("you do not administer %s" % (jid.host,))
        return jid

    async def logOut(self, request, session) -> str:
        for sid, s in list(self.sessions.items()):
            if s is session:
                del self.sessions[sid]
        self.setCookie(request, "", maxAge=0)
        return ""

    async def addUser(self, request, session) -> str:
        jid = self.account(request, session)
        await self.ops.addUser(jid, self.field(request, "password"))
        return "Added %s." % (jid.userhost(),)

    async def deleteUser(self, request, session) -> str:
        jid = self.account(request, session)
        await self.ops.deleteUser(jid)
        return "Deleted %s." % (jid.userhost(),)

    async def changePassword(self, request, session) -> str:
        jid = self.account(request, session)
        await self.ops.changePassword(jid, self.field(request, "password"))
        return "Changed the password of %s." % (jid.userhost(),)

    async def kick(self, request, session) -> str:
        jid = self.account(request, session, full=True)
        count = self.ops.endSessions(jid)
        return "Ended %d session(s) of %s." % (count, jid.full())

    async def destroyRoom(self, request, session) -> str:
        room = self.ops.room(self.field(request, "room"))
        domain = self.ops.roomDomain(room)
        if domain is None or not self.ops.isAdmin(session.jid, domain):
            raise OperationError("you do not administer the rooms of %s" % (room.host,))
        told = await self.ops.destroyRoom(room, self.field(request, "reason").strip() or None)
        return "Destroyed %s (%d occupant(s) told)." % (room.full(), told)

    async def announce(self, request, session) -> str:
        domain = self.ops.servedDomain(self.field(request, "domain"))
        if not self.ops.isAdmin(session.jid, domain):
            raise OperationError("you do not administer %s" % (domain,))
        count = self.ops.announce(domain, self.field(request, "text"),
                                  self.field(request, "subject") or None)
        return "Sent to %d session(s) of %s." % (count, domain)


#: GET paths and the method that renders each.
PAGES = {"": "statusPage", "status.json": "statusJSON", "users": "usersPage",
         "sessions": "sessionsPage", "rooms": "roomsPage", "connections": "connectionsPage",
         "announce": "announcePage"}

#: POST paths: the method that acts, and the page to go back to.
ACTIONS = {
    "logout": ("logOut", "/admin/login"),
    "users/add": ("addUser", "/admin/users"),
    "users/delete": ("deleteUser", "/admin/users"),
    "users/password": ("changePassword", "/admin/users"),
    "sessions/kick": ("kick", "/admin/sessions"),
    "rooms/destroy": ("destroyRoom", "/admin/rooms"),
    "announce": ("announce", "/admin/announce"),
}

LAYOUT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%(title)s - xmppd console</title>
<style>
body { font-family: sans-serif; margin: 1em 2em; }
nav a { margin-right: 1em; } form.inline { display: inline; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
td form { margin: 0; } .error { color: #b00; } .flash { background: #ffd; padding: .3em; }
canvas { border: 1px solid #999; } .s { color: #06c; } .r { color: #c60; } .l { color: #090; }
</style></head>
<body>%(nav)s
%(body)s
</body></html>
"""

#: The status page's live graph (no inline script: CSP default-src 'self').
SCRIPT = """'use strict';
(function () {
  var canvas = document.getElementById('graph');
  if (!canvas) { return; }
  var context = canvas.getContext('2d');
  var samples = [], last = null, LIMIT = 90;
  function draw() {
    var w = canvas.width, h = canvas.height;
    context.clearRect(0, 0, w, h);
    [['sessions', '#06c'], ['rate', '#c60'], ['lag', '#090']].forEach(function (series) {
      var top = 1;
      samples.forEach(function (s) { top = Math.max(top, s[series[0]]); });
      context.strokeStyle = series[1];
      context.beginPath();
      samples.forEach(function (s, i) {
        var x = i * (w - 1) / Math.max(samples.length - 1, 1);
        var y = h - 2 - (h - 4) * s[series[0]] / top;
        if (i === 0) { context.moveTo(x, y); } else { context.lineTo(x, y); }
      });
      context.stroke();
    });
  }
  function poll() {
    fetch('/admin/status.json', {credentials: 'same-origin', cache: 'no-store'})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (now) {
        if (!now) { return; }
        var rate = 0;
        if (last && now.time > last.time) {
          rate = Math.max(0, (now.stanzas - last.stanzas) / (now.time - last.time));
        }
        last = now;
        samples.push({sessions: now.sessions, rate: rate, lag: now.lag * 1000});
        if (samples.length > LIMIT) { samples.shift(); }
        document.getElementById('sessions').textContent = now.sessions;
        document.getElementById('rate').textContent = rate.toFixed(1);
        document.getElementById('lag').textContent = (now.lag * 1000).toFixed(1);
        canvas.setAttribute('data-samples', String(samples.length));
        draw();
      })
      .catch(function () {});
  }
  poll();
  setInterval(poll, 2000);
})();
"""
