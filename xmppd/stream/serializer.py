# -*- test-case-name: tests.test_serializer -*-
"""
Stanzas as a client stream writes them: C{jabber:client} the default
namespace, C{stream} the prefix of the streams namespace (RFC 6120 §4.8).

Every stanza a client receives is serialized once, here, and this is the
largest single cost of a 1:1 message.  Twisted's serializer
(C{domish.Element.toXml}) is general: it keeps a stack of namespace prefixes
and looks each one up per element.  Stanzas almost never need prefixes, so
L{serialize} writes those with no prefix directly, and hands anything else
(an element with prefixed names or attributes, or namespace declarations of
its own, like C{<stream:error/>}) to Twisted's serializer.  Either way the
text is the same, character for character, as C{toXml} with the client
stream's prefixes gives: L{tests.test_serializer} checks it on many shapes.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

NS_CLIENT = "jabber:client"
NS_XML = "http://www.w3.org/XML/1998/namespace"
#: Namespace -> prefix a client stream has in scope (C{xml} always is).
PREFIXES = {NS_STREAMS: "stream"}
PREFIXES_IN_SCOPE = ["stream"]
#: Namespaces that Twisted's serializer writes with a prefix wherever they occur.
_PREFIXED = frozenset((NS_STREAMS, NS_XML))


class _NeedsPrefixes(Exception):
    """The element needs Twisted's prefix-aware serializer."""


def serialize(element: domish.Element) -> str:
    """
    C{element} as a client stream writes it: the same text as
    C{element.toXml(prefixes=PREFIXES, defaultUri=NS_CLIENT,
    prefixesInScope=PREFIXES_IN_SCOPE)}, without its per-element prefix
    bookkeeping when no prefix is needed.
    """
    parts: list[str] = []
    try:
        _write(element, NS_CLIENT, parts.append)
    except _NeedsPrefixes:
        return element.toXml(prefixes=PREFIXES, defaultUri=NS_CLIENT,
                             prefixesInScope=PREFIXES_IN_SCOPE)
    return "".join(parts)


def _write(element: domish.Element, currentDefaultUri: str, write) -> None:
    """
    Twisted's C{_ListSerializer.serialize} for an element that needs no
    prefix; raises L{_NeedsPrefixes} for one that does.
    """
    if element.localPrefixes:
        raise _NeedsPrefixes()
    uri = element.uri
    defaultUri = element.defaultUri
    if defaultUri is None:
        defaultUri = currentDefaultUri
    if uri is None:
        uri = defaultUri
    if uri != defaultUri or uri in _PREFIXED:
        raise _NeedsPrefixes()
    name = element.name
    if defaultUri != currentDefaultUri:
        write("<%s xmlns='%s'" % (name, defaultUri))
    else:
        write("<" + name)
    for key, value in element.attributes.items():
        if type(key) is not str or not isinstance(value, str):
            raise _NeedsPrefixes()  # a qualified attribute, or a value toXml rejects
        write(" %s='%s'" % (key, value.replace("&", "&amp;").replace("<", "&lt;")
                            .replace(">", "&gt;").replace("'", "&apos;")
                            .replace('"', "&quot;")))
    children = element.children
    if children:
        write(">")
        for child in children:
            if isinstance(child, str):
                if isinstance(child, domish.SerializedXML):
                    write(child)
                else:
                    write(child.replace("&", "&amp;").replace("<", "&lt;")
                          .replace(">", "&gt;"))
            elif isinstance(child, domish.Element):
                _write(child, defaultUri, write)
            else:
                raise _NeedsPrefixes()
        write("</%s>" % name)
    else:
        write("/>")
