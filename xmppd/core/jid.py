# -*- test-case-name: tests.test_jid -*-
"""
JIDs validated and prepared per RFC 7622 (PRECIS, RFC 8264 and RFC 8265).

L{parseJID} is the one way a JID string from the network becomes a JID inside
the server.  It splits the string as RFC 7622 §3.1 says, prepares the
localpart with the PRECIS UsernameCaseMapped profile (§3.3), the domainpart as
an IDNA-style host name or IP literal (§3.2) and the resourcepart with the
OpaqueString profile (§3.4), and raises L{InvalidJID} for anything the RFC
forbids.

The results are Twisted L{jid.JID} objects (a subclass, L{PreparedJID}), so
wokkel and Twisted code accept them and they compare and hash equal to a
Twisted JID with the same parts; but they are built without Twisted's
stringprep (about 0.1 ms a JID) and without its unbounded intern table.
Parsed JIDs are kept in a least-recently-used cache of L{CACHE_SIZE} entries
of at most L{CACHE_MAX_LENGTH} characters, so a busy server prepares each
address once while a peer inventing addresses cannot grow memory.  Cached JIDs are shared: nobody
may assign to their attributes.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
from typing import Optional

from precis_i18n import get_profile
from twisted.words.protocols.jabber.jid import JID

#: How many distinct JID strings L{parseJID} remembers.
CACHE_SIZE = 65536

#: Only strings up to this many characters are cached, so that a peer sending
#: maximal (3 KB) JIDs cannot make the cache hold hundreds of megabytes; the
#: cache holds about 30 MB when full of typical JIDs, about 40 MB at worst.
CACHE_MAX_LENGTH = 128

#: RFC 7622 §3.1: each part is at most 1023 bytes once prepared.
MAX_PART_BYTES = 1023

# No PRECIS or IDNA mapping shrinks text to less than a quarter of its length,
# so longer input is refused before it is prepared at all.
_MAX_RAW_PART = 4 * MAX_PART_BYTES

# RFC 7622 §3.3.1: characters the localpart may not contain beyond those the
# UsernameCaseMapped profile already refuses.
_LOCALPART_FORBIDDEN = frozenset("\"&'/:<>@")

# IDNA2003 label separators that RFC 7622 §3.2 treats like a dot.
_DOTS = {0x3002: ".", 0xFF0E: ".", 0xFF61: "."}

_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

_usernameCaseMapped = get_profile("UsernameCaseMapped")
_opaqueString = get_profile("OpaqueString")


class InvalidJID(ValueError):
    """The string is not a valid JID under RFC 7622."""


class PreparedJID(JID):
    """
    A Twisted L{JID} whose parts are already prepared.

    Only L{userhostJID} differs from Twisted's: Twisted re-parses the bare JID
    with stringprep (which disagrees with PRECIS on, for example, C{ß}) and
    interns it forever; this returns a JID built from the prepared parts.
    Create instances with L{parseJID} or L{makeJID}, never by calling the class.
    """

    def userhostJID(self) -> JID:
        if self.resource:
            return makeJID(self.user, self.host, None)
        return self


def makeJID(user: Optional[str], host: str, resource: Optional[str] = None) -> JID:
    """
    Build a JID from parts that are already prepared, without checking or
    preparing them again: for JIDs the server made itself (its own domain, a
    bound resource, a bare JID from storage).  Empty parts become C{None}.
    """
    result = PreparedJID.__new__(PreparedJID)
    result.user = user or None
    result.host = host
    result.resource = resource or None
    return result


def prepLocalpart(text: str) -> str:
    """
    Prepare a localpart with the UsernameCaseMapped profile (RFC 7622 §3.3).

    @raise InvalidJID: it is empty, too long, or has a forbidden character.
    """
    if not text:
        raise InvalidJID("empty localpart")
    if len(text) > _MAX_RAW_PART:
        raise InvalidJID("localpart too long")
    if text.isascii() and text.isprintable() and " " not in text:
        # For printable ASCII without spaces the profile only lowercases.
        result = text.lower()
    else:
        try:
            result = _usernameCaseMapped.enforce(text)
        except UnicodeError as e:
            raise InvalidJID("invalid localpart: %s" % (e.reason,)) from None
    if not _LOCALPART_FORBIDDEN.isdisjoint(result):
        raise InvalidJID("forbidden character in localpart")
    _checkLength(result, "localpart")
    return result


def prepResourcepart(text: str) -> str:
    """
    Prepare a resourcepart with the OpaqueString profile (RFC 7622 §3.4).

    @raise InvalidJID: it is empty, too long, or has a disallowed character.
    """
    if not text:
        raise InvalidJID("empty resourcepart")
    if len(text) > _MAX_RAW_PART:
        raise InvalidJID("resourcepart too long")
    if text.isascii() and text.isprintable():
        # Printable ASCII, spaces included, is its own OpaqueString form.
        result = text
    else:
        try:
            result = _opaqueString.enforce(text)
        except UnicodeError as e:
            raise InvalidJID("invalid resourcepart: %s" % (e.reason,)) from None
    _checkLength(result, "resourcepart")
    return result


def prepDomainpart(text: str) -> str:
    """
    Prepare a domainpart (RFC 7622 §3.2): a bracketed IPv6 literal, normalized,
    or a host name (an IPv4 address is one) with one trailing dot removed,
    lowercased and NFC-normalized, whose labels are 1 to 63 octets (in A-label
    form) of letters, digits and inner hyphens.  A-labels are kept as they are.

    @raise InvalidJID: it is none of those.
    """
    if not text:
        raise InvalidJID("empty domainpart")
    if len(text) > _MAX_RAW_PART:
        raise InvalidJID("domainpart too long")
    if text[0] == "[":
        if text[-1] != "]" or "%" in text:
            raise InvalidJID("invalid IPv6 literal")
        try:
            address = ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise InvalidJID("invalid IPv6 literal") from None
        return "[%s]" % (address.compressed,)

    if text.isascii():
        host = text.lower()
    else:
        host = _mapDomain(text.translate(_DOTS))
    if host[-1] == ".":
        host = host[:-1]
    if not host:
        raise InvalidJID("empty domainpart")
    for label in host.split("."):
        _checkLabel(label)
    _checkLength(host, "domainpart")
    return host


def parseJID(text: str) -> JID:
    """
    Parse and prepare a JID string (RFC 7622 §3.1): the resourcepart follows
    the first C{/}, the localpart precedes the first C{@} before it.

    Results, not errors, are cached; see L{CACHE_SIZE}.  Like an
    C{lru_cache} function it has C{cache_info()} and C{cache_clear()}.

    @raise InvalidJID: the string is not a valid JID.
    """
    if len(text) > CACHE_MAX_LENGTH:
        return _parseJID(text)
    return _cachedParseJID(text)


def _parseJID(text: str) -> JID:
    slash = text.find("/")
    if slash == -1:
        resource = None
        rest = text
    else:
        resource = prepResourcepart(text[slash + 1 :])
        rest = text[:slash]
    at = rest.find("@")
    if at == -1:
        user = None
        domain = rest
    else:
        user = prepLocalpart(rest[:at])
        domain = rest[at + 1 :]
    return makeJID(user, prepDomainpart(domain), resource)


_cachedParseJID = functools.lru_cache(maxsize=CACHE_SIZE)(_parseJID)
parseJID.cache_info = _cachedParseJID.cache_info  # type: ignore[attr-defined]
parseJID.cache_clear = _cachedParseJID.cache_clear  # type: ignore[attr-defined]


def _checkLength(part: str, what: str) -> None:
    if len(part) > MAX_PART_BYTES // 4 and len(part.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidJID("%s longer than %d bytes" % (what, MAX_PART_BYTES))


def _mapDomain(text: str) -> str:
    # The mappings of RFC 5895 §2 that IDNA2008 applications perform: width,
    # case, then NFC.
    mapped = "".join(
        unicodedata.normalize("NFKC", char)
        if unicodedata.decomposition(char).startswith(("<wide>", "<narrow>"))
        else char
        for char in text
    )
    return unicodedata.normalize("NFC", mapped.lower())


def _checkLabel(label: str) -> None:
    if not label:
        raise InvalidJID("empty label in domainpart")
    if label[0] == "-" or label[-1] == "-":
        raise InvalidJID("domain label starts or ends with a hyphen")
    if label.isascii():
        if len(label) > 63 or not _LDH.issuperset(label):
            raise InvalidJID("invalid domain label")
        return
    for char in label:
        if char in _LDH:
            continue
        category = unicodedata.category(char)
        if char.isascii() or not (category[0] in "LM" or category == "Nd"):
            raise InvalidJID("invalid character in domain label")
    if len(label.encode("punycode")) + 4 > 63:
        raise InvalidJID("domain label longer than 63 octets")
