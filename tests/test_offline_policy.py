"""
Tests for L{offline.policy}: which messages are kept for an offline account
(RFC 6121 §8.5.2.2.1, XEP-0160 §3, XEP-0334 §4), one XML literal per row.
"""

import pytest

from offline.policy import hasContent, hints, shouldStore
from tests.helpers import parse

BODY = "<body>Wherefore art thou?</body>"
ACTIVE = "<active xmlns='http://jabber.org/protocol/chatstates'/>"
COMPOSING = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
NO_STORE = "<no-store xmlns='urn:xmpp:hints'/>"
NO_PERMANENT_STORE = "<no-permanent-store xmlns='urn:xmpp:hints'/>"
STORE = "<store xmlns='urn:xmpp:hints'/>"
NO_COPY = "<no-copy xmlns='urn:xmpp:hints'/>"


def message(payload="", type=None):
    typeAttr = " type='%s'" % type if type else ""
    return parse("<message from='romeo@example.net/orchard' to='juliet@example.com'%s>%s"
                 "</message>" % (typeAttr, payload))


# (type, payload, stored?, why)
TABLE = [
    # RFC 6121 §8.5.2.2.1, XEP-0160 §3: the types.
    ("chat", BODY, True, "chat with a body"),
    ("normal", BODY, True, "normal with a body"),
    (None, BODY, True, "no type is normal (RFC 6121 §5.2.2)"),
    ("bogus", BODY, True, "an unknown type is normal"),
    ("groupchat", BODY, False, "groupchat is not stored"),
    ("headline", BODY, False, "headlines are not stored"),
    ("error", BODY + "<error type='cancel'><service-unavailable "
     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", False, "errors never are"),
    # Content.
    ("chat", "<subject>Balcony</subject>", True, "a subject alone"),
    ("chat", "<body/>", True, "an empty body is still a body"),
    ("chat", ACTIVE, False, "a chat state alone (XEP-0160 §3)"),
    ("chat", COMPOSING + "<thread>t1</thread>", False, "a chat state in a thread"),
    ("normal", ACTIVE, False, "a chat state alone in a normal message"),
    ("chat", BODY + ACTIVE, True, "a body with a chat state"),
    ("chat", "", False, "an empty message"),
    ("normal", "<thread>t1</thread>", False, "a thread alone"),
    ("chat", "<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/>" + ACTIVE,
     False, "a delay stamp and a chat state"),
    ("chat", "<origin-id xmlns='urn:xmpp:sid:0' id='a1'/>" + ACTIVE, False,
     "an origin id and a chat state"),
    ("chat", "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/>"
     "</encrypted>" + NO_COPY, True, "an OMEMO payload without a body"),
    ("chat", "<html xmlns='http://jabber.org/protocol/xhtml-im'><body "
     "xmlns='http://www.w3.org/1999/xhtml'><p>Hi</p></body></html>", True, "an XHTML-IM body"),
    ("chat", "<received xmlns='urn:xmpp:receipts' id='m1'/>", True, "a receipt (XEP-0184)"),
    ("normal", "<x xmlns='http://jabber.org/protocol/muc#user'><invite "
     "from='crone1@shakespeare.lit/desktop'/></x>", True, "a MUC invitation"),
    ("normal", "<x xmlns='jabber:x:conference' jid='darkcave@macbeth.shakespeare.lit'/>",
     True, "a direct MUC invitation (XEP-0249)"),
    # XEP-0334 §4.
    ("chat", BODY + NO_STORE, False, "no-store prevents storage"),
    ("normal", BODY + NO_STORE, False, "no-store on a normal message"),
    ("chat", BODY + NO_PERMANENT_STORE, True, "no-permanent-store allows offline storage"),
    ("chat", BODY + NO_COPY, True, "no-copy is about carbons"),
    ("headline", BODY + STORE, True, "store keeps a headline"),
    ("groupchat", BODY + STORE, True, "store keeps a groupchat message"),
    ("chat", ACTIVE + STORE, True, "store keeps a chat state"),
    ("error", BODY + STORE, False, "store never keeps an error"),
    ("chat", BODY + STORE + NO_STORE, False, "no-store wins over store"),
]


@pytest.mark.parametrize("kind, payload, expected, why", TABLE,
                         ids=[row[3] for row in TABLE])
def test_policyTable(kind, payload, expected, why):
    """A message to an offline account is kept, or not, as the table row says."""
    assert shouldStore(message(payload, kind)) is expected


def test_hintsRead():
    """Only elements in the hints namespace count as hints."""
    stanza = message(BODY + STORE + "<no-store xmlns='urn:example'/>", "chat")
    assert hints(stanza) == {"store"}


def test_bodyInServerNamespace():
    """A body arriving over a server-to-server stream is content too."""
    stanza = parse("<message xmlns='jabber:server' from='romeo@example.net/orchard' "
                   "to='juliet@example.com' type='chat'><body>Hi</body></message>")
    assert hasContent(stanza)
    assert shouldStore(stanza)
