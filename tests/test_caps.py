"""
Tests for L{xmppd.features.caps}: the server's XEP-0115 verification string, its
stream feature, and the disco#info answer for its node#ver.
"""

import base64
import hashlib

from twisted.words.xish import domish
from wokkel.data_form import Field, Form
from wokkel.disco import DiscoFeature, DiscoIdentity

from tests.domainhelpers import Domain, errorCondition
from xmppd.features.caps import NODE, NS_CAPS, CapsHandler, capsHash, verificationString
from xmppd.features.disco import NS_DISCO_INFO
from xmppd.core.events import FeaturesEvent

ROMEO = "romeo@example.org/orchard"
FEATURES = ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"]


def test_simpleExample():
    """The XEP-0115 §5.2 example gives its published ver."""
    info = [DiscoIdentity("client", "pc", "Exodus 0.9.1")]
    info += [DiscoFeature(f) for f in reversed(FEATURES)]

    assert verificationString(info[:1], info[1:]) == (
        "client/pc//Exodus 0.9.1<" + "".join(f + "<" for f in FEATURES))
    assert capsHash(info) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_complexExample():
    """The XEP-0115 §5.3 example, with languages and an extended form, gives its published ver."""
    identities = [("client", "pc", "en", "Psi 0.11"), ("client", "pc", "el", "Ψ 0.11")]
    form = Form("result", formNamespace="urn:xmpp:dataforms:softwareinfo", fields=[
        Field(None, var="os", values=["Mac"]),
        Field(None, var="ip_version", values=["ipv6", "ipv4"]),
        Field(None, var="software_version", values=["0.11"]),
        Field(None, var="software", values=["Psi"]),
        Field(None, var="os_version", values=["10.5.1"]),
    ])

    text = verificationString(identities, FEATURES, [form])

    assert text == (
        "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<" + "".join(f + "<" for f in FEATURES)
        + "urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<"
        "software<Psi<software_version<0.11<")
    ver = base64.b64encode(hashlib.sha1(text.encode("utf-8")).digest()).decode()
    assert ver == "q07IKJEyjvHSyhy//CH0CxmKi8w="


class FakeStream:
    def __init__(self, domain):
        self.domain = domain


def offered(domain, streamDomain="example.org"):
    features = domish.Element(("http://etherx.jabber.org/streams", "features"))
    domain.hooks.notify("c2s/features", FeaturesEvent(FakeStream(streamDomain), features))
    return list(features.elements(NS_CAPS, "c"))


def test_streamFeature(tmp_path):
    """Streams to the domain offer <c/> with the sha-1 hash of the domain's disco#info (XEP-0115 §6.3)."""
    domain = Domain(tmp_path, features=("disco", "ping", "version", "caps"))
    romeo = domain.bind(ROMEO)

    [c] = offered(domain)
    domain.send("<iq type='get' id='d' from='%s' to='example.org'>"
                "<query xmlns='%s'/></iq>" % (ROMEO, NS_DISCO_INFO))
    [reply] = romeo.take()

    assert c["hash"] == "sha-1" and c["node"] == NODE
    identities = [DiscoIdentity(i["category"], i["type"], i.getAttribute("name"))
                  for i in reply.query.elements(NS_DISCO_INFO, "identity")]
    features = [DiscoFeature(f["var"]) for f in reply.query.elements(NS_DISCO_INFO, "feature")]
    assert NS_CAPS in features
    assert c["ver"] == capsHash(identities + features)


def test_otherDomainsStreams(tmp_path):
    """Streams to another domain of the node do not get this domain's caps."""
    domain = Domain(tmp_path, features=("disco", "caps"))

    assert offered(domain, "other.example") == []


def test_verFollowsFeatures(tmp_path):
    """Switching a feature off changes the ver."""
    one = Domain(tmp_path / "one", features=("disco", "ping", "caps"))
    two = Domain(tmp_path / "two", features=("disco", "caps"))

    assert offered(one)[0]["ver"] != offered(two)[0]["ver"]


def test_verIncludesForms(tmp_path):
    """Extended forms such as the contact addresses are part of the ver (XEP-0115 §5.1 step 6)."""
    plain = Domain(tmp_path / "one", features=("disco", "contact", "caps"))
    withContact = Domain(tmp_path / "two", features=("disco", "contact", "caps"),
                         sections={"contact": {"admin": ["xmpp:admin@example.org"]}})

    assert offered(plain)[0]["ver"] != offered(withContact)[0]["ver"]


def test_nodeVerQuery(tmp_path):
    """A disco#info query for node#ver gets the domain's information with the node echoed (XEP-0115 §6.2)."""
    domain = Domain(tmp_path, features=("disco", "ping", "caps"))
    romeo = domain.bind(ROMEO)
    [c] = offered(domain)
    node = "%s#%s" % (NODE, c["ver"])

    domain.send("<iq type='get' id='d' from='%s' to='example.org'>"
                "<query xmlns='%s' node='%s'/></iq>" % (ROMEO, NS_DISCO_INFO, node))

    [reply] = romeo.take()
    assert reply["type"] == "result" and reply.query["node"] == node
    features = [f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")]
    assert "urn:xmpp:ping" in features and NS_CAPS in features
    assert [i["category"] for i in reply.query.elements(NS_DISCO_INFO, "identity")] == ["server"]


def test_wrongVerNode(tmp_path):
    """A node#ver with a ver that is not the domain's gets item-not-found."""
    domain = Domain(tmp_path, features=("disco", "caps"))
    romeo = domain.bind(ROMEO)

    domain.send("<iq type='get' id='d' from='%s' to='example.org'>"
                "<query xmlns='%s' node='%s#bogus'/></iq>" % (ROMEO, NS_DISCO_INFO, NODE))

    [reply] = romeo.take()
    assert errorCondition(reply) == "item-not-found"


def test_verComputedOnce(tmp_path, monkeypatch):
    """The ver is computed once and reused for every stream."""
    domain = Domain(tmp_path, features=("disco", "caps"))
    handler = domain.handler(CapsHandler)
    first = offered(domain)[0]["ver"]
    monkeypatch.setattr("xmppd.features.caps.capsHash", lambda info: "recomputed")

    assert offered(domain)[0]["ver"] == first == handler.ver


def test_streamOffersCaps(tmp_path):
    """Over a real client stream, the features after the header include the server's caps."""
    from tests.streamhelpers import DOMAIN, Node
    from xmppd.features import caps
    from xmppd.features import disco
    node = Node(tmp_path)
    local = node.server.router.routes[DOMAIN]
    local.addHandler(disco.makeHandler(local))
    local.addHandler(caps.makeHandler(local))
    client = node.connect()

    reply = client.start()

    assert (NS_CAPS, "c") in reply.featureNames()
