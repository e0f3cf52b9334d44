# -*- test-case-name: tests.test_cluster -*-
"""
The session directory of a cluster (L{ISessionDirectory}, DESIGN §6): the
truth is a hash in Redis (full JID -> node, binding token, availability,
priority, carbons, L{xmppd.cluster.keys}); every node answers look-ups from a
replica in memory, kept current by the notifications that the Lua scripts
changing the hash publish on C{xmppd:c:directory}.

Why it keeps the contract of the in-memory directory:

  - Every change is one Lua script (atomic in Redis) that also publishes
    the change, numbered from C{xmppd:c:seq}; Redis orders the scripts, and
    the channel delivers their notifications in that order to every node.
    So two binds of one full JID, on one node or two, are ordered, the
    later wins, and every replica sees the same sequence.
  - A bind installs its binding in the replica when its own notification
    comes back, not when the script answers: the replica then follows
    Redis's order only, and the holder that the bind replaces (here or on
    another node) has been told (C{replaceSession}, or the notification
    has been published to its node) before the bind's Deferred fires.
  - Unbind, availability and carbons (XEP-0280: whether the resource
    wants copies, which whichever node routes a message for the account
    must know) are changed in the replica at once (only the holder's node
    changes them), then in Redis; the notification coming back finds
    nothing left to do.
  - Views of remote bindings are cached per binding token, so one binding
    gives the same object (C{is}) on this node as long as it lasts.
  - A node whose heartbeat key expired is "reaped" by whichever node
    notices first (L{ClusterDirectory.reap}): one script removes its
    sessions (publishing each removal), and takes the stanzas left in its
    inbox, which the caller routes again (RFC 6121 §8.5: as if the user
    had just gone offline).  The node whose script removed the sessions
    ends them as their holder would have (C{session/closed}: presence
    broadcasts unavailable from them, RFC 6121 §4.5.2).

On (re)connecting the subscription, the node takes a snapshot of the hash
with the sequence number it was taken at, and applies the notifications
newer than that; binds wait until the replica is synchronised.  For its
own bindings the node's memory is the truth: where the snapshot differs
(a write that failed while Redis was away), the node writes its state
again.

A hash value is C{"NODE TOKEN AVAILABLE PRIORITY CARBONS"}; a notification
is C{"SEQ OP NODE TOKEN AVAILABLE PRIORITY CARBONS FULLJID"} (the full JID
last: a resource may hold spaces), OP one of C{b} (bind), C{u} (unbind),
C{a} (state: availability, priority, carbons), C{t} (terminate: AVAILABLE
is the stream error's condition, the text follows a newline).
"""

from __future__ import annotations

import itertools
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID
from zope.interface import implementer

from xmppd.cluster import keys
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.sessions import AccountSessions, ISessionDirectory, ISessionView, Session, SessionView
from xmppd.storage.redisclient import logFailure

_setSlot = object.__setattr__

BIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local oldnode = string.match(old, '^(%S+)')
  if oldnode ~= ARGV[2] then redis.call('SREM', ARGV[4] .. oldnode, ARGV[1]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' 0 0 0')
redis.call('SADD', ARGV[4] .. ARGV[2], ARGV[1])
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], seq .. ' b ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' 0 0 0 ' .. ARGV[1])
return seq
"""

UNBIND = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local prefix = ARGV[2] .. ' ' .. ARGV[3] .. ' '
if not cur or string.sub(cur, 1, #prefix) ~= prefix then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', ARGV[4] .. ARGV[2], ARGV[1])
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], seq .. ' u ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' 0 0 0 ' .. ARGV[1])
return seq
"""

#: A binding's state: availability, priority, carbons (ARGV 6, 7, 8).
STATE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local prefix = ARGV[2] .. ' ' .. ARGV[3] .. ' '
if not cur or string.sub(cur, 1, #prefix) ~= prefix then return 0 end
local state = ARGV[6] .. ' ' .. ARGV[7] .. ' ' .. ARGV[8]
redis.call('HSET', KEYS[1], ARGV[1], prefix .. state)
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], seq .. ' a ' .. prefix .. state .. ' ' .. ARGV[1])
return seq
"""

SNAPSHOT = """
return {redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1])}
"""

#: Remove a dead node's sessions and take its inbox (see the module docstring).
#: KEYS: heartbeat, held, inbox, sessions, seq, nodes; ARGV: node, force, channel.
REAP = """
if ARGV[2] ~= 'force' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
local prefix = ARGV[1] .. ' '
local removed = {}
for _, jid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local cur = redis.call('HGET', KEYS[4], jid)
  if cur and string.sub(cur, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[4], jid)
    local token = string.match(cur, '^%S+ (%S+)')
    removed[#removed + 1] = token
    local seq = redis.call('INCR', KEYS[5])
    redis.call('PUBLISH', ARGV[3], seq .. ' u ' .. ARGV[1] .. ' ' .. token .. ' 0 0 0 ' .. jid)
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[6], ARGV[1])
local entries = redis.call('XRANGE', KEYS[3], '-', '+')
redis.call('DEL', KEYS[3])
return {removed, entries}
"""


class LocalSession(Session):
    """A binding held by a stream of this node: the in-memory L{Session}, with its token."""

    __slots__ = ("token",)

    def __init__(self, jid: JID, stream, token: str):
        Session.__init__(self, jid, stream)
        self.token = token


@implementer(ISessionView)
class RemoteSession(SessionView):
    """
    The view of a binding held by another node: what the replica knows,
    and a C{send} that hands the stanza to the cluster's transport
    (L{xmppd.cluster.transport}).
    """

    __slots__ = ("node", "token", "directory")

    #: No stream of this node holds a remote binding (features that look at
    #: C{session.stream} find nothing).
    stream = None

    def __init__(self, jid: JID, node: str, token: str, directory: "ClusterDirectory"):
        SessionView.__init__(self, jid)
        self.node = node
        self.token = token
        self.directory = directory

    def send(self, stanza) -> None:
        self.directory.transport.forward(self, stanza)

    def sendPrepared(self, prepared, to: str) -> None:
        # The room's text goes once to the node, with its list of recipients.
        self.directory.transport.forwardPrepared(self, prepared, to)

    def __repr__(self) -> str:
        return "<RemoteSession %s on %s>" % (self.jid.full(), self.node)


@implementer(ISessionDirectory)
class ClusterDirectory:
    """
    See the module docstring.  C{redis} is a txredisapi connection for
    commands; C{transport} (set by the cluster service) carries stanzas to
    remote views; L{subscribed} and L{notified} are called by the
    subscriber connection.
    """

    log = Logger()

    def __init__(self, node: str, redis=None):
        self.node = node
        self.redis = redis
        self.transport = None
        self._byBare: dict[str, AccountSessions] = {}
        #: token -> this node's bindings (current ones).
        self._local: dict[str, LocalSession] = {}
        #: node -> {token: view} of the remote bindings in the replica.
        self._remote: dict[str, dict[str, RemoteSession]] = {}
        #: token -> (session, Deferred) of binds waiting for their notification.
        self._waiting: dict[str, tuple[LocalSession, defer.Deferred]] = {}
        self._prefix = secrets.token_hex(4) + "."
        self._counter = itertools.count()
        #: None while synchronising; the snapshot's sequence number afterwards.
        self._synced: int | None = None
        self._buffer: list[str] = []
        self._readyWaiters: list[defer.Deferred] = []
        self._reaping: dict[str, defer.Deferred] = {}
        #: node -> {token: view} of the views that the notifications of this
        #: node's reap of C{node} removed before the script's answer came.
        self._reapedViews: dict[str, dict[str, RemoteSession]] = {}
        #: The bindings in the replica with carbons on (L{ISessionDirectory}).
        self.carbonSessions: set = set()
        #: Called with the views of a dead node's bindings that this node's
        #: reap removed (before they leave the replica).
        self.onReaped = None

    # -- Redis -------------------------------------------------------------

    def _eval(self, script: str, keyNames, args):
        return self.redis.eval(script, list(keyNames), [str(a) for a in args])

    def _changeArgs(self, jid: str, token: str):
        return [jid, self.node, token, keys.PREFIX + "held:", keys.DIRECTORY_CHANNEL]

    @property
    def synced(self) -> bool:
        """Whether the replica follows the channel (subscribed, snapshot taken)."""
        return self._synced is not None

    def whenReady(self) -> defer.Deferred:
        """A Deferred firing once the replica is synchronised."""
        if self._synced is not None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._readyWaiters.append(d)
        return d

    # -- ISessionDirectory -------------------------------------------------

    def bind(self, jid: JID, stream) -> defer.Deferred:
        token = self._prefix + str(next(self._counter))
        session = LocalSession(jid, stream, token)
        d = defer.Deferred()
        self._waiting[token] = (session, d)

        def claim(_):
            return self._eval(BIND, (keys.SESSIONS, keys.SEQ),
                              self._changeArgs(jid.full(), token))

        def failed(failure):
            waiting = self._waiting.pop(token, None)
            if waiting is not None:
                logFailure(self.log, failure, "Binding {jid} in Redis failed", jid=jid.full())
                waiting[1].errback(failure)

        self.whenReady().addCallback(claim).addErrback(failed)
        return d

    def unbind(self, session) -> None:
        if not isinstance(session, LocalSession) or self._local.get(session.token) is not session:
            return
        self._remove(session)
        self._eval(UNBIND, (keys.SESSIONS, keys.SEQ),
                   self._changeArgs(session.jid.full(), session.token)).addErrback(
            lambda f: logFailure(self.log, f, "Unbinding {jid} in Redis failed",
                                  jid=session.jid.full()))

    def get(self, jid: JID):
        account = self._byBare.get(jid.userhost())
        if account is None:
            return None
        return account.byResource.get(jid.resource)

    def sessionsOf(self, jid: JID):
        account = self._byBare.get(jid.userhost())
        return account.all if account is not None else []

    def availableSessionsOf(self, jid: JID):
        account = self._byBare.get(jid.userhost())
        return account.available if account is not None else []

    def setAvailability(self, jid: JID, available: bool, priority: int) -> None:
        session = self.get(jid)
        if not isinstance(session, LocalSession):
            # Only the holder's node sets a binding's availability.
            return
        self._setState(session, available, priority, session.carbons)
        self._writeState(session)

    def setCarbons(self, jid: JID, enabled: bool) -> defer.Deferred:
        session = self.get(jid)
        if not isinstance(session, LocalSession):
            return defer.succeed(None)
        self._setState(session, session.available, session.priority, enabled)
        return self._writeState(session)

    def _writeState(self, session: LocalSession) -> defer.Deferred:
        """
        Write C{session}'s state to Redis, which tells the other nodes;
        fires once written, or logged as failed (the next snapshot writes
        it again, see the module docstring).
        """
        d = self._eval(STATE, (keys.SESSIONS, keys.SEQ),
                       self._changeArgs(session.jid.full(), session.token)
                       + [int(session.available), session.priority, int(session.carbons)])
        d.addCallbacks(lambda _: None, lambda f: logFailure(
            self.log, f, "Writing the state of {jid} in Redis failed", jid=session.jid.full()))
        return d

    def terminate(self, session, condition: str, text: str | None = None) -> None:
        if isinstance(session, LocalSession):
            session.stream.streamError(condition, text)
            return
        message = "0 t %s %s %s 0 0 %s\n%s" % (session.node, session.token, condition,
                                              session.jid.full(), text or "")
        self.redis.publish(keys.DIRECTORY_CHANNEL, message)

    def isBound(self, jid: JID) -> bool:
        return self.get(jid) is not None

    def countOf(self, jid: JID) -> int:
        account = self._byBare.get(jid.userhost())
        return len(account.byResource) if account is not None else 0

    def __len__(self) -> int:
        """The bindings held on this node."""
        return len(self._local)

    def bindings(self):
        """Every binding in the replica, this node's and the others' (L{ISessionDirectory.bindings})."""
        for account in list(self._byBare.values()):
            yield from account.all

    def local(self, token: str) -> LocalSession | None:
        """This node's current binding with C{token}, if any (the transport's look-up)."""
        return self._local.get(token)

    # -- the replica -------------------------------------------------------

    def _install(self, view) -> None:
        """Make C{view} the binding of its full JID; a local one it replaces is told to go."""
        jid = view.jid
        account = self._byBare.get(jid.userhost())
        if account is None:
            account = self._byBare[jid.userhost()] = AccountSessions()
        old = account.byResource.get(jid.resource)
        account.byResource[jid.resource] = view
        account.rebuild()
        self._forgetIndex(old)
        if view.carbons:
            self.carbonSessions.add(view)
        if isinstance(view, LocalSession):
            self._local[view.token] = view
        else:
            self._remote.setdefault(view.node, {})[view.token] = view
        if isinstance(old, LocalSession) and old.stream is not getattr(view, "stream", None):
            self.log.info("{jid} bound again: replacing the older session", jid=jid.full())
            old.stream.replaceSession()

    def _forgetIndex(self, view) -> None:
        self.carbonSessions.discard(view)
        if isinstance(view, LocalSession):
            self._local.pop(view.token, None)
        elif view is not None:
            views = self._remote.get(view.node)
            if views is not None:
                views.pop(view.token, None)
                if not views:
                    del self._remote[view.node]

    def _remove(self, view) -> None:
        account = self._byBare.get(view.jid.userhost())
        if account is None or account.byResource.get(view.jid.resource) is not view:
            return
        del account.byResource[view.jid.resource]
        if account.byResource:
            account.rebuild()
        else:
            del self._byBare[view.jid.userhost()]
        self._forgetIndex(view)

    def _setState(self, view, available: bool, priority: int, carbons: bool) -> None:
        changed = view.available != available
        _setSlot(view, "available", available)
        _setSlot(view, "priority", priority)
        _setSlot(view, "carbons", carbons)
        if carbons and self._current(view.jid, view.token) is view:
            self.carbonSessions.add(view)
        else:
            self.carbonSessions.discard(view)
        if changed:
            account = self._byBare.get(view.jid.userhost())
            if account is not None:
                account.rebuildAvailable()

    def _current(self, jid: JID, token: str):
        view = self.get(jid)
        return view if view is not None and view.token == token else None

    # -- notifications -----------------------------------------------------

    def subscribed(self) -> defer.Deferred:
        """The subscription is (again) in place: take a snapshot, then follow the channel."""
        self._synced = None
        self._buffer = []
        d = self._eval(SNAPSHOT, (keys.SESSIONS, keys.SEQ), ())
        d.addCallback(self._snapshot)
        d.addErrback(lambda f: logFailure(self.log, f, "Directory snapshot failed"))
        return d

    def unsubscribed(self) -> None:
        """The subscription was lost: buffer nothing until the next snapshot."""
        self._synced = None
        self._buffer = []

    def _snapshot(self, reply) -> None:
        seq, flat = int(reply[0]), reply[1]
        entries = dict(zip(flat[0::2], flat[1::2]))
        old = self._byBare
        self._byBare = {}
        oldLocal, self._local, self._remote = self._local, {}, {}
        self.carbonSessions.clear()
        remoteViews = {}
        fire = []
        rewrite = []
        for account in old.values():
            for view in account.all:
                if isinstance(view, RemoteSession):
                    remoteViews[view.token] = view
        for full, value in entries.items():
            fields = value.split(" ")
            try:
                node, token, available, priority = fields[:4]
                state = (available == "1", int(priority), fields[4:5] == ["1"])
                jid = parseJID(full)
            except (ValueError, InvalidJID):
                continue
            if node == self.node:
                view = oldLocal.pop(token, None)
                if view is None and token in self._waiting:
                    # A bind whose notification went while unsubscribed.
                    view, d = self._waiting.pop(token)
                    fire.append((d, view))
                if view is None:
                    continue  # a previous life of this node: reaped at start
                self._install(view)
                if (view.available, view.priority, view.carbons) != state:
                    rewrite.append(view)  # This node knows better (see the module docstring).
                continue
            view = remoteViews.get(token) or RemoteSession(jid, node, token, self)
            self._install(view)
            self._setState(view, *state)
        # Local bindings Redis no longer has were replaced or reaped meanwhile.
        for session in oldLocal.values():
            session.stream.replaceSession()
        self._synced = seq
        buffered, self._buffer = self._buffer, []
        for message in buffered:
            self.notified(message)
        for d, view in fire:
            d.callback(view)
        for view in rewrite:
            if self._local.get(view.token) is view:
                self._writeState(view)
        waiters, self._readyWaiters = self._readyWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def notified(self, message: str) -> None:
        """One message of C{xmppd:c:directory}."""
        if self._synced is None:
            self._buffer.append(message)
            return
        head, _, text = message.partition("\n")
        try:
            seq, op, node, token, available, priority, carbons, full = head.split(" ", 7)
            seq = int(seq)
            jid = parseJID(full)
        except (ValueError, InvalidJID):
            self.log.warn("Ignoring a malformed directory notification {m!r}", m=message)
            return
        if op == "t":
            session = self._local.get(token) if node == self.node else None
            if session is not None:
                session.stream.streamError(available, text or None)
            return
        if seq <= self._synced:
            return
        if op == "b":
            if node == self.node:
                waiting = self._waiting.pop(token, None)
                if waiting is None:
                    return
                session, d = waiting
                self._install(session)
                d.callback(session)
            else:
                self._install(RemoteSession(jid, node, token, self))
        elif op == "u":
            view = self._current(jid, token)
            if view is None:
                return
            self._remove(view)
            if isinstance(view, LocalSession):
                # This node was taken for dead and its sessions removed.
                view.stream.replaceSession()
            elif node in self._reaping:
                # Maybe this node's own reap: its answer may come after this.
                self._reapedViews.setdefault(node, {})[token] = view
        elif op == "a":
            view = self._current(jid, token)
            if isinstance(view, RemoteSession):
                self._setState(view, available == "1", int(priority), carbons == "1")

    # -- dead nodes --------------------------------------------------------

    def reap(self, node: str, force: bool = False) -> defer.Deferred:
        """
        Remove the sessions of C{node} if its heartbeat expired (always with
        C{force}: this node's own previous life, at start) and take its
        inbox; fires with the inbox's entries (C{[(id, [field, value,
        ...]), ...]}), or C{None} when the node is alive.  The node's views
        leave this replica at once, so that stanzas routed again do not
        go back to it.  Concurrent calls for one node share one script.
        """
        running = self._reaping.get(node)
        if running is not None:
            result = defer.Deferred()
            running.addBoth(lambda r: (result.callback(r), r)[1])
            return result
        d = self._eval(REAP, (keys.heartbeatKey(node), keys.heldKey(node), keys.inboxKey(node),
                              keys.SESSIONS, keys.SEQ, keys.NODES),
                       (node, "force" if force else "", keys.DIRECTORY_CHANNEL))

        def reaped(reply):
            self._reaping.pop(node, None)
            # The script's notifications and its answer come on two
            # connections: those that came first removed their views.
            known = self._reapedViews.pop(node, {})
            if reply is None:
                return None
            removed, entries = reply
            if node != self.node:
                views = self._remote.get(node, {})
                known.update(views)
                ended = [known[token] for token in removed if token in known]
                if removed:
                    self.log.info("Node {node} is gone: {count} session(s) removed",
                                  node=node, count=len(removed))
                if ended and self.onReaped is not None:
                    # This node removed them: it speaks for their dead holder.
                    self.onReaped(ended)
                for view in list(views.values()):
                    self._remove(view)
            return entries

        def failed(failure):
            self._reaping.pop(node, None)
            self._reapedViews.pop(node, None)
            return failure

        d.addCallbacks(reaped, failed)
        self._reaping[node] = d
        return d

    def remoteNodes(self):
        """The nodes this replica knows bindings of."""
        return list(self._remote)
