"""
Tests for L{xmppd.core.jid}: RFC 7622 JID parsing, preparation and caching.
"""

import pytest
from precis_i18n import get_profile
from twisted.words.protocols.jabber import jid as twistedJID

from xmppd.core.jid import (
    CACHE_MAX_LENGTH,
    CACHE_SIZE,
    InvalidJID,
    makeJID,
    parseJID,
    prepDomainpart,
    prepLocalpart,
    prepResourcepart,
)

# RFC 7622 §3.5, examples 1-15, with the parts they must yield.
VALID = [
    ("juliet@example.com", ("juliet", "example.com", None)),
    ("juliet@example.com/foo", ("juliet", "example.com", "foo")),
    ("juliet@example.com/foo bar", ("juliet", "example.com", "foo bar")),
    ("juliet@example.com/foo@bar", ("juliet", "example.com", "foo@bar")),
    ("foo\\20bar@example.com", ("foo\\20bar", "example.com", None)),
    ("fussball@example.com", ("fussball", "example.com", None)),
    ("fu\u00dfball@example.com", ("fu\u00dfball", "example.com", None)),
    ("\u03c0@example.com", ("\u03c0", "example.com", None)),
    ("\u03a3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c2@example.com/foo", ("\u03c2", "example.com", "foo")),
    ("king@example.com/\u265a", ("king", "example.com", "\u265a")),
    ("example.com", (None, "example.com", None)),
    ("example.com/foobar", (None, "example.com", "foobar")),
    ("a.example.com/b@example.net", (None, "a.example.com", "b@example.net")),
    # RFC 7622 erratum 4560: a leading space is allowed in a resourcepart.
    ("juliet@example.com/ foo", ("juliet", "example.com", " foo")),
]

# RFC 7622 §3.5, examples 16-23 (without 18, see above), then more.
INVALID = [
    '"juliet"@example.com',
    "foo bar@example.com",
    "@example.com/",
    "henry\u2163@example.com",
    "\u265a@example.com",
    "juliet@",
    "/foobar",
    "@example.com",
    "example.com/",
    "juliet@example.com/",
    "",
    "juliet@example.com@example.net",
    "juliet@exa mple.com",
    "juliet@example..com",
    "juliet@-example.com",
    "juliet@example.com:5222",
    "juliet@[::1",
    "juliet@[not:an:address]",
    "juliet@" + "a" * 64 + ".com",
    "a" * 1024 + "@example.com",
    "juliet@example.com/" + "r" * 1024,
    "juliet@example.com/foo\x00bar",
]


@pytest.mark.parametrize("text,parts", VALID)
def test_validJIDs(text, parts):
    """Each RFC 7622 example of a valid JID parses into its prepared parts."""
    parsed = parseJID(text)
    assert (parsed.user, parsed.host, parsed.resource) == parts


@pytest.mark.parametrize("text", INVALID)
def test_invalidJIDs(text):
    """Each invalid JID is refused with InvalidJID."""
    with pytest.raises(InvalidJID):
        parseJID(text)


@pytest.mark.parametrize("char", list("\"&'/:<>@"))
def test_localpartForbiddenCharacters(char):
    """The characters RFC 7622 §3.3.1 forbids in a localpart are refused."""
    with pytest.raises(InvalidJID):
        prepLocalpart("jul%siet" % (char,))


def test_invalidJIDIsValueError():
    """InvalidJID is a ValueError, so generic input validation catches it."""
    assert issubclass(InvalidJID, ValueError)


def test_localpartCaseMapped():
    """A localpart is lowercased, the domainpart too, the resourcepart is not."""
    parsed = parseJID("Juliet@Example.COM/Balcony")
    assert parsed.full() == "juliet@example.com/Balcony"


def test_fullwidthLocalpartMapped():
    """Fullwidth letters in a localpart become their ASCII equivalents."""
    assert prepLocalpart("\uff2a\uff35\uff2c\uff29\uff25\uff34") == "juliet"


def test_fullwidthAtInLocalpartRefused():
    """A fullwidth at sign maps to '@' and is then refused in a localpart."""
    with pytest.raises(InvalidJID):
        prepLocalpart("a\uff20b")


def test_resourceNonASCIISpaceMapped():
    """A non-ASCII space in a resourcepart becomes an ASCII space."""
    assert prepResourcepart("foo\u00a0bar") == "foo bar"


def test_bidiRuleInLocalpart():
    """A localpart mixing a leading digit with right-to-left letters is refused."""
    with pytest.raises(InvalidJID):
        prepLocalpart("1\u05d0")


def test_asciiFastPathAgreesWithPRECIS():
    """For every printable ASCII character, preparation gives what precis-i18n gives."""
    username = get_profile("UsernameCaseMapped")
    opaque = get_profile("OpaqueString")
    for code in range(0x20, 0x7F):
        text = "a" + chr(code) + "B"
        for prep, profile in ((prepLocalpart, username), (prepResourcepart, opaque)):
            try:
                expected = profile.enforce(text)
            except UnicodeError:
                expected = None
            try:
                actual = prep(text)
            except InvalidJID:
                actual = None
            if prep is prepLocalpart and expected is not None and chr(code) in "\"&'/:<>@":
                expected = None
            assert actual == expected, (prep.__name__, text)


def test_domainTrailingDotStripped():
    """One trailing dot of a domainpart is removed."""
    assert parseJID("juliet@example.com./foo").host == "example.com"


def test_domainIdeographicDotIsSeparator():
    """An ideographic full stop separates labels like a dot."""
    assert prepDomainpart("\u4f8b\u3002example\u3002") == "\u4f8b.example"


def test_internationalDomain():
    """A domainpart with non-ASCII letters is lowercased and kept as U-labels."""
    assert prepDomainpart("B\u00dcCHER.example") == "b\u00fccher.example"


def test_domainWithSymbolRefused():
    """A domain label holding a symbol is refused."""
    with pytest.raises(InvalidJID):
        prepDomainpart("\u265a.example")


def test_ipv4Domain():
    """An IPv4 address is a valid domainpart."""
    assert parseJID("juliet@192.0.2.1/r").host == "192.0.2.1"


def test_ipv6Domain():
    """A bracketed IPv6 literal is a valid domainpart, in compressed lowercase form."""
    assert parseJID("juliet@[2001:DB8:0:0:0:0:0:1]/r").host == "[2001:db8::1]"


def test_equalToTwistedJID():
    """A parsed JID equals and hashes like the Twisted JID with the same parts."""
    ours = parseJID("Juliet@example.com/balcony")
    theirs = twistedJID.JID("juliet@example.com/balcony")
    assert ours == theirs and theirs == ours
    assert hash(ours) == hash(theirs)
    assert {theirs: 1}[ours] == 1
    assert isinstance(ours, twistedJID.JID)


def test_twistedMethodsWork():
    """userhost(), full(), str() and repr() behave as on Twisted JIDs."""
    parsed = parseJID("juliet@example.com/balcony")
    assert parsed.userhost() == "juliet@example.com"
    assert parsed.full() == str(parsed) == "juliet@example.com/balcony"
    assert repr(parsed) == "JID('juliet@example.com/balcony')"
    assert parseJID("example.com/x").userhost() == "example.com"


def test_userhostJIDBypassesTwistedCache():
    """The bare JID keeps the PRECIS-prepared localpart and is not interned by Twisted."""
    interned = getattr(twistedJID, "__internJIDs")
    before = len(interned)
    bare = parseJID("fu\u00dfball@example.com/r").userhostJID()
    assert (bare.user, bare.host, bare.resource) == ("fu\u00dfball", "example.com", None)
    assert len(interned) == before
    assert bare.userhostJID() is bare


def test_makeJIDTrustsParts():
    """makeJID builds a JID from prepared parts without touching them."""
    built = makeJID("juliet", "example.com", "balcony")
    assert built == parseJID("juliet@example.com/balcony")
    assert makeJID(None, "example.com", None).full() == "example.com"


def test_makeJIDEmptyPartsAreNone():
    """Empty user or resource parts passed to makeJID mean absent parts."""
    built = makeJID("", "example.com", "")
    assert built.user is None and built.resource is None


def test_parseIsCached():
    """Parsing the same string twice returns the same JID object."""
    assert parseJID("romeo@example.net/orchard") is parseJID("romeo@example.net/orchard")


def test_cacheIsBounded():
    """However many distinct JIDs are parsed, the cache keeps at most CACHE_SIZE."""
    for i in range(CACHE_SIZE + 100):
        parseJID("user%d@example.com" % (i,))
    info = parseJID.cache_info()
    assert info.maxsize == CACHE_SIZE
    assert info.currsize <= CACHE_SIZE


def test_longJIDsParsedButNotCached():
    """A JID longer than CACHE_MAX_LENGTH is parsed correctly but not kept in the cache."""
    text = "juliet@example.com/" + "r" * CACHE_MAX_LENGTH
    parseJID.cache_clear()
    parsed = parseJID(text)
    assert parsed.resource == "r" * CACHE_MAX_LENGTH
    assert parseJID(text) == parsed
    assert parseJID.cache_info().currsize == 0
