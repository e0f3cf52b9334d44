# -*- test-case-name: tests.test_adminops -*-
"""
The admin operations of one node (issue 17, DESIGN §7): what the ad-hoc
commands (XEP-0050/0133, L{xmppd.admin.adhoc}), the admin socket that
C{xmppctl} asks (L{xmppd.admin.service}) and a web console call.  None of
those has logic of its own: they parse their input, call one method here
and present what it returns, so an operation behaves the same whichever
way an operator reaches it.

Every method refuses what it cannot do with L{OperationError}, whose
C{str()} is one line for the operator; an account or domain that is not
served is refused, never created.

Where things live:
  - accounts and credentials: the node's storage (C{IUserStore});
  - the disabled mark: the account-data key
    L{xmppd.storage.interfaces.DISABLED}, read at login by the client
    stream (which refuses with C{account-disabled});
  - the message of the day: C{<server.data_dir>/motd.json}, one text per
    domain, written atomically, so it survives restarts.  On a cluster each
    node keeps its own (set it on each node);
  - sessions, rooms and counters: what this node holds in memory.

Rooms are the in-process MUC services' (C{"muc"} in C{server.modules}),
reached without importing the feature: L{AdminOperations.destroyRoom}
destroys a room of this process as its owner would (XEP-0045 §10.9), and
refuses, saying where to go instead, a room of an external MUC component
(XEP-0114: its occupants and storage are that process's) or one another
cluster node holds.

C{reloader}: the node's configuration reload, when one exists, is a
callable set here (C{operations.reloader = f}, returning a Deferred or a
value describing what changed); L{reload} calls it, and refuses while it
is C{None}.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.config.hosts import hostKey, hostSettings
from xmppd.core.events import AccountEvent
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.modules import ServiceRefused
from xmppd.core.scram import InvalidPassword, makeCredentials
from xmppd.storage.interfaces import DISABLED, NoSuchUser, UserExists

#: The file, in C{server.data_dir}, of the messages of the day.
MOTD_FILE = "motd.json"
#: The stream error that ends a session an administrator ends.
KICK_CONDITION = "policy-violation"
#: Longest announcement or message of the day, in characters.
MAX_TEXT = 16384


class OperationError(Exception):
    """An operation cannot be done; C{str()} is one line for the operator."""


class AdminOperations:
    """
    The admin operations of the node C{server} (an
    L{xmppd.core.server.XMPPServer}); one per node, made by
    L{xmppd.admin.service.AdminService} as C{server.adminOperations}.
    """

    log = Logger()

    def __init__(self, server):
        self.server = server
        #: The reload operation (see the module docstring), or C{None}.
        self.reloader: Callable[[], Any] | None = None
        self._motd: dict[str, str] | None = None

    # -- who and where ---------------------------------------------------

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.server.config.server.domains)

    def isAdmin(self, jid: JID | str, domain: str) -> bool:
        """Whether the bare JID of C{jid} may administer C{domain} (C{server.admins}, host admins)."""
        bare = jid.userhost() if isinstance(jid, JID) else str(jid).partition("/")[0]
        if domain not in self.domains:
            return False
        return bare in hostSettings(self.server.config, domain).admins

    def servedDomain(self, text: Any) -> str:
        if not isinstance(text, str) or not text:
            raise OperationError("expected a domain")
        domain = text.strip().lower().rstrip(".")
        if domain not in self.domains:
            raise OperationError(f"{text[:100]} is not served here "
                                 f"(server.domains: {', '.join(self.domains)})")
        return domain

    def account(self, text: Any, domain: str | None = None) -> JID:
        """
        C{text} as the bare JID of an account of a served domain (of
        C{domain} when given: a domain's admin acts on that domain only).
        """
        if not isinstance(text, str) or not text.strip():
            raise OperationError("expected an account's JID like user@example.org")
        try:
            jid = parseJID(text.strip())
        except InvalidJID:
            raise OperationError(f"{text[:100]!r} is not a valid JID") from None
        if not jid.user:
            raise OperationError(f"{text[:100]} is not an account's JID (user@domain)")
        self.servedDomain(jid.host)
        if domain is not None and jid.host != domain:
            raise OperationError(f"{jid.userhost()} is not an account of {domain}")
        return JID(tuple=(jid.user, jid.host, None))

    def fullOrBare(self, text: Any, domain: str | None = None) -> JID:
        """Like L{account}, keeping a resource when C{text} has one (ending one session)."""
        bare = self.account(text, domain)
        resource = text.strip().partition("/")[2] if isinstance(text, str) else ""
        return JID(tuple=(bare.user, bare.host, resource or None))

    # -- accounts --------------------------------------------------------

    @property
    def storage(self):
        return self.server.storage

    async def addUser(self, jid: JID, password: str) -> None:
        credentials = self._credentials(password)
        limit = hostSettings(self.server.config, jid.host).maxUsers
        if limit and len(await self.storage.users.listUsers(jid.host)) >= limit:
            raise OperationError(f"{jid.host} has {limit} accounts, its limit "
                                 f"({hostKey(jid.host, 'max_users')})")
        try:
            await self.storage.users.addUser(jid.user, jid.host, credentials)
        except UserExists:
            raise OperationError(f"{jid.userhost()} exists already") from None
        self.log.info("admin: added {jid}", jid=jid.userhost())

    async def deleteUser(self, jid: JID) -> None:
        """Remove the account and its data, tell the features, end its sessions."""
        try:
            await self.storage.users.removeUser(jid.user, jid.host)
        except NoSuchUser:
            raise OperationError(f"there is no account {jid.userhost()}") from None
        self.server.hooks.notify("account/removed", AccountEvent(jid.user, jid.host), jid.host)
        self.endSessions(jid, "account removed", condition="not-authorized")
        self.log.info("admin: removed {jid}", jid=jid.userhost())

    async def changePassword(self, jid: JID, password: str) -> None:
        credentials = self._credentials(password)
        try:
            await self.storage.users.setCredentials(jid.user, jid.host, credentials)
        except NoSuchUser:
            raise OperationError(f"there is no account {jid.userhost()}") from None
        self.log.info("admin: changed the password of {jid}", jid=jid.userhost())

    async def disableUser(self, jid: JID, by: str | None = None) -> int:
        """Mark the account disabled (no login) and end its sessions; their number."""
        mark = json.dumps({"by": by, "at": self.server.clock.seconds()})
        try:
            await self.storage.accountData.set(jid.user, jid.host, DISABLED, mark)
        except NoSuchUser:
            raise OperationError(f"there is no account {jid.userhost()}") from None
        self.log.info("admin: disabled {jid}", jid=jid.userhost())
        return self.endSessions(jid, "account disabled", condition="not-authorized")

    async def enableUser(self, jid: JID) -> None:
        try:
            await self.storage.accountData.delete(jid.user, jid.host, DISABLED)
        except NoSuchUser:
            raise OperationError(f"there is no account {jid.userhost()}") from None
        self.log.info("admin: re-enabled {jid}", jid=jid.userhost())

    async def isDisabled(self, jid: JID) -> bool:
        return await self.storage.accountData.get(jid.user, jid.host, DISABLED) is not None

    @staticmethod
    def _credentials(password: Any) -> dict:
        if not isinstance(password, str) or not password:
            raise OperationError("expected a password")
        try:
            return makeCredentials(password)
        except InvalidPassword as e:
            raise OperationError(str(e)) from None

    # -- sessions --------------------------------------------------------

    def localSessions(self, domain: str | None = None) -> list:
        """(stream, session) of the clients bound on this node, of C{domain} or all."""
        try:
            c2s = self.server.getServiceNamed("c2s")
        except KeyError:
            return []
        found = []
        for factory in list(c2s.factories) + list(getattr(c2s, "transports", ())):
            for stream in list(factory.streams):
                session = getattr(stream, "session", None)
                if session is None or (domain is not None and session.jid.host != domain):
                    continue
                found.append((stream, session))
        seen, unique = set(), []
        for stream, session in found:
            if id(session) not in seen:
                seen.add(id(session))
                unique.append((stream, session))
        return unique

    def bindings(self, domain: str | None = None) -> list:
        """
        The session views of C{domain} (or of every domain) that the
        session directory knows: this node's, and in a cluster the other
        nodes' too, so that an operator's listing and announcement cover
        the whole service whichever node answers.
        """
        return [view for view in self.server.sessions.bindings()
                if domain is None or view.jid.host == domain]

    def sessions(self, domain: str | None = None) -> list[dict]:
        """
        The bound client sessions, sorted by JID: this node's with their
        connection's details, and in a cluster the other nodes' with what
        the directory knows of them (C{node}: the cluster node holding
        each, C{None} on a lone server).
        """
        cluster = getattr(self.server, "cluster", None)
        node = cluster.node if cluster is not None else None
        rows, local = [], set()
        for stream, session in self.localSessions(domain):
            local.add(session.jid.full())
            rows.append({
                "jid": session.jid.full(),
                "available": bool(session.available),
                "priority": session.priority,
                "peer": getattr(stream, "peerAddress", None),
                "encrypted": bool(getattr(stream, "secure", False)),
                "transport": type(stream.transport).__name__ if stream.transport else None,
                "node": node,
            })
        for view in self.bindings(domain):
            if view.stream is None and view.jid.full() not in local:
                rows.append({
                    "jid": view.jid.full(),
                    "available": bool(view.available),
                    "priority": view.priority,
                    "peer": None,
                    "encrypted": None,
                    "transport": None,
                    "node": getattr(view, "node", None),
                })
        return sorted(rows, key=lambda row: row["jid"])

    def onlineUsers(self, domain: str | None = None) -> list[str]:
        """The bare JIDs with at least one session (on any node of a cluster), sorted."""
        return sorted({view.jid.userhost() for view in self.bindings(domain)})

    def endSessions(self, jid: JID, text: str = "ended by an administrator",
                    condition: str = KICK_CONDITION) -> int:
        """
        End with a stream error the session of the full C{jid}, or every
        session of the bare one; how many ended.
        """
        sessions = self.server.sessions
        if jid.resource:
            session = sessions.get(jid)
            targets = [session] if session is not None else []
        else:
            targets = list(sessions.sessionsOf(jid))
        for session in targets:
            sessions.terminate(session, condition, text)
        if targets:
            self.log.info("admin: ended {count} session(s) of {jid}",
                          count=len(targets), jid=jid.full())
        return len(targets)

    # -- statistics ------------------------------------------------------

    async def userStats(self, domain: str | None = None) -> dict:
        """Registered accounts and users online, per served domain (or of C{domain})."""
        domains = [domain] if domain else list(self.domains)
        perDomain = {}
        for name in domains:
            registered = len(await self.storage.users.listUsers(name))
            online = self.onlineUsers(name)
            perDomain[name] = {"registered": registered, "online": len(online),
                               "sessions": len(self.bindings(name))}
        return {"registered": sum(d["registered"] for d in perDomain.values()),
                "online": sum(d["online"] for d in perDomain.values()),
                "sessions": sum(d["sessions"] for d in perDomain.values()),
                "domains": perDomain}

    async def stats(self) -> dict:
        """The node at a glance: users, sessions, rooms, s2s and components."""
        users = await self.userStats()
        rooms = self.rooms()
        answer = {
            "time": self.server.clock.seconds(),
            "node": self.server.nodeId,
            "users": users,
            "rooms": len(rooms),
            "occupants": sum(room["occupants"] for room in rooms),
            "s2s": len(self._child("s2s", lambda s: s.connections())),
            "components": len(self._child("components", lambda s: s.connections())),
        }
        return answer

    def _child(self, name: str, ask: Callable[[Any], Any]) -> list:
        try:
            child = self.server.getServiceNamed(name)
        except KeyError:
            return []
        return list(ask(child))

    def connections(self) -> dict:
        """
        The node's component and s2s connections, and how many clients are
        online: what C{xmppctl connections} prints (see
        L{xmppd.admin.service} for the shape) and the console's s2s page
        shows.
        """
        return {
            "time": self.server.clock.seconds(),
            "components": [
                {"domain": domain, "peer": peer, "method": "handshake", "since": since}
                for domain, peer, since in self._child("components", lambda s: s.connections())],
            "s2s": [dict(c) for c in self._child("s2s", lambda s: s.connections())],
            "c2s": {"sessions": len(self.server.sessions),
                    "connections": sum(
                        len(f.streams) for f in self._child("c2s", lambda s: s.factories))},
        }

    # -- rooms -------------------------------------------------------------

    def mucServices(self) -> list:
        """
        The MUC services running in this process (the C{"muc"} feature's,
        one beside each served domain), found by what they offer: the core
        never imports a feature (DESIGN §3).
        """
        return [child for child in self.server
                if isinstance(getattr(child, "rooms", None), dict)
                and callable(getattr(child, "destroyRoom", None))]

    def rooms(self) -> list[dict]:
        """
        The MUC rooms this node holds in memory, with how many occupants
        each has, and C{domain}: the served domain whose admins administer
        the room.
        """
        rows = []
        for child in self.mucServices():
            for name, room in list(child.rooms.items()):
                occupants = getattr(room, "occupants", {})
                rows.append({"jid": f"{name}@{child.domain}", "occupants": len(occupants),
                             "persistent": bool(getattr(room, "config", {}).get(
                                 "persistent", False)),
                             "domain": getattr(child, "servedDomain", None)})
        return sorted(rows, key=lambda row: row["jid"])

    def room(self, text: Any) -> JID:
        """C{text} as a room's bare JID (room@conference.example.org)."""
        if not isinstance(text, str) or not text.strip():
            raise OperationError("expected a room's JID like room@conference.example.org")
        try:
            jid = parseJID(text.strip())
        except InvalidJID:
            raise OperationError(f"{text[:100]!r} is not a valid JID") from None
        if not jid.user or jid.resource:
            raise OperationError(f"{text[:100]} is not a room's JID "
                                 f"(room@conference.example.org)")
        return JID(tuple=(jid.user, jid.host, None))

    def mucService(self, room: JID):
        """
        The in-process MUC service of C{room}'s domain; refused, saying
        why, when its rooms are not this process's to destroy.
        """
        for child in self.mucServices():
            if child.domain == room.host:
                return child
        components = self.server.config.components
        if room.host in components.secrets or any(
                domain == room.host
                for domain, _, _ in self._child("components", lambda s: s.connections())):
            raise OperationError(
                f"{room.host} is an external component (XEP-0114): its rooms live in that "
                f"process; destroy the room there, or as its owner from a client "
                f"(XEP-0045 §10.9)")
        raise OperationError(f"there is no MUC service {room.host} on this node")

    def roomDomain(self, room: JID) -> str | None:
        """The served domain whose admins administer C{room} (see L{mucService})."""
        return getattr(self.mucService(room), "servedDomain", None)

    async def destroyRoom(self, room: JID, reason: str | None = None,
                          alternate: str | None = None) -> int:
        """
        Destroy C{room} as its owner would (XEP-0045 §10.9): its occupants
        get unavailable presence with C{<destroy/>} and C{reason}, and it is
        removed from memory and storage; how many occupants were told.

        Only a MUC service of this process can do it: a room of an external
        MUC component, or one another cluster node holds, is refused with
        a line saying where to destroy it (never a silent no-op).
        """
        if reason is not None and not isinstance(reason, str):
            raise OperationError("expected the reason as text")
        if reason is not None and len(reason) > MAX_TEXT:
            raise OperationError(f"the reason is longer than {MAX_TEXT} characters")
        if alternate is not None:
            alternate = self.room(alternate).full()
        service = self.mucService(room)
        try:
            told = await service.destroyRoom(room.user, reason or None, alternate)
        except ServiceRefused as e:
            raise OperationError(str(e)) from None
        self.log.info("admin: destroyed room {room} ({count} occupant(s) told)",
                      room=room.full(), count=told)
        return told

    # -- announcements and the message of the day --------------------------

    def _message(self, domain: str, to: JID, text: str, subject: str | None,
                 type: str) -> domish.Element:
        message = domish.Element((None, "message"))
        message["from"] = domain
        message["to"] = to.full()
        message["type"] = type
        if subject:
            message.addElement("subject", content=subject)
        message.addElement("body", content=text)
        return message

    @staticmethod
    def _text(text: Any, what: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise OperationError(f"expected the text of the {what}")
        if len(text) > MAX_TEXT:
            raise OperationError(f"the {what} is longer than {MAX_TEXT} characters")
        return text

    def announce(self, domain: str, text: str, subject: str | None = None) -> int:
        """
        Send C{text} from the domain, as a headline, to every session of
        the domain (Openfire's broadcast), on every node of a cluster:
        another node's sessions get it through the cluster's transport,
        as any stanza for them; how many.
        """
        text = self._text(text, "announcement")
        local = self._domain(domain)
        sent = 0
        for session in self.bindings(domain):
            local.deliverToSession(
                session, self._message(domain, session.jid, text, subject, "headline"))
            sent += 1
        self.log.info("admin: announced to {count} session(s) of {domain}",
                      count=sent, domain=domain)
        return sent

    def sendMessage(self, to: Any, body: Any, type: Any = "chat", subject: Any = None,
                    sender: Any = None) -> None:
        """
        Send a message to C{to} (any JID, local or remote) from C{sender}:
        a served domain or an account's JID of one (the domain of C{to}
        when local, else the first served domain, when C{None}); the HTTP
        API's C{send} (L{xmppd.admin.api}).
        """
        if type not in ("chat", "headline", "normal"):
            raise OperationError("type is one of chat, headline, normal")
        text = self._text(body, "message")
        if subject is not None and not isinstance(subject, str):
            raise OperationError("expected the subject as text")
        if not isinstance(to, str) or not to.strip():
            raise OperationError("expected the recipient's JID")
        try:
            recipient = parseJID(to.strip())
        except InvalidJID:
            raise OperationError(f"{to[:100]!r} is not a valid JID") from None
        if sender is None:
            origin = recipient.host if recipient.host in self.domains else self.domains[0]
        elif isinstance(sender, str) and "@" not in sender and "/" not in sender:
            origin = self.servedDomain(sender)
        else:
            origin = self.fullOrBare(sender).full()
        message = self._message(origin, recipient, text, subject, type)
        self.server.router.route(message)
        self.log.info("admin: sent a {type} message from {sender} to {to}",
                      type=type, sender=origin, to=recipient.full())

    def _domain(self, domain: str):
        try:
            return self.server.getServiceNamed(domain)
        except KeyError:
            raise OperationError(f"{domain} is not served here") from None

    @property
    def motdPath(self) -> str:
        return os.path.join(self.server.config.server.data_dir, MOTD_FILE)

    def _loadMOTD(self) -> dict[str, str]:
        if self._motd is None:
            try:
                with open(self.motdPath, encoding="utf-8") as f:
                    loaded = json.load(f)
                self._motd = {k: v for k, v in loaded.items()
                              if isinstance(k, str) and isinstance(v, str)}
            except FileNotFoundError:
                self._motd = {}
            except (OSError, ValueError, AttributeError) as e:
                self.log.warn("Ignoring {path}: {error}", path=self.motdPath, error=e)
                self._motd = {}
        return self._motd

    def _saveMOTD(self, motd: dict[str, str]) -> None:
        path = self.motdPath
        temporary = path + ".new"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(motd, f, ensure_ascii=False)
            os.replace(temporary, path)
        except OSError as e:
            raise OperationError(f"cannot write {path}: {e.strerror}") from None
        self._motd = dict(motd)

    def motd(self, domain: str) -> str | None:
        return self._loadMOTD().get(domain)

    def setMOTD(self, domain: str, text: str) -> None:
        """Keep C{text} as C{domain}'s message of the day, sent once per session at login."""
        text = self._text(text, "message of the day")
        self._saveMOTD({**self._loadMOTD(), domain: text})
        self.log.info("admin: set the message of the day of {domain}", domain=domain)

    def deleteMOTD(self, domain: str) -> bool:
        """Forget C{domain}'s message of the day; whether there was one."""
        motd = dict(self._loadMOTD())
        had = motd.pop(domain, None) is not None
        if had:
            self._saveMOTD(motd)
        return had

    def onSessionBound(self, session) -> None:
        """
        C{session/bound}: the new session gets its domain's message of the
        day, on the next turn of the reactor, so after the bind's result
        (nothing reaches a client before its resource is bound, RFC 6120 §7).
        """
        if session.jid.host in self._loadMOTD():
            self.server.clock.callLater(0, self._sendMOTD, session)

    def _sendMOTD(self, session) -> None:
        domain = session.jid.host
        text = self._loadMOTD().get(domain)
        if text is None or self.server.sessions.get(session.jid) is not session:
            return
        try:
            local = self.server.getServiceNamed(domain)
        except KeyError:
            return
        local.deliverToSession(session, self._message(domain, session.jid, text, None,
                                                      "normal"))

    # -- reload ----------------------------------------------------------

    async def reload(self) -> Any:
        """The node's configuration reload (see the module docstring)."""
        if self.reloader is None:
            raise OperationError("this node cannot reload its configuration; restart it")
        return await defer.maybeDeferred(self.reloader)
