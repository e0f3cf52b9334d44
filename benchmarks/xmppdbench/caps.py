# -*- test-case-name: tests.test_benchmark_pep -*-
"""
What the generator's clients say about themselves for the C{pep} scenario:
one entity-capabilities identity and feature set, its verification string,
the presence that advertises it, and the disco#info answer that proves it.

A PEP service sends a contact notifications only if the contact's client
asks for them with C{NODE+notify} (XEP-0163 §4, "filtered notifications"),
and it learns the features from the caps hash: it queries one client per
unknown C{node#ver} with disco#info and checks that the answer hashes to
C{ver} (XEP-0115 §5.4).  Every client of the generator has the same
capabilities, so a server asks once (or once per contact that reports the
unknown hash before the first answer is in); whichever client is asked must
answer with exactly the identity and features below, or the server
rightly ignores the hash and sends no notification at all.

Implements: XEP-0115 1.6 (generating and advertising ver, answering the
disco#info query for node#ver), the client side of XEP-0163 1.2 §4.
"""

import base64
import hashlib

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO_TEXT = "http://jabber.org/protocol/disco#info"
NS_DISCO_INFO = NS_DISCO_INFO_TEXT.encode()
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"

# The benchmark's own PEP node (a payload namespace nobody else uses) and
# the caps node naming the "software" (XEP-0115 §4: a URI of the client).
PEP_NODE = "urn:xmpp:xbench:pep:0"
CAPS_NODE = "https://xmppd.invalid/xbench"
IDENTITY = ("client", "pc", "", "xbench")   # category, type, xml:lang, name


def features(node: str = PEP_NODE) -> list[str]:
    """The features the clients advertise: disco, caps, and interest in C{node}."""
    return [NS_CAPS, NS_DISCO_INFO_TEXT, node, node + "+notify"]


def verification(identities, featureVars) -> str:
    """
    The XEP-0115 §5.1 verification string, SHA-1, base64: identities
    C{category/type/lang/name<} and features C{var<}, each sorted.
    """
    s = "".join("%s/%s/%s/%s<" % identity for identity in sorted(identities))
    s += "".join(var + "<" for var in sorted(featureVars))
    return base64.b64encode(hashlib.sha1(s.encode("utf-8")).digest()).decode("ascii")


class Capabilities:
    """
    The pre-rendered caps of every client of a run: the C{<presence/>}
    that advertises them and the answer to the server's disco#info.
    """

    def __init__(self, node: str = PEP_NODE, capsNode: str = CAPS_NODE):
        self.node, self.capsNode = node, capsNode
        self.features = features(node)
        self.ver = verification([IDENTITY], self.features)
        self.queryNode = ("%s#%s" % (capsNode, self.ver)).encode()
        self.presence = (
            "<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/></presence>"
            % (NS_CAPS, capsNode, self.ver)).encode()
        category, kind, _, name = IDENTITY
        body = "<identity category='%s' type='%s' name='%s'/>" % (category, kind, name)
        body += "".join("<feature var='%s'/>" % var for var in self.features)
        self.infoBody = body.encode()

    def infoResult(self, iqId: bytes, to: bytes | None, node: bytes | None) -> bytes:
        """
        The result for a disco#info get with C{id}, from C{to}, about
        C{node} (echoed: XEP-0115 §6.2 asks the query node back).
        """
        head = b"<iq type='result' id='" + iqId + b"'"
        if to:
            head += b" to='" + to + b"'"
        query = b"<query xmlns='" + NS_DISCO_INFO + b"'"
        if node:
            query += b" node='" + node + b"'"
        return head + b">" + query + b">" + self.infoBody + b"</query></iq>"


def publishHead(node: str = PEP_NODE) -> bytes:
    """
    The start of a publish to the account's own PEP node (XEP-0163 §7.1:
    an IQ without C{to}, addressed to the account's bare JID), up to the
    item payload's character data; L{PUBLISH_TAIL} closes it.
    """
    return ("<iq type='set' id='pub'><pubsub xmlns='%s'><publish node='%s'>"
            "<item id='current'><data xmlns='%s'>" % (NS_PUBSUB, node, node)).encode()


PUBLISH_TAIL = b"</data></item></publish></pubsub></iq>"
