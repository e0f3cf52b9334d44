# -*- test-case-name: tests.test_csi -*-
"""
Client state indication (XEP-0352): a client says it is C{<inactive/>}
(the phone's screen is off) or C{<active/>} again, and while it is
inactive the server holds back what can wait, so the radio sleeps longer.

Discovery (§4.1): C{<csi xmlns='urn:xmpp:csi:0'/>} is offered in the
stream features once the client has authenticated.  C{<active/>} and
C{<inactive/>} are nonzas (taken from the C{"c2s/nonza"} hook), so stream
management (XEP-0198) does not count them.  Every stream starts active
(§4.2), a resumed one too (§5.2: the state is not restored).  The XEP
defines no error: a repeated state changes nothing, and a client that
toggles in a tight loop costs one small object per C{<inactive/>} and,
per C{<active/>}, the flush of what was held meanwhile; nothing is kept
per toggle.

What waits (the choices of Prosody's C{mod_csi_simple}, with collapsing
as its older C{mod_csi_battery_saver} did), see L{classify}:

  - presence updates (available and unavailable): only the latest from
    each sender is kept;
  - messages without a body that only carry chat states (XEP-0085): only
    the latest from each sender is kept;
  - PEP notifications (XEP-0163) of one item: only the latest per sender
    and node when the item is the node's single current value (item id
    C{current}, or a node of L{LATEST_NODES}, avatar metadata, tune, mood,
    OMEMO device lists...), else the latest per sender, node and item id
    (a bookmark per room, XEP-0402, must not hide another);
  - other messages without a body (receipts, markers, headlines without
    one): kept as they are.

What goes at once: IQs, messages with a body (also inside a carbon copy),
a subject (the last step of a room join), invitations, encrypted payloads
(OMEMO, XEP-0380), call invitations (XEP-0353), archive results the client
asked for (XEP-0313), errors, subscription requests and answers; everything that is not a stanza (stream errors,
stream management's C{<a/>} and C{<r/>}).  Before an urgent stanza, what
was held is sent first, in the order it was held (a collapsed entry takes
the place of its latest), so the client sees one order.  When the client
becomes active again everything held is sent, in order; when
C{[csi] queue_size} entries are held, they are all sent.

Held stanzas are not sent, so stream management has not counted them yet.
When the connection goes or the session ends, they are handed to the
stream as if sent then: with stream management they join what the client
never acknowledged (re-sent on resumption, or, when the session ends, a
message goes to another resource and presence is dropped, L{xmppd.features.sm});
without it they are dropped as anything written to a closing stream is.
None of them has a body, so nothing offline storage would keep is lost.

The seam is the client stream's C{csi} slot (L{xmppd.c2s.stream}): C{None}
for an active stream, so an active session pays one attribute test per
stanza sent; an inactive one, L{ClientState}, sees every stanza before it
is written.  A stanza already serialized for many recipients (a room's or
PEP's fan-out) is classified from its text: presence from its start tag, a
message with a body anywhere as urgent, and other messages by one parse
with an expat parser the domain keeps open (L{Reader}, about 12 us here,
where a new parser per stanza cost 80).

Bind 2 (XEP-0386) carries the state inline.  A feature sets it with
L{setState}; the stream layer, which may not import features, fires
C{"c2s/nonza"} with the inline C{<active/>} or C{<inactive/>} element as
if the client had sent it (the answer is C{True} when it was taken).

Implements: XEP-0352 1.0.0
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from xml.sax.saxutils import unescape

from twisted.logger import Logger
from twisted.words.protocols.jabber.xmlstream import XMPPHandler
from twisted.words.xish import domish

from xmppd.config import integer, option, section
from xmppd.core.hooks import DELIVER
from xmppd.core.stanzas import StanzaText
from xmppd.stream.elements import STANZA_NAMES

__all__ = ["NS_CSI", "setState", "isInactive"]

NS_CSI = "urn:xmpp:csi:0"
NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

#: Children of a message that make it worth waking the client for, beside
#: a body and a subject: (namespace, name), name None for any.
URGENT_PAYLOADS = frozenset((
    ("jabber:x:conference", "x"),                     # XEP-0249 invitation
    ("urn:xmpp:eme:0", "encryption"),                 # XEP-0380
    ("eu.siacs.conversations.axolotl", "encrypted"),  # OMEMO (XEP-0384 0.3)
    ("urn:xmpp:omemo:2", "encrypted"),                # OMEMO 2
    ("urn:xmpp:openpgp:0", "openpgp"),                # XEP-0373
    ("urn:xmpp:jingle-message:0", None),              # XEP-0353 calls
    ("urn:xmpp:jingle-message:1", None),
    ("urn:xmpp:mam:2", "result"),                     # what the client asked for (XEP-0313)
))

#: PEP nodes whose single item is the publisher's current value, so an
#: older notification is worth nothing once a newer one is held.
LATEST_NODES = frozenset((
    "urn:xmpp:avatar:metadata",                       # XEP-0084
    "http://jabber.org/protocol/tune",                # XEP-0118
    "http://jabber.org/protocol/mood",                # XEP-0107
    "http://jabber.org/protocol/activity",            # XEP-0108
    "http://jabber.org/protocol/geoloc",              # XEP-0080
    "http://jabber.org/protocol/nick",                # XEP-0172
    "eu.siacs.conversations.axolotl.devicelist",      # OMEMO device lists
    "urn:xmpp:omemo:2:devices",
))

#: Presence types that may wait: updates, not requests or answers.
HELD_PRESENCE = frozenset((None, "unavailable"))

#: Children a chat state message may carry beside its state and still be
#: replaced by the sender's next state: hints, ids, delay stamps.
INCIDENTAL = frozenset(("urn:xmpp:hints", "urn:xmpp:sid:0", "urn:xmpp:delay"))


@section("csi")
@dataclasses.dataclass(frozen=True)
class CSIConfig:
    queue_size: int = option(
        256, integer(minimum=1),
        "stanzas held for an inactive client (XEP-0352, collapsed entries "
        "count once); when that many are held they are all sent")


def _urgentMessage(message: domish.Element) -> bool:
    """Whether a message (or the one a carbon copy forwards) must go at once."""
    for child in message.elements():
        uri, name = child.uri, child.name
        if name == "body" or name == "subject":
            if uri in (None, NS_CLIENT, message.uri):
                return True
        elif (uri, name) in URGENT_PAYLOADS or (uri, None) in URGENT_PAYLOADS:
            return True
        elif uri == NS_MUC_USER and name == "x":
            if any(grand.name == "invite" for grand in child.elements()):
                return True
        elif uri == NS_CARBONS and name in ("sent", "received"):
            for forwarded in child.elements(NS_FORWARD, "forwarded"):
                for inner in forwarded.elements():
                    if inner.name == "message" and _urgentMessage(inner):
                        return True
    return False


def classify(stanza: domish.Element):
    """
    What an inactive client's stream does with C{stanza}: C{None} to send it
    at once, C{False} to hold it as it is, or a key: the latest stanza held
    under one key replaces the earlier (see the module docstring).
    """
    kind = stanza.name
    if kind == "presence":
        if stanza.getAttribute("type") in HELD_PRESENCE:
            return ("presence", stanza.getAttribute("from"))
        return None
    if kind != "message":
        return None
    if stanza.getAttribute("type") == "error" or _urgentMessage(stanza):
        return None
    sender = stanza.getAttribute("from")
    states = False
    for child in stanza.elements():
        uri = child.uri
        if uri == NS_CHATSTATES:
            states = True
        elif uri == NS_PUBSUB_EVENT and child.name == "event":
            return _eventKey(sender, child)
        elif child.name != "thread" and uri not in INCIDENTAL:
            return False
    return ("chatstate", sender) if states else False


def _eventKey(sender, event: domish.Element):
    """The key of a PEP notification of one item (published or retracted), else False."""
    found = None
    for items in event.elements():
        if found is not None or items.name != "items":
            return False
        found = items
    if found is None:
        return False
    node = found.getAttribute("node")
    children = list(found.elements())
    if len(children) != 1 or children[0].name not in ("item", "retract"):
        return False
    itemId = children[0].getAttribute("id")
    if itemId is None:
        return False
    if itemId == "current" or node in LATEST_NODES:
        return ("pep", sender, node)
    return ("pep", sender, node, itemId)


#: The start tag of a presence serialized for a client, and its attributes.
_PRESENCE = re.compile(r"<presence\b([^>]*)>")
_ATTRIBUTE = re.compile(r"""\s([\w:.-]+)=(?:'([^']*)'|"([^"]*)")""")
_ENTITIES = {"&apos;": "'", "&quot;": '"'}


def classifyText(text: str, reader: "Reader"):
    """
    L{classify} for a stanza already serialized (a room's or PEP's fan-out,
    L{xmppd.core.prepared}): presence by its start tag, a message with a
    body anywhere as urgent, without parsing; other messages parsed.
    """
    if text.startswith("<presence"):
        found = _PRESENCE.match(text)
        if found is None:
            return None
        attrs = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                 for m in _ATTRIBUTE.finditer(found.group(1))}
        if attrs.get("type") in HELD_PRESENCE:
            sender = attrs.get("from")
            return ("presence", unescape(sender, _ENTITIES) if sender is not None else None)
        return None
    if not text.startswith("<message") or "<body" in text:
        return None
    stanza = reader.read(text)
    return classify(stanza) if stanza is not None else None


class Reader:
    """
    Parses serialized stanzas back, one at a time, with one expat parser
    kept open (making a parser costs eight times the parse); a text that
    is not exactly one element starts a fresh one.
    """

    __slots__ = ("stream", "found")

    def __init__(self):
        self.found: list = []
        self.open()

    def open(self) -> None:
        stream = self.stream = domish.elementStream()
        stream.DocumentStartEvent = lambda root: None
        stream.ElementEvent = self.found.append
        stream.DocumentEndEvent = lambda: None
        stream.parse(("<s xmlns='%s' xmlns:stream='%s'>" % (NS_CLIENT, NS_STREAMS)).encode())

    def read(self, text: str) -> domish.Element | None:
        found = self.found
        try:
            self.stream.parse(text.encode("utf-8"))
        except Exception:
            found.clear()
            self.open()
            return None
        if len(found) == 1:
            return found.pop()
        found.clear()
        self.open()  # Half an element, or several: the parser's state is unknown.
        return None


class ClientState:
    """
    An inactive client's stream's state: what is held, in the order to send
    it (a dict: a collapsed key keeps one entry, moved to the end).  It is
    the stream's C{csi} while the client is inactive, and dropped when it
    is active again.
    """

    __slots__ = ("stream", "held", "limit", "serial", "reader")

    log = Logger()

    def __init__(self, stream, limit: int, reader: Reader | None = None):
        self.stream = stream
        self.limit = limit
        #: The domain's L{Reader}, or one of its own made when first needed.
        self.reader = reader
        self.held: dict = {}
        #: Keys for stanzas held as they are, never equal to a collapsing key.
        self.serial = itertools.count()

    def hold(self, obj) -> bool:
        """
        The stream is about to send C{obj}: True when it is held instead.
        What cannot wait first sends what is held, then goes on its way.
        """
        if type(obj) is StanzaText:
            reader = self.reader
            if reader is None:
                reader = self.reader = Reader()
            key = classifyText(obj, reader)
        elif isinstance(obj, domish.Element) and obj.name in STANZA_NAMES:
            key = classify(obj)
        else:
            return False  # Not a stanza: stream errors, <a/>, <r/>...
        held = self.held
        if key is None:
            if held:
                self.flush()
            return False
        if key is False:
            key = next(self.serial)
        elif key in held:
            del held[key]
        held[key] = obj
        if len(held) >= self.limit:
            self.flush()
        return True

    def flush(self) -> None:
        """Send what is held, in order; the stream stays inactive."""
        held = self.held
        if not held:
            return
        self.held = {}
        stream = self.stream
        stream.csi = None
        try:
            for obj in held.values():
                stream.send(obj)
        finally:
            if stream.csi is None:
                stream.csi = self

    def release(self) -> None:
        """The client is active again, or its connection or session ends: send everything."""
        held, self.held = self.held, {}
        stream = self.stream
        if stream.csi is self:
            stream.csi = None
        for obj in held.values():
            stream.send(obj)


def isInactive(stream) -> bool:
    """Whether the client of C{stream} said it is inactive."""
    return getattr(stream, "csi", None) is not None


def setState(stream, active: bool, reader: Reader | None = None) -> None:
    """
    Set the client state of C{stream}, a client stream (L{xmppd.c2s.stream}),
    as C{<active/>} or C{<inactive/>} would: for Bind 2 (XEP-0386), which
    carries the state inline.  Setting the state a stream already has does
    nothing.  (C{reader} is the domain's, shared by its inactive streams.)
    """
    current = getattr(stream, "csi", None)
    if active:
        if current is not None:
            current.release()
    elif current is None:
        stream.csi = ClientState(stream, stream.factory.server.config.csi.queue_size, reader)


class CSIHandler(XMPPHandler):
    """XEP-0352 for the client streams of one domain; see the module docstring."""

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        #: Parses back the serialized fan-out its inactive streams classify.
        self.reader = Reader()

    def register(self) -> None:
        hooks = self.domain.hooks
        hooks.add("c2s/features", self.onFeatures, DELIVER)
        hooks.add("c2s/nonza", self.onNonza, DELIVER)
        # The state carried inline in a Bind 2 request (XEP-0386 §4, L{xmppd.c2s.sasl2}).
        hooks.add("sasl2/features", self.onSASL2Features, DELIVER)
        hooks.add("bind2/inline", self.onBind2Inline, DELIVER)

    def onSASL2Features(self, event) -> None:
        if event.stream.domain == self.domain.domain:
            event.bindFeatures.append(NS_CSI)

    def onBind2Inline(self, event) -> None:
        """
        C{<inactive xmlns='urn:xmpp:csi:0'/>} (or C{<active/>}) inside
        C{<bind/>}: the new session starts in that state, so a phone that
        reconnects in its pocket is not sent presence it would only hold.
        Nothing is answered in C{<bound/>} (XEP-0386 lists no answer).
        """
        stream = event.stream
        if stream.domain != self.domain.domain:
            return None
        for element in event.request.elements(NS_CSI):
            if element.name == "inactive":
                setState(stream, False, self.reader)
            elif element.name == "active":
                setState(stream, True)
        return None

    def onFeatures(self, event) -> None:
        stream = event.stream
        # §4.1: offered to authenticated clients.
        if stream.username is not None and stream.domain == self.domain.domain:
            event.features.addElement((NS_CSI, "csi"))

    def onNonza(self, event):
        element, stream = event.stanza, event.stream
        if element.uri != NS_CSI or stream.domain != self.domain.domain:
            return None
        if stream.username is None:
            return None  # Before authentication: not-authorized, from the stream.
        if element.name == "active":
            setState(stream, True)
        elif element.name == "inactive":
            setState(stream, False, self.reader)
        else:
            return None  # Unknown: the stream's answer (unsupported-stanza-type).
        return True


def makeHandler(domain) -> CSIHandler:
    handler = CSIHandler(domain)
    handler.register()
    return handler
