# -*- test-case-name: tests.test_router -*-
"""
Small helpers for stanzas (RFC 6120 §8): namespaces and error replies.

The one rule every caller relies on: L{errorReply} returns C{None} for a
stanza that must never be answered (an error, or an IQ result), so code that
bounces stanzas cannot start an error loop between two entities.
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


def hold(stanza: domish.Element) -> defer.Deferred:
    """
    Issue 5's durability contract: a feature that keeps C{stanza} while it
    waits for something asynchronous (a storage write, an account lookup)
    holds it; stream management does not acknowledge the stanza to its
    sender before the returned Deferred has fired (with anything), nor
    before whatever the stanza's next takers hold in turn.  Fire it once the
    stanza is safe or has been passed on; errback only after the sender has
    been answered with an error.  Kept in the instance dict, never as a
    domish attribute (domish answers unknown attributes with child elements).
    """
    waiter = defer.Deferred()
    stanza.__dict__.setdefault("acceptance", []).append(waiter)
    return waiter
