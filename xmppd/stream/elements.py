# -*- test-case-name: tests.test_c2s -*-
"""
The top-level vocabulary every stream kind shares (client, server,
component): the stanza namespaces and which top-level elements are stanzas
(RFC 6120 §4.8.3, §8), how an element is written with C{jabber:client} as
the default namespace, and the C{<stream:error/>} element (RFC 6120 §4.9).

It lives here, below the stream kinds, so that L{xmppd.stream.base} and
the component, server and client streams write the same bytes without
importing one another.  L{xmppd.core.stanzas} re-exports the namespaces for
features.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.error import NS_XMPP_STREAMS
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"

#: The top-level elements that are stanzas (RFC 6120 §8); anything else on
#: an established stream is a nonza.
STANZA_NAMES = frozenset(("message", "presence", "iq"))

PREFIXES = {NS_STREAMS: "stream"}
PREFIXES_IN_SCOPE = ["stream"]


def streamErrorElement(condition: str, text: str | None = None,
                       appCondition: domish.Element | None = None) -> domish.Element:
    """A C{<stream:error/>} with the defined C{condition} (RFC 6120 §4.9.3)."""
    error = domish.Element((NS_STREAMS, "error"))
    error.addElement((NS_XMPP_STREAMS, condition))
    if text:
        error.addElement((NS_XMPP_STREAMS, "text"), content=text)
    if appCondition is not None:
        # RFC 6120 §4.9.4: an application-specific condition may follow.
        error.addChild(appCondition)
    return error


def serialize(element: domish.Element) -> str:
    """An element as a client stream writes it (C{jabber:client} the default namespace)."""
    return element.toXml(prefixes=PREFIXES, defaultUri=NS_CLIENT,
                         prefixesInScope=PREFIXES_IN_SCOPE)
