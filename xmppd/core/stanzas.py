# -*- test-case-name: tests.test_stanzas -*-
"""
Small helpers for stanzas (RFC 6120 §8): namespaces, error replies, and the
in-process facts a stanza carries on its way through the server.

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
from twisted.words.xish import domish

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

STANZA_NAMES = frozenset(("message", "presence", "iq"))


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
                 "carbonCopy", "replayed", "fromUnacked", "presenceRedelivery")

    def __init__(self):
        #: Issue 5: the Deferreds of everything holding the stanza (L{hold});
        #: stream management acknowledges it once all have fired.  None
        #: until something holds it.
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
    is for waits that outlive a hook chain (a storage write).
    """
    waiter = defer.Deferred()
    data = meta(stanza)
    if data.acceptance is None:
        data.acceptance = [waiter]
    else:
        data.acceptance.append(waiter)
    return waiter


def holders(stanza: domish.Element) -> list[defer.Deferred] | None:
    """The Deferreds holding C{stanza} (see L{hold}), or None if nothing ever held it."""
    found = stanza.__dict__.get(_META)
    return None if found is None else found.acceptance
