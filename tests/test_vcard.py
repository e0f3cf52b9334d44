"""
vcard-temp (XEP-0054), in memory, with the XEP's examples.
"""

import pytest
from twisted.words.protocols.jabber.jid import JID
from zope.interface.verify import verifyObject
from wokkel.iwokkel import IDisco

from tests.storedatahelpers import Domain, errorCondition
from xmppd.features.vcard import NS_VCARD

# XEP-0054 §3.2, Example 4 (vCard Update Request), from stpeter@jabber.org.
UPDATE = """<iq id='v2' type='set' from='stpeter@jabber.org/roundabout'>
  <vCard xmlns='vcard-temp'>
    <FN>Peter Saint-Andre</FN>
    <N>
      <FAMILY>Saint-Andre</FAMILY>
      <GIVEN>Peter</GIVEN>
      <MIDDLE/>
    </N>
    <NICKNAME>stpeter</NICKNAME>
    <URL>http://www.xmpp.org/xsf/people/stpeter.shtml</URL>
    <BDAY>1966-08-06</BDAY>
    <ORG>
      <ORGNAME>XMPP Standards Foundation</ORGNAME>
      <ORGUNIT/>
    </ORG>
    <TITLE>Executive Director</TITLE>
    <ROLE>Patron Saint</ROLE>
    <TEL><WORK/><VOICE/><NUMBER>303-308-3282</NUMBER></TEL>
    <ADR>
      <WORK/>
      <EXTADD>Suite 600</EXTADD>
      <STREET>1899 Wynkoop Street</STREET>
      <LOCALITY>Denver</LOCALITY>
      <REGION>CO</REGION>
      <PCODE>80202</PCODE>
      <CTRY>USA</CTRY>
    </ADR>
    <EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID></EMAIL>
    <JABBERID>stpeter@jabber.org</JABBERID>
    <DESC>
      Check out my blog at https://stpeter.im/
    </DESC>
  </vCard>
</iq>"""

# XEP-0054 §3.1, Example 1 (vCard Retrieval Request).
RETRIEVE = """<iq from='stpeter@jabber.org/roundabout' id='v1' type='get'>
  <vCard xmlns='vcard-temp'/>
</iq>"""

# XEP-0054 §3.3, Example 8 (Requesting Another User's vCard), the other way round.
REQUEST_OTHER = """<iq from='jer@jabber.org/home' id='v3' to='stpeter@jabber.org' type='get'>
  <vCard xmlns='vcard-temp'/>
</iq>"""


@pytest.fixture
def node(tmp_path):
    return Domain(tmp_path, "jabber.org", ("vcard",), users=("stpeter", "jer"),
                  sections={"vcard": {"max_size": 4096}})


def vcardOf(reply):
    [vcard] = reply.elements(NS_VCARD, "vCard")
    return vcard


def test_ownVCardEmptyBeforeAnySet(node):
    """A user who never published a vCard gets an empty <vCard/> for their own (§3.1)."""
    peter = node.bind("stpeter@jabber.org/roundabout")

    reply = node.exchange(peter, RETRIEVE)

    assert reply["type"] == "result" and reply["id"] == "v1"
    assert reply["to"] == "stpeter@jabber.org/roundabout"
    assert list(vcardOf(reply).elements()) == []


def test_setThenGetOwn(node):
    """The vCard a user publishes is the one they read back (§3.2, §3.1)."""
    peter = node.bind("stpeter@jabber.org/roundabout")

    setReply = node.exchange(peter, UPDATE)
    reply = node.exchange(peter, RETRIEVE)

    assert setReply["type"] == "result" and setReply["id"] == "v2"
    assert list(setReply.elements()) == []
    vcard = vcardOf(reply)
    assert str(next(vcard.elements(NS_VCARD, "FN"))) == "Peter Saint-Andre"
    assert str(next(next(vcard.elements(NS_VCARD, "N")).elements(NS_VCARD, "GIVEN"))) == "Peter"
    assert str(next(next(vcard.elements(NS_VCARD, "EMAIL")).elements(NS_VCARD, "USERID"))) \
        == "stpeter@jabber.org"


def test_setToOwnBareJID(node):
    """A set addressed to the user's own bare JID is the same as one without 'to'."""
    peter = node.bind("stpeter@jabber.org/roundabout")

    reply = node.exchange(peter, "<iq id='s' type='set' from='stpeter@jabber.org/roundabout' "
                                 "to='stpeter@jabber.org'><vCard xmlns='vcard-temp'>"
                                 "<NICKNAME>stpeter</NICKNAME></vCard></iq>")
    got = node.exchange(peter, "<iq id='g' type='get' from='stpeter@jabber.org/roundabout' "
                               "to='stpeter@jabber.org'><vCard xmlns='vcard-temp'/></iq>")

    assert reply["type"] == "result"
    assert reply["from"] == "stpeter@jabber.org"
    assert str(next(vcardOf(got).elements(NS_VCARD, "NICKNAME"))) == "stpeter"


def test_anotherUserReadsIt(node):
    """Another user asking a bare JID gets that user's vCard from the server (§3.3)."""
    peter = node.bind("stpeter@jabber.org/roundabout")
    jer = node.bind("jer@jabber.org/home")
    node.exchange(peter, UPDATE)

    reply = node.exchange(jer, REQUEST_OTHER)

    assert reply["type"] == "result" and reply["id"] == "v3"
    assert reply["from"] == "stpeter@jabber.org" and reply["to"] == "jer@jabber.org/home"
    assert str(next(vcardOf(reply).elements(NS_VCARD, "NICKNAME"))) == "stpeter"
    assert peter.stream.sent[1:] == []  # never forwarded to Peter's resources


def test_remoteUserReadsIt(node):
    """A user of another server gets the vCard too: vCards are world-readable (§5)."""
    node.exchange(node.bind("stpeter@jabber.org/roundabout"), UPDATE)

    node.route("<iq from='romeo@montague.net/orchard' id='r' to='stpeter@jabber.org' "
               "type='get'><vCard xmlns='vcard-temp'/></iq>")

    [reply] = node.remote.stanzas
    assert reply["type"] == "result" and reply["to"] == "romeo@montague.net/orchard"
    assert str(next(vcardOf(reply).elements(NS_VCARD, "FN"))) == "Peter Saint-Andre"


@pytest.mark.parametrize("to", ["stpeter@jabber.org", "nobody@jabber.org"])
def test_noVCardOfAnotherUser(node, to):
    """Without a vCard, or an account, another user gets service-unavailable alike (§3.3)."""
    jer = node.bind("jer@jabber.org/home")

    reply = node.exchange(jer, "<iq from='jer@jabber.org/home' id='v3' to='%s' type='get'>"
                               "<vCard xmlns='vcard-temp'/></iq>" % to)

    assert reply["type"] == "error" and reply["id"] == "v3"
    assert errorCondition(reply) == "service-unavailable"


def test_setOnAnotherUserForbidden(node):
    """Setting someone else's vCard is forbidden and changes nothing (§3.2)."""
    peter = node.bind("stpeter@jabber.org/roundabout")
    node.exchange(peter, UPDATE)
    jer = node.bind("jer@jabber.org/home")

    reply = node.exchange(jer, "<iq from='jer@jabber.org/home' id='v2' to='stpeter@jabber.org' "
                               "type='set'><vCard xmlns='vcard-temp'><FN>Jer</FN></vCard></iq>")
    mine = node.exchange(peter, RETRIEVE)

    assert reply["type"] == "error" and errorCondition(reply) == "forbidden"
    assert str(next(vcardOf(mine).elements(NS_VCARD, "FN"))) == "Peter Saint-Andre"


def test_serverHasNoVCard(node):
    """The server's own vCard is item-not-found, and setting it is forbidden."""
    peter = node.bind("stpeter@jabber.org/roundabout")

    get = node.exchange(peter, "<iq from='stpeter@jabber.org/roundabout' id='d1' "
                               "to='jabber.org' type='get'><vCard xmlns='vcard-temp'/></iq>")
    put = node.exchange(peter, "<iq from='stpeter@jabber.org/roundabout' id='d2' "
                               "to='jabber.org' type='set'><vCard xmlns='vcard-temp'>"
                               "<FN>Mine</FN></vCard></iq>")

    assert errorCondition(get) == "item-not-found"
    assert errorCondition(put) == "forbidden"


def test_tooLargeRefused(node):
    """A vCard over [vcard] max_size is refused with not-acceptable, and the old one kept."""
    peter = node.bind("stpeter@jabber.org/roundabout")
    node.exchange(peter, UPDATE)

    reply = node.exchange(peter, "<iq id='big' type='set' from='stpeter@jabber.org/roundabout'>"
                                 "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>%s</BINVAL></PHOTO>"
                                 "</vCard></iq>" % ("A" * 5000))
    mine = node.exchange(peter, RETRIEVE)

    assert reply["type"] == "error" and errorCondition(reply) == "not-acceptable"
    assert str(next(vcardOf(mine).elements(NS_VCARD, "FN"))) == "Peter Saint-Andre"


def test_emptySetClears(node):
    """A vCard its owner cleared (an empty set) reads back as an empty vCard to others, not as an error."""
    peter = node.bind("stpeter@jabber.org/roundabout")
    jer = node.bind("jer@jabber.org/home")
    node.exchange(peter, UPDATE)

    reply = node.exchange(peter, "<iq id='e' type='set' from='stpeter@jabber.org/roundabout'>"
                                 "<vCard xmlns='vcard-temp'/></iq>")
    other = node.exchange(jer, REQUEST_OTHER)

    assert reply["type"] == "result"
    assert other["type"] == "result"
    cleared = vcardOf(other)
    assert cleared is not None and list(cleared.elements()) == []


def test_storedAsSerializedXML(node):
    """The vCard is kept under the account-data key "vcard" as XML text, special characters intact."""
    peter = node.bind("stpeter@jabber.org/roundabout")

    node.exchange(peter, "<iq id='x' type='set' from='stpeter@jabber.org/roundabout'>"
                         "<vCard xmlns='vcard-temp'><DESC>a &lt;b&gt; &amp; c</DESC></vCard></iq>")
    stored = node.storage.accountData.get("stpeter", "jabber.org", "vcard").result
    reply = node.exchange(peter, RETRIEVE)

    assert stored.startswith("<vCard xmlns='vcard-temp'>")
    assert str(next(vcardOf(reply).elements(NS_VCARD, "DESC"))) == "a <b> & c"


def test_discoAnnouncesVCardTemp(node):
    """Disco lists vcard-temp for the server and for accounts (§4)."""
    [handler] = [h for h in node.domain.handlers if IDisco.providedBy(h)]
    requestor = JID("jer@jabber.org/home")

    assert verifyObject(IDisco, handler)
    assert handler.getDiscoInfo(requestor, JID("jabber.org")) == ["vcard-temp"]
    assert handler.getDiscoInfo(requestor, JID("stpeter@jabber.org")) == ["vcard-temp"]
    assert handler.getDiscoInfo(requestor, JID("jabber.org"), "some-node") == []
    assert handler.getDiscoItems(requestor, JID("jabber.org")) == []
