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

# How a client stream writes an element: one serializer, fast for stanzas.
from xmppd.stream.serializer import NS_CLIENT, PREFIXES, PREFIXES_IN_SCOPE, serialize

__all__ = ["NS_CLIENT", "NS_SERVER", "PREFIXES", "PREFIXES_IN_SCOPE", "STANZA_NAMES",
           "serialize", "streamErrorElement"]

NS_SERVER = "jabber:server"

#: The top-level elements that are stanzas (RFC 6120 §8); anything else on
#: an established stream is a nonza.
STANZA_NAMES = frozenset(("message", "presence", "iq"))


def streamErrorElement(condition: str, text: str | None = None,
                       appCondition: domish.Element | None = None,
                       conditionText: str | None = None) -> domish.Element:
    """
    A C{<stream:error/>} with the defined C{condition} (RFC 6120 §4.9.3);
    C{conditionText} is the condition element's own content, which only
    C{see-other-host} has (§4.9.3.19: the other host).
    """
    error = domish.Element((NS_STREAMS, "error"))
    error.addElement((NS_XMPP_STREAMS, condition), content=conditionText)
    if text:
        error.addElement((NS_XMPP_STREAMS, "text"), content=text)
    if appCondition is not None:
        # RFC 6120 §4.9.4: an application-specific condition may follow.
        error.addChild(appCondition)
    return error

