# -*- test-case-name: tests.test_cluster -*-
"""
Stanzas between nodes (DESIGN §6): one Redis stream per node, its inbox
(C{xmppd:c:inbox:NODE}).

A remote view's C{send} serializes the stanza once and queues it for its
node; at the end of the reactor turn, the stanzas queued for one node go
in one L{FORWARD}: a script that appends them to the holder node's inbox
only while that node's heartbeat key exists, and answers 0 otherwise.  All
forwards of a node go through one connection (the L{Transport}'s C{redis},
a pool of one), so Redis appends them in the order they were sent: in
order per sender, since a sender's stanzas are routed in order on its
node.  One script and one stream entry per node and reactor turn rather
than per stanza: the Redis round trip, txredisapi's per-command work and
its parsing of every bulk string of a reply are most of the cost
(measured: see the README's cluster section).

Stream management (XEP-0198) counts a forwarded stanza as handled only
once that script answered (L{Transport.forward}): the turn's stanzas for a
node share one L{Confirmation}, so the wait costs one Deferred per node and
turn, and nothing on a lone node, which has no transport.  The sender's
later stanzas are processed meanwhile; only its C{h} waits.  So a sender
never hears "handled" for a stanza that a Redis failure, or a SIGKILL of
this node before the script's answer, then loses.  Measured with
C{benchmarks/clusterbench.py --sm} (CPU-ms per 1000 cross-node messages,
before / after): bursts 52 / 46-52, no difference above the noise; one
message per reactor turn, the worst case, 42-53 / 55-61.  Holding each
forward instead (issue 5's L{hold}) measured 7x a same-node message.

The holder reads its inbox with C{XREAD BLOCK} on a connection of its own,
hands each stanza of an entry to the binding named by its token (as L{StanzaText}:
nothing is parsed again on the way to a client), and deletes an entry
(C{XDEL}) only once every stanza of it is I{settled}:

  - for a session with stream management (XEP-0198), once the client
    acknowledged it (an C{<a h/>} covering it), or, when the session ended
    first, once stream management re-routed it (another resource, offline
    storage, an error) and its takers accepted it (issue 5's holders): the
    session's L{xmppd.features.sm.StreamManagement.settleAfterNext};
  - for a session without it, once written to the client's socket (the
    client cannot say more);
  - for a stanza whose binding is gone meanwhile, once routed again (RFC
    6121 §8.5, as if the user had just gone offline) and accepted.

Until then the entry stays in the inbox, so a node killed (SIGKILL) with
stanzas written but not acknowledged leaves them to the node that reaps it
(or to its own next life), which routes them again: at least once across a
crash, not exactly once (a stanza the client received and had not
acknowledged yet comes again, through offline storage, with a
C{<delay/>}).  What is kept per entry while it waits is one small
L{_Entry} (its id and a count); per stanza, one (sequence number, entry)
pair in the session's stream management, merged for consecutive stanzas
of one entry, and bounded by C{[sm] max_unacked} like the unacknowledged
stanzas themselves: a client that never acknowledges is closed at that
bound and its stanzas re-routed.  Settled entries are deleted together,
one C{XDEL} per reactor turn.

Plain C{XREAD}, not a consumer group: an inbox has one reader, its node,
which reads on from the last id it read (entries it still holds are not
read again), and a node that restarts takes its own previous inbox at
start (a forced reap) and routes it again, so a group's pending list would
cost an C{XACK} per batch and buy nothing.

A room's message (or any stanza serialized once for many, L{Prepared})
to several sessions of one node travels as one L{FanOut} record: the text
without C{to} once and the list of recipients, each of whose copies the
holder addresses as the owner addresses its own sessions' (L{unpack}).

An inbox holds at most L{INBOX_LIMIT} entries: beyond that, L{FORWARD}
refuses, and the sender answers the stanzas with C{resource-constraint}
(a fan-out copy, which has no sender to tell, is counted and logged), so a
node that cannot keep up does not make Redis's memory grow without bound.

A node whose heartbeat expired is reaped (L{ClusterDirectory.reap}): its
sessions leave the directory, and what is left in its inbox, plus every
forward that was refused, is routed again on the reaping node, in order.
So a stanza is never dropped silently.

Why a stream in Redis rather than direct node-to-node connections: one
Redis round trip per node and reactor turn (the script) plus one read and
one delete per batch on the holder, no mesh of connections to keep, and the
stanzas of a dead node are still where a survivor can take them, which
a TCP connection to a dead process cannot give.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmppd.cluster import keys
from xmppd.core.ordering import whenLetGo
from xmppd.core.prepared import Prepared
from xmppd.core.stanzas import (Confirmation, StanzaText, acknowledgeAfter, errorReply, meta,
                                 marks)
from xmppd.storage.redisclient import logFailure
from xmppd.stream.serializer import serialize
from xmppd.stream.xmlparser import parseStored

#: KEYS: heartbeat, inbox; ARGV: the packed stanzas (L{pack}), the bound.
#: Answers 0 (holder dead), 2 (its inbox holds the bound of entries unread
#: already: refused, L{INBOX_LIMIT}) or 1 (appended).
FORWARD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then return 2 end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[1])
return 1
"""

#: Entries a node's inbox may hold before forwards to it are refused: a
#: node that reads slower than the others write (a room's owner fanning out
#: to it faster than it delivers, measured at p99 9.7 s and 509 MB) makes
#: its senders answer C{resource-constraint} (RFC 6120 §8.3.3.18) instead
#: of letting Redis's memory grow.  An entry is what one node forwards in
#: one reactor turn; 10 000 of them are tens of megabytes, seconds behind.
INBOX_LIMIT = 10000

#: Between two stanzas of one entry: a character XML text never holds.
RECORD = "\x00"
#: First character of a fan-out record (L{FanOut}), another one XML never holds.
FANOUT = "\x01"


class FanOut:
    """
    One stanza serialized once for several sessions of one node (a room's
    message, L{xmppd.core.prepared.Prepared}), as one record of an inbox
    entry: its text without C{to} once, and the C{(token, full JID)}s of
    its recipients there.  The holder splices each recipient's C{to} in
    (L{Prepared.textFor}), as the owner does for its own sessions, instead
    of the owner packing one copy per recipient.  Its line of recipients is
    C{FANOUT}, the length of the text's head, then tokens and full JIDs,
    all separated by tabs (a JID holds no control character, RFC 7622).
    """

    __slots__ = ("prepared", "recipients")

    def __init__(self, prepared):
        self.prepared = prepared
        self.recipients: list[tuple[str, str]] = []

    def packed(self) -> str:
        prepared = self.prepared
        return "%s%d\t%s\n%s%s" % (
            FANOUT, len(prepared.head), "\t".join(map("\t".join, self.recipients)),
            prepared.head, prepared.tail)

    def copies(self):
        """Each recipient's C{(token, full JID, text, text)}, as a plain record."""
        textFor = self.prepared.textFor
        for token, jid in self.recipients:
            text = textFor(jid)
            yield token, jid, text, text


def copies(records):
    """Plain records (token, full JID, text, stanza): fan-outs spread per recipient."""
    for record in records:
        if type(record) is FanOut:
            yield from record.copies()
        else:
            yield record


def pack(records) -> str:
    """C{[(token, full JID, text, ...) or FanOut, ...]} as one inbox entry's value."""
    return RECORD.join(record.packed() if type(record) is FanOut else "%s %s\n%s" % record[:3]
                       for record in records)


def unpack(value: str):
    """The C{(token, full JID, text)}s of an inbox entry's value, one per recipient."""
    for record in value.split(RECORD):
        head, _, text = record.partition("\n")
        if head[:1] == FANOUT:
            fields = head[1:].split("\t")
            cut = int(fields[0])
            prepared = Prepared.fromText(text[:cut], text[cut:])
            for token, jid in zip(fields[1::2], fields[2::2]):
                yield token, jid, prepared.textFor(jid)
            continue
        token, _, jid = head.partition(" ")
        yield token, jid, text

#: Entries read per XREAD, and how long one blocks (ms) before looping.
BATCH = 256
BLOCK_MS = 2000


def relayed(stanza) -> bool:
    """Whether C{stanza} came from another node to be routed here (L{Transport.reroute})."""
    return marks(stanza).clusterRelayed


class _Entry:
    """
    An inbox entry being delivered: its id, and how many of its deliveries
    are not settled yet (plus one while L{Transport.deliver} hands them
    out).  C{settle} is what stream management and the holders call.
    """

    __slots__ = ("transport", "id", "unsettled")

    def __init__(self, transport: "Transport", entryId: str):
        self.transport = transport
        self.id = entryId
        self.unsettled = 1

    def settle(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            self.transport.settled(self.id)


def confirm(confirmation: Confirmation | None) -> None:
    """Fire C{confirmation} (if any, and once): its stanzas may be acknowledged."""
    if confirmation is not None and not confirmation.called:
        confirmation.callback(None)


class Transport:
    """
    Forwards stanzas to remote views and reads this node's inbox.  C{redis}
    is the ordered forwarding connection (pool of one), C{reader} a
    connection only for the blocking reads, C{route} the router's
    C{route} (where stanzas whose binding is gone go again).
    """

    log = Logger()

    def __init__(self, node: str, directory, redis, reader, route, clock):
        self.node = node
        self.directory = directory
        self.redis = redis
        self.reader = reader
        self.route = route
        self.clock = clock
        self.inbox = keys.inboxKey(node)
        self.running = False
        self.reading = None
        #: node -> [(token, full JID, text, stanza), ...] waiting for the end of this turn.
        self.queued: dict[str, list[tuple]] = {}
        #: node -> the L{Confirmation} of this turn's stanzas for it: fired
        #: once their script has answered (see L{forward}).
        self.confirming: dict[str, Confirmation] = {}
        self.flushing = None
        #: Whether a node without heartbeat may be taken for dead now (the
        #: cluster service's judgement), and how long to wait otherwise.
        self.mayReap = lambda: True
        self.retryDelay = 1.0
        #: Forwarded, refused, waiting for the dead node's reap: kept in order.
        self.forwarded = 0
        self.delivered = 0
        #: Ids of settled inbox entries, deleted at the end of the reactor turn.
        self.settledIds: list[str] = []
        self.deleting = None
        #: Entries read and not settled yet (a count, for tests and operators).
        self.holding = 0
        #: Bound of a target's unread inbox (L{INBOX_LIMIT}), and the stanzas
        #: refused for it (fan-out copies, with no sender to tell, included).
        self.inboxLimit = INBOX_LIMIT
        self.refused = 0

    # -- sending -----------------------------------------------------------

    def forward(self, view, stanza) -> None:
        """
        Queue C{stanza} for C{view}'s node.  Stream management does not
        acknowledge it to its sender before Redis has it (issue 14: never
        acknowledged and then lost), but it is not held either (issue 5's
        L{hold}): holding would make each sender's next stanza wait for
        Redis's answer (in-order processing), one script per stanza instead
        of one per turn, measured at 7x the CPU of a same-node message.
        Instead the stanza's acknowledgement waits for its turn's
        L{Confirmation} (L{acknowledgeAfter}), one per node and turn, fired
        when the script has answered (L{_forwarded}); the sender's next
        stanzas are processed meanwhile, and its C{h} stops before the
        first unconfirmed one.  If Redis fails, the sender gets an
        C{internal-server-error} for it (L{_failed}), then the count goes
        on (the stanza was answered); a stanza refused by a dead node
        counts once it was routed again (L{_reaped}) and whatever took it
        then let go (an offline write on disk).
        """
        self.forwarded += 1
        text = stanza if isinstance(stanza, str) else serialize(stanza)
        self._queue(view.node, (view.token, view.jid.full(), text, stanza))

    def forwardPrepared(self, view, prepared, to: str) -> None:
        """
        Queue C{prepared} addressed to C{to} for C{view}'s node: joins the
        L{FanOut} record this turn queued last for that node when it is the
        same stanza (a room's fan-out loop), so the text travels once per
        node; a new record otherwise, so order per sender holds.
        """
        self.forwarded += 1
        queued = self.queued.get(view.node)
        if queued:
            last = queued[-1]
            if type(last) is FanOut and last.prepared is prepared:
                last.recipients.append((view.token, to))
                return
        record = FanOut(prepared)
        record.recipients.append((view.token, to))
        self._queue(view.node, record)

    def relay(self, node: str, stanza) -> None:
        """
        Have C{node} route C{stanza} itself, as if it had arrived there
        (L{xmppd.cluster.service.ClusterService.relayProbe}): an inbox
        record with no binding token.
        """
        text = stanza if isinstance(stanza, str) else serialize(stanza)
        self._queue(node, ("", stanza.getAttribute("to") or "", text, stanza))

    def _queue(self, node: str, record: tuple) -> None:
        """
        Add C{record} (binding token, full JID, text, the stanza) to what
        this reactor turn hands to C{node}; a stanza (not text) is not
        acknowledged to its sender before that turn's script answered.
        """
        queued = self.queued.get(node)
        if queued is None:
            queued = self.queued[node] = []
            if self.flushing is None:
                self.flushing = self.clock.callLater(0, self.flush)
        queued.append(record)
        if type(record) is FanOut:
            return  # Text serialized once for many: no sender waits for it.
        stanza = record[3]
        if not isinstance(stanza, str):
            confirmation = self.confirming.get(node)
            if confirmation is None:
                confirmation = self.confirming[node] = Confirmation()
            acknowledgeAfter(stanza, confirmation)

    def flush(self) -> None:
        """Hand what this reactor turn queued to the nodes' inboxes, one script per node."""
        self.flushing = None
        queued, self.queued = self.queued, {}
        confirming, self.confirming = self.confirming, {}
        for node, records in queued.items():
            self._send(node, records, confirming.get(node))

    def _send(self, node: str, records, confirmation: Confirmation | None = None) -> None:
        """
        One script: append C{records} to C{node}'s inbox if its heartbeat
        lives; C{confirmation} fires once they are there, answered, or
        routed again.
        """
        d = self.redis.eval(FORWARD, [keys.heartbeatKey(node), keys.inboxKey(node)],
                            [pack(records), self.inboxLimit])
        d.addCallback(self._forwarded, node, records, confirmation)
        d.addErrback(self._failed, node, records, confirmation)

    def _forwarded(self, accepted, node: str, records, confirmation=None):
        accepted = int(accepted)
        if accepted == 1:
            # In the node's inbox (and in Redis's append-only file):
            # stream management may count these stanzas now.
            confirm(confirmation)
            return None
        if accepted == 2:
            self._refused(node, records)
            # Answered with an error: a count that goes past them claims nothing.
            confirm(confirmation)
            return None
        if not self.mayReap():
            # Redis was away from this node lately: the holder may be alive
            # and about to beat again.  Try again in a heartbeat (the one
            # case where a sender's stanzas may overtake each other).
            self.clock.callLater(self.retryDelay, self._send, node, records, confirmation)
            return None
        # The holder's heartbeat expired: take its sessions and inbox, then these.
        return self.directory.reap(node).addCallback(self._reaped, records, confirmation)

    def _reaped(self, entries, records, confirmation=None) -> None:
        self.rerouteEntries(entries or [])
        rerouted = [self.reroute(record[2]) for record in copies(records)]
        # Counted once routed again and let go by whatever took them (an
        # offline write on disk, another node's confirmation).
        whenLetGo([element for element in rerouted if element is not None],
                  lambda: confirm(confirmation))

    def _refused(self, node: str, records) -> None:
        """
        C{node}'s inbox is full (L{INBOX_LIMIT}): each sender hears
        C{resource-constraint} (RFC 6120 §8.3.3.18, "try again later"); a
        fan-out copy has no sender to tell: the log line counts it.
        """
        count = texts = 0
        for record in copies(records):
            count += 1
            stanza = record[3]
            if isinstance(stanza, str):
                texts += 1
                continue
            reply = errorReply(stanza, "resource-constraint",
                               "the recipient's node is overloaded; try again later")
            if reply is not None:
                self.route(reply)
        self.refused += count
        self.log.warn("Node {node}'s inbox is full ({limit} entries): {count} stanza(s) refused,"
                      " {texts} of them fan-out copies ({total} refused so far)",
                      node=node, limit=self.inboxLimit, count=count, texts=texts,
                      total=self.refused)

    def _failed(self, failure, node: str, records, confirmation=None) -> None:
        # Redis is away: the stanzas cannot be handed on.  Their senders
        # hear it (RFC 6120 §8.3.3.8).  A copy of a fan-out serialized once
        # for many (a room's message, text only) has no sender to tell: the
        # log line counts it.
        records = list(copies(records))
        logFailure(self.log, failure, "{count} stanza(s) for node {node} could not be forwarded",
                   count=len(records), node=node)
        for record in records:
            stanza = record[3]
            if not isinstance(stanza, str):
                reply = errorReply(stanza, "internal-server-error",
                                   "the cluster cannot reach the recipient's node")
                if reply is not None:
                    self.route(reply)
        # Answered with an error: a count that goes past them claims nothing.
        confirm(confirmation)

    def rerouteEntries(self, entries) -> None:
        """Route again the stanzas of a reaped inbox, in their order."""
        for _, fields in entries:
            values = dict(zip(fields[0::2], fields[1::2]))
            for _, _, text in unpack(values.get("m", "")):
                self.reroute(text)

    def reroute(self, text: str):
        """
        Route the stanza C{text} again (its binding went): RFC 6121 §8.5
        decides.  The stanza routed, or C{None} if C{text} does not parse.
        """
        try:
            [element] = parseStored(text)
        except Exception:
            self.log.failure("A stanza between nodes does not parse: {text!r}", text=text[:200])
            return None
        # Routed again here: the cluster does not relay it once more.
        meta(element).clusterRelayed = True
        self.route(element)
        return element

    # -- receiving ---------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self.reading = self._readLoop()

    def stop(self):
        """
        Stop reading; hand on what this turn queued, and delete the entries
        settled so far (a Deferred when there are some: the node's heartbeat
        should go only after, or the reaping node routes them again).
        """
        self.running = False
        if self.flushing is not None and self.flushing.active():
            self.flushing.cancel()
            self.flush()
        if self.deleting is not None and self.deleting.active():
            self.deleting.cancel()
            return self.deleteSettled()
        return None

    @defer.inlineCallbacks
    def _readLoop(self):
        lastId = "0"
        while self.running:
            try:
                reply = yield self.reader.execute_command(
                    "XREAD", "COUNT", BATCH, "BLOCK", BLOCK_MS, "STREAMS", self.inbox, lastId)
            except Exception:
                if not self.running:
                    return
                logFailure(self.log, Failure(), "Reading inbox {inbox} failed; retrying",
                           inbox=self.inbox)
                yield task.deferLater(self.clock, 1.0, lambda: None)
                continue
            if not reply or not self.running:
                continue
            entries = reply[0][1]
            for entryId, fields in entries:
                self.deliver(entryId, fields)
            # Entries not settled yet stay in the inbox, and are not read again.
            lastId = entries[-1][0]

    def deliver(self, entryId: str, fields) -> None:
        """
        One inbox entry: each stanza to its binding if it is still here,
        else routed again; the entry is deleted once all are settled (see
        the module docstring).
        """
        values = dict(zip(fields[0::2], fields[1::2]))
        local = self.directory.local
        entry = _Entry(self, entryId)
        self.holding += 1
        for token, _, text in unpack(values.get("m", "")):
            if not text:
                continue
            session = local(token)
            self.delivered += 1
            if session is None:
                element = self.reroute(text)
                if element is not None:
                    entry.unsettled += 1
                    whenLetGo([element], entry.settle)
                continue
            sm = getattr(session.stream, "sm", None)
            if sm is not None and sm.settleAfterNext(entry):
                entry.unsettled += 1
            session.send(StanzaText(text))
        entry.settle()

    def settled(self, entryId: str) -> None:
        """Every stanza of the entry C{entryId} is settled: delete it at the end of the turn."""
        self.holding -= 1
        if not self.running:
            return  # Stopped: the node that reaps this one routes it again.
        self.settledIds.append(entryId)
        if self.deleting is None:
            self.deleting = self.clock.callLater(0, self.deleteSettled)

    def deleteSettled(self):
        """One C{XDEL} for the entries settled since the last one."""
        self.deleting = None
        ids, self.settledIds = self.settledIds, []
        if not ids:
            return defer.succeed(None)
        d = self.redis.execute_command("XDEL", self.inbox, *ids)
        d.addErrback(lambda f: logFailure(
            self.log, f, "Deleting settled entries of {inbox} failed", inbox=self.inbox))
        return d
