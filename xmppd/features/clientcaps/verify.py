# -*- test-case-name: tests.test_clientcaps -*-
"""
Checking a disco#info answer against the C{ver} a client announced
(XEP-0115 §5.4, the processing method; the string itself is §5.1).

L{verifiedFeatures} takes the C{<query/>} of a disco#info result and the
C{hash} and C{ver} of the C{<c/>} that made us ask, and gives the features
when the answer is well-formed and hashes to C{ver}, else C{None}:

  - §5.4 3c-3e: two identical identities, two identical features, two
    forms with one C{FORM_TYPE}, or a C{FORM_TYPE} with two different
    values make the whole answer ill-formed;
  - §5.4 3f: a form whose C{FORM_TYPE} is missing or not C{hidden} is left
    out, and the rest is used;
  - §5.4 3g-3i: the string of §5.1 is hashed with the announced function
    and compared with C{ver}.

Beyond the XEP: any identity, feature or form value that contains C{<}
makes the answer ill-formed.  The separator C{<} is what makes the string
of §5.1 unambiguous, and an answer that embeds it can be built to collide
with another client's string (the 2009 preimage attack on caps, which
XEP-0390 was written to end); no real feature or identity contains it.
Answers larger than L{MAX_ENTRIES} identities, features and fields are
refused too, so the cache stays small.

Values are taken as the XML character data they are (a boolean field's
C{1} stays C{1}): §5.1 hashes the text, not its meaning.

Implements: XEP-0115 1.6.0 §5.1, §5.4
"""

from __future__ import annotations

import base64
import hashlib

from twisted.words.xish import domish

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
NS_XML = "http://www.w3.org/XML/1998/namespace"

#: IANA hash function names (XEP-0115 §5.1 uses that registry) -> hashlib's.
#: C{md5} is left out on purpose: a weak hash would let anyone poison the
#: cache shared by every client of the domain.
HASHES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
    "sha3-256": "sha3_256",
    "sha3-512": "sha3_512",
}

#: The most identities + features + form fields an answer may have.
MAX_ENTRIES = 1000


class IllFormed(ValueError):
    """A disco#info answer §5.4 says to reject."""


def _text(element: domish.Element) -> str:
    return "".join(str(child) for child in element.children if isinstance(child, str))


def _checked(value: str) -> str:
    if "<" in value:
        raise IllFormed("'<' inside a value")
    return value


def parseInfo(query: domish.Element):
    """
    The identities (C{(category, type, lang, name)}), features and typed
    forms (C{(FORM_TYPE, [(var, [values])])}) of a disco#info C{<query/>},
    checked per §5.4 3c-3f.  Raises L{IllFormed}.
    """
    identities: list[tuple[str, str, str, str]] = []
    features: list[str] = []
    forms: list[tuple[str, list[tuple[str, list[str]]]]] = []
    entries = 0
    for child in query.elements():
        entries += 1
        if entries > MAX_ENTRIES:
            raise IllFormed("too many entries")
        if child.uri == NS_DISCO_INFO and child.name == "identity":
            identities.append(tuple(_checked(child.getAttribute(name) or "")
                                    for name in ("category", "type", (NS_XML, "lang"),
                                                 "name")))
        elif child.uri == NS_DISCO_INFO and child.name == "feature":
            features.append(_checked(child.getAttribute("var") or ""))
        elif child.uri == NS_DATA and child.name == "x":
            formType = None
            hidden = False
            fields = []
            for field in child.elements(NS_DATA, "field"):
                entries += 1
                if entries > MAX_ENTRIES:
                    raise IllFormed("too many entries")
                var = _checked(field.getAttribute("var") or "")
                values = [_checked(_text(value)) for value in field.elements(NS_DATA, "value")]
                if var == "FORM_TYPE":
                    if len(set(values)) > 1:
                        raise IllFormed("FORM_TYPE with two values")  # §5.4 3e
                    formType = values[0] if values else ""
                    hidden = field.getAttribute("type") == "hidden"
                elif var:
                    fields.append((var, values))
            if formType is None or not hidden:
                continue  # §5.4 3f: not an extended form; ignore it
            forms.append((formType, fields))
    if len(set(identities)) != len(identities):
        raise IllFormed("an identity twice")  # §5.4 3c
    if len(set(features)) != len(features):
        raise IllFormed("a feature twice")  # §5.4 3d
    if len({formType for formType, _ in forms}) != len(forms):
        raise IllFormed("two forms with one FORM_TYPE")  # §5.4 3e
    return identities, features, forms


def verificationString(identities, features, forms) -> str:
    """
    The string S of §5.1 from what L{parseInfo} gives.  Sorting Python
    strings sorts by code point, the "i;octet" order of UTF-8 the XEP asks for.
    """
    parts = ["%s/%s/%s/%s<" % identity for identity in sorted(identities)]
    parts.extend(feature + "<" for feature in sorted(features))
    for formType, fields in sorted(forms, key=lambda form: form[0]):
        parts.append(formType + "<")
        for var, values in sorted(fields, key=lambda field: field[0]):
            parts.append(var + "<")
            parts.extend(value + "<" for value in sorted(values))
    return "".join(parts)


def hashOf(text: str, hashName: str) -> str | None:
    """C{ver} for C{text} under the IANA function C{hashName}; None if unsupported."""
    algorithm = HASHES.get(hashName)
    if algorithm is None:
        return None
    digest = hashlib.new(algorithm, text.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def verifiedFeatures(query: domish.Element | None, hashName: str,
                     ver: str) -> frozenset[str] | None:
    """
    The features of disco#info answer C{query} if it is well-formed and
    its §5.1 string hashes to C{ver} under C{hashName}; C{None} otherwise.
    """
    if query is None or query.uri != NS_DISCO_INFO or query.name != "query":
        return None
    try:
        identities, features, forms = parseInfo(query)
    except IllFormed:
        return None
    if hashOf(verificationString(identities, features, forms), hashName) != ver:
        return None
    return frozenset(features)
