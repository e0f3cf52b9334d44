"""
Tests for L{xmppd.stream.serializer}: what a client receives is exactly what
Twisted's serializer would have written, whatever the stanza's shape.
"""

import pytest
from twisted.words.protocols.jabber.xmlstream import NS_STREAMS
from twisted.words.xish import domish

from xmppd.stream.serializer import (NS_CLIENT, PREFIXES, PREFIXES_IN_SCOPE,
                                     serialize)
from xmppd.stream.xmlparser import HardenedElementStream
from tests.helpers import parse


def twisted(element: domish.Element) -> str:
    return element.toXml(prefixes=PREFIXES, defaultUri=NS_CLIENT,
                         prefixesInScope=PREFIXES_IN_SCOPE)


def hardened(xml: str) -> domish.Element:
    """One element as a client stream's own parser builds it."""
    result = []
    stream = HardenedElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = result.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(("<stream:stream xmlns='jabber:client' xmlns:stream='%s'>%s"
                  % (NS_STREAMS, xml)).encode("utf-8"))
    [element] = result
    return element


STANZAS = [
    "<message to='juliet@example.com' from='romeo@example.com/x' type='chat' id='1'>"
    "<body>Wherefore art thou?</body></message>",
    "<message to='a@b'><body>&lt;b&gt; &amp; 'quotes' \"double\" \u00e9\u2603</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message to='a@b' id='x&amp;&lt;&gt;&apos;&quot;y'><body/></message>",
    "<presence><show>away</show><status>out</status><priority>5</priority>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
    "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' "
    "subscription='both'><group>Friends</group></item></query></iq>",
    "<message xml:lang='en' to='a@b'><body xml:lang='fr'>bonjour</body></message>",
    "<message to='a@b'><x xmlns='jabber:x:data' type='form'><field var='a'>"
    "<value>1</value></field></x><body>mixed<b>text</b>tail</body></message>",
    "<message to='a@b'><event xmlns:p='urn:p' p:attr='v'/></message>",
    "<message to='a@b'><p:event xmlns:p='urn:p'><p:item/></p:event></message>",
    "<message to='a@b'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
    "from='c@d'><body>inner</body></message></forwarded></message>",
    "<message to='a@b'><e xmlns='http://etherx.jabber.org/streams'/></message>",
    "<iq type='get' id='2'><query xmlns='jabber:client'/></iq>",
]


@pytest.mark.parametrize("xml", STANZAS)
def test_sameTextAsTwisted(xml):
    """A stanza parsed from a client reaches the recipient as exactly the text Twisted writes."""
    for element in (parse(xml), hardened(xml)):
        assert serialize(element) == twisted(element)


def test_builtElements():
    """Stanzas the server builds itself, with other namespaces and text, come out as Twisted writes them."""
    message = domish.Element((NS_CLIENT, "message"), attribs={"to": "a@b", "type": "chat"})
    message.addElement("body", content="<&>'\"")
    message.addElement(("urn:xmpp:delay", "delay"))["stamp"] = "2002-09-10T23:08:25Z"
    result = domish.Element((None, "result"))
    result.addElement("inherits")
    message.addChild(result)
    message.addRawXml("<raw xmlns='urn:raw'>kept &amp; as is</raw>")
    assert serialize(message) == twisted(message)


def test_prefixedElementsAsTwisted():
    """A stream error, prefixed and with its own namespaces, comes out as Twisted writes it."""
    error = domish.Element((NS_STREAMS, "error"))
    error.addElement(("urn:ietf:params:xml:ns:xmpp-streams", "conflict"))
    qualified = domish.Element((NS_CLIENT, "message"))
    qualified[("http://www.w3.org/XML/1998/namespace", "lang")] = "en"
    declared = domish.Element(("urn:a", "a"), localPrefixes={"p": "urn:b"})
    declared.addElement(("urn:b", "b"))
    for element in (error, qualified, declared):
        assert serialize(element) == twisted(element)
    assert serialize(error).startswith("<stream:error>")


def test_unusualValuesFailAsTwisted():
    """An attribute value that is not text fails the way Twisted's serializer does."""
    element = domish.Element((NS_CLIENT, "message"), attribs={"to": 7})
    with pytest.raises(AttributeError):
        twisted(element)
    with pytest.raises(AttributeError):
        serialize(element)
