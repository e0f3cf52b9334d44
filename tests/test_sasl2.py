"""
SASL2 (XEP-0388) and Bind 2 (XEP-0386) on client streams, in memory: the
XEPs' example exchanges, inline stream management (XEP-0198) and carbons
(XEP-0280), and bad requests, which each get a SASL2 failure and never a
traceback.
"""

from __future__ import annotations

import base64

import pytest
from twisted.internet import defer
from twisted.words.xish import domish

from tests.smhelpers import SMNode
from tests.streamhelpers import DOMAIN, NS_BIND, NS_SASL, NS_STREAMS, PASSWORDS, Node, plain
from tests.test_sasl import clientProof
from xmppd.core.hooks import DELIVER
from xmppd.c2s.sasl import Mechanism, SASLFailure, Success
from xmppd.core.jid import parseJID
from xmppd.features.sm import NS_SM

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_CARBONS = "urn:xmpp:carbons:2"
AGENT = "d4565fa7-4d72-4749-b3d3-740edbf87770"
FEATURES = ("roster", "presence", "messages", "sm", "carbons")


@pytest.fixture
def node(tmp_path):
    return SMNode(tmp_path, features=FEATURES)


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def plainResponse(user: str = "juliet", password: str | None = None) -> str:
    return b64("\0%s\0%s" % (user, PASSWORDS[user] if password is None else password))


def authenticate(mechanism: str = "PLAIN", initial: str | None = None, inline: str = "",
                 agent: str | None = AGENT) -> str:
    """An <authenticate/> (XEP-0388 §2.3) with a user agent, PLAIN for juliet by default."""
    if initial is None and mechanism == "PLAIN":
        initial = plainResponse()
    parts = ""
    if initial is not None:
        parts += "<initial-response>%s</initial-response>" % initial
    if agent is not None:
        parts += ("<user-agent id='%s'><software>AwesomeXMPP</software>"
                  "<device>Kiva's Phone</device></user-agent>" % agent)
    return "<authenticate xmlns='%s' mechanism='%s'>%s%s</authenticate>" % (
        NS_SASL2, mechanism, parts, inline)


def bind(tag: str = "AwesomeXMPP", inline: str = "") -> str:
    return "<bind xmlns='%s'><tag>%s</tag>%s</bind>" % (NS_BIND2, tag, inline)


def start(node, host: str = "1.2.3.4"):
    client = node.base.connect(host) if isinstance(node, SMNode) else node.connect(host)
    return client, client.start()


def only(elements, uri: str, name: str) -> domish.Element:
    [found] = [e for e in elements if (e.uri, e.name) == (uri, name)]
    return found


def child(element: domish.Element, uri: str, name: str) -> domish.Element | None:
    return next(element.elements(uri, name), None)


def failureOf(reply) -> tuple[str, str | None]:
    """The RFC 6120 condition and the text of the one SASL2 failure in C{reply}."""
    failure = only(reply.elements, NS_SASL2, "failure")
    [condition] = [c.name for c in failure.elements() if c.uri == NS_SASL]
    text = child(failure, NS_SASL2, "text")
    return condition, None if text is None else str(text)


# -- the offer (XEP-0388 §2.1, XEP-0386 §3) --------------------------------------------


def test_offeredBesideRFC6120(node):
    """SASL2 lists the mechanisms RFC 6120 SASL lists, and what can be done inline."""
    client, reply = start(node)
    features = reply.features()
    authentication = child(features, NS_SASL2, "authentication")
    assert [str(m) for m in authentication.elements(NS_SASL2, "mechanism")] == reply.mechanisms()
    inline = child(authentication, NS_SASL2, "inline")
    assert child(inline, NS_SM, "sm") is not None
    bindFeatures = child(child(inline, NS_BIND2, "bind"), NS_BIND2, "inline")
    assert sorted(f["var"] for f in bindFeatures.elements(NS_BIND2, "feature")) == [
        NS_CARBONS, NS_SM]


def test_notOfferedBeforeTLSWhenRequired(tmp_path):
    """Where TLS must come first, SASL2 waits for it like RFC 6120 SASL."""
    node = Node(tmp_path, c2s={"require_tls": True})
    reply = node.connect().start()
    assert (NS_SASL2, "authentication") not in reply.featureNames()


# -- authentication (XEP-0388 §2.3-§2.6) ----------------------------------------------


def test_plainSuccessWithoutRestart(node):
    """PLAIN succeeds in one step; the new features follow at once, with no new stream header."""
    client, _ = start(node)
    reply = client.exchange(authenticate())
    assert reply.header is None
    assert reply.names == ["success", "features"]
    success = reply.elements[0]
    assert str(child(success, NS_SASL2, "authorization-identifier")) == "juliet@" + DOMAIN
    assert child(success, NS_SASL2, "additional-data") is None
    assert (NS_BIND, "bind") in reply.featureNames()
    assert client.stream.userAgent.id == AGENT
    assert client.stream.userAgent.device == "Kiva's Phone"
    # RFC 6120 binding goes on as usual on the same stream.
    client.bind("balcony")
    assert client.jid == "juliet@%s/balcony" % DOMAIN


@pytest.mark.parametrize("mechanism,hashName", [("SCRAM-SHA-256", "sha256"),
                                                ("SCRAM-SHA-1", "sha1")])
def test_scramChallengeResponse(node, mechanism, hashName):
    """SCRAM runs through <challenge/> and <response/>; the server signature is in <additional-data/>."""
    client, _ = start(node)
    first = "n=juliet,r=fyko+d2lbbFgONRv9qkxdawL"
    reply = client.exchange(authenticate(mechanism, b64("n,," + first)))
    challenge = only(reply.elements, NS_SASL2, "challenge")
    serverFirst = base64.b64decode(str(challenge)).decode()
    attrs = dict(part.split("=", 1) for part in serverFirst.split(","))
    final = "c=biws,r=" + attrs["r"]
    proof, signature = clientProof(hashName, PASSWORDS["juliet"], base64.b64decode(attrs["s"]),
                                   int(attrs["i"]), ",".join((first, serverFirst, final)).encode())
    reply = client.exchange("<response xmlns='%s'>%s</response>"
                            % (NS_SASL2, b64(final + ",p=" + b64(proof))))
    assert reply.names == ["success", "features"]
    data = child(reply.elements[0], NS_SASL2, "additional-data")
    assert base64.b64decode(str(data)) == b"v=" + base64.b64encode(signature)


def test_wrongPasswordAndUnknownUserLookAlike(tmp_path):
    """Both fail with not-authorized after the same per-address delay as RFC 6120 SASL."""
    node = Node(tmp_path, limits={"auth_failure_delay": 1.0, "auth_failure_delay_max": 8.0})
    wrong, _ = start(node, "10.0.0.1")
    unknown, _ = start(node, "10.0.0.2")
    assert wrong.exchange(authenticate(initial=plainResponse("juliet", "nope"))).data == b""
    unknown.send(authenticate(initial=b64("\0nobody\0nope")))
    node.clock.advance(0.5)
    assert wrong.received().data == b""
    node.clock.advance(0.5)
    first, second = wrong.received(), unknown.received()
    assert failureOf(first) == ("not-authorized", None)
    assert first.data == second.data


def test_failuresCountAcrossBothProfiles(tmp_path):
    """Switching between RFC 6120 SASL and SASL2 buys no extra attempts."""
    node = Node(tmp_path, limits={"sasl_max_attempts": 3, "auth_failure_delay": 0})
    client, _ = start(node)
    assert failureOf(client.exchange(authenticate(initial=plainResponse("juliet", "a")))
                     )[0] == "not-authorized"
    assert client.exchange(plain("juliet", "b")).names == ["failure"]
    reply = client.exchange(authenticate(initial=plainResponse("juliet", "c")))
    assert reply.names == ["failure", "error"]
    assert reply.streamError == "policy-violation"


def test_abort(node):
    """<abort/> during an exchange ends it with <aborted/>."""
    client, _ = start(node)
    client.exchange(authenticate("SCRAM-SHA-256", b64("n,,n=juliet,r=abc")))
    reply = client.exchange("<abort xmlns='%s'/>" % NS_SASL2)
    assert failureOf(reply) == ("aborted", None)


def test_authenticateAfterSuccess(node):
    """A second <authenticate/> after success is a stream error (§3.8)."""
    client, _ = start(node)
    client.exchange(authenticate())
    reply = client.exchange(authenticate())
    assert reply.streamError == "policy-violation"


# -- bad requests --------------------------------------------------------------------


@pytest.mark.parametrize("request_,condition", [
    (authenticate("NOPE", ""), "invalid-mechanism"),
    (authenticate(initial="not base64!"), "incorrect-encoding"),
    (authenticate(agent="not-a-uuid"), "malformed-request"),
    (authenticate(inline="<x xmlns='urn:example:not-offered'/>"), "malformed-request"),
    (authenticate(inline=bind(inline="<inactive xmlns='urn:xmpp:csi:0'/>")), "malformed-request"),
    (authenticate(inline=bind() + bind()), "malformed-request"),
    (authenticate(inline=bind(tag="x" * 100)), "malformed-request"),
    (authenticate(inline="<stray xmlns='%s'/>" % NS_SASL2), "malformed-request"),
    ("<authenticate xmlns='%s'><initial-response>%s</initial-response></authenticate>"
     % (NS_SASL2, plainResponse()), "malformed-request"),
    ("<next xmlns='%s' task='TOTP'/>" % NS_SASL2, "malformed-request"),
    ("<response xmlns='%s'>AAAA</response>" % NS_SASL2, "malformed-request"),
])
def test_badRequests(node, request_, condition):
    """Malformed or not offered requests get their SASL2 failure and the stream stays usable."""
    client, _ = start(node)
    reply = client.exchange(request_)
    assert failureOf(reply)[0] == condition, reply
    assert reply.streamError is None
    assert client.stream.username is None
    assert client.exchange(authenticate()).names == ["success", "features"]


def test_notOfferedNamespaceNamed(node):
    """The failure's text names what was not offered, so a developer sees why."""
    client, _ = start(node)
    reply = client.exchange(authenticate(inline="<x xmlns='urn:example:nope'/>"))
    assert failureOf(reply) == ("malformed-request", "urn:example:nope was not offered inline")


# -- Bind 2 (XEP-0386) ---------------------------------------------------------------


def bound(reply) -> tuple[str, domish.Element]:
    success = reply.elements[0]
    assert (success.uri, success.name) == (NS_SASL2, "success"), reply
    return (str(child(success, NS_SASL2, "authorization-identifier")),
            child(success, NS_BIND2, "bound"))


def test_bindInline(node):
    """The resource is the tag and a server part; the full JID is the authorization identifier."""
    client, _ = start(node)
    reply = client.exchange(authenticate(inline=bind()))
    jid, boundElement = bound(reply)
    assert boundElement is not None
    resource = parseJID(jid).resource
    assert jid.startswith("juliet@%s/AwesomeXMPP." % DOMAIN) and len(resource) > 12
    # Bound already: no RFC 6120 bind, no legacy session on offer.
    assert reply.names == ["success", "features"]
    assert (NS_BIND, "bind") not in reply.featureNames()
    assert node.sessions.get(parseJID(jid)).stream is client.stream


def test_resourceStablePerUserAgent(node):
    """The same installation gets the same resource again; another gets another."""
    first, _ = start(node)
    jid, _ = bound(first.exchange(authenticate(inline=bind())))
    first.send("</stream:stream>")
    again, _ = start(node)
    assert bound(again.exchange(authenticate(inline=bind())))[0] == jid
    other, _ = start(node)
    otherJid, _ = bound(other.exchange(authenticate(
        inline=bind(), agent="1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9")))
    assert otherJid != jid


def test_bindWithoutUserAgentIsRandom(node):
    """Without a user agent id each login gets a fresh resource."""
    one, _ = start(node)
    two, _ = start(node)
    first, _ = bound(one.exchange(authenticate(inline=bind(), agent=None)))
    second, _ = bound(two.exchange(authenticate(inline=bind(), agent=None)))
    assert first != second


def test_bindEnablesSMAndCarbons(node):
    """Inline <enable/>s: <enabled/> comes back in <bound/>, carbons are on, acks count from there."""
    client, _ = start(node)
    inline = "<enable xmlns='%s' resume='true'/><enable xmlns='%s'/>" % (NS_SM, NS_CARBONS)
    reply = client.exchange(authenticate(inline=bind(inline=inline)))
    jid, boundElement = bound(reply)
    enabled = child(boundElement, NS_SM, "enabled")
    assert enabled["resume"] == "true" and enabled["id"]
    assert client.stream.sm.id == enabled["id"]
    assert (NS_SM, "sm") not in reply.featureNames()
    session = node.sessions.get(parseJID(jid))
    assert session.carbons
    node.message(jid, "hello")
    assert [e.name for e in client.received().elements] == ["message", "r"]
    assert client.stream.sm.sent == 1


def test_messageWhileBindingWaitsForSuccess(node):
    """What reaches the new session before <success/> is out comes right after it."""
    waiting = defer.Deferred()
    node.domain.hooks.add("bind2/inline", lambda event: waiting, DELIVER)
    client, _ = start(node)
    assert client.exchange(authenticate(inline=bind())).data == b""
    [session] = node.sessions.sessionsOf(parseJID("juliet@" + DOMAIN))
    node.message(session.jid.full(), "early")
    assert client.received().data == b""
    waiting.callback(None)
    reply = client.received()
    assert reply.names == ["success", "features", "message"]


# -- stream management resumed inline (XEP-0198 §5) -------------------------------------


def smLogin(node, agent: str = AGENT):
    client, _ = start(node)
    inline = "<enable xmlns='%s' resume='true'/>" % NS_SM
    jid, boundElement = bound(client.exchange(authenticate(inline=bind(inline=inline),
                                                           agent=agent)))
    return client, jid, child(boundElement, NS_SM, "enabled")["id"]


def test_resumeInline(node):
    """A broken connection is resumed inside <authenticate/>: <resumed/> in <success/>, then what was missed."""
    client, jid, previd = smLogin(node)
    client.send("<presence/>")
    client.received()
    node.message(jid, "one")
    client.received()
    client.disconnect()
    node.message(jid, "two")
    again, _ = start(node)
    inline = "<resume xmlns='%s' previd='%s' h='1'/>" % (NS_SM, previd) + bind()
    reply = again.exchange(authenticate(inline=inline))
    assert reply.names[:2] == ["success", "features"]
    identifier, boundElement = bound(reply)
    assert identifier == jid and boundElement is None
    resumed = child(reply.elements[0], NS_SM, "resumed")
    assert resumed["previd"] == previd and resumed["h"] == "1"
    assert [str(e.body) for e in reply.elements if e.name == "message"] == ["one", "two"]
    assert node.sessions.get(parseJID(jid)).stream is again.stream


def test_resumeUnknownFallsBackToBind(node):
    """An unknown SM-ID is <failed/> in <success/>, and the Bind 2 request binds instead."""
    client, _ = start(node)
    inline = "<resume xmlns='%s' previd='gone' h='0'/>" % NS_SM + bind()
    reply = client.exchange(authenticate(inline=inline))
    failed = child(reply.elements[0], NS_SM, "failed")
    assert child(failed, "urn:ietf:params:xml:ns:xmpp-stanzas", "item-not-found") is not None
    jid, boundElement = bound(reply)
    assert boundElement is not None and parseJID(jid).resource.startswith("AwesomeXMPP.")


def test_headerIgnoredStreamNamespace(node):
    """The features after success are a real <stream:features/> element."""
    client, _ = start(node)
    reply = client.exchange(authenticate())
    assert (reply.elements[1].uri, reply.elements[1].name) == (NS_STREAMS, "features")


# -- the inline seam other features plug into (FAST, XEP-0484) -------------------------


NS_FAST = "urn:xmpp:fast:0"


class TokenMechanism(Mechanism):
    """Stands in for FAST's HT-* mechanisms: the initial response is 'user\\0token'."""

    name = "HT-TEST"

    async def start(self, initial):
        user, _, token = (initial or b"").decode().partition("\0")
        if token != "good":
            raise SASLFailure("not-authorized")
        return Success(user)


class FakeFast:
    """A feature using only the hooks: offers a mechanism and a token request inline."""

    def __init__(self, node):
        self.agents = []
        hooks = node.domain.hooks
        hooks.add("sasl2/features", self.onFeatures, DELIVER)
        hooks.add("sasl2/mechanism", self.onMechanism, DELIVER)
        hooks.add("sasl2/inline", self.onInline, DELIVER)

    def onFeatures(self, event):
        fast = event.inline.addElement((NS_FAST, "fast"))
        fast.addElement("mechanism", content=TokenMechanism.name)

    def onMechanism(self, event):
        if event.name == TokenMechanism.name:
            self.agents.append(event.userAgent)
            return TokenMechanism(event.stream.domain, None, b"")
        return None

    def onInline(self, event):
        if next(event.request.elements(NS_FAST, "request-token"), None) is not None:
            token = domish.Element((NS_FAST, "token"))
            token["token"] = "good"
            event.answer(token)


def test_inlineSeamForFast(node):
    """A feature offers a mechanism and an inline request through hooks; both work in one login."""
    fast = FakeFast(node)
    client, reply = start(node)
    inline = child(child(reply.features(), NS_SASL2, "authentication"), NS_SASL2, "inline")
    assert str(child(child(inline, NS_FAST, "fast"), NS_FAST, "mechanism")) == "HT-TEST"
    request = "<request-token xmlns='%s' mechanism='HT-TEST'/>" % NS_FAST
    reply = client.exchange(authenticate("HT-TEST", b64("juliet\0good"), inline=request + bind()))
    assert reply.names == ["success", "features"]
    assert child(reply.elements[0], NS_FAST, "token")["token"] == "good"
    assert fast.agents[0].id == AGENT
    assert parseJID(bound(reply)[0]).resource.startswith("AwesomeXMPP.")


def test_providedMechanismFailsLikeOthers(tmp_path):
    """A wrong token is not-authorized after the usual delay; an unknown name stays invalid-mechanism."""
    node = SMNode(tmp_path, features=FEATURES)
    FakeFast(node)
    client, _ = start(node)

    def answer(request):
        client.send(request)
        node.clock.advance(node.base.limits.auth_failure_delay_max)
        return failureOf(client.received())[0]
    assert answer(authenticate("HT-TEST", b64("juliet\0bad"))) == "not-authorized"
    assert answer(authenticate("HT-OTHER", "")) == "invalid-mechanism"
