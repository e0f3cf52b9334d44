# -*- test-case-name: tests.test_s2s_dialback -*-
"""
Server Dialback (XEP-0220) keys and elements, without I/O.

The originating server proves it speaks for its domain by sending, on its
outgoing stream, C{<db:result from='originating' to='receiving'>KEY</db:result>};
the receiving server asks the domain's authoritative server, over a
connection of its own, whether the key is right
(C{<db:verify from='receiving' to='originating' id='stream id'>KEY</db:verify>}),
which answers C{type='valid'} or C{'invalid'}; the receiving server then
tells the originating one with C{<db:result type='valid'/>} (or
C{'invalid'}, or C{'error'} when the authoritative server could not be
asked, XEP-0220 §2.4).

Keys are stateless (XEP-0185 §3): HMAC-SHA256 keyed with the hex SHA-256 of
the node's secret, over "receiving originating stream-id", in lowercase hex.
Every node sharing the secret can verify every key, and nothing needs to be
remembered between the C{db:result} and the C{db:verify}.

Implements: XEP-0185 1.0, XEP-0220 1.1.1
"""

from __future__ import annotations

import hashlib
import hmac

from twisted.words.protocols.jabber.error import NS_XMPP_STANZAS
from twisted.words.xish import domish

NS_DIALBACK = "jabber:server:dialback"
#: The stream feature announcing dialback (XEP-0220 §8), with its error support.
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"


def dialbackKey(secret: bytes, receiving: str, originating: str, streamId: str) -> str:
    """The key the originating server sends in C{<db:result/>} (XEP-0185 §3)."""
    keyed = hashlib.sha256(secret).hexdigest().encode("ascii")
    text = "%s %s %s" % (receiving, originating, streamId)
    return hmac.new(keyed, text.encode("utf-8"), hashlib.sha256).hexdigest()


def keyMatches(secret: bytes, receiving: str, originating: str, streamId: str,
               key: str) -> bool:
    """Whether C{key} is the one this node would have made, compared in constant time."""
    expected = dialbackKey(secret, receiving, originating, streamId)
    return hmac.compare_digest(expected.encode("ascii"), key.strip().lower().encode("utf-8"))


def resultElement(sender: str, recipient: str, key: str | None = None,
                  resultType: str | None = None,
                  condition: str | None = None) -> domish.Element:
    """
    C{<db:result/>}: with C{key}, the originating server's request; with
    C{resultType}, the receiving server's answer (C{'error'} carries a
    stanza error C{condition}, XEP-0220 §2.4.2).
    """
    element = domish.Element((NS_DIALBACK, "result"))
    element["from"] = sender
    element["to"] = recipient
    if key is not None:
        element.addContent(key)
    if resultType is not None:
        element["type"] = resultType
        if condition is not None:
            _addError(element, condition)
    return element


def verifyElement(sender: str, recipient: str, streamId: str, key: str | None = None,
                  verifyType: str | None = None,
                  condition: str | None = None) -> domish.Element:
    """C{<db:verify/>}: the receiving server's question (C{key}) or the answer (C{verifyType})."""
    element = domish.Element((NS_DIALBACK, "verify"))
    element["from"] = sender
    element["to"] = recipient
    element["id"] = streamId
    if key is not None:
        element.addContent(key)
    if verifyType is not None:
        element["type"] = verifyType
        if condition is not None:
            _addError(element, condition)
    return element


def _addError(element: domish.Element, condition: str) -> None:
    error = element.addElement("error")
    error["type"] = "cancel" if condition != "remote-server-timeout" else "wait"
    error.addElement((NS_XMPP_STANZAS, condition))


def errorCondition(element: domish.Element) -> str | None:
    """The stanza error condition inside a C{type='error'} dialback element, if any."""
    for error in element.elements():
        if error.name == "error":
            for child in error.elements(NS_XMPP_STANZAS):
                if child.name != "text":
                    return child.name
    return None


def featureElement() -> domish.Element:
    """C{<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>} (XEP-0220 §8)."""
    feature = domish.Element((NS_DIALBACK_FEATURE, "dialback"))
    feature.addElement("errors")
    return feature
