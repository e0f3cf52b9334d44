# -*- test-case-name: tests.test_xmlparser -*-
"""
A hardened XML element stream for XMPP streams (RFC 6120 §11, DESIGN §4).

L{HardenedElementStream} replaces Twisted's L{domish.ExpatElementStream}: same
callbacks (C{DocumentStartEvent}, C{ElementEvent}, C{DocumentEndEvent}), same
C{parse(data)}, and the same L{domish.Element} trees, so wokkel and Twisted code
run unchanged on top of it.  Unlike Twisted's parser it enforces RFC 6120 §11.1
"restricted XML" and bounds what one peer can make the server spend:

  - a DOCTYPE (hence any DTD, entity declaration or billion-laughs document),
    comments and processing instructions raise L{RestrictedXML}; the XML
    declaration is allowed, it is not a processing instruction;
  - UTF-8 is the only encoding (RFC 6120 §11.6): an XML declaration naming
    another one, a UTF-16 or UTF-32 byte order mark, or the NUL bytes with
    which UTF-16 and UTF-32 write ASCII at the start of the stream raise
    L{UnsupportedEncoding} (C{unsupported-encoding}); expat would otherwise
    honour a byte order mark and quietly read UTF-16, whatever encoding it
    was told to use.  XMPP is XML 1.0 (RFC 6120 §11.8): a declaration of
    another version raises L{UnsupportedXMLVersion} (C{unsupported-version});
  - references to entities other than the five predefined ones, and any other
    expat error, raise L{NotWellFormed};
  - a stanza (or the stream header) longer than C{maxStanzaSize} bytes raises
    L{StanzaTooLarge}; input is fed to expat in L{PARSE_SLICE} pieces and
    checked after each one, so however big a chunk arrives at most
    C{maxStanzaSize + PARSE_SLICE} bytes of one stanza are parsed; text
    needs no count of its own, as every character costs at least one byte;
  - nesting deeper than C{maxDepth}, more than C{maxElements} elements in one
    stanza, or more than C{maxNames} distinct names and prefixes on one stream
    raise L{TooDeep}, L{TooManyElements} and L{TooManyNames} (expat keeps every
    name and prefix it has seen for the life of the parser, so a long-lived
    stream of invented names would otherwise grow without bound);
  - character data is collected in linear time: fragments are buffered and
    joined once per text node, where C{Element.addContent} would copy the whole
    text on every fragment.

Every error is a L{domish.ParserError}, so Twisted's C{XmlStream.dataReceived}
still catches it, and an L{XMLPolicyError} whose C{condition} names the RFC 6120
§4.9.3 stream error to send.

An owner plugs the stream in by overriding C{XmlStream._initializeStream}; when
it restarts the stream (after STARTTLS or SASL, RFC 6120 §5.4.3.3 and §6.4.6)
it should call L{HardenedElementStream.halt} on the old one, so that bytes which
followed the restart request in the same read are discarded rather than parsed
as if they belonged to the new stream.

L{parseStored} reads back, with the same refusals, elements the server
serialized into storage (private XML, vCards, offline messages).
"""

from __future__ import annotations

import pyexpat
import sys
from typing import Callable, Optional

from twisted.words.xish.domish import Element, ParserError

from xmppd.stream.elements import NS_CLIENT

#: Input is handed to expat at most this many bytes at a time, so the size
#: limits are checked at least this often.
PARSE_SLICE = 8192


class XMLPolicyError(ParserError):
    """
    The peer's XML broke a rule; C{condition} is the RFC 6120 §4.9.3 stream
    error condition to answer with before closing the stream.
    """

    condition = "undefined-condition"


class RestrictedXML(XMLPolicyError):
    """A DOCTYPE, DTD, comment or processing instruction (RFC 6120 §11.1)."""

    condition = "restricted-xml"


class NotWellFormed(XMLPolicyError):
    """Expat rejected the input; the message is expat's (RFC 6120 §4.9.3.13)."""

    condition = "not-well-formed"


class UnsupportedEncoding(XMLPolicyError):
    """The peer sent, or declared, an encoding other than UTF-8 (RFC 6120 §11.6)."""

    condition = "unsupported-encoding"


class UnsupportedXMLVersion(XMLPolicyError):
    """
    The XML declaration names a version other than 1.0.  RFC 6120 §11.8
    defines XMPP over XML 1.0 only and names no condition for this;
    C{unsupported-version} (§4.9.3.25, strictly about the stream header's
    XMPP version) is the one that tells the peer a version is the problem,
    and the text says which.
    """

    condition = "unsupported-version"


#: The first bytes checked for another encoding (XML 1.0 Appendix F): UTF-16
#: and UTF-32 put a NUL byte among them, or a byte order mark starting with
#: 0xFE or 0xFF, bytes UTF-8 never uses; EBCDIC writes "<?xm" as these.
_EBCDIC_START = b"\x4c\x6f\xa7\x94"
_SNIFFED = 4


class PolicyViolation(XMLPolicyError):
    """A local resource limit was exceeded (RFC 6120 §4.9.3.14)."""

    condition = "policy-violation"


class StanzaTooLarge(PolicyViolation):
    """One stanza, or the stream header, is longer than C{maxStanzaSize}."""

    #: The limit it broke, as the metrics and logs name it.
    limit = "max_stanza_size"


class TooDeep(PolicyViolation):
    """Elements are nested more than C{maxDepth} levels inside a stanza."""

    limit = "max_depth"


class TooManyElements(PolicyViolation):
    """One stanza holds more than C{maxElements} elements."""


class TooManyNames(PolicyViolation):
    """The stream used more than C{maxNames} distinct names."""


class _Halted(Exception):
    """Raised inside a callback to stop expat at once after L{halt}."""


class HardenedElementStream:
    """
    Turn the bytes of an XMPP stream into L{domish.Element} stanzas, refusing
    restricted XML and bounding size, depth and memory.

    The limits are plain attributes, read on every check, so an owner may change
    them at any time (a small C{maxStanzaSize} before authentication, a larger
    one after).

    After any exception out of L{parse}, after L{halt} and after the closing
    stream tag, the stream is dead: later L{parse} calls return at once without
    parsing anything or raising, so an owner never reports a second error for
    one stream.  C{failed} holds the exception that killed it (C{None} if it
    ended cleanly or is alive).

    @ivar bytesFed: bytes handed to expat so far, for monitoring and tests.
    """

    #: Bytes one stanza may take, counted from its first C{<} to the end of the
    #: data fed so far; the stream header is counted the same way.  The default
    #: is a pre-authentication size so that an owner who forgets to set it
    #: fails safe.
    maxStanzaSize = 10 * 1024

    #: Nesting levels inside a stanza; the stanza element itself is level 1.
    maxDepth = 48

    #: Elements in one stanza, including the stanza element.
    maxElements = 10000

    #: Distinct element names, attribute names and namespace prefixes on one
    #: stream, all of which expat keeps until the stream ends.
    maxNames = 10000

    def __init__(self) -> None:
        self.DocumentStartEvent: Optional[Callable[[Element], object]] = None
        self.ElementEvent: Optional[Callable[[Element], object]] = None
        self.DocumentEndEvent: Optional[Callable[[], object]] = None
        self.failed: Optional[BaseException] = None
        self.bytesFed = 0
        # The stream's first bytes, held back until there are enough of
        # them to tell the encoding (see L{_sniff}).
        self._held = b""

        self._names: dict = {}
        parser = pyexpat.ParserCreate("UTF-8", " ", intern=self._names)
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        # Expat then delivers a text node in few large pieces instead of one
        # per line and per entity reference.  Its default 8 KiB buffer is
        # allocated for every stream and was the largest single cost of an
        # idle session (8 KB of ~28 KB); 512 bytes keeps the benefit for the
        # short texts stanzas carry, and longer ones arrive in a few pieces.
        parser.buffer_size = 512
        parser.buffer_text = True
        if hasattr(parser, "SetReparseDeferralEnabled"):
            # Expat >= 2.6 may postpone a token that completes in a small read
            # until more data arrives; an interactive stream cannot wait.  The
            # rescanning the deferral avoids is bounded by maxStanzaSize.
            parser.SetReparseDeferralEnabled(False)
        parser.StartElementHandler = self._onStartElement
        parser.EndElementHandler = self._onEndElement
        parser.CharacterDataHandler = self._onCharacterData
        parser.StartNamespaceDeclHandler = self._onStartNamespace
        parser.EndNamespaceDeclHandler = self._onEndNamespace
        # The DOCTYPE handler fires at "<!DOCTYPE name [", before any
        # declaration in the internal subset is read, so no entity is ever
        # defined, let alone expanded.  The declaration handlers are a second
        # line of defence.
        parser.StartDoctypeDeclHandler = self._refuseDoctype
        parser.EntityDeclHandler = self._refuseDeclaration
        parser.UnparsedEntityDeclHandler = self._refuseDeclaration
        parser.NotationDeclHandler = self._refuseDeclaration
        parser.ElementDeclHandler = self._refuseDeclaration
        parser.AttlistDeclHandler = self._refuseDeclaration
        parser.ExternalEntityRefHandler = self._refuseDeclaration
        parser.CommentHandler = self._refuseComment
        parser.ProcessingInstructionHandler = self._refuseProcessingInstruction
        parser.XmlDeclHandler = self._checkDeclaration
        self._parser = parser

        self._started = False
        self._halted = False
        # The open stanza: its innermost open element and the nesting level
        # (0 between stanzas).
        self._current: Optional[Element] = None
        self._depth = 0
        self._elements = 0
        # Absolute byte offset from which the current stanza is measured.
        self._mark = 0
        # Text of the innermost open element not yet attached to it.
        self._text: list[str] = []
        self._appendText = self._text.append
        self._defaultNamespaces: list[Optional[str]] = [""]
        self._localPrefixes: dict[str, str] = {}
        # Every prefix declared so far: expat remembers them all, and pyexpat
        # does not intern them, so they are counted here.
        self._prefixNames: set[str] = set()

    def parse(self, data: bytes) -> None:
        """
        Parse the next piece of the stream, firing the callbacks for whatever
        completes.  C{str} is accepted and encoded as UTF-8, as some tests feed
        text.

        @raise XMLPolicyError: the input broke a rule; the stream is now dead.
        """
        if self._halted:
            return
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            if self.bytesFed < _SNIFFED:
                if self._held:
                    data, self._held = self._held + data, b""
                self._sniff(data)
                if not self.bytesFed and len(data) < _SNIFFED:
                    # Too few bytes to tell the encoding yet: expat would call
                    # them not well-formed (as it does the start of EBCDIC),
                    # and which error the peer gets would depend on how its
                    # bytes were split.
                    self._held = data
                    return
            if len(data) <= PARSE_SLICE:
                self._feed(data)
            else:
                view = memoryview(data)
                for start in range(0, len(view), PARSE_SLICE):
                    self._feed(view[start : start + PARSE_SLICE])
                    if self._halted:
                        break
        except _Halted:
            self._die(None)
        except pyexpat.ExpatError as e:
            error = NotWellFormed(str(e))
            self._die(error)
            raise error from None
        except BaseException as e:
            self._die(e)
            raise

    @property
    def inStanza(self) -> bool:
        """Whether a stanza has begun and not ended (a framed transport's check)."""
        return self._depth > 0

    def halt(self) -> None:
        """
        Stop now: called from a callback, the rest of the data being parsed is
        discarded and no further callback fires; later L{parse} calls do
        nothing.  Used when the stream restarts or closes.
        """
        self._halted = True

    def _sniff(self, data: bytes) -> None:
        """
        Refuse a stream whose first bytes are not UTF-8 (RFC 6120 §11.6),
        before expat sees them: it would decode UTF-16 after a byte order
        mark, and call UTF-16 without one merely not well-formed.
        """
        head = data[: _SNIFFED - self.bytesFed]
        # 0xFE and 0xFF never occur in UTF-8; NUL is no XML character.
        if b"\x00" in head or (self.bytesFed == 0 and (
                data[:1] in (b"\xfe", b"\xff") or data.startswith(_EBCDIC_START))):
            raise UnsupportedEncoding("only UTF-8 is supported (RFC 6120 §11.6)")

    def _feed(self, data) -> None:
        self.bytesFed += len(data)
        self._parser.Parse(data, False)
        if self.bytesFed - self._mark > self.maxStanzaSize:
            raise StanzaTooLarge(
                "stanza larger than %d bytes" % (self.maxStanzaSize,)
            )

    def _die(self, error: Optional[BaseException]) -> None:
        self._halted = True
        self.failed = error
        self._current = None
        self._text.clear()

    def _onStartElement(self, name: str, attrs: dict) -> None:
        depth = self._depth
        if depth:
            if depth >= self.maxDepth:
                raise TooDeep("elements nested deeper than %d" % (self.maxDepth,))
            self._elements += 1
            if self._elements > self.maxElements:
                raise TooManyElements(
                    "more than %d elements in a stanza" % (self.maxElements,)
                )

        # Expat joins namespace and local name with a space; attributes
        # without one (almost all of them in XMPP) keep their string keys, the
        # others become (uri, name) keys, after the plain ones, as in Twisted.
        uri, _, localName = name.rpartition(" ")
        if attrs:
            qualified = None
            for key in attrs:
                if " " in key:
                    if qualified is None:
                        qualified = [key]
                    else:
                        qualified.append(key)
            if qualified is not None:
                for key in qualified:
                    attrURI, _, attrName = key.rpartition(" ")
                    attrs[(attrURI, attrName)] = attrs.pop(key)
        prefixes = self._localPrefixes
        if prefixes:
            self._localPrefixes = {}
        element = Element((uri, localName), self._defaultNamespaces[-1], attrs, prefixes)

        if depth:
            parent = self._current
            children = parent.children
            text = self._text
            if text:
                children.append("".join(text))
                text.clear()
            children.append(element)
            element.parent = parent
            self._current = element
            self._depth = depth + 1
        elif self._started:
            self._mark = self._parser.CurrentByteIndex
            self._current = element
            self._depth = 1
            self._elements = 1
        else:
            self._started = True
            self._mark = self._parser.CurrentByteIndex
            self.DocumentStartEvent(element)
            if self._halted:
                raise _Halted()

    def _onEndElement(self, name: str) -> None:
        depth = self._depth
        if not depth:
            # The stream is over (RFC 6120 §4.4): whatever follows the closing
            # tag is discarded rather than reported as junk after the document.
            self._halted = True
            self.DocumentEndEvent()
            raise _Halted()
        element = self._current
        text = self._text
        if text:
            element.children.append("".join(text))
            text.clear()
        if depth == 1:
            self._current = None
            self._depth = 0
            self._mark = self._parser.CurrentByteIndex
            if len(self._names) + len(self._prefixNames) > self.maxNames:
                raise TooManyNames(
                    "more than %d distinct names on the stream" % (self.maxNames,)
                )
            self.ElementEvent(element)
            if self._halted:
                raise _Halted()
        else:
            self._current = element.parent
            self._depth = depth - 1

    def _onCharacterData(self, data: str) -> None:
        if self._depth:
            self._appendText(data)
        else:
            # Whitespace between stanzas (keepalives, RFC 6120 §4.6.1) is not
            # part of any stanza; it is ASCII, so characters are bytes.
            # Anything else there is ignored, as Twisted does.
            self._mark += len(data)

    def _onStartNamespace(self, prefix: Optional[str], uri: Optional[str]) -> None:
        if prefix is None:
            self._defaultNamespaces.append(uri)
        else:
            self._localPrefixes[prefix] = uri
            self._prefixNames.add(prefix)

    def _onEndNamespace(self, prefix: Optional[str]) -> None:
        if prefix is None:
            self._defaultNamespaces.pop()

    def _checkDeclaration(self, version: str, encoding: Optional[str],
                          standalone: int) -> None:
        # Expat was told the encoding, so it reads UTF-8 whatever the
        # declaration says: a peer writing ISO-8859-1 would be misread.
        if encoding is not None and encoding.lower() != "utf-8":
            raise UnsupportedEncoding(
                "encoding %r is not supported: XMPP uses UTF-8 only (RFC 6120 §11.6)"
                % (encoding,))
        if version != "1.0":
            raise UnsupportedXMLVersion(
                "XML version %r is not supported: XMPP uses XML 1.0 (RFC 6120 §11.8)"
                % (version,))

    def _refuseDoctype(self, *args) -> None:
        raise RestrictedXML("DOCTYPE declarations are not allowed")

    def _refuseDeclaration(self, *args) -> None:
        raise RestrictedXML("DTD declarations and entities are not allowed")

    def _refuseComment(self, data: str) -> None:
        raise RestrictedXML("comments are not allowed")

    def _refuseProcessingInstruction(self, target: str, data: str) -> None:
        raise RestrictedXML("processing instructions are not allowed")


def parseStored(text: str, wrapperNS: str = NS_CLIENT) -> list[Element]:
    """
    The elements serialized in C{text} (a concatenation of C{toXml()}
    results), parsed by the hardened parser inside a wrapper in
    C{wrapperNS}, so an element serialized without its own C{xmlns} comes
    back in the namespace it was stored from.

    The size and element limits are lifted: the text is at most what a
    client stream already let through, and cutting it short would lose
    data; restricted XML (DTDs, entities) is still refused.  Private XML
    storage (XEP-0049), vCards and offline messages store elements this way.
    """
    elements: list[Element] = []
    parser = HardenedElementStream()
    data = ("<stored xmlns='%s'>%s</stored>" % (wrapperNS, text)).encode("utf-8")
    parser.maxStanzaSize = len(data) + PARSE_SLICE
    parser.maxDepth = parser.maxElements = parser.maxNames = sys.maxsize
    parser.DocumentStartEvent = lambda root: None
    parser.ElementEvent = elements.append
    parser.DocumentEndEvent = lambda: None
    parser.parse(data)
    return elements
