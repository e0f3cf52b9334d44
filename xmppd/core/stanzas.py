# -*- test-case-name: tests.test_stanzas -*-
"""
Small helpers for stanzas (RFC 6120 §8, RFC 6121): namespaces, error
replies, reading and copying stanzas, who asks, the presence stanzas the
server generates, and the in-process facts a stanza carries on its way
through the server.  Pure functions of their arguments: several features share them, so
they live here rather than in one feature that the others would import.

The one rule every caller relies on: L{errorReply} returns C{None} for a
stanza that must never be answered (an error, or an IQ result), so code that
bounces stanzas cannot start an error loop between two entities.

In-process marks (replayed, carbon copy, archive id, holds...) live in one
L{StanzaMeta} per stanza, reached through L{meta} and L{marks}, never in the
XML and never through C{getattr} on the element: a client-sent child
element can never be mistaken for a mark.  A stanza without marks pays
nothing: L{marks} answers a shared empty set.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.core.jid import InvalidJID, parseJID
# The stream layer defines these (it writes them); features read them here.
from xmppd.stream.elements import NS_CLIENT, NS_SERVER, STANZA_NAMES  # noqa: F401

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

#: RFC 6121 §5.2.2: the message types; anything else is "normal".
MESSAGE_TYPES = frozenset(("normal", "chat", "groupchat", "headline", "error"))


class StanzaText(str):
    """
    A whole stanza already serialized for a client stream (fan-out that
    serializes once, L{muc.broadcast}).  Client streams write it as it is and
    count it as a stanza for stream management (XEP-0198), unlike other text.
    """

    __slots__ = ()


def mayAnswer(stanza: domish.Element) -> bool:
    """Whether an error reply to C{stanza} is allowed (RFC 6120 §8.3.1)."""
    stanzaType = stanza.getAttribute("type")
    if stanzaType == "error":
        return False
    if stanza.name == "iq" and stanzaType == "result":
        return False
    return True


def iqProblem(iq: domish.Element) -> str | None:
    """
    What is wrong with an IQ a peer sent (RFC 6120 §8.2.3): C{None} when it
    has an id, a known type and, for get and set, exactly one payload;
    C{"bad-request"} when it must be answered with that error; C{"drop"}
    for a result or error without an id, which cannot be answered.
    """
    iqType = iq.getAttribute("type")
    if iqType in ("get", "set"):
        if iq.getAttribute("id") is None or len(list(iq.elements())) != 1:
            return "bad-request"
        return None
    if iqType in ("result", "error"):
        return None if iq.getAttribute("id") is not None else "drop"
    return "bad-request"


def messageType(stanza) -> str:
    """The type of a message, "normal" when missing or unknown (RFC 6121 §5.2.2)."""
    kind = stanza.getAttribute("type")
    return kind if kind in MESSAGE_TYPES else "normal"

def hasBody(stanza: domish.Element) -> bool:
    """Whether a message has a C{<body/>} (in the stanza's namespace, or none)."""
    for child in stanza.elements():
        if child.name == "body" and child.uri in (None, NS_CLIENT, NS_SERVER):
            return True
    return False

def hasChild(stanza: domish.Element, uri: str, name: str | None = None) -> bool:
    """Whether C{stanza} has a direct child in C{uri} (named C{name}, if given)."""
    for child in stanza.elements():
        if child.uri == uri and (name is None or child.name == name):
            return True
    return False

def cloneStanza(element: domish.Element, parentUri: str = NS_CLIENT) -> domish.Element:
    """
    A deep copy of C{element}, for copies that must not share anything with
    the stanza being delivered.  Stanzas from servers (C{jabber:server})
    become C{jabber:client}, and elements built without a namespace take
    their parent's, so a copy forwarded inside another namespace serializes
    as the client stanza it was (XEP-0297 §3).
    """
    uri = element.uri
    if uri is None:
        uri = parentUri
    elif uri == NS_SERVER:
        uri = NS_CLIENT
    defaultUri = element.defaultUri
    if defaultUri is None or defaultUri == NS_SERVER:
        defaultUri = uri
    copy = domish.Element((uri, element.name), defaultUri,
                          dict(element.attributes), dict(element.localPrefixes))
    for child in element.children:
        if isinstance(child, domish.Element):
            copy.addChild(cloneStanza(child, uri))
        else:
            copy.children.append(child)
    return copy

def copyStanza(stanza: domish.Element, **attributes: str) -> domish.Element:
    """
    A shallow copy of C{stanza} with some attributes replaced, for fan-out:
    the children are shared, not copied, so nobody may change them.
    """
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri,
                          dict(stanza.attributes), stanza.localPrefixes)
    copy.attributes.update(attributes)
    copy.children = list(stanza.children)
    return copy

def priorityOf(stanza: domish.Element) -> int:
    """RFC 6121 §4.7.2.3: an integer from -128 to 127, 0 when absent."""
    for child in stanza.elements():
        if child.name == "priority":
            value = int(str(child).strip())
            if not -128 <= value <= 127:
                raise ValueError(value)
            return value
    return 0

def subscriptionStanza(stanzaType: str, sender: str, recipient: str,
                       status: str | None = None) -> domish.Element:
    """A presence subscription stanza generated by the server."""
    presence = domish.Element((None, "presence"))
    presence["type"] = stanzaType
    presence["from"] = sender
    presence["to"] = recipient
    if status:
        presence.addElement("status", content=status)
    return presence

def unavailableFrom(session, to: str | None = None) -> domish.Element:
    """The unavailable presence the server sends for C{session}."""
    presence = domish.Element((None, "presence"))
    presence["type"] = "unavailable"
    presence["from"] = session.jid.full()
    if to is not None:
        presence["to"] = to
    return presence

def addresses(iq: domish.Element) -> tuple[JID, JID]:
    """
    The sender (stamped by c2s, checked by s2s) and the account addressed:
    the one in C{to}, or the sender's own when there is no C{to} (RFC 6120
    §8.1.1.1).
    """
    try:
        sender = parseJID(iq.getAttribute("from"))
    except (InvalidJID, TypeError):
        raise StanzaError("bad-request") from None
    to = iq.getAttribute("to")
    return sender, sender.userhostJID() if to is None else parseJID(to)


def ownAccountSender(iq: domish.Element, host: str) -> JID:
    """
    The full JID of a session of C{host} asking about its own account: the
    IQ has no C{to}, or that account's bare JID or C{host} as C{to}.
    Anything else (a sender without a resource, from another server or
    with no user part, another account's JID in C{to}) is
    C{service-unavailable}: blocking (XEP-0191), privacy lists (XEP-0016)
    and invisibility (XEP-0186) answer only the account itself.
    """
    try:
        sender = parseJID(iq.getAttribute("from") or "")
    except InvalidJID:
        raise StanzaError("service-unavailable") from None
    if sender.user is None or sender.host != host or sender.resource is None:
        raise StanzaError("service-unavailable")
    to = iq.getAttribute("to")
    if to is not None and to not in (host, sender.userhost()):
        raise StanzaError("service-unavailable")
    return sender


def iqResult(iq: domish.Element) -> domish.Element:
    """An empty C{result} answering C{iq}: addresses swapped, its id kept."""
    reply = domish.Element((None, "iq"))
    reply["type"] = "result"
    reply["from"] = iq["to"]
    reply["to"] = iq["from"]
    if iq.getAttribute("id") is not None:
        reply["id"] = iq["id"]
    return reply


def errorReply(stanza: domish.Element, condition: str, text: str | None = None,
               errorType: str | None = None) -> domish.Element | None:
    """
    The error reply to C{stanza}: addresses swapped, payload kept (RFC 6120
    §8.3.1 allows it and clients use it to match the failed request), or
    C{None} when C{stanza} must not be answered.
    """
    if not mayAnswer(stanza):
        return None
    return StanzaError(condition, type=errorType, text=text).toResponse(stanza)


class StanzaMeta:
    """
    The in-process facts about one stanza (DESIGN "What we don't do"): never
    in the XML, never sent, one field per mark.  Reach it with L{meta} (to
    set) or L{marks} (to read); never with C{getattr} on the element, which
    answers a missing attribute with a child element of that name, so a
    client could send C{<replayed/>} and fake the mark.

    A stanza that is cloned, parsed again or serialized loses its marks:
    they belong to this one object on its way through this process.
    """

    __slots__ = ("acceptance", "archiveSentId", "mamResult", "blockingExempt",
                 "carbonCopy", "replayed", "fromUnacked", "presenceRedelivery",
                 "clusterRelayed")

    def __init__(self):
        #: Issue 5: the Deferreds of everything holding the stanza (L{hold}),
        #: and of the confirmations its acknowledgement waits for
        #: (L{acknowledgeAfter}); stream management acknowledges it once
        #: all have fired.  None until something holds it.
        self.acceptance: list[defer.Deferred] | None = None
        #: C{(account bare JID, archive id)}: the sender's own archive id of a
        #: message it sent (XEP-0313 §3.5), for the sent carbon copies.
        self.archiveSentId: tuple[str, str] | None = None
        #: A MAM query result made by the server (XEP-0313 §4.2): never archived.
        self.mamResult = False
        #: Made by the blocking feature (its errors and presence): no block
        #: list stops it (XEP-0191).
        self.blockingExempt = False
        #: A carbon copy (XEP-0280): never copied again nor archived, not
        #: re-routed by stream management.
        self.carbonCopy = False
        #: Sent again by the server (offline storage, stream management):
        #: archived and copied on its first way through, never again.
        self.replayed = False
        #: Re-routed from a session that ended without acknowledging it
        #: (XEP-0198 §4): already accepted, so offline storage keeps it
        #: whatever its quota says.
        self.fromUnacked = False
        #: A subscription stanza the presence feature delivers again to a
        #: resource coming online (RFC 6121 §3.1.3): to the session as it is.
        self.presenceRedelivery = False
        #: Came from another node of a cluster to be routed here
        #: (C{xmppd.cluster.transport}): the cluster does not relay it again.
        self.clusterRelayed = False


class _NoMarks(StanzaMeta):
    """What L{marks} answers for a stanza without marks: every field unset, read-only."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError("marks() are read-only; set a mark through meta()")


#: Shared by every stanza without marks (see L{marks}).
NO_MARKS = StanzaMeta()
NO_MARKS.__class__ = _NoMarks

#: The key of the L{StanzaMeta} in an element's instance dict.  A name no
#: domish attribute uses; read only through the dict (see L{StanzaMeta}).
_META = "_xmppdMeta"


def meta(stanza: domish.Element) -> StanzaMeta:
    """The marks of C{stanza}, created on first use; set them here."""
    found = stanza.__dict__.get(_META)
    if found is None:
        found = stanza.__dict__[_META] = StanzaMeta()
    return found


def marks(stanza: domish.Element) -> StanzaMeta:
    """
    The marks of C{stanza} to read: a shared, read-only empty set when it has
    none, so asking costs no allocation (the 1:1 message path asks often).
    """
    return stanza.__dict__.get(_META, NO_MARKS)


def hold(stanza: domish.Element) -> defer.Deferred:
    """
    Issue 5's durability contract: a feature that keeps C{stanza} while it
    waits for something asynchronous (a storage write, an account lookup)
    holds it; stream management does not acknowledge the stanza to its
    sender before the returned Deferred has fired (with anything), nor
    before whatever the stanza's next takers hold in turn.  Fire it once the
    stanza is safe or has been passed on; errback only after the sender has
    been answered with an error.  A hook callback that returns a Deferred
    is held for by the hooks themselves (L{xmppd.core.hooks}); calling this
    is for waits that outlive a hook chain (a storage write, a queue of
    the feature's own).  While a stanza is held, what its sender sends
    next waits too (RFC 6120 §10.1, L{xmppd.core.ordering}).
    """
    waiter = defer.Deferred()
    data = meta(stanza)
    if data.acceptance is None:
        data.acceptance = [waiter]
    else:
        data.acceptance.append(waiter)
    return waiter


class Confirmation(defer.Deferred):
    """
    A holder that only stream management waits for (L{acknowledgeAfter}),
    not in-order processing (L{xmppd.core.ordering.unfinished} skips it).
    Fired with C{None} once the stanzas it covers are safe elsewhere, or
    were answered with an error; never errbacked, so nobody has to consume
    a failure.
    """


def acknowledgeAfter(stanza: domish.Element, confirmation: Confirmation) -> None:
    """
    Stream management does not acknowledge C{stanza} to its sender before
    C{confirmation} has fired, but the sender's next stanzas are processed
    meanwhile (unlike L{hold}).  For a stanza already passed on whose
    safety is confirmed later, in a batch (a forward to another node of a
    cluster: one Redis script per node and reactor turn carries many
    stanzas, and one C{Confirmation} covers them all).  Issue 5's contract
    holds as for L{hold}: C{h} never counts the stanza before it is safe.
    """
    data = meta(stanza)
    if data.acceptance is None:
        data.acceptance = [confirmation]
    else:
        data.acceptance.append(confirmation)


def holders(stanza: domish.Element) -> list[defer.Deferred] | None:
    """The Deferreds holding C{stanza} (see L{hold}), or None if nothing ever held it."""
    found = stanza.__dict__.get(_META)
    return None if found is None else found.acceptance
