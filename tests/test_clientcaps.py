"""
Tests for L{xmppd.features.clientcaps}: the server learns its clients' and
contacts' features from entity capabilities (XEP-0115 §5.4, §6.3), one
disco#info query per unique hash, verified, cached in a bounded cache, and
tells other features through L{xmppd.features.clientcaps.tracker.capsOf}
and the C{caps/changed} hook.
"""

import base64
import hashlib

import pytest

from tests.domainhelpers import DOMAIN, Domain
from tests.helpers import parse
from xmppd.core.hooks import OBSERVE
from xmppd.core.jid import parseJID
from xmppd.features.clientcaps.tracker import CAPS_CHANGED, capsOf
from xmppd.features.clientcaps.verify import (IllFormed, parseInfo, verificationString,
                                              verifiedFeatures)

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"

ROMEO = "romeo@example.org/orchard"
ROMEO2 = "romeo@example.org/garden"
JULIET = "juliet@example.org/balcony"
REMOTE = "mercutio@remote.example/street"

#: XEP-0115 §5.2, the simple generation example.
EXODUS_NODE = "http://code.google.com/p/exodus"
EXODUS_VER = "QgayPKawpkPSDYmwT/WM94uAlu0="
EXODUS_FEATURES = frozenset(["http://jabber.org/protocol/caps",
                             "http://jabber.org/protocol/disco#info",
                             "http://jabber.org/protocol/disco#items",
                             "http://jabber.org/protocol/muc"])
EXODUS_INFO = """
<query xmlns='http://jabber.org/protocol/disco#info'
       node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>"""
#: The string S of §5.2.
EXODUS_S = ("client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<"
            "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
            "http://jabber.org/protocol/muc<")

#: XEP-0115 §5.3, the complex generation example.
PSI_NODE = "http://psi-im.org"
PSI_VER = "q07IKJEyjvHSyhy//CH0CxmKi8w="
PSI_INFO = """
<query xmlns='http://jabber.org/protocol/disco#info'
       node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='ip_version'>
      <value>ipv4</value>
      <value>ipv6</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
  </x>
</query>"""

#: A client that wants PEP notifications for two nodes (XEP-0163 §4).
NOTIFY_FEATURES = ["http://jabber.org/protocol/caps", "urn:xmpp:avatar:metadata+notify",
                   "http://jabber.org/protocol/nick+notify"]


def infoOf(features, name="Test"):
    """A disco#info answer with one identity and C{features}, and its sha-1 ver."""
    body = "".join("<feature var='%s'/>" % f for f in features)
    query = parse("<query xmlns='%s'><identity category='client' type='pc' name='%s'/>%s"
                  "</query>" % (NS_INFO, name, body))
    text = "client/pc//%s<" % name + "".join(f + "<" for f in sorted(features))
    return query, base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


NOTIFY_INFO, NOTIFY_VER = infoOf(NOTIFY_FEATURES)


def sha(name, text):
    return base64.b64encode(hashlib.new(name, text.encode()).digest()).decode()


# -- §5.4: checking an answer ---------------------------------------------


def test_simpleExampleVerifies():
    """The §5.2 answer gives its features for ver QgayPKawpkPSDYmwT/WM94uAlu0=."""
    query = parse(EXODUS_INFO)

    assert verificationString(*parseInfo(query)) == EXODUS_S
    assert verifiedFeatures(query, "sha-1", EXODUS_VER) == EXODUS_FEATURES


def test_complexExampleVerifies():
    """The §5.3 answer, with languages and an extended form, verifies against its ver."""
    assert verifiedFeatures(parse(PSI_INFO), "sha-1", PSI_VER) == EXODUS_FEATURES


def test_otherHashFunctions():
    """A ver made with sha-256 (§5.1 allows other functions) verifies with that function only."""
    query = parse(EXODUS_INFO)

    assert verifiedFeatures(query, "sha-256", sha("sha256", EXODUS_S)) == EXODUS_FEATURES
    assert verifiedFeatures(query, "sha-1", sha("sha256", EXODUS_S)) is None
    assert verifiedFeatures(query, "md5", sha("md5", EXODUS_S)) is None


def test_mismatchRejected():
    """An answer that does not hash to the announced ver is rejected (§5.4 3i)."""
    changed = EXODUS_INFO.replace("muc'", "muc#user'")

    assert verifiedFeatures(parse(changed), "sha-1", EXODUS_VER) is None
    assert verifiedFeatures(parse(PSI_INFO), "sha-1", EXODUS_VER) is None


@pytest.mark.parametrize("extra", [
    "<identity category='client' name='Exodus 0.9.1' type='pc'/>",         # §5.4 3c
    "<feature var='http://jabber.org/protocol/muc'/>",                    # §5.4 3d
])
def test_duplicatesIllFormed(extra):
    """An answer with an identity or a feature twice is ill-formed (§5.4 3c, 3d)."""
    query = parse(EXODUS_INFO.replace("</query>", extra + "</query>"))

    with pytest.raises(IllFormed):
        parseInfo(query)
    assert verifiedFeatures(query, "sha-1", EXODUS_VER) is None


def test_formsWithOneTypeIllFormed():
    """Two forms with one FORM_TYPE, or a FORM_TYPE with two values, are ill-formed (§5.4 3e)."""
    form = PSI_INFO[PSI_INFO.index("<x "):PSI_INFO.index("</x>") + 4]
    twice = PSI_INFO.replace("</query>", form + "</query>")
    twoTypes = PSI_INFO.replace("<value>urn:xmpp:dataforms:softwareinfo</value>",
                                "<value>urn:xmpp:dataforms:softwareinfo</value><value>x</value>")

    assert verifiedFeatures(parse(twice), "sha-1", PSI_VER) is None
    assert verifiedFeatures(parse(twoTypes), "sha-1", PSI_VER) is None


def test_formWithoutHiddenTypeIgnored():
    """A form whose FORM_TYPE is not hidden, or that has none, is left out of the hash (§5.4 3f)."""
    forms = ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'>"
             "<value>urn:example</value></field><field var='a'><value>1</value></field></x>"
             "<x xmlns='jabber:x:data' type='result'><field var='b'><value>2</value></field></x>")
    query = parse(EXODUS_INFO.replace("</query>", forms + "</query>"))

    assert verifiedFeatures(query, "sha-1", EXODUS_VER) == EXODUS_FEATURES


def test_separatorInsideValueRejected():
    """An answer smuggling the '<' separator into a feature cannot stand for another ver."""
    query = parse(EXODUS_INFO.replace(
        "<feature var='http://jabber.org/protocol/disco#items'/>\n"
        "  <feature var='http://jabber.org/protocol/muc'/>",
        "<feature var='http://jabber.org/protocol/disco#items&lt;http://jabber.org/protocol/muc'/>"))

    assert verifiedFeatures(query, "sha-1", EXODUS_VER) is None


def test_notAnInfoAnswer():
    """Something other than a disco#info query in the result is no answer."""
    assert verifiedFeatures(None, "sha-1", EXODUS_VER) is None
    assert verifiedFeatures(parse("<query xmlns='jabber:iq:version'/>"), "sha-1",
                            EXODUS_VER) is None


# -- §6.3: learning from presence -------------------------------------------


class CapsDomain(Domain):
    """A domain running only the clientcaps feature, recording C{caps/changed}."""

    def __init__(self, tmp_path, **settings):
        Domain.__init__(self, tmp_path, features=("clientcaps",),
                        sections={"clientcaps": settings} if settings else None)
        self.caps = capsOf(self.domain)
        self.changed = []
        self.domain.hooks.add(CAPS_CHANGED, self.changed.append, OBSERVE)

    def online(self, jid, ver=EXODUS_VER, node=EXODUS_NODE, hashName="sha-1"):
        """C{jid} binds and sends available presence with caps; its stream."""
        stream = self.bind(jid, available=True)
        self.presence(jid, ver, node, hashName)
        return stream

    def presence(self, jid, ver=EXODUS_VER, node=EXODUS_NODE, hashName="sha-1", to=None):
        caps = "" if ver is None else "<c xmlns='%s' hash='%s' node='%s' ver='%s'/>" % (
            NS_CAPS, hashName, node, ver)
        self.send("<presence from='%s'%s><show>chat</show>%s</presence>"
                  % (jid, " to='%s'" % to if to else "", caps))

    def answer(self, query, info=EXODUS_INFO, sender=None):
        """The client answers C{query} (an iq the server sent) with C{info}."""
        reply = parse("<iq type='result'>%s</iq>" % (
            info if isinstance(info, str) else info.toXml()))
        reply["id"] = query["id"]
        reply["from"] = sender or query["to"]
        reply["to"] = query["from"]
        self.send(reply)

    def fail(self, query, condition="service-unavailable"):
        self.send("<iq type='error' id='%s' from='%s' to='%s'><error type='cancel'>"
                  "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                  % (query["id"], query["to"], query["from"], condition))

    def features(self, jid):
        return self.caps.features(parseJID(jid))


def queriesIn(stanzas):
    return [s for s in stanzas if s.name == "iq" and s.getAttribute("type") == "get"]


def test_unknownHashQueriedOnce(tmp_path):
    """A client announcing an unknown ver gets one disco#info query for node#ver, from the domain."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)

    [query] = queriesIn(romeo.take())

    assert query["from"] == DOMAIN and query["to"] == ROMEO
    assert query.firstChildElement().uri == NS_INFO
    assert query.firstChildElement()["node"] == EXODUS_NODE + "#" + EXODUS_VER
    assert domain.features(ROMEO) is None


def test_answerLearnt(tmp_path):
    """Once the client answers with what its ver says, the server knows its features."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    [query] = queriesIn(romeo.take())

    domain.answer(query)

    assert domain.features(ROMEO) == EXODUS_FEATURES
    assert romeo.take() == []
    assert [(e.jid.full(), e.features) for e in domain.changed] == [(ROMEO, EXODUS_FEATURES)]


def test_complexExampleLearnt(tmp_path):
    """The §5.3 client (Psi, with an extended form) is learnt the same way."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO, ver=PSI_VER, node=PSI_NODE)
    [query] = queriesIn(romeo.take())

    domain.answer(query, PSI_INFO)

    assert domain.features(ROMEO) == EXODUS_FEATURES


def test_knownHashNoQuery(tmp_path):
    """A second client with a ver already learnt is known at once, with no query."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0])

    juliet = domain.online(JULIET)

    assert juliet.take() == []
    assert domain.features(JULIET) == EXODUS_FEATURES
    assert [e.jid.full() for e in domain.changed] == [ROMEO, JULIET]


def test_sameVerManyClientsOneQuery(tmp_path):
    """Many clients with one unknown ver coming online together cost one query; all learn the answer."""
    domain = CapsDomain(tmp_path)
    streams = [domain.online("romeo@example.org/r%d" % n) for n in range(5)]

    sent = [queriesIn(stream.take()) for stream in streams]
    assert [len(q) for q in sent] == [1, 0, 0, 0, 0]
    domain.answer(sent[0][0])

    assert all(domain.features("romeo@example.org/r%d" % n) == EXODUS_FEATURES
               for n in range(5))
    assert len(domain.changed) == 5


def test_repeatedPresenceCheap(tmp_path):
    """Presence with an unchanged ver neither queries again nor fires the hook again."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    query = queriesIn(romeo.take())[0]
    domain.presence(ROMEO)
    assert romeo.take() == []
    domain.answer(query)

    domain.presence(ROMEO)

    assert romeo.take() == []
    assert len(domain.changed) == 1


def test_mismatchNotCachedNextAsked(tmp_path):
    """A client answering something else than its ver has no caps, nothing is cached, and the next client with that ver is asked."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    juliet = domain.online(JULIET)
    domain.answer(queriesIn(romeo.take())[0], PSI_INFO)

    assert domain.features(ROMEO) is None
    [query] = queriesIn(juliet.take())
    domain.answer(query)

    assert domain.features(JULIET) == EXODUS_FEATURES
    assert domain.features(ROMEO) is None
    assert [e.jid.full() for e in domain.changed] == [JULIET]


def test_mismatchAloneNotCached(tmp_path):
    """After a lying answer the ver stays unknown: the next client announcing it is asked again."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0], PSI_INFO)

    juliet = domain.online(JULIET)

    assert len(queriesIn(juliet.take())) == 1
    assert domain.features(JULIET) is None


def test_errorAnswer(tmp_path):
    """A client answering the query with an error has no caps, and the ver is not cached."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    juliet = domain.online(JULIET)
    domain.fail(queriesIn(romeo.take())[0])

    assert domain.features(ROMEO) is None
    assert len(queriesIn(juliet.take())) == 1


def test_timeout(tmp_path):
    """A client that never answers is given up after query_timeout; the next one waiting is asked."""
    domain = CapsDomain(tmp_path, query_timeout=5.0)
    romeo = domain.online(ROMEO)
    juliet = domain.online(JULIET)
    late = queriesIn(romeo.take())[0]

    domain.clock.advance(4.9)
    assert queriesIn(juliet.take()) == []
    domain.clock.advance(0.2)
    [query] = queriesIn(juliet.take())
    domain.answer(late)  # too late: ignored

    assert domain.features(ROMEO) is None
    domain.answer(query)
    assert domain.features(JULIET) == EXODUS_FEATURES
    domain.clock.advance(10)
    assert domain.clock.getDelayedCalls() == []


def test_answerFromAnotherIgnored(tmp_path):
    """A result with the query's id from someone other than the asked client teaches nothing."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.bind(JULIET)
    query = queriesIn(romeo.take())[0]

    domain.answer(query, sender=JULIET)

    assert domain.features(ROMEO) is None
    domain.answer(query)
    assert domain.features(ROMEO) == EXODUS_FEATURES


def test_otherResultsPassOn(tmp_path):
    """IQ results to the domain that answer no caps query are left to others."""
    domain = CapsDomain(tmp_path)
    domain.bind(ROMEO)
    seen = []
    domain.domain.hooks.add("iq/host", seen.append, OBSERVE)

    domain.send("<iq type='result' id='xmppd-caps-99' from='%s' to='%s'/>" % (ROMEO, DOMAIN))

    assert len(seen) == 1


def test_cacheBounded(tmp_path):
    """The cache keeps cache_size vers, the least recently used leaving first."""
    domain = CapsDomain(tmp_path, cache_size=2)
    infos = [infoOf(["urn:example:%d" % n]) for n in range(3)]
    for n, (info, ver) in enumerate(infos):
        stream = domain.online("romeo@example.org/r%d" % n, ver=ver)
        domain.answer(queriesIn(stream.take())[0], info)
    assert len(domain.caps.cache) == 2

    juliet = domain.online(JULIET, ver=infos[0][1])
    assert len(queriesIn(juliet.take())) == 1
    juliet2 = domain.online("juliet@example.org/other", ver=infos[2][1])
    assert queriesIn(juliet2.take()) == []


def test_pendingBounded(tmp_path):
    """Over max_pending open queries a new ver is not asked about, until its client announces it again."""
    domain = CapsDomain(tmp_path, max_pending=1)
    romeo = domain.online(ROMEO)
    juliet = domain.online(JULIET, ver=NOTIFY_VER)
    assert queriesIn(juliet.take()) == []
    domain.answer(queriesIn(romeo.take())[0])

    domain.presence(JULIET, ver=NOTIFY_VER)
    domain.answer(queriesIn(juliet.take())[0], NOTIFY_INFO)

    assert domain.caps.wantsNotify(parseJID(JULIET), "urn:xmpp:avatar:metadata")


def test_wantsNotify(tmp_path):
    """A client announcing NODE+notify wants notifications for NODE, and for no other node (XEP-0163 §4)."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO, ver=NOTIFY_VER)
    caps = domain.caps
    assert not caps.wantsNotify(parseJID(ROMEO), "urn:xmpp:avatar:metadata")

    domain.answer(queriesIn(romeo.take())[0], NOTIFY_INFO)

    assert caps.wantsNotify(parseJID(ROMEO), "urn:xmpp:avatar:metadata")
    assert caps.wantsNotify(ROMEO, "http://jabber.org/protocol/nick")
    assert not caps.wantsNotify(parseJID(ROMEO), "urn:xmpp:avatar:data")
    assert not caps.wantsNotify(parseJID(JULIET), "urn:xmpp:avatar:metadata")


def test_verChangeFiresAgain(tmp_path):
    """A client announcing another known ver gets the new features, and the hook fires again."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0])
    domain.presence(ROMEO, ver=NOTIFY_VER)
    domain.answer(queriesIn(romeo.take())[0], NOTIFY_INFO)

    domain.presence(ROMEO)

    assert domain.features(ROMEO) == EXODUS_FEATURES
    assert [e.features for e in domain.changed] == [
        EXODUS_FEATURES, frozenset(NOTIFY_FEATURES), EXODUS_FEATURES]


def test_verChangeWhileAsking(tmp_path):
    """An answer for a ver the client no longer announces does not become its features."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    first = queriesIn(romeo.take())[0]
    domain.presence(ROMEO, ver=NOTIFY_VER)
    second = queriesIn(romeo.take())[0]

    domain.answer(first)
    assert domain.features(ROMEO) is None
    domain.answer(second, NOTIFY_INFO)
    assert domain.features(ROMEO) == frozenset(NOTIFY_FEATURES)


@pytest.mark.parametrize("caps", [
    "",                                                                     # none
    "<c xmlns='%s' node='%s' ver='1.0' ext='a b'/>" % (NS_CAPS, EXODUS_NODE),  # legacy §1.1
    "<c xmlns='%s' hash='md5' node='%s' ver='x'/>" % (NS_CAPS, EXODUS_NODE),   # unsupported
])
def test_noUsableCaps(tmp_path, caps):
    """Presence without caps, with legacy caps or an unsupported hash: no query, no features."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0])

    domain.send("<presence from='%s'>%s</presence>" % (ROMEO, caps))

    assert romeo.take() == []
    assert domain.features(ROMEO) is None


def test_forgottenWhenUnavailable(tmp_path):
    """A client that sends unavailable presence is forgotten; others keep their features."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0])
    domain.online(ROMEO2)

    domain.send("<presence from='%s' type='unavailable'/>" % ROMEO)

    assert domain.features(ROMEO) is None
    assert domain.features(ROMEO2) == EXODUS_FEATURES


def test_forgottenWhenSessionCloses(tmp_path):
    """A client whose session closes is forgotten, and no local entry outlives its session."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    domain.answer(queriesIn(romeo.take())[0])

    domain.unbind(ROMEO)

    assert domain.features(ROMEO) is None
    assert domain.caps.local == {}


def test_askedClientLeaves(tmp_path):
    """When the asked client goes before answering, the next one waiting is asked at once."""
    domain = CapsDomain(tmp_path)
    romeo = domain.online(ROMEO)
    juliet = domain.online(JULIET)
    queriesIn(romeo.take())

    domain.unbind(ROMEO)
    [query] = queriesIn(juliet.take())
    domain.answer(query)

    assert domain.features(JULIET) == EXODUS_FEATURES
    assert domain.clock.getDelayedCalls() == []


# -- remote entities ----------------------------------------------------------


class RemoteRoute:
    """Stands in for the S2S route to remote.example: records what leaves."""

    def __init__(self):
        self.sent = []

    def deliver(self, stanza):
        self.sent.append(stanza)


def withRemote(domain):
    route = RemoteRoute()
    domain.router.addRoute("remote.example", route)
    return route


def test_remoteContactLearnt(tmp_path):
    """Caps in a remote contact's presence to a local user are learnt through a query over the router."""
    domain = CapsDomain(tmp_path)
    remote = withRemote(domain)
    domain.presence(REMOTE, ver=NOTIFY_VER, to="juliet@example.org")

    [query] = queriesIn(remote.sent)
    assert query["to"] == REMOTE and query["from"] == DOMAIN
    domain.answer(query, NOTIFY_INFO)

    assert domain.caps.wantsNotify(parseJID(REMOTE), "urn:xmpp:avatar:metadata")
    domain.presence(REMOTE, ver=NOTIFY_VER, to=JULIET)
    assert queriesIn(remote.sent) == [query]


def test_remoteForgottenWhenUnavailable(tmp_path):
    """A remote contact's unavailable presence forgets its features."""
    domain = CapsDomain(tmp_path)
    remote = withRemote(domain)
    domain.presence(REMOTE, ver=NOTIFY_VER, to="juliet@example.org")
    domain.answer(queriesIn(remote.sent)[0], NOTIFY_INFO)

    domain.send("<presence from='%s' to='juliet@example.org' type='unavailable'/>" % REMOTE)

    assert domain.features(REMOTE) is None


def test_remoteBounded(tmp_path):
    """At most max_remote remote full JIDs are tracked, the least recently heard leaving first."""
    domain = CapsDomain(tmp_path, max_remote=2)
    remote = withRemote(domain)
    domain.presence(REMOTE, ver=NOTIFY_VER, to="juliet@example.org")
    domain.answer(queriesIn(remote.sent)[0], NOTIFY_INFO)
    for n in range(2):
        domain.presence("tybalt@remote.example/%d" % n, ver=NOTIFY_VER, to="juliet@example.org")

    assert domain.features(REMOTE) is None
    assert domain.features("tybalt@remote.example/1") == frozenset(NOTIFY_FEATURES)
    assert len(domain.caps.remote) == 2


def test_remoteOff(tmp_path):
    """With max_remote 0 remote presence is not learnt from, and nobody is asked."""
    domain = CapsDomain(tmp_path, max_remote=0)
    remote = withRemote(domain)

    domain.presence(REMOTE, ver=NOTIFY_VER, to="juliet@example.org")

    assert remote.sent == [] and domain.features(REMOTE) is None


def test_remoteCannotStarveLocal(tmp_path):
    """Remote entities may hold at most half the open queries, so local clients are still asked."""
    domain = CapsDomain(tmp_path, max_pending=2)
    remote = withRemote(domain)
    for n in range(3):
        _, ver = infoOf(["urn:example:%d" % n])
        domain.presence("tybalt@remote.example/%d" % n, ver=ver, to="juliet@example.org")
    romeo = domain.online(ROMEO)

    assert len(queriesIn(remote.sent)) == 1
    assert len(queriesIn(romeo.take())) == 1


def test_interestedResources(tmp_path):
    """PEP finds which full JIDs of an account want a node's notifications, local or remote."""
    domain = CapsDomain(tmp_path)
    remote = withRemote(domain)
    romeo = domain.online(ROMEO, ver=NOTIFY_VER)
    domain.answer(queriesIn(romeo.take())[0], NOTIFY_INFO)
    domain.online(ROMEO2, ver=NOTIFY_VER)
    domain.presence(REMOTE, ver=NOTIFY_VER, to="juliet@example.org")
    domain.presence("mercutio@remote.example/other", to="juliet@example.org")
    caps = domain.caps

    assert sorted(j.full() for j in caps.interested(parseJID("romeo@example.org"),
                                                    "urn:xmpp:avatar:metadata")) == [ROMEO2, ROMEO]
    assert [j.full() for j in caps.interested("Mercutio@Remote.Example",
                                              "urn:xmpp:avatar:metadata")] == [REMOTE]
    assert caps.interested("romeo@example.org", "urn:xmpp:avatar:data") == []
    assert len(caps.resourcesOf("romeo@example.org")) == 2
    assert len(queriesIn(remote.sent)) == 1  # the Exodus ver of /other

    domain.unbind(ROMEO)
    caps.forget(parseJID(REMOTE))
    assert [j.full() for j in caps.interested("romeo@example.org",
                                              "urn:xmpp:avatar:metadata")] == [ROMEO2]
    assert caps.resourcesOf("mercutio@remote.example") == []
