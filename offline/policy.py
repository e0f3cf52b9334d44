# -*- test-case-name: tests.test_offline_policy -*-
"""
Which messages are kept for an account with no available resource: a pure
function of the stanza, so the rules read (and are tested) as one table.

The message types (RFC 6121 §8.5.2.2.1, XEP-0160 §3): "normal" and "chat"
are stored; "groupchat" and "headline" are not; "error" never is (an error
kept and delivered later would answer nothing anyone still waits for).

Content (XEP-0160 §3: "chat" is stored "with the exception of messages that
contain only Chat State Notifications"; XEP-0085 notifications are about
the moment they are sent).  A message is worth keeping when it has a
C{<body/>} or C{<subject/>}, or any payload of another namespace that is
not one of the L{TRANSIENT} ones: an encrypted payload (OMEMO, OpenPGP),
an XHTML-IM body, a receipt (XEP-0184: the sender still wants to learn it
was read), a MUC invitation (which has no body), an out-of-band URL.  Chat
states, processing hints, delay stamps, stanza and origin ids, and the
C{<thread/>} of the stanza's own namespace say nothing by themselves, so a
message made only of them is not stored, whatever its type.  The same rule
applies to "normal": a message with nothing in it has nothing to deliver.

Processing hints (XEP-0334 §4):

  - C{<no-store/>}: never stored (§4.2: not "temporarily, e.g. for later
    delivery to an offline client");
  - C{<store/>}: stored whatever its type or content, except an error
    (§4.3); when a message carries both, C{<no-store/>} wins, since storing
    is what one of them forbids;
  - C{<no-permanent-store/>} does B{not} prevent offline storage: §4.1 is
    about permanent records (archives), and §3 gives "stored temporarily as
    a normal part of delivery (e.g. if the recipient is offline)" as what
    such a sender still accepts;
  - C{<no-copy/>} is about carbons and has no effect here.

Implements: XEP-0160 1.0.1 §3, XEP-0334 1.0.0 §4 (offline storage), RFC 6121 §8.5.2.2.1
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.core.stanzas import NS_CLIENT, NS_SERVER, messageType

NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"

#: Namespaces whose elements carry nothing a user would miss on their own:
#: chat states (XEP-0085), hints (XEP-0334), delay stamps (XEP-0203 and the
#: legacy XEP-0091), stanza and origin ids (XEP-0359).
TRANSIENT = frozenset((NS_CHATSTATES, NS_HINTS, NS_DELAY, "jabber:x:delay", NS_SID))

#: The stanza's own namespaces; of their children only these are content.
STANZA_NAMESPACES = frozenset((None, "", NS_CLIENT, NS_SERVER))
CONTENT_CHILDREN = frozenset(("body", "subject"))

#: Types stored without a <store/> hint (RFC 6121 §8.5.2.2.1, XEP-0160 §3).
STORED_TYPES = frozenset(("normal", "chat"))


def hints(stanza: domish.Element) -> frozenset[str]:
    """The names of the XEP-0334 hints C{stanza} carries."""
    return frozenset(child.name for child in stanza.elements() if child.uri == NS_HINTS)


def hasContent(stanza: domish.Element) -> bool:
    """Whether C{stanza} has anything worth delivering later (see the module docstring)."""
    for child in stanza.elements():
        if child.uri in STANZA_NAMESPACES:
            if child.name in CONTENT_CHILDREN:
                return True
        elif child.uri not in TRANSIENT:
            return True
    return False


def shouldStore(stanza: domish.Element) -> bool:
    """Whether the message C{stanza} is kept for later delivery (the module docstring's table)."""
    kind = messageType(stanza)
    if kind == "error":
        return False
    given = hints(stanza)
    if "no-store" in given:
        return False
    if "store" in given:
        return True
    return kind in STORED_TYPES and hasContent(stanza)
