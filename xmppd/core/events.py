# -*- test-case-name: tests.test_hooks -*-
"""
The catalogue of the node's hooks (L{CATALOGUE}), the hooks the core fires,
and their payloads (DESIGN §3).  Every hook is a declared L{Hook}: a name,
a payload type, and whether results count (C{fire}) or not (C{notify}).
Features subscribe with C{domain.hooks.add(HOOK, callback, BAND)} (their
domain's view of the node's hooks: they hear only that domain's events;
bands in L{xmppd.core.hooks}); a name nobody declared is refused at start.
A feature that fires hooks of its own declares them next to its code with
C{CATALOGUE.declare} (the MUC room hooks, L{muc.events}).

For hooks fired with C{fire}, a callback returns C{True} (or any
non-C{None} value) when it has taken care of the stanza, and nothing else
then runs.  A callback may return a Deferred instead, to wait (a storage
read): the chain goes on once it fires, the stanza held meanwhile, and the
firing code gets a Deferred of the result (L{xmppd.core.hooks}).  Every
caller of a C{fire} hook below handles both, except C{"stanza/prepared"},
whose callbacks answer at once (from memory).  Callers of C{notify} hooks
do not wait for them: a callback there may wait, but the callbacks after
it then run after the caller went on (C{"c2s/features"} callbacks must
answer at once, the features are sent right after; after
C{"session/closed"} the session is unbound).

Stanzas arriving at a served domain (fired by L{xmppd.core.local.LocalDomain}
with a L{StanzaEvent}), one hook per stanza kind and addressing, after
Prosody's event names:

  - C{"iq/host"}, C{"message/host"}, C{"presence/host"}: to the domain itself;
  - C{"iq/bare"}, C{"message/bare"}, C{"presence/bare"}: to an account's bare
    JID; IQs and messages sent with no C{to} arrive here too, addressed to
    the sender's own bare JID, with C{toSelf} set (RFC 6120 §8.1.1.1);
  - C{"iq/full"}, C{"message/full"}, C{"presence/full"}: to a full JID;
  - C{"presence/self"}: presence with no C{to} from a local user: the
    broadcast of the user's own availability (RFC 6121 §4.2, §4.4).

  - C{"stanza/outbound"} (L{StanzaEvent}, C{fire}, in the scope of the
    sender's domain): a stanza from one of the domain's users (sent by a
    client or by a feature on the user's behalf) leaves for another domain,
    served here or remote; a callback returning C{True} stops it.
  - C{"stanza/prepared"}: a stanza serialized once for many recipients (a
    room's fan-out, L{xmppd.core.local.LocalDomain.deliverPrepared}) is about to
    go as text straight to a bound session; a callback returning C{True}
    sends it the full way instead, through the hooks above (blocking).
  - C{"message/offline"} (L{StanzaEvent}, C{fire}; fired by the message
    delivery feature): the account exists and no resource takes the
    message (RFC 6121 §8.5.2.2.1); offline storage takes it by returning
    C{True}, and if nobody does the sender gets C{service-unavailable}.

When no callback takes an IQ to the domain or to a bare JID, the domain's
wokkel handlers get it (by dispatch key, see L{xmppd.core.dispatch}), and an IQ
get/set nobody answers gets C{service-unavailable}.

Client streams (fired by L{xmppd.c2s.stream}):

  - C{"c2s/outgoing"} (L{OutgoingEvent}, C{fire}): a bound client's stanza,
    C{from} already stamped, before it is routed; return C{True} to stop it
    (blocking, limits, carbons of sent messages...).
  - C{"c2s/features"} (L{FeaturesEvent}, C{notify}): stream features are
    being offered; add elements to C{event.features}.  The result is kept
    per stream state (see L{FeaturesEvent}), so an offer must depend on
    that state only, or say it does not (C{event.cacheable = False}).
  - C{"sasl2/features"} (L{SASL2FeaturesEvent}, C{notify}): SASL2 is
    offered; add inline features (answer at once, as for C{"c2s/features"}).
  - C{"sasl2/mechanism"} (L{SASL2MechanismEvent}, C{fire}): a SASL2 request
    names a mechanism none of the password ones: return its
    L{xmppd.c2s.sasl.Mechanism} (FAST, XEP-0484), at once (no Deferred: a
    token is looked up inside the mechanism's own C{start}).
  - C{"sasl2/inline"} (L{SASL2InlineEvent}, C{notify}, waited for): SASL2
    succeeded; act on inline requests, answer into the C{<success/>}.
  - C{"bind2/inline"} (L{Bind2Event}, C{notify}, waited for): a Bind 2
    request bound a session; act on its inline requests, answer into
    C{<bound/>}.
  - C{"c2s/unauthenticated-iq"} (L{OutgoingEvent} with no session, C{fire}):
    an IQ before authentication (in-band registration); unhandled ones close
    the stream with C{not-authorized}.
  - C{"c2s/nonza"} (L{OutgoingEvent} with no recipient, C{fire}): a
    top-level element that is not a stanza, at any point of the stream
    (session None before bind): stream management's enable, r, a, resume.
  - C{"c2s/shutdown"} (C{notify}, no payload): the listeners are stopping.
  - C{"c2s/draining"} (C{notify}, no payload): the node sends its clients
    to another node of its cluster (C{xmppctl drain}); sessions kept for
    resumption end, as their clients will not come back here.
  - C{"session/bound"}, C{"session/closed"} (the session's
    L{xmppd.core.sessions.ISessionView}, C{notify}): a resource was bound;
    a session ends (logout, dropped connection, replaced by a new bind) and
    is about to be unbound.  Features forget what they keep for the full
    JID on C{session/closed}; for a replaced session it fires after the new
    bind took the JID and before the new holder hears its bind settled.
  - C{"session/queued"} (L{QueuedEvent}, C{notify}; fired by stream
    management, and only while someone listens): a stanza is kept for a
    session whose connection broke and that waits to be resumed (XEP-0198
    §5), so its client does not have it yet (push notifications wake it);
    also, when the connection breaks, for each message it had not
    acknowledged.

Durability (issue 5): a stanza kept while something asynchronous decides
its fate is held (L{xmppd.core.stanzas.hold}); stream management
acknowledges a client's stanza only once everything holding it has let go,
so an acknowledged message is never only in memory.  A hook chain that
waits holds its stanza by itself; a feature calls C{hold} only for a wait
that outlives the chain (offline storage's write).

Accounts and discovery:

  - C{"account/removed"} (L{AccountEvent}, C{notify}): an account and its
    stored data are gone; features clean up what storage does not hold.
  - C{"disco/items"} (L{xmppd.features.disco.DiscoItemsEvent}, C{notify};
    fired by the disco feature): items of a disco#items answer are being
    gathered; the component service adds its connected components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.core.hooks import CATALOGUE, Hook


class StanzaEvent:
    """A stanza arriving at a served domain; see the module docstring."""

    __slots__ = ("stanza", "sender", "recipient", "domain", "toSelf")

    def __init__(self, stanza: domish.Element, sender: JID | None, recipient: JID,
                 domain: Any, toSelf: bool = False):
        self.stanza = stanza
        #: The parsed C{from} (None only for stanzas built without one).
        self.sender = sender
        #: The parsed C{to}, or the sender's bare JID when there was none.
        self.recipient = recipient
        #: The L{xmppd.core.local.LocalDomain} the stanza arrived at.
        self.domain = domain
        self.toSelf = toSelf


class OutgoingEvent:
    """A stanza from a client stream, before it is routed."""

    __slots__ = ("stream", "session", "stanza", "recipient")

    def __init__(self, stream: Any, session: Any, stanza: domish.Element,
                 recipient: JID | None):
        self.stream = stream
        self.session = session
        self.stanza = stanza
        self.recipient = recipient


@dataclass
class FeaturesEvent:
    """
    Stream features are offered on C{stream}: add elements to C{features}.
    What is offered is kept and offered again to streams in the same state
    (L{xmppd.c2s.stream.ClientStream.featuresKey}: domain, TLS, negotiation
    state, listener configuration); a callback whose offer depends on
    anything else sets C{cacheable} to False.
    """

    stream: Any
    features: domish.Element
    cacheable: bool = True


class UnsentEvent:
    """
    A session ended while its transport still held stanzas it had never
    put on the wire (C{"session/unsent"}): a BOSH session that timed out
    or was dropped before the client came back for them.  C{texts}: the
    serialized stanzas, in order; C{when}: the time they count from.
    """

    __slots__ = ("session", "texts", "when")

    def __init__(self, session: Any, texts: list[str], when: float):
        self.session = session
        self.texts = texts
        self.when = when


class QueuedEvent:
    """
    A stanza kept for a detached session (C{"session/queued"}): C{stanza}
    is an element, or a L{xmppd.core.stanzas.StanzaText} for a stanza
    serialized once for many (a room's fan-out).
    """

    __slots__ = ("session", "stanza")

    def __init__(self, session: Any, stanza: Any):
        self.session = session
        self.stanza = stanza


@dataclass
class SASL2FeaturesEvent:
    """
    SASL2 (XEP-0388) is offered on C{stream}: add to C{inline} the elements
    a client may then send inside C{<authenticate/>} (XEP-0198's C{<sm/>},
    FAST's C{<fast/>}), and to C{bindFeatures} the namespaces a client may
    enable inside a Bind 2 C{<bind/>} (XEP-0386 §3).  Whatever is not
    offered here is refused in a request (L{xmppd.c2s.sasl2}).
    """

    stream: Any
    inline: domish.Element
    bindFeatures: list = field(default_factory=list)


@dataclass
class SASL2MechanismEvent:
    """
    A SASL2 C{<authenticate/>} names C{name}, which is none of the password
    mechanisms: a feature that offered it inline (FAST's token mechanisms)
    returns a L{xmppd.c2s.sasl.Mechanism} for it, or a
    L{xmppd.c2s.sasl.SASLFailure} to answer with.  C{userAgent} is the
    request's L{UserAgent} (or None), C{request} the whole element.
    """

    stream: Any
    name: str
    request: domish.Element
    userAgent: Any


@dataclass(frozen=True)
class UserAgent:
    """
    XEP-0388 §2.3 C{<user-agent/>}: C{id} is a UUID in its canonical form
    (stable per installation: FAST binds tokens to it, Bind 2 derives the
    resource from it), C{software} and C{device} are free text, or None.
    """

    id: str | None
    software: str | None
    device: str | None


@dataclass
class SASL2InlineEvent:
    """
    Authentication by SASL2 succeeded on C{stream} (C{stream.username} is
    set, nothing sent yet): features act on their children of C{request}
    (the C{<authenticate/>} element) and put what they answer in the
    C{<success/>} with L{answer}.  A callback may wait (a Deferred); the
    C{<success/>} goes out once every callback and the Bind 2 bind are
    done.  C{resumed} is set by stream management when it resumed a
    session (XEP-0198 §5 inline): Bind 2 then binds nothing.  Callables
    given to L{afterSuccess} run once the C{<success/>} and the new stream
    features are out, before anything else sent to the session meanwhile.
    """

    stream: Any
    request: domish.Element
    userAgent: Any
    mechanism: str
    answers: list = field(default_factory=list)
    after: list = field(default_factory=list)
    resumed: bool = False

    def answer(self, element: domish.Element) -> None:
        self.answers.append(element)

    def afterSuccess(self, f) -> None:
        self.after.append(f)


@dataclass
class Bind2Event:
    """
    A Bind 2 (XEP-0386) C{<bind/>} bound C{stream.session}: features act on
    their children of C{request} (C{<enable xmlns='urn:xmpp:sm:3'/>},
    carbons' C{<enable/>}, CSI's C{<active/>} or C{<inactive/>}) and add
    what they answer to C{bound}, the C{<bound/>} of the C{<success/>}.
    C{sasl2} is the L{SASL2InlineEvent} around it.
    """

    stream: Any
    request: domish.Element
    bound: domish.Element
    sasl2: SASL2InlineEvent


@dataclass
class AccountEvent:
    username: str
    domain: str


#: Declare a hook on the node's catalogue (L{xmppd.core.hooks.CATALOGUE}).
declare = CATALOGUE.declare


def _stanzaHooks(kind: str, targets) -> dict[str, Hook]:
    return {target: declare("%s/%s" % (kind, target), StanzaEvent, True,
                            "a %s arriving at a served domain" % (kind,))
            for target in targets}


IQ = _stanzaHooks("iq", ("host", "bare", "full"))
MESSAGE = _stanzaHooks("message", ("host", "bare", "full"))
PRESENCE = _stanzaHooks("presence", ("host", "bare", "full", "self"))

IQ_HOST, IQ_BARE, IQ_FULL = IQ["host"], IQ["bare"], IQ["full"]
MESSAGE_HOST, MESSAGE_BARE, MESSAGE_FULL = MESSAGE["host"], MESSAGE["bare"], MESSAGE["full"]
PRESENCE_HOST, PRESENCE_BARE, PRESENCE_FULL, PRESENCE_SELF = (
    PRESENCE["host"], PRESENCE["bare"], PRESENCE["full"], PRESENCE["self"])

STANZA_OUTBOUND = declare("stanza/outbound", StanzaEvent, True,
                          "a user's stanza leaves for another domain")
STANZA_PREPARED = declare("stanza/prepared", StanzaEvent, True,
                          "a stanza serialized once for many goes to a bound session")
MESSAGE_OFFLINE = declare("message/offline", StanzaEvent, True,
                          "no resource takes a message to an existing account")

C2S_OUTGOING = declare("c2s/outgoing", OutgoingEvent, True,
                       "a bound client's stanza, before it is routed")
C2S_FEATURES = declare("c2s/features", FeaturesEvent, False, "stream features are offered")
SASL2_FEATURES = declare("sasl2/features", SASL2FeaturesEvent, False,
                         "SASL2 is offered: inline features and Bind 2 features are gathered")
SASL2_MECHANISM = declare("sasl2/mechanism", SASL2MechanismEvent, True,
                          "a SASL2 request names a mechanism a feature provides (FAST)")
SASL2_INLINE = declare("sasl2/inline", SASL2InlineEvent, False,
                       "SASL2 succeeded: inline requests of <authenticate/> are acted on")
BIND2_INLINE = declare("bind2/inline", Bind2Event, False,
                       "a Bind 2 request bound a session: its inline requests are acted on")
C2S_UNAUTHENTICATED_IQ = declare("c2s/unauthenticated-iq", OutgoingEvent, True,
                                 "an IQ before authentication")
C2S_NONZA = declare("c2s/nonza", OutgoingEvent, True, "a top-level element not a stanza")
C2S_SHUTDOWN = declare("c2s/shutdown", None, False, "the listeners are stopping")
C2S_DRAINING = declare("c2s/draining", None, False,
                       "the node sends its clients to another node (xmppctl drain)")

SESSION_BOUND = declare("session/bound", None, False, "a resource was bound (a Session)")
SESSION_CLOSED = declare("session/closed", None, False, "a session ends (a Session)")
SESSION_QUEUED = declare("session/queued", QueuedEvent, False,
                         "a stanza is kept for a detached session (stream management)")
SESSION_UNSENT = declare("session/unsent", UnsentEvent, False,
                         "a session ended with stanzas its transport never sent (BOSH)")

ACCOUNT_REMOVED = declare("account/removed", AccountEvent, False,
                          "an account and its stored data are gone")
DISCO_ITEMS = declare("disco/items", None, False,
                      "disco#items are gathered (a DiscoItemsEvent)")
