"""
Private XML storage (XEP-0049), in memory, with the XEP's examples.
"""

import pytest
from twisted.words.protocols.jabber.jid import JID
from wokkel.iwokkel import IDisco

from tests.storedatahelpers import Domain, errorCondition
from xmppd.features.private import NS_PRIVATE
from xmppd.stream.xmlparser import parseStored
from xmppd.stream.xmlparser import XMLPolicyError

HAMLET = "hamlet@shakespeare.lit/denmark"

# XEP-0049 §2.3, Example 1 (Client Stores Private Data).
STORE = """<iq type="set" id="1001" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>"""

# XEP-0049 §2.3, Example 2 (Client Retrieves Private Data).
RETRIEVE = """<iq type="get" id="1002" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs"/>
  </query>
</iq>"""


@pytest.fixture
def node(tmp_path):
    return Domain(tmp_path, "shakespeare.lit", ("private",), users=("hamlet", "macbeth"),
                  sections={"private": {"max_size": 2048, "max_namespaces": 3}})


@pytest.fixture
def hamlet(node):
    return node.bind(HAMLET)


def queryOf(reply):
    [query] = reply.elements(NS_PRIVATE, "query")
    return query


def test_storeThenRetrieve(node, hamlet):
    """Data a user stores comes back whole when asked for by its namespace (Examples 1-2)."""
    stored = node.exchange(hamlet, STORE)
    reply = node.exchange(hamlet, RETRIEVE)

    assert stored["type"] == "result" and stored["id"] == "1001"
    assert list(stored.elements()) == []
    assert reply["type"] == "result" and reply["id"] == "1002"
    [exodus] = queryOf(reply).elements()
    assert (exodus.uri, exodus.name) == ("exodus:prefs", "exodus")
    assert str(next(exodus.elements("exodus:prefs", "defaultnick"))) == "Hamlet"


def test_neverStoredGivesEmptyElement(node, hamlet):
    """Asking for a namespace never stored returns the requested element, empty."""
    reply = node.exchange(hamlet, "<iq type='get' id='b1' from='%s'><query xmlns='jabber:iq:private'>"
                                  "<storage xmlns='storage:bookmarks'/></query></iq>" % HAMLET)

    assert reply["type"] == "result"
    [storage] = queryOf(reply).elements()
    assert (storage.uri, storage.name) == ("storage:bookmarks", "storage")
    assert list(storage.children) == []


def test_namespacesStoredSeparately(node, hamlet):
    """Storing one namespace leaves the others as they were."""
    node.exchange(hamlet, STORE)
    node.exchange(hamlet, "<iq type='set' id='b' from='%s'><query xmlns='jabber:iq:private'>"
                          "<storage xmlns='storage:bookmarks'><url name='x' url='http://x/'/>"
                          "</storage></query></iq>" % HAMLET)

    reply = node.exchange(hamlet, RETRIEVE)

    [exodus] = queryOf(reply).elements()
    assert str(next(exodus.elements("exodus:prefs", "defaultnick"))) == "Hamlet"
    keys = node.storage.accountData.getAll("hamlet", "shakespeare.lit", "private:").result
    assert set(keys) == {"private:exodus:prefs", "private:storage:bookmarks"}


def test_setReplacesNamespace(node, hamlet):
    """A second set of a namespace replaces the first."""
    node.exchange(hamlet, STORE)
    node.exchange(hamlet, STORE.replace("Hamlet", "Prince"))

    reply = node.exchange(hamlet, RETRIEVE)

    [exodus] = queryOf(reply).elements()
    assert str(next(exodus.elements("exodus:prefs", "defaultnick"))) == "Prince"


def test_severalElementsOfOneNamespace(node, hamlet):
    """A set may hold several elements of one namespace; a get returns them all (§2.3)."""
    node.exchange(hamlet, "<iq type='set' id='m' from='%s'><query xmlns='jabber:iq:private'>"
                          "<a xmlns='urn:x'>1</a><b xmlns='urn:x' xmlns:p='urn:p' p:attr='v'>"
                          "<p:c/></b></query></iq>" % HAMLET)

    reply = node.exchange(hamlet, "<iq type='get' id='g' from='%s'><query xmlns='jabber:iq:private'>"
                                  "<a xmlns='urn:x'/></query></iq>" % HAMLET)

    a, b = queryOf(reply).elements()
    assert (a.name, str(a)) == ("a", "1")
    assert b.attributes == {("urn:p", "attr"): "v"}
    [c] = b.elements()
    assert (c.uri, c.name) == ("urn:p", "c")


def test_otherUserForbidden(node, hamlet):
    """Reading or writing another user's private data is forbidden (Example 3, §3)."""
    macbeth = node.bind("macbeth@shakespeare.lit/castle")
    node.exchange(hamlet, STORE)

    put = node.exchange(macbeth, """<iq type="set" to="hamlet@shakespeare.lit" id="1003"
        from="macbeth@shakespeare.lit/castle">
      <query xmlns="jabber:iq:private">
        <exodus xmlns="exodus:prefs">
          <defaultnick>Macbeth</defaultnick>
        </exodus>
      </query>
    </iq>""")
    get = node.exchange(macbeth, "<iq type='get' to='hamlet@shakespeare.lit' id='1003b' "
                                 "from='macbeth@shakespeare.lit/castle'><query "
                                 "xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/>"
                                 "</query></iq>")
    mine = node.exchange(hamlet, RETRIEVE)

    assert put["type"] == "error" and put["to"] == "macbeth@shakespeare.lit/castle"
    assert errorCondition(put) == "forbidden"
    assert errorCondition(get) == "forbidden"
    [exodus] = queryOf(mine).elements()
    assert str(next(exodus.elements("exodus:prefs", "defaultnick"))) == "Hamlet"


def test_serverAddressForbidden(node, hamlet):
    """Private data lives with the account, not the server: a query to the domain is forbidden."""
    reply = node.exchange(hamlet, RETRIEVE.replace('id="1002"', 'id="1002" to="shakespeare.lit"'))

    assert errorCondition(reply) == "forbidden"


def test_ownBareJIDAllowed(node, hamlet):
    """A query addressed to the user's own bare JID is the user's own."""
    node.exchange(hamlet, STORE.replace('id="1001"', 'id="1001" to="hamlet@shakespeare.lit"'))

    reply = node.exchange(hamlet, RETRIEVE)

    assert len(list(queryOf(reply).elements())) == 1


@pytest.mark.parametrize("iqType", ["get", "set"])
def test_emptyQueryNotAcceptable(node, hamlet, iqType):
    """A query without a child element gets not-acceptable (§2.3, Example 4)."""
    reply = node.exchange(hamlet, """<iq type="%s" id="1004" from="%s">
      <query xmlns="jabber:iq:private"/>
    </iq>""" % (iqType, HAMLET))

    assert reply["type"] == "error" and reply["id"] == "1004"
    assert errorCondition(reply) == "not-acceptable"


def test_getOfTwoNamespacesBadRequest(node, hamlet):
    """Asking for two namespaces in one get is a bad request (§2.3)."""
    reply = node.exchange(hamlet, "<iq type='get' id='two' from='%s'><query xmlns='jabber:iq:private'>"
                                  "<a xmlns='urn:a'/><b xmlns='urn:b'/></query></iq>" % HAMLET)

    assert errorCondition(reply) == "bad-request"


@pytest.mark.parametrize("child", [
    "<message xmlns='jabber:client'/>",
    "<db xmlns='jabber:server'/>",
    "<query xmlns='jabber:iq:private'/>",
    "<nons/>",
    "<empty xmlns=''/>",
])
def test_reservedNamespacesNotAcceptable(node, hamlet, child):
    """Storing in a stanza namespace, in jabber:iq:private itself or in none is not acceptable (§2.3)."""
    for iqType in ("set", "get"):
        reply = node.exchange(hamlet, "<iq type='%s' id='r' from='%s'><query "
                                      "xmlns='jabber:iq:private'>%s</query></iq>"
                              % (iqType, HAMLET, child))
        assert errorCondition(reply) == "not-acceptable"
    assert node.storage.accountData.getAll("hamlet", "shakespeare.lit").result == {}


def test_vcardTempNamespaceAllowed(node, hamlet):
    """Refusing other reserved namespaces is optional (§2.3, Example 5): a vcard-temp fragment is stored."""
    reply = node.exchange(hamlet, """<iq type="set" id="1005" from="%s">
      <query xmlns="jabber:iq:private">
        <vCard xmlns="vcard-temp">
          <FN>Hamlet</FN>
        </vCard>
      </query>
    </iq>""" % HAMLET)

    assert reply["type"] == "result"


def test_tooLargeRefused(node, hamlet):
    """Data over [private] max_size for one namespace is refused with not-acceptable."""
    reply = node.exchange(hamlet, "<iq type='set' id='big' from='%s'><query xmlns='jabber:iq:private'>"
                                  "<blob xmlns='urn:blob'>%s</blob></query></iq>" % (HAMLET, "x" * 3000))

    assert errorCondition(reply) == "not-acceptable"
    assert node.storage.accountData.getAll("hamlet", "shakespeare.lit").result == {}


def test_tooManyNamespacesRefused(node, hamlet):
    """A namespace beyond [private] max_namespaces is refused; replacing a stored one still works."""
    for n in range(3):
        reply = node.exchange(hamlet, "<iq type='set' id='n%d' from='%s'><query "
                                      "xmlns='jabber:iq:private'><x xmlns='urn:%d'/></query></iq>"
                              % (n, HAMLET, n))
        assert reply["type"] == "result"

    refused = node.exchange(hamlet, "<iq type='set' id='n3' from='%s'><query "
                                    "xmlns='jabber:iq:private'><x xmlns='urn:3'/></query></iq>" % HAMLET)
    replaced = node.exchange(hamlet, "<iq type='set' id='n0' from='%s'><query "
                                     "xmlns='jabber:iq:private'><y xmlns='urn:0'/></query></iq>" % HAMLET)

    assert errorCondition(refused) == "not-acceptable"
    assert replaced["type"] == "result"


def test_parseStoredIsHardened():
    """Stored text is read back with the hardened parser: only XML's five entities are expanded."""
    [element] = parseStored("<x xmlns='urn:x'>&lt;&amp;&gt;</x>")

    assert str(element) == "<&>"
    with pytest.raises(XMLPolicyError):
        parseStored("<x xmlns='urn:x'>&a;</x>")


def test_discoToOwnerAndServer(node):
    """jabber:iq:private is announced on the server and to the account itself, not to others."""
    [handler] = [h for h in node.domain.handlers if IDisco.providedBy(h)]
    hamlet = JID("hamlet@shakespeare.lit")

    assert handler.getDiscoInfo(JID(HAMLET), JID("shakespeare.lit")) == [NS_PRIVATE]
    assert handler.getDiscoInfo(JID(HAMLET), hamlet) == [NS_PRIVATE]
    assert handler.getDiscoInfo(JID("macbeth@shakespeare.lit/castle"), hamlet) == []
