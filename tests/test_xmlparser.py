"""
Tests for L{xmppd.stream.xmlparser}, the hardened XML element stream.
"""

import pytest
from twisted.internet.testing import StringTransport
from twisted.words.xish import domish, xmlstream

from xmppd.stream.xmlparser import (
    PARSE_SLICE,
    HardenedElementStream,
    NotWellFormed,
    RestrictedXML,
    StanzaTooLarge,
    TooDeep,
    TooManyElements,
    TooManyNames,
    UnsupportedEncoding,
    UnsupportedXMLVersion,
    XMLPolicyError,
)

HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0' xml:lang='en'>"
)

REALISTIC = [
    b"<message to='juliet@example.com/balcony' from='romeo@example.net/orchard'"
    b" type='chat' id='m1' xml:lang='en'><body>Wherefore art thou, Romeo?</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    b"<resource>balcony</resource></bind></iq>",
    b"<iq type='get' id='d1' to='example.com'>"
    b"<query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>",
    b"<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
    b"<publish node='urn:xmpp:avatar:metadata'><item id='x'>"
    b"<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='12' id='x' type='image/png'/>"
    b"</metadata></item></publish></pubsub></iq>",
    b"<presence><show>away</show><status>out \xe2\x98\x95 &amp; &lt;back&gt; soon\n"
    b"line two &#x263A; <![CDATA[<raw> & stuff]]> end</status>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
    b"<message xmlns:x='urn:example:x' x:attr='1' xmlns:y='urn:example:y'>"
    b"<x:payload y:flag='true' plain='p'><y:inner>t<b/>u<c/>v</y:inner></x:payload>"
    b"<html xmlns='http://jabber.org/protocol/xhtml-im'>"
    b"<body xmlns='http://www.w3.org/1999/xhtml'><p>a <em>b</em> c</p></body></html>"
    b"<r xmlns=''><s/></r></message>",
    b"\n \t",
    b"<message type='chat'><body>\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xb8\xad</body></message>",
]


class Recorder:
    """Attach to an element stream and remember what it reports."""

    def __init__(self, stream):
        self.stream = stream
        self.header = None
        self.elements = []
        self.ended = False
        stream.DocumentStartEvent = self.onStart
        stream.ElementEvent = self.elements.append
        stream.DocumentEndEvent = self.onEnd

    def onStart(self, element):
        self.header = element

    def onEnd(self):
        self.ended = True


def record(stream, *chunks):
    recorder = Recorder(stream)
    for chunk in chunks:
        stream.parse(chunk)
    return recorder


def snapshot(node, parent=None):
    """
    Everything of an element tree that callers can observe, as comparable
    values (the parent link is checked on the way).
    """
    if isinstance(node, str):
        return node
    assert node.parent is parent
    return (
        type(node),
        node.uri,
        node.name,
        node.defaultUri,
        list(node.attributes.items()),
        node.localPrefixes,
        [snapshot(child, node) for child in node.children],
    )


def twistedRecord(*chunks):
    stream = domish.ExpatElementStream()
    stream.maxStanzaSize = 1 << 30
    return record(stream, *chunks)


def assertSameAsTwisted(*chunks):
    ours = record(HardenedElementStream(), *chunks)
    theirs = twistedRecord(*chunks)
    assert snapshot(ours.header) == snapshot(theirs.header)
    assert len(ours.elements) == len(theirs.elements)
    for mine, twisted in zip(ours.elements, theirs.elements):
        assert snapshot(mine) == snapshot(twisted)
        assert mine.toXml() == twisted.toXml()
    return ours


def test_realisticStanzasMatchTwisted():
    """Realistic XMPP stanzas produce exactly the element trees Twisted's parser does."""
    recorder = assertSameAsTwisted(HEADER + b"".join(REALISTIC) + b"</stream:stream>")
    assert len(recorder.elements) == 7
    assert recorder.ended


def test_streamHeaderMatchesTwisted():
    """The stream header keeps its prefixes, default namespace and xml:lang as in Twisted."""
    recorder = assertSameAsTwisted(HEADER)
    header = recorder.header
    assert header.uri == "http://etherx.jabber.org/streams"
    assert header.localPrefixes == {"stream": "http://etherx.jabber.org/streams"}
    assert header.defaultUri == "jabber:client"
    assert header[("http://www.w3.org/XML/1998/namespace", "lang")] == "en"


def test_namespacedAttributesAreTuples():
    """Attributes in a namespace are keyed by (uri, name), plain ones by name."""
    recorder = assertSameAsTwisted(HEADER + REALISTIC[5])
    payload = recorder.elements[0].children[0]
    assert payload.attributes == {"plain": "p", ("urn:example:y", "flag"): "true"}


def test_byteByByteMatchesTwisted():
    """Input fed one byte at a time, splitting multi-byte UTF-8 characters, parses the same."""
    data = HEADER + b"".join(REALISTIC)
    chunks = [data[i : i + 1] for i in range(len(data))]
    recorder = assertSameAsTwisted(*chunks)
    assert str(recorder.elements[-1].body) == "\u00e9t\u00e9 \U0001F600 \u4e2d"


def test_textAcrossManyParseCallsIsOneChild():
    """Text arriving in many pieces becomes one string child, as with Twisted."""
    pieces = [b"<message><body>"] + [b"part %d &amp; \n" % i for i in range(200)]
    recorder = assertSameAsTwisted(HEADER, *pieces, b"</body></message>")
    body = recorder.elements[0].body
    assert len(body.children) == 1
    assert body.children[0] == "".join("part %d & \n" % i for i in range(200))


def test_mixedContentKeepsOrder():
    """Text around child elements stays in document order, adjacent pieces merged."""
    recorder = assertSameAsTwisted(HEADER, b"<m>a<b/>b&amp;c<c>d</c>e</m>")
    assert [c if isinstance(c, str) else c.name for c in recorder.elements[0].children] == [
        "a", "b", "b&c", "c", "e"
    ]


def test_stringInputIsAccepted():
    """Text fed as str is parsed as its UTF-8 encoding."""
    recorder = record(
        HardenedElementStream(), HEADER.decode(), "<message><body>\u00e9</body></message>"
    )
    assert str(recorder.elements[0].body) == "\u00e9"


def test_doctypeRefused():
    """A DOCTYPE is refused as restricted XML."""
    stream = HardenedElementStream()
    with pytest.raises(RestrictedXML) as caught:
        record(stream, b"<?xml version='1.0'?><!DOCTYPE stream><stream:stream/>")
    assert caught.value.condition == "restricted-xml"


def test_billionLaughsRefusedAtDoctype():
    """A billion-laughs document is refused at its DOCTYPE, before any entity is declared."""
    laughs = [b'<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        laughs.append(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10))
    document = (
        b"<?xml version='1.0'?><!DOCTYPE lolz [" + b"".join(laughs) + b"]>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
        b"<message><body>&lol9;</body></message>"
    )
    stream = HardenedElementStream()
    with pytest.raises(RestrictedXML, match="DOCTYPE") as caught:
        recorder = Recorder(stream)
        stream.parse(document)
    assert caught.value.condition == "restricted-xml"
    assert recorder.header is None and recorder.elements == []


def test_undefinedEntityIsNotWellFormed():
    """A reference to an entity other than the predefined five is not well-formed."""
    stream = HardenedElementStream()
    with pytest.raises(NotWellFormed, match="undefined entity") as caught:
        record(stream, HEADER, b"<message><body>&foo;</body></message>")
    assert caught.value.condition == "not-well-formed"


def test_commentRefused():
    """A comment inside a stanza is refused as restricted XML."""
    with pytest.raises(RestrictedXML, match="comment"):
        record(HardenedElementStream(), HEADER, b"<message><!-- hi --></message>")


def test_commentBeforeStreamRefused():
    """A comment before the stream header is refused as restricted XML."""
    with pytest.raises(RestrictedXML, match="comment"):
        record(HardenedElementStream(), b"<!-- hi -->" + HEADER)


def test_processingInstructionRefused():
    """A processing instruction is refused as restricted XML, while the XML declaration is fine."""
    with pytest.raises(RestrictedXML, match="processing instruction"):
        record(HardenedElementStream(), HEADER, b"<message><?php echo 1 ?></message>")


STREAM_OPEN = HEADER.split(b"?>", 1)[1]


@pytest.mark.parametrize("declaration", [
    b"<?xml version='1.0' encoding='UTF-16'?>",
    b"<?xml version='1.0' encoding='ISO-8859-1'?>",
    b'<?xml version="1.0" encoding="us-ascii"?>',
])
def test_declaredEncodingOtherThanUTF8Refused(declaration):
    """An XML declaration naming an encoding other than UTF-8 is unsupported-encoding, before the header is reported."""
    stream = HardenedElementStream()
    recorder = Recorder(stream)
    with pytest.raises(UnsupportedEncoding, match="UTF-8") as caught:
        stream.parse(declaration + STREAM_OPEN)
    assert caught.value.condition == "unsupported-encoding"
    assert recorder.header is None


@pytest.mark.parametrize("declaration", [
    b"<?xml version='1.0' encoding='UTF-8'?>", b"<?xml version='1.0' encoding='utf-8'?>",
    b"<?xml version='1.0'?>", b""])
def test_utf8DeclarationsAccepted(declaration):
    """A declaration of UTF-8 in any case, or none, is accepted."""
    recorder = record(HardenedElementStream(), declaration + STREAM_OPEN)
    assert recorder.header is not None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_utf16BytesRefused(encoding, declared):
    """A stream in UTF-16 or UTF-32, with or without a byte order mark or declaration, is unsupported-encoding, even a byte at a time."""
    text = HEADER.decode() if declared else STREAM_OPEN.decode()
    if declared:
        text = text.replace("version='1.0'?>", "version='1.0' encoding='UTF-16'?>")
    data = text.encode(encoding)
    for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
        stream = HardenedElementStream()
        recorder = Recorder(stream)
        with pytest.raises(UnsupportedEncoding):
            for chunk in chunks:
                stream.parse(chunk)
        assert recorder.header is None


@pytest.mark.parametrize("version", [b"1.1", b"2.0"])
def test_xmlVersionOtherThan10Refused(version):
    """An XML declaration of a version other than 1.0 is unsupported-version naming the version."""
    stream = HardenedElementStream()
    recorder = Recorder(stream)
    with pytest.raises(UnsupportedXMLVersion, match="XML version '%s'" % version.decode()) as caught:
        stream.parse(b"<?xml version='" + version + b"'?>" + STREAM_OPEN)
    assert caught.value.condition == "unsupported-version"
    assert recorder.header is None


def test_malformedXMLIsNotWellFormed():
    """Mismatched tags raise NotWellFormed with expat's message."""
    with pytest.raises(NotWellFormed, match="mismatched tag"):
        record(HardenedElementStream(), HEADER, b"<message></iq>")


def test_unboundPrefixIsNotWellFormed():
    """An element with an undeclared prefix is not well-formed."""
    with pytest.raises(NotWellFormed, match="unbound prefix"):
        record(HardenedElementStream(), HEADER, b"<foo:message/>")


def test_errorsAreTwistedParserErrors():
    """Every policy error is a domish.ParserError, so Twisted's XmlStream catches it."""
    errors = [RestrictedXML, NotWellFormed, StanzaTooLarge, TooDeep, TooManyElements, TooManyNames,
              UnsupportedEncoding, UnsupportedXMLVersion]
    for cls in errors:
        assert issubclass(cls, XMLPolicyError)
        assert issubclass(cls, domish.ParserError)
    assert StanzaTooLarge.condition == "policy-violation"
    assert TooDeep.condition == "policy-violation"
    assert TooManyElements.condition == "policy-violation"
    assert TooManyNames.condition == "policy-violation"


def test_streamIsDeadAfterError():
    """After an error later input is ignored: no events and no second exception."""
    stream = HardenedElementStream()
    recorder = Recorder(stream)
    stream.parse(HEADER)
    with pytest.raises(NotWellFormed) as caught:
        stream.parse(b"<message></iq>")
    stream.parse(b"<message/>")
    assert recorder.elements == []
    assert stream.failed is caught.value


def test_hugeChunkRejectedAfterBoundedWork():
    """A 10 MB text node is refused after parsing at most the limit plus one slice."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 10240
    recorder = Recorder(stream)
    stream.parse(HEADER)
    with pytest.raises(StanzaTooLarge) as caught:
        stream.parse(b"<message><body>" + b"a" * (10 * 1024 * 1024) + b"</body></message>")
    assert caught.value.condition == "policy-violation"
    assert stream.bytesFed <= len(HEADER) + 10240 + PARSE_SLICE
    assert recorder.elements == []


def test_slowStanzaRejected():
    """A stanza that grows past the limit over many small reads is refused."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 10240
    record(stream, HEADER, b"<message><body>")
    with pytest.raises(StanzaTooLarge):
        for _ in range(200):
            stream.parse(b"x" * 100)


def test_hugeStartTagRejected():
    """A start tag longer than the limit is refused before it is complete."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 10240
    record(stream, HEADER)
    with pytest.raises(StanzaTooLarge):
        stream.parse(b"<message to='" + b"a" * 20000)


def test_hugeStreamHeaderRejected():
    """The stream header counts against the stanza size limit."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 10240
    with pytest.raises(StanzaTooLarge):
        record(stream, b"<stream:stream xmlns:stream='s' to='" + b"a" * 20000 + b"'>")


def test_limitAppliesPerStanza():
    """Many stanzas whose total exceeds the limit pass when each one fits."""
    stanza = b"<message><body>" + b"y" * 900 + b"</body></message>"
    stream = HardenedElementStream()
    stream.maxStanzaSize = 1024
    recorder = record(stream, HEADER, stanza * 50, *([stanza] * 50))
    assert len(recorder.elements) == 100


def test_whitespaceKeepalivesDoNotAccumulate():
    """Whitespace keepalives between stanzas never add up to an oversized stanza."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 1024
    keepalives = [b" "] * 5000 + [b"\n" * 3000]
    recorder = record(stream, HEADER, b"<presence/>", *keepalives, b"<presence/>")
    assert len(recorder.elements) == 2


def test_limitRaisedAfterAuthentication():
    """A 200 KB stanza refused before authentication is accepted once the limit is raised."""
    big = b"<message><body>" + b"z" * (200 * 1024) + b"</body></message>"
    before = HardenedElementStream()
    before.maxStanzaSize = 10240
    with pytest.raises(StanzaTooLarge):
        record(before, HEADER, big)

    after = HardenedElementStream()
    after.maxStanzaSize = 10240
    recorder = record(after, HEADER, b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    after.maxStanzaSize = 256 * 1024
    after.parse(big)
    assert len(recorder.elements) == 2
    assert len(str(recorder.elements[1].body)) == 200 * 1024


def nested(depth):
    return b"<message>" + b"<x>" * (depth - 1) + b"</x>" * (depth - 1) + b"</message>"


def test_depth48Accepted():
    """A stanza nested 48 levels deep, counting the stanza itself, is accepted."""
    recorder = record(HardenedElementStream(), HEADER, nested(48))
    element, depth = recorder.elements[0], 1
    while element.children:
        element, depth = element.children[0], depth + 1
    assert depth == 48


def test_depth49Refused():
    """A stanza nested 49 levels deep is refused as a policy violation."""
    with pytest.raises(TooDeep):
        record(HardenedElementStream(), HEADER, nested(49))


def test_tooManyElementsRefused():
    """A stanza with more elements than maxElements is refused."""
    stream = HardenedElementStream()
    stream.maxStanzaSize = 1 << 20
    stream.maxElements = 100
    record(stream, HEADER, b"<iq>" + b"<a/>" * 98 + b"</iq>")
    with pytest.raises(TooManyElements):
        stream.parse(b"<iq>" + b"<a/>" * 100 + b"</iq>")


def test_inventedNamesRefused():
    """A stream that keeps inventing element names is refused before expat's memory grows."""
    stream = HardenedElementStream()
    stream.maxNames = 50
    recorder = record(stream, HEADER)
    with pytest.raises(TooManyNames):
        for i in range(100):
            stream.parse(b"<message><n%d/></message>" % i)
    assert len(recorder.elements) < 50


def test_inventedPrefixesRefused():
    """A stream that keeps declaring new namespace prefixes is refused like invented names."""
    stream = HardenedElementStream()
    stream.maxNames = 50
    recorder = record(stream, HEADER)
    with pytest.raises(TooManyNames):
        for i in range(100):
            stream.parse(b"<message xmlns:p%d='urn:x'/>" % i)
    assert len(recorder.elements) < 50


def test_megabyteTextParses():
    """One stanza holding a megabyte of text parses to exactly that text."""
    text = ("0123456789abcdef" * 65536).encode()
    stream = HardenedElementStream()
    stream.maxStanzaSize = 2 * 1024 * 1024
    pieces = [text[i : i + 1000] for i in range(0, len(text), 1000)]
    recorder = record(stream, HEADER, b"<message><body>", *pieces, b"</body></message>")
    body = recorder.elements[0].body
    assert body.children == [text.decode()]


def test_haltDiscardsRestOfBuffer():
    """After halt() from a callback, stanzas later in the same read are not delivered."""
    stream = HardenedElementStream()
    delivered = []

    def onElement(element):
        delivered.append(element.name)
        if element.name == "starttls":
            stream.halt()

    stream.DocumentStartEvent = lambda element: None
    stream.ElementEvent = onElement
    stream.parse(HEADER + b"<starttls/><message><body>injected</body></message>")
    stream.parse(b"<iq/>")
    assert delivered == ["starttls"]
    assert stream.failed is None


def test_closingTagEndsStream():
    """After the closing stream tag, trailing bytes are ignored instead of raising."""
    recorder = record(HardenedElementStream(), HEADER, b"<presence/></stream:stream><junk")
    assert recorder.ended
    assert len(recorder.elements) == 1


def test_dropInForTwistedXmlStream():
    """Plugged into Twisted's XmlStream, a DOCTYPE makes the stream drop the connection."""

    class HardenedXmlStream(xmlstream.XmlStream):
        def _initializeStream(self):
            xmlstream.XmlStream._initializeStream(self)
            self.stream = HardenedElementStream()
            self.stream.DocumentStartEvent = self.onDocumentStart
            self.stream.ElementEvent = self.onElement
            self.stream.DocumentEndEvent = self.onDocumentEnd

    errors = []
    stream = HardenedXmlStream()
    stream.addObserver(xmlstream.STREAM_ERROR_EVENT, errors.append)
    transport = StringTransport()
    stream.makeConnection(transport)
    stream.dataReceived(b"<!DOCTYPE x [<!ENTITY a 'b'>]>")
    assert transport.disconnecting
    assert errors[0].check(RestrictedXML)

