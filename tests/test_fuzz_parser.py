"""
Fuzzing the hardened stream parser (L{xmppd.stream.xmlparser}) with
Hypothesis: arbitrary bytes, and generated XML streams (namespaces,
attributes, text, entity and character references, CDATA, comments,
processing instructions, DOCTYPE attempts, XML declarations), each fed whole
and split at arbitrary byte boundaries.

Properties: nothing but the parser's declared errors (L{XMLPolicyError})
comes out; the outcome (the events fired, the elements delivered, and the
error's class) is the same however the bytes are split; the limits hold
(no delivered stanza deeper, larger or with more elements than allowed, no
more names kept than allowed, text buffered within the size limit).

The short, deterministic run is part of the suite (profile C{ci});
C{scripts/fuzz} runs the same tests with many more examples (C{long}).
"""

from __future__ import annotations

from hypothesis import example, given, strategies as st

from twisted.words.xish import domish

from tests.fuzzhelpers import profile
from xmppd.stream.xmlparser import (PARSE_SLICE, HardenedElementStream, StanzaTooLarge,
                                    UnsupportedEncoding,
                                    XMLPolicyError)

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>")

#: Small limits, so that generated input reaches them.  The size limit is
#: checked after each piece fed (and each L{PARSE_SLICE}), so where it fires
#: depends on the split by design; it is tested on its own.
LIMITS = {"maxDepth": 6, "maxElements": 25, "maxNames": 40}


def canonical(element: domish.Element):
    """A comparable form of an element tree: names, namespaces, attributes, text."""
    children = []
    for child in element.children:
        if isinstance(child, domish.Element):
            children.append(canonical(child))
        elif children and isinstance(children[-1], str):
            children[-1] += child
        else:
            children.append(str(child))
    return (element.uri, element.name, element.defaultUri,
            tuple(sorted((repr(k), v) for k, v in element.attributes.items())),
            tuple(sorted((element.localPrefixes or {}).items())), tuple(children))


def depthOf(element: domish.Element) -> int:
    return 1 + max((depthOf(c) for c in element.elements()), default=0)


def countOf(element: domish.Element) -> int:
    return 1 + sum(countOf(c) for c in element.elements())


def run(chunks: list[bytes], **limits):
    """
    Feed C{chunks} to a fresh parser with C{limits}; check the invariants
    that hold at every step, and return what happened: the events in
    order and the class of the error that ended the stream, if any.
    """
    parser = HardenedElementStream()
    for name, value in limits.items():
        setattr(parser, name, value)
    events: list = []
    parser.DocumentStartEvent = lambda root: events.append(("start", canonical(root)))
    parser.ElementEvent = lambda e: events.append(("element", canonical(e), depthOf(e), countOf(e)))
    parser.DocumentEndEvent = lambda: events.append(("end",))
    error = None
    for chunk in chunks:
        try:
            parser.parse(chunk)
        except XMLPolicyError as e:
            # A declared error: the stream is dead, and says so.
            assert parser.failed is e
            error = type(e)
        # Any other exception fails the test: the parser leaked it.
        # Bounded memory: text held for the open stanza is within the
        # size allowed, and expat's name tables within maxNames (names
        # are counted at the end of each stanza, so one stanza's worth more).
        assert sum(map(len, parser._text)) <= parser.maxStanzaSize + PARSE_SLICE
        assert len(parser._names) + len(parser._prefixNames) <= (
            parser.maxNames + 3 * (parser.maxStanzaSize + PARSE_SLICE))
        if error is not None:
            assert parser.parse(b"<more/>") is None
            break
    for event in events:
        if event[0] == "element":
            assert event[2] <= parser.maxDepth
            assert event[3] <= parser.maxElements
    return events, error


def splitAt(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


@st.composite
def splits(draw, data: bytes) -> list[bytes]:
    """C{data} cut at arbitrary byte boundaries (sometimes one byte at a time)."""
    if draw(st.integers(0, 9)) == 0:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = draw(st.lists(st.integers(0, max(len(data), 1)), max_size=12))
    return splitAt(data, cuts)


# -- arbitrary bytes ----------------------------------------------------------

@profile()
@given(prefix=st.sampled_from([b"", HEADER]), data=st.binary(max_size=400), choice=st.data())
@example(prefix=b"", data=b"\x4c\x6f\xa7\x94<stream/>", choice=None)
@example(prefix=b"", data=b"\xef\xbb\xbf" + HEADER, choice=None)
@example(prefix=b"", data=b"\x04%\x00", choice=None)
def test_arbitraryBytes(prefix, data, choice):
    """
    Any bytes, after a valid header or from the first byte: only declared
    errors, and the same outcome fed whole, byte by byte, or cut anywhere.
    """
    stream = prefix + data
    whole = run([stream])
    assert run([stream[i:i + 1] for i in range(len(stream))]) == whole
    if choice is not None:
        assert run(choice.draw(splits(stream))) == whole


# -- structured XML -----------------------------------------------------------

NAMES = st.sampled_from(["message", "presence", "iq", "body", "query", "item", "x",
                         "a", "b", "field", "value", "error", "stream:features"])
PREFIXES = st.sampled_from(["p", "q", "stream", "xml", "xmlns"])
URIS = st.sampled_from(["jabber:client", "jabber:iq:roster", "urn:xmpp:mam:2",
                        "http://jabber.org/protocol/muc", "", "urn:x"])
REFERENCES = st.sampled_from(["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#65;",
                              "&#x1F600;", "&#0;", "&#xD800;", "&nbsp;", "&foo;", "&", "&#;"])
#: Text that is fine in XML, plus characters XML forbids and the lone ones
#: that need escaping.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
JUNK = st.sampled_from([
    "<!-- a comment -->", "<?pi data?>", "<![CDATA[ <not> & markup ]]>", "<![CDATA[x",
    "<!DOCTYPE x>", "<!DOCTYPE x [<!ENTITY e 'lol'>]>", "<!ENTITY e 'x'>", "]]>",
    "<?xml version='1.0'?>", "</>", "<>", "<a", "\x00", "\x0c", "\ufffe",
])


@st.composite
def texts(draw) -> str:
    parts = draw(st.lists(st.one_of(TEXT.map(escape), REFERENCES, JUNK), max_size=3))
    return "".join(parts)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str) -> str:
    return escape(text).replace("'", "&apos;")


@st.composite
def attributes(draw) -> str:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            out.append("xmlns='%s'" % draw(URIS))
        elif kind == 1:
            out.append("xmlns:%s='%s'" % (draw(PREFIXES), draw(URIS)))
        elif kind == 2:
            out.append("%s:%s='%s'" % (draw(PREFIXES), draw(NAMES), quote(draw(TEXT))))
        else:
            name = draw(st.sampled_from(["to", "from", "type", "id", "xml:lang", "a", "to"]))
            value = draw(st.one_of(TEXT.map(quote), REFERENCES))
            out.append("%s='%s'" % (name, value))
    return "".join(" " + a for a in out)


def elements(depth: int = 0):
    """One element, with children down to some depth, as text."""
    @st.composite
    def element(draw) -> str:
        name = draw(NAMES)
        attrs = draw(attributes())
        if depth > 8 or draw(st.integers(0, 3)) == 0:
            return "<%s%s/>" % (name, attrs)
        body = draw(st.lists(st.one_of(texts(), elements(depth + 1)), max_size=4))
        close = name if draw(st.integers(0, 30)) else draw(NAMES)
        return "<%s%s>%s</%s>" % (name, attrs, "".join(body), close)
    return element()


@st.composite
def streams(draw) -> bytes:
    """A client stream: a (usually valid) prologue, header, stanzas, maybe a footer."""
    prologue = draw(st.sampled_from([
        "", "<?xml version='1.0'?>", "<?xml version='1.0' encoding='UTF-8'?>",
        "<?xml version='1.1'?>", "<?xml version='1.0' encoding='ISO-8859-1'?>",
        "<!DOCTYPE stream>", "\ufeff", " ", "<!-- hi -->"]))
    parts = [draw(st.lists(elements(), max_size=5))]
    deep = draw(st.integers(0, 12))
    if deep > 8:
        parts[0].append("<a>" * deep * 2 + "</a>" * deep * 2)
    footer = draw(st.sampled_from(["", "</stream:stream>", "</stream:stream><after/>"]))
    text = prologue + HEADER.decode()[len("<?xml version='1.0'?>"):] + draw(
        st.sampled_from(["", " ", "\n"])).join(parts[0]) + footer
    return text.encode("utf-8", "surrogatepass")


@profile()
@given(stream=streams(), choice=st.data(), limited=st.booleans())
@example(stream=HEADER + b"<message><body>a &amp; b &#65;</body></message>", choice=None,
         limited=False)
def test_structuredXML(stream, choice, limited):
    """
    Generated streams, with the default limits or small ones: only declared
    errors, the same outcome however the bytes are split, limits held.
    """
    limits = LIMITS if limited else {}
    whole = run([stream], **limits)
    if choice is not None:
        assert run(choice.draw(splits(stream)), **limits) == whole
    assert run([stream[i:i + 1] for i in range(len(stream))], **limits) == whole


@profile()
@given(stream=streams(), choice=st.data())
def test_sizeLimit(stream, choice):
    """
    With a small C{maxStanzaSize}, a split only makes the limit fire
    earlier: the stanzas delivered are a prefix of those delivered with the
    stream fed whole, and if the outcomes differ the limit is the reason.
    Fed byte by byte, no stanza longer than the limit is delivered.
    """
    whole, wholeError = run([stream], maxStanzaSize=300)
    split, splitError = run(choice.draw(splits(stream)), maxStanzaSize=300)
    assert split == whole[:len(split)]
    if (split, splitError) != (whole, wholeError):
        assert splitError is StanzaTooLarge
    sizes = []
    parser = HardenedElementStream()
    parser.maxStanzaSize = 300
    parser.DocumentStartEvent = lambda root: None
    parser.ElementEvent = lambda e: sizes.append(len(e.toXml().encode("utf-8")))
    parser.DocumentEndEvent = lambda: None
    for i in range(len(stream)):
        try:
            parser.parse(stream[i:i + 1])
        except XMLPolicyError:
            break
    # toXml may write an element longer than it came (escaping, prefixes):
    # a stanza the limit let through is at most 300 bytes on the wire.
    assert all(size <= 300 * 6 for size in sizes)


# -- regressions found by fuzzing ---------------------------------------------------

def test_encodingRefusedWhateverTheSplit():
    """
    The stream's first four bytes decide its encoding (XML 1.0 Appendix F)
    even when they arrive in pieces: EBCDIC's "<?xm" and a NUL among them
    are refused as C{unsupported-encoding}, where expat used to see the
    first piece alone and call it C{not-well-formed} (found by
    L{test_arbitraryBytes} and the atheris target).
    """
    for stream in (b"\x4c\x6f\xa7\x94<stream/>", b"\x04%\x00", b"<\x00?\x00"):
        for cut in range(1, 4):
            events, error = run([stream[:cut], stream[cut:]])
            assert (events, error) == ([], UnsupportedEncoding), (stream, cut)
    # A stream shorter than four bytes so far is held back, then parsed.
    events, error = run([b"<", b"s", b"/", b">"])
    assert error is None and events[0][0] == "start"
