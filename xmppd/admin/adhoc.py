# -*- test-case-name: tests.test_adminops -*-
"""
Ad-hoc commands (XEP-0050) at a served domain's JID, with the service
administration commands of XEP-0133, for the domain's admins
(C{server.admins} and C{hosts."example.org".admins}).

Every command is a thin form over L{xmppd.admin.operations.AdminOperations}:
it asks for what the operation needs (a data form, XEP-0004, as in
XEP-0133's examples), calls it, and reports the result as a note or a
result form.  Nothing here decides anything an operation does not.

Discovery: the domain's disco#info has the commands feature; disco#items
on the node C{http://jabber.org/protocol/commands} lists the commands to
an admin and nothing to anyone else; executing one as a non-admin is
C{forbidden}.

Sessions: a command that needs input answers C{executing} with a form and
a C{sessionid}; the next request with that C{sessionid} (C{execute},
C{complete} or no action) submits the form, C{cancel} ends it.  Sessions
belong to the full JID that started them, at most L{MAX_SESSIONS} each
(starting one more drops the oldest), and expire after L{SESSION_TIMEOUT}
seconds (then C{bad-request}/C{session-expired}).

C{urn:xmppd:admin#reload} reloads the configuration through
L{AdminOperations.reload}: it answers with an error note while the node
has no reload.  C{urn:xmppd:admin#destroy-room} (XEP-0133 has no such
command) destroys a room of the domain's in-process MUC service through
L{AdminOperations.destroyRoom}, as the room's owner would (XEP-0045
§10.9), with the reason the form gives.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import data_form
from wokkel.disco import DiscoFeature, DiscoIdentity, DiscoItem
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.admin.operations import AdminOperations, OperationError

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_ADMIN = "http://jabber.org/protocol/admin"
COMMAND_SET = "/iq[@type='set']/command[@xmlns='%s']" % NS_COMMANDS
#: Commands one full JID may have under way at once.
MAX_SESSIONS = 4
#: Seconds a command session waits for its next step.
SESSION_TIMEOUT = 600.0


def appError(condition: str, specific: str) -> StanzaError:
    return StanzaError(condition, appCondition=domish.Element((NS_COMMANDS, specific)))


@dataclass
class Step:
    """What a command answers: a form to fill in, or done (a note and/or a result form)."""

    form: data_form.Form | None = None
    done: bool = True
    note: str | None = None
    noteType: str = "info"


@dataclass
class Command:
    node: str
    name: str
    #: The form asked first, or C{None} for a command that runs at once.
    ask: Callable[["Context"], data_form.Form] | None
    #: The command's work, given the submitted form's values (a dict).
    run: Callable[["Context", dict], Any]


@dataclass
class Context:
    ops: AdminOperations
    domain: str
    requester: JID


@dataclass
class CommandSession:
    command: Command
    requester: str
    call: Any = None
    values: dict = field(default_factory=dict)


def adminForm(title: str, instructions: str, *fields: data_form.Field,
              formType: str = "form") -> data_form.Form:
    form = data_form.Form(formType, title=title, instructions=[instructions],
                          formNamespace=NS_ADMIN)
    for f in fields:
        form.addField(f)
    return form


def jids(var: str, label: str, multi: bool = True, values=()) -> data_form.Field:
    return data_form.Field("jid-multi" if multi else "jid-single", var=var, label=label,
                           required=True, values=list(values))


def text(var: str, label: str, kind: str = "text-single", required=True, values=()):
    return data_form.Field(kind, var=var, label=label, required=required, values=list(values))


def accountList(ctx: Context, values: dict, var: str = "accountjids") -> list[JID]:
    given = values.get(var) or []
    if isinstance(given, (str, JID)):
        given = [given]
    if not given:
        raise OperationError(f"{var}: expected at least one account's JID")
    return [ctx.ops.account(str(j), ctx.domain) for j in given]


def single(values: dict, var: str) -> str:
    value = values.get(var)
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    if value is None or str(value) == "":
        raise OperationError(f"{var}: required")
    return str(value)


def result(title: str, *fields: data_form.Field) -> Step:
    return Step(form=adminForm(title, title, *fields, formType="result"))


# -- the commands ------------------------------------------------------------

async def addUser(ctx, values):
    jid = ctx.ops.account(single(values, "accountjid"), ctx.domain)
    password = single(values, "password")
    if values.get("password-verify") not in (None, "", password):
        raise OperationError("the passwords do not match")
    await ctx.ops.addUser(jid, password)
    return Step(note=f"added {jid.userhost()}")


async def deleteUsers(ctx, values):
    accounts = accountList(ctx, values)
    for jid in accounts:
        await ctx.ops.deleteUser(jid)
    return Step(note="removed " + ", ".join(j.userhost() for j in accounts))


async def disableUsers(ctx, values):
    accounts = accountList(ctx, values)
    for jid in accounts:
        await ctx.ops.disableUser(jid, by=ctx.requester.userhost())
    return Step(note="disabled " + ", ".join(j.userhost() for j in accounts))


async def enableUsers(ctx, values):
    accounts = accountList(ctx, values)
    for jid in accounts:
        await ctx.ops.enableUser(jid)
    return Step(note="re-enabled " + ", ".join(j.userhost() for j in accounts))


async def endSessions(ctx, values):
    given = values.get("accountjids") or []
    if isinstance(given, (str, JID)):
        given = [given]
    if not given:
        raise OperationError("accountjids: expected at least one JID")
    ended = sum(ctx.ops.endSessions(ctx.ops.fullOrBare(str(j), ctx.domain)) for j in given)
    return Step(note=f"ended {ended} session{'' if ended == 1 else 's'}")


async def changePassword(ctx, values):
    jid = ctx.ops.account(single(values, "accountjid"), ctx.domain)
    await ctx.ops.changePassword(jid, single(values, "password"))
    return Step(note=f"changed the password of {jid.userhost()}")


async def userStats(ctx, values):
    jid = ctx.ops.account(single(values, "accountjid"), ctx.domain)
    sessions = [s for s in ctx.ops.sessions(ctx.domain)
                if s["jid"].partition("/")[0] == jid.userhost()]
    return result(
        f"Statistics of {jid.userhost()}",
        text("accountjid", "The Jabber ID", "jid-single", values=[jid.userhost()]),
        text("onlineresources", "Online resources", "text-multi", required=False,
             values=[s["jid"].partition("/")[2] for s in sessions]),
        text("ipaddresses", "IP addresses", "text-multi", required=False,
             values=[str(s["peer"]) for s in sessions]),
        text("disabled", "Disabled", "boolean", required=False,
             values=[await ctx.ops.isDisabled(jid)]))


def countOf(var: str, label: str, count: Callable[[Context], Any]):
    async def run(ctx, values):
        n = await defer.maybeDeferred(count, ctx)
        return result(label, text(var, label, values=[str(n)]))
    return run


def listOf(var: str, label: str, listing: Callable[[Context], list]):
    async def run(ctx, values):
        items = listing(ctx)
        limit = values.get("max_items")
        if limit not in (None, "", "none"):
            try:
                items = items[:max(0, int(limit))]
            except (TypeError, ValueError):
                raise OperationError("max_items: expected a number") from None
        return result(label, text(var, label, "jid-multi", required=False, values=items))
    return run


def maxItemsForm(title):
    def ask(ctx):
        return adminForm(title, "How many to list at most", data_form.Field(
            "list-single", var="max_items", label="Maximum number of items to show",
            options=[data_form.Option(v) for v in ("25", "50", "75", "100", "150", "200",
                                                   "none")]))
    return ask


async def registered(ctx):
    return (await ctx.ops.userStats(ctx.domain))["registered"]


async def announce(ctx, values):
    sent = ctx.ops.announce(ctx.domain, single(values, "announcement"),
                            values.get("subject") or None)
    return Step(note=f"sent to {sent} session{'' if sent == 1 else 's'}")


async def setMOTD(ctx, values):
    ctx.ops.setMOTD(ctx.domain, single(values, "motd"))
    return Step(note=f"the message of the day of {ctx.domain} is set")


async def deleteMOTD(ctx, values):
    had = ctx.ops.deleteMOTD(ctx.domain)
    return Step(note=f"deleted the message of the day of {ctx.domain}" if had
                else f"{ctx.domain} had no message of the day")


async def reload(ctx, values):
    outcome = await ctx.ops.reload()
    return Step(note=f"reloaded{': ' + str(outcome) if outcome else ''}")


async def destroyRoom(ctx, values):
    room = ctx.ops.room(single(values, "roomjid"))
    if ctx.ops.roomDomain(room) != ctx.domain:
        raise OperationError(f"the rooms of {room.host} are not administered from {ctx.domain}")
    told = await ctx.ops.destroyRoom(room, values.get("reason") or None)
    return Step(note=f"destroyed {room.full()} ({told} occupant{'' if told == 1 else 's'} told)")


def motdForm(title, current=False):
    def ask(ctx):
        now = ctx.ops.motd(ctx.domain) if current else None
        return adminForm(title, "The message sent to every user at login", text(
            "motd", "Message of the day", "text-multi",
            values=now.split("\n") if now else ()))
    return ask


def admin(name: str) -> str:
    return f"{NS_ADMIN}#{name}"


COMMANDS: tuple[Command, ...] = (
    Command(admin("add-user"), "Add a User", lambda ctx: adminForm(
        "Adding a User", "Fill out this form to add a user.",
        jids("accountjid", "The Jabber ID for the account to be added", False),
        text("password", "The password for this account", "text-private"),
        text("password-verify", "Retype password", "text-private", required=False)),
        addUser),
    Command(admin("delete-user"), "Delete a User", lambda ctx: adminForm(
        "Deleting a User", "Fill out this form to delete a user.",
        jids("accountjids", "The Jabber ID(s) to delete")), deleteUsers),
    Command(admin("disable-user"), "Disable a User", lambda ctx: adminForm(
        "Disabling a User", "Fill out this form to disable a user.",
        jids("accountjids", "The Jabber ID(s) to disable")), disableUsers),
    Command(admin("reenable-user"), "Re-Enable a User", lambda ctx: adminForm(
        "Re-Enabling a User", "Fill out this form to re-enable a user.",
        jids("accountjids", "The Jabber ID(s) to re-enable")), enableUsers),
    Command(admin("end-user-session"), "End User Session", lambda ctx: adminForm(
        "Ending a User Session", "Fill out this form to end a user's session.",
        jids("accountjids", "The Jabber ID(s) for which to end sessions")), endSessions),
    Command(admin("change-user-password"), "Change User Password", lambda ctx: adminForm(
        "Changing a User Password", "Fill out this form to change a user's password.",
        jids("accountjid", "The Jabber ID for this account", False),
        text("password", "The password for this account", "text-private")), changePassword),
    Command(admin("user-stats"), "Get User Statistics", lambda ctx: adminForm(
        "Get User Statistics", "Fill out this form to gather user statistics.",
        jids("accountjid", "The Jabber ID for statistics", False)), userStats),
    Command(admin("get-registered-users-num"), "Get Number of Registered Users", None,
            countOf("registeredusersnum", "The number of registered users", registered)),
    Command(admin("get-online-users-num"), "Get Number of Online Users", None,
            countOf("onlineusersnum", "The number of online users",
                    lambda ctx: len(ctx.ops.onlineUsers(ctx.domain)))),
    Command(admin("get-active-users-num"), "Get Number of Active Users", None,
            countOf("activeusersnum", "The number of active users",
                    lambda ctx: len(ctx.ops.onlineUsers(ctx.domain)))),
    Command(admin("get-online-users-list"), "Get List of Online Users",
            maxItemsForm("Requesting List of Online Users"),
            listOf("onlineuserjids", "The list of all online users",
                   lambda ctx: ctx.ops.onlineUsers(ctx.domain))),
    Command(admin("get-active-users"), "Get List of Active Users",
            maxItemsForm("Requesting List of Active Users"),
            listOf("activeuserjids", "The list of active users",
                   lambda ctx: [s["jid"] for s in ctx.ops.sessions(ctx.domain)])),
    Command(admin("announce"), "Send Announcement to Online Users", lambda ctx: adminForm(
        "Making an Announcement", "Fill out this form to make an announcement to all "
        "active users of this service.",
        text("subject", "Subject", required=False),
        text("announcement", "Announcement", "text-multi")), announce),
    Command(admin("set-motd"), "Set Message of the Day", motdForm("Setting the MOTD"),
            setMOTD),
    Command(admin("edit-motd"), "Edit Message of the Day",
            motdForm("Editing the MOTD", current=True), setMOTD),
    Command(admin("delete-motd"), "Delete Message of the Day", None, deleteMOTD),
    Command("urn:xmppd:admin#reload", "Reload the Configuration", None, reload),
    Command("urn:xmppd:admin#destroy-room", "Destroy a Room", lambda ctx: adminForm(
        "Destroying a Room", "Fill out this form to destroy a room; its occupants are "
        "told the reason (XEP-0045 §10.9).",
        jids("roomjid", "The room's address", False),
        text("reason", "Reason", required=False)), destroyRoom),
)


def formValues(command: domish.Element) -> dict:
    """
    The submitted form's fields, C{var} -> value: a list of strings for
    C{jid-multi} and C{list-multi} (and a field of several values whose
    type the submitter left out), the lines joined for C{text-multi}.
    """
    for child in command.elements(data_form.NS_X_DATA, "x"):
        form = data_form.Form.fromElement(child)
        values: dict[str, Any] = {}
        for var, f in form.fields.items():
            if f.fieldType in ("jid-multi", "list-multi") or (
                    f.fieldType is None and len(f.values) > 1):
                # A submitted form may leave the types out (XEP-0004 §3.2).
                values[var] = [str(v) for v in f.values]
            elif f.fieldType == "text-multi":
                values[var] = "\n".join(str(v) for v in f.values)
            else:
                values[var] = f.value
        return values
    return {}


@implementer(IDisco)
class AdHocHandler(XMPPHandler, IQHandlerMixin):
    """The ad-hoc commands of one served domain (see the module docstring)."""

    iqHandlers = {COMMAND_SET: "onCommand"}
    log = Logger()

    def __init__(self, domain: str, ops: AdminOperations, clock, commands=COMMANDS):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.ops = ops
        self.clock = clock
        self.commands = {c.node: c for c in commands}
        #: sessionid -> the command session.
        self.sessions: dict[str, CommandSession] = {}

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(COMMAND_SET, self.onRequest)

    def onRequest(self, iq: domish.Element) -> None:
        to = iq.getAttribute("to")
        if to is not None and "@" not in to.partition("/")[0]:
            self.handleRequest(iq)

    def onCommand(self, iq: domish.Element) -> defer.Deferred:
        return defer.ensureDeferred(self.execute(iq))

    def isAdmin(self, requester: JID | None) -> bool:
        return requester is not None and self.ops.isAdmin(requester, self.domain)

    async def execute(self, iq: domish.Element) -> domish.Element:
        requester = JID(iq["from"]) if iq.hasAttribute("from") else None
        request = iq.command
        node = request.getAttribute("node")
        command = self.commands.get(node)
        if command is None:
            raise StanzaError("item-not-found")
        if not self.isAdmin(requester):
            raise StanzaError("forbidden", text="only the domain's administrators may "
                                                "run this command")
        action = request.getAttribute("action") or "execute"
        if action not in ("execute", "complete", "cancel", "next", "prev"):
            raise appError("bad-request", "malformed-action")
        ctx = Context(self.ops, self.domain, requester)
        sessionid = request.getAttribute("sessionid")
        if sessionid is None:
            if action == "cancel":
                raise appError("bad-request", "bad-sessionid")
            if command.ask is None:
                return await self.finish(command, ctx, {}, self.newSessionId())
            sessionid = self.open(command, requester)
            return self.answer(command, sessionid, "executing",
                               Step(form=command.ask(ctx), done=False))
        session = self.sessions.get(sessionid)
        if session is None or session.requester != requester.full() \
                or session.command is not command:
            raise appError("bad-request", "bad-sessionid")
        self.close(sessionid)
        if action == "cancel":
            return self.answer(command, sessionid, "canceled", Step(done=True))
        if action in ("next", "prev"):
            raise appError("bad-request", "bad-action")
        return await self.finish(command, ctx, formValues(request), sessionid)

    async def finish(self, command: Command, ctx: Context, values: dict,
                     sessionid: str) -> domish.Element:
        try:
            step = await command.run(ctx, values)
        except OperationError as e:
            step = Step(note=str(e), noteType="error")
        return self.answer(command, sessionid, "completed", step)

    def answer(self, command: Command, sessionid: str, status: str,
               step: Step) -> domish.Element:
        element = domish.Element((NS_COMMANDS, "command"))
        element["node"] = command.node
        element["sessionid"] = sessionid
        element["status"] = status
        if not step.done:
            actions = element.addElement("actions")
            actions["execute"] = "complete"
            actions.addElement("complete")
        if step.note:
            note = element.addElement("note", content=step.note)
            note["type"] = step.noteType
        if step.form is not None:
            element.addChild(step.form.toElement())
        return element

    # -- sessions --------------------------------------------------------

    @staticmethod
    def newSessionId() -> str:
        return secrets.token_hex(8)

    def open(self, command: Command, requester: JID) -> str:
        mine = [sid for sid, s in self.sessions.items() if s.requester == requester.full()]
        for sid in mine[:max(0, len(mine) - MAX_SESSIONS + 1)]:
            self.close(sid)
        sessionid = self.newSessionId()
        session = CommandSession(command, requester.full())
        session.call = self.clock.callLater(SESSION_TIMEOUT, self.sessions.pop, sessionid, None)
        self.sessions[sessionid] = session
        return sessionid

    def close(self, sessionid: str) -> None:
        session = self.sessions.pop(sessionid, None)
        if session is not None and session.call is not None and session.call.active():
            session.call.cancel()

    def connectionLost(self, reason=None) -> None:
        for sessionid in list(self.sessions):
            self.close(sessionid)

    # -- discovery ---------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is not None:
            return []
        if not nodeIdentifier:
            return [DiscoFeature(NS_COMMANDS)]
        command = self.commands.get(nodeIdentifier)
        if command is not None and self.isAdmin(requestor):
            return [DiscoIdentity("automation", "command-node", command.name),
                    DiscoFeature(NS_COMMANDS), DiscoFeature(data_form.NS_X_DATA)]
        if nodeIdentifier == NS_COMMANDS:
            return [DiscoIdentity("automation", "command-list", "Commands")]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        if target.user is not None or nodeIdentifier != NS_COMMANDS \
                or not self.isAdmin(requestor):
            return []
        return [DiscoItem(JID(self.domain), command.node, command.name)
                for command in self.commands.values()]
