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
nothing is parsed again on the way to a client), and deletes the entries
it delivered (C{XDEL}).  Plain C{XREAD}, not a consumer group: an
inbox has one reader, its node, and a node that restarts takes its own
previous inbox at start (a forced reap) and routes it again, so a
group's pending list would cost an C{XACK} per batch and buy nothing.
An entry whose binding is gone meanwhile is
parsed and routed again, so RFC 6121 §8.5 applies as if the user had just
gone offline (offline storage, another resource, or an error).

A node whose heartbeat expired is reaped (L{ClusterDirectory.reap}): its
sessions leave the directory, and what is left in its inbox, plus every
forward that was refused, is routed again on the reaping node, in order.
So a stanza is never dropped silently; a node killed after handing an entry
to a client's socket and before C{XDEL} gives that entry a second life
through offline storage (at least once, not exactly once, across a crash).

Why a stream in Redis rather than direct node-to-node connections: one
Redis round trip per node and reactor turn (the script) plus one read and
one delete per batch on the holder, no mesh of connections to keep, and the
stanzas of a dead node are still where a survivor can take them, which
a TCP connection to a dead process cannot give.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppd.cluster import keys
from xmppd.core.stanzas import (Confirmation, StanzaText, acknowledgeAfter, errorReply, holders,
                                 meta, marks)
from xmppd.stream.serializer import serialize
from xmppd.stream.xmlparser import parseStored

#: KEYS: heartbeat, inbox; ARGV: the packed stanzas (L{pack}).
FORWARD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[1])
return 1
"""

#: Between two stanzas of one entry: a character XML text never holds.
RECORD = "\x00"


def pack(records) -> str:
    """C{[(token, full JID, text, ...), ...]} as one inbox entry's value."""
    return RECORD.join("%s %s\n%s" % record[:3] for record in records)


def unpack(value: str):
    """The C{(token, full JID, text)}s of an inbox entry's value."""
    for record in value.split(RECORD):
        head, _, text = record.partition("\n")
        token, _, jid = head.partition(" ")
        yield token, jid, text

#: Entries read per XREAD, and how long one blocks (ms) before looping.
BATCH = 256
BLOCK_MS = 2000


def relayed(stanza) -> bool:
    """Whether C{stanza} came from another node to be routed here (L{Transport.reroute})."""
    return marks(stanza).clusterRelayed


def confirm(confirmation: Confirmation | None) -> None:
    """Fire C{confirmation} (if any, and once): its stanzas may be acknowledged."""
    if confirmation is not None and not confirmation.called:
        confirmation.callback(None)


def whenLetGo(elements, then) -> None:
    """
    Call C{then()} once every holder of C{elements} has let go, those that
    take hold meanwhile included (a hook chain's next write).
    """
    for element in elements:
        for held in holders(element) or ():
            if not held.called:
                def again(result):
                    whenLetGo(elements, then)
                    return result
                held.addBoth(again)
                return
    then()


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
                            [pack(records)])
        d.addCallback(self._forwarded, node, records, confirmation)
        d.addErrback(self._failed, node, records, confirmation)

    def _forwarded(self, accepted, node: str, records, confirmation=None):
        if int(accepted) == 1:
            # In the node's inbox (and in Redis's append-only file):
            # stream management may count these stanzas now.
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
        rerouted = [self.reroute(record[2]) for record in records]
        # Counted once routed again and let go by whatever took them (an
        # offline write on disk, another node's confirmation).
        whenLetGo([element for element in rerouted if element is not None],
                  lambda: confirm(confirmation))

    def _failed(self, failure, node: str, records, confirmation=None) -> None:
        # Redis is away: the stanzas cannot be handed on.  Their senders
        # hear it (RFC 6120 §8.3.3.8).  A copy of a fan-out serialized once
        # for many (a room's message, text only) has no sender to tell: the
        # log line counts it.
        self.log.failure("{count} stanza(s) for node {node} could not be forwarded",
                         failure, count=len(records), node=node)
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

    def stop(self) -> None:
        self.running = False
        if self.flushing is not None and self.flushing.active():
            self.flushing.cancel()
            self.flush()

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
                self.log.failure("Reading inbox {inbox} failed; retrying", inbox=self.inbox)
                yield task.deferLater(self.clock, 1.0, lambda: None)
                continue
            if not reply or not self.running:
                continue
            entries = reply[0][1]
            ids = []
            for entryId, fields in entries:
                ids.append(entryId)
                self.deliver(fields)
            lastId = ids[-1]
            try:
                yield self.redis.execute_command("XDEL", self.inbox, *ids)
            except Exception:
                self.log.failure("Deleting delivered entries of {inbox} failed", inbox=self.inbox)

    def deliver(self, fields) -> None:
        """One inbox entry: each stanza to its binding if it is still here, else routed again."""
        values = dict(zip(fields[0::2], fields[1::2]))
        local = self.directory.local
        for token, _, text in unpack(values.get("m", "")):
            if not text:
                continue
            session = local(token)
            self.delivered += 1
            if session is not None:
                session.send(StanzaText(text))
            else:
                self.reroute(text)
