"""
XMPP over BOSH (XEP-0124, XEP-0206, L{xmppd.c2s.bosh}) in memory: session
creation, the rid window, holding and waiting, polling, pause, acks,
answers sent again, restart, terminate, inactivity, bounded buffering,
CORS, and bad input, with a whole server in memory
(L{tests.streamhelpers.Node}), each request on an HTTP channel of its own
over a fake transport (L{tests.boshhelpers.MemoryBOSH}), time from a
L{Clock}.
"""

from __future__ import annotations

import dataclasses

from twisted.web.resource import Resource

from xmppd.c2s.bosh import BOSHResource
from xmppd.c2s.listeners import C2SFactory
from xmppd.http.service import WebSite
from tests.boshhelpers import NS_SASL, MemoryBOSH, bindIQ, body, plainAuth
from tests.streamhelpers import DOMAIN, PASSWORDS, Node

MESSAGE = ("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>")


class BOSHNode:
    """A L{Node} with the BOSH resource on a site of its own."""

    def __init__(self, tmp_path, http=None, **kwargs):
        self.node = Node(tmp_path, **kwargs)
        self.clock = self.node.clock
        self.config = dataclasses.replace(self.node.config.http, **(http or {}))
        self.factory = C2SFactory(self.node.server, None, False, self.node.peers,
                                  self.node.authFailures)
        self.resource = BOSHResource(self.factory, self.config)
        root = Resource()
        root.putChild(b"http-bind", self.resource)
        self.site = WebSite(root, self.config, 1000, reactor=self.clock)

    def client(self, **kwargs) -> MemoryBOSH:
        return MemoryBOSH(self.site, **kwargs)

    def login(self, user: str = "juliet", resource: str = "web", **create) -> MemoryBOSH:
        """A client that made a session, authenticated, restarted and bound."""
        client = self.client()
        created = client.create(**create)
        assert created.get("sid"), created
        success = client.request(plainAuth(user, PASSWORDS[user]))
        assert success.names() == ["success"], success
        restarted = client.request(xmpp_restart="true")
        assert restarted.names() == ["features"], restarted
        bound = client.request(bindIQ(resource))
        assert "<jid>%s@%s/%s</jid>" % (user, DOMAIN, resource) in bound.text, bound
        return client

    @property
    def session(self):
        [session] = self.resource.sessions.values()
        return session


def test_sessionCreation(tmp_path):
    """The session answer has the XEP-0124 attributes, XMPP 1.0 and the stream features."""
    web = BOSHNode(tmp_path)
    answer = web.client(rid=41).create(wait="600", hold="3")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/xml; charset=utf-8"
    assert len(answer.get("sid")) == 32
    # wait and hold are capped by the server's maximums; requests is hold + 1.
    assert (answer.get("wait"), answer.get("hold"), answer.get("requests")) == ("60", "1", "2")
    assert answer.get("inactivity") == "60" and answer.get("maxpause") == "120"
    assert answer.get("polling") == "2"
    assert answer.get("ack") == "42"
    assert answer.get("ver") == "1.11" and answer.get("from") == DOMAIN
    assert answer.get("xmpp:version") == "1.0" and answer.get("xmpp:restartlogic") == "true"
    assert answer.get("authid")
    assert answer.names() == ["features"]
    # RFC 6120 SASL, and SASL2 beside it (XEP-0388).
    mechanisms, authentication = answer.payloads[0]
    assert mechanisms.tag == "{%s}mechanisms" % NS_SASL
    assert authentication.tag == "{urn:xmpp:sasl:2}authentication"


def test_olderVersionAnswered(tmp_path):
    """A client of an older BOSH gets that version back (§7.2: the lower one)."""
    answer = BOSHNode(tmp_path).client().create(ver="1.6")
    assert answer.get("ver") == "1.6"


def test_sameSessionCodeAsTCP(tmp_path):
    """A BOSH client logs in, binds, and chats with a TCP client of the same node."""
    web = BOSHNode(tmp_path)
    client = web.login("juliet")
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    sent = client.post(MESSAGE % ("romeo@%s/orchard" % DOMAIN, "hi"))
    [message] = tcp.received().elements
    assert str(message.body) == "hi" and message["from"] == "juliet@%s/web" % DOMAIN
    # Nothing to say: held, until the next request (hold=1) answers it empty.
    assert sent.answer is None
    held = client.post()
    assert sent.answer.payloads == [] and held.answer is None
    tcp.send("<message to='juliet@%s/web' type='chat'><body>hello</body></message>" % DOMAIN)
    answer = held.answer
    assert answer.names() == ["message"]
    assert answer.payloads[0].tag == "{jabber:client}message"
    assert "<body>hello</body>" in answer.text


def test_payloadsWithoutNamespace(tmp_path):
    """Stanzas written without xmlns inherit the body's and count as jabber:client."""
    web = BOSHNode(tmp_path)
    client = web.login()
    answer = client.request("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    # Whatever the answer (no ping here), it is to the stanza, understood as jabber:client.
    assert answer.payloads[0].tag == "{jabber:client}iq" and answer.payloads[0].get("id") == "p1"


def test_clientNamespaceOnlyWhereInherited():
    """Elements that inherited the body's namespace become jabber:client, with their children that inherited it too; other namespaces, below or in a stanza that declares its own, are left alone."""
    from twisted.words.xish import domish

    from xmppd.c2s.bosh import NS_HTTPBIND, _clientNamespace
    inherited = domish.Element((NS_HTTPBIND, "message"), defaultUri=NS_HTTPBIND)
    text = inherited.addElement("body")
    extension = inherited.addElement(("urn:example:x", "x"), defaultUri="urn:example:x")
    item = extension.addElement("item")
    _clientNamespace(inherited)
    assert (inherited.uri, inherited.defaultUri, text.uri) == ("jabber:client",) * 3
    assert (extension.uri, item.uri) == ("urn:example:x",) * 2
    declared = domish.Element(("jabber:client", "message"), defaultUri="jabber:client")
    odd = declared.addElement((NS_HTTPBIND, "body"))
    _clientNamespace(declared)
    assert declared.uri == "jabber:client" and odd.uri == NS_HTTPBIND


def test_waitGivesAnEmptyAnswer(tmp_path):
    """A held request is answered empty after C{wait} seconds, not before."""
    web = BOSHNode(tmp_path)
    client = web.login(wait="30")
    held = client.post()
    web.clock.advance(29)
    assert held.answer is None
    web.clock.advance(1)
    assert held.answer.text == "<body xmlns='http://jabber.org/protocol/httpbind'/>"


def test_holdAnswersTheOldest(tmp_path):
    """With hold=1 a second request answers the first at once (empty), with the ack."""
    web = BOSHNode(tmp_path)
    client = web.login()
    first = client.post()
    second = client.post()
    assert first.answer is not None and first.answer.payloads == []
    assert first.answer.get("ack") == str(client.rid)
    assert second.answer is None


def test_answersInRidOrder(tmp_path):
    """A request that comes early waits for the one before it; both are processed in order."""
    web = BOSHNode(tmp_path)
    client = web.login(hold="1")
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    rid = client.rid
    late = client.post(MESSAGE % ("romeo@%s/orchard" % DOMAIN, "second"), rid=rid + 2)
    assert tcp.received().elements == []
    client.post(MESSAGE % ("romeo@%s/orchard" % DOMAIN, "first"), rid=rid + 1)
    assert [str(m.body) for m in tcp.received().elements] == ["first", "second"]
    assert late.answer is None  # now held: the oldest was answered


def test_ridOutOfWindow(tmp_path):
    """A rid beyond the window (requests) ends the session with item-not-found."""
    web = BOSHNode(tmp_path)
    client = web.login()
    answer = client.request(rid=client.rid + 3)
    assert answer.status == 200 and answer.terminate == "item-not-found"
    assert web.resource.sessions == {}
    assert client.request().terminate == "item-not-found"


def test_unknownSession(tmp_path):
    """An unknown sid gets item-not-found."""
    answer = BOSHNode(tmp_path).client().request(sid="nosuchsession")
    assert answer.status == 200 and answer.terminate == "item-not-found"


def test_legacyClientsGetHTTPErrors(tmp_path):
    """A client without 'ver' gets the HTTP statuses of XEP-0124 §17.1 instead."""
    web = BOSHNode(tmp_path)
    client = web.client()
    created = client.request(to=DOMAIN, wait="60", hold="1", xmpp_version="1.0")
    assert created.get("ver") is None
    client.sid = created.get("sid")
    assert client.request(rid=client.rid + 5).status == 404
    assert web.client().request(to=DOMAIN, wait="soon").status == 400


def test_retransmission(tmp_path):
    """A request sent again (its answer was lost) gets the same answer, unprocessed again."""
    web = BOSHNode(tmp_path)
    client = web.login()
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    payload = MESSAGE % ("romeo@%s/orchard" % DOMAIN, "once")
    first = client.request("<iq xmlns='jabber:client' type='get' id='p1'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>" + payload)
    again = client.request("<iq xmlns='jabber:client' type='get' id='p1'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>" + payload, rid=client.rid)
    assert again.raw == first.raw and "id='p1'" in again.text
    assert len(tcp.received().elements) == 1


def test_retransmissionOfAHeldRequest(tmp_path):
    """A held request whose connection broke is sent again: the new one gets the answer."""
    web = BOSHNode(tmp_path)
    client = web.login()
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    lost = client.post()
    lost.close()
    again = client.post(rid=client.rid)
    tcp.send("<message to='juliet@%s/web' type='chat'><body>still there</body></message>"
              % DOMAIN)
    assert "still there" in again.answer.text


def test_repeatedRequestHeldOnce(tmp_path):
    """A request repeated while held keeps one copy: the older connection is closed."""
    web = BOSHNode(tmp_path)
    client = web.login()
    first = client.post()
    second = client.post(rid=client.rid)
    assert first.transport.disconnecting and not second.transport.disconnecting
    [held] = web.session.held
    assert len(held.requests) == 1
    web.clock.advance(60)
    assert second.answer.payloads == []


def test_secureSessionNeverInTheClear(tmp_path):
    """A session made over TLS (here through a trusted proxy) ignores requests without it."""
    web = BOSHNode(tmp_path)
    client = web.client(host="127.0.0.1")
    https = [("X-Forwarded-Proto", "https")]
    created = client.create(headers=https, wait="5")
    assert created.get("secure") == "true"
    clear = client.post()
    assert clear.answer is None and clear.transport.disconnecting
    assert web.resource.sessions
    # The same rid over TLS is the session's next request, held as any.
    again = client.post(headers=https, rid=client.rid)
    web.clock.advance(5)
    assert again.answer.payloads == []


def test_answerNoLongerKept(tmp_path):
    """A rid whose answer is forgotten (older than the window) gets item-not-found."""
    web = BOSHNode(tmp_path)
    client = web.login()
    old = client.rid - 2
    assert client.request(rid=old).terminate == "item-not-found"


def test_tooManySimultaneousRequests(tmp_path):
    """More unanswered requests than 'requests' end the session with policy-violation."""
    web = BOSHNode(tmp_path, http={"bosh_max_hold": 2})
    client = web.login(hold="2")
    rid = client.rid
    client.post(rid=rid + 1)
    client.post(rid=rid + 2)
    client.post(rid=rid + 4)  # early: waits for rid + 3
    answer = client.request(rid=rid + 5)
    assert answer.terminate == "policy-violation"
    assert web.resource.sessions == {}


def test_polling(tmp_path):
    """A polling session (hold=0) is answered at once; polling faster than 'polling' ends it."""
    web = BOSHNode(tmp_path)
    client = web.login(hold="0")
    assert client.request().payloads == []
    web.clock.advance(2)
    assert client.request().terminate is None
    answer = client.request()
    assert answer.terminate == "policy-violation"


def test_pause(tmp_path):
    """A pause answers every held request at once and stretches the inactivity allowed."""
    web = BOSHNode(tmp_path)
    client = web.login()
    held = client.post()
    answer = client.request(pause="100")
    assert held.answer is not None and answer.payloads == []
    web.clock.advance(99)
    assert web.resource.sessions
    web.clock.advance(2)
    assert web.resource.sessions == {}


def test_pauseIsCapped(tmp_path):
    """A pause longer than maxpause is cut to maxpause."""
    web = BOSHNode(tmp_path)
    client = web.login()
    client.request(pause="100000")
    web.clock.advance(121)
    assert web.resource.sessions == {}


def test_inactivity(tmp_path):
    """A session with no request held for 'inactivity' seconds ends, and its user goes offline."""
    web = BOSHNode(tmp_path)
    web.login()
    [stream] = web.factory.streams
    assert stream.session is not None
    web.clock.advance(59)
    assert web.resource.sessions
    web.clock.advance(2)
    assert web.resource.sessions == {}
    assert web.factory.streams == set() and stream.session is None


def test_inactivityHandsOnWhatWasNeverSent(tmp_path):
    """
    Messages that waited for a request that never came are not lost with a
    session that times out without stream management: the server knows
    they never left, so they go on to the account (here offline storage),
    with a <delay/>, as unacknowledged ones do.
    """
    for enableSM in (False, True):
        (tmp_path / str(enableSM)).mkdir()
        web = BOSHNode(tmp_path / str(enableSM), features=("messages", "sm"))
        client = web.login()
        if enableSM:
            # Stream management's own queue hands them on: once, not twice.
            assert client.request("<enable xmlns='urn:xmpp:sm:3'/>").names() == ["enabled"]
        stored = []
        web.node.server.hooks.add("message/offline",
                                  lambda event, stored=stored: stored.append(event.stanza) or True)
        tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
        for text in ("one", "two"):
            tcp.send("<message to='juliet@%s/web' type='chat'><body>%s</body></message>"
                     % (DOMAIN, text))
        assert stored == []
        web.clock.advance(61)
        assert web.resource.sessions == {}
        assert [str(m.body) for m in stored] == ["one", "two"]
        assert all(m.delay is not None and m["to"] == "juliet@" + DOMAIN for m in stored)


def test_heldRequestKeepsTheSessionAlive(tmp_path):
    """A long-poll is not inactivity: the session lives across many waits."""
    web = BOSHNode(tmp_path)
    client = web.login()
    for _ in range(5):
        held = client.post()
        web.clock.advance(60)
        assert held.answer.payloads == []
    assert web.resource.sessions


def test_ackAndReport(tmp_path):
    """A client ack behind an answer sent long ago gets 'report' and 'time' at once."""
    web = BOSHNode(tmp_path, http={"bosh_max_hold": 2})
    client = web.login(hold="2", ack="1")
    rid = client.rid
    web.clock.advance(5)
    answer = client.request(rid=rid + 1, ack=str(rid - 1))
    assert answer.get("report") == str(rid) and answer.get("time") == "5000"


def test_restart(tmp_path):
    """xmpp:restart after SASL gives the new features; payloads before it are refused."""
    web = BOSHNode(tmp_path)
    client = web.client()
    client.create()
    client.request(plainAuth("juliet", PASSWORDS["juliet"]))
    answer = client.request(bindIQ("web"))
    assert answer.terminate == "remote-stream-error" and "bad-format" in answer.text


def test_terminate(tmp_path):
    """type='terminate' delivers its payloads, answers type='terminate', ends the session."""
    web = BOSHNode(tmp_path)
    client = web.login()
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    answer = client.request(MESSAGE % ("romeo@%s/orchard" % DOMAIN, "bye"), type="terminate")
    assert answer.terminate == ""
    assert [str(m.body) for m in tcp.received().elements] == ["bye"]
    assert web.resource.sessions == {} and web.factory.streams == set()


def test_streamErrorIsRemoteStreamError(tmp_path):
    """A stream error ends the session: remote-stream-error with the stream:error inside."""
    web = BOSHNode(tmp_path)
    client = web.login()
    answer = client.request("<foo xmlns='jabber:client'/>")
    assert answer.terminate == "remote-stream-error"
    assert answer.names() == ["error"]


def test_hostUnknown(tmp_path):
    """A domain the node does not serve gets host-unknown; no 'to' improper-addressing."""
    web = BOSHNode(tmp_path)
    assert web.client().request(to="elsewhere.example", ver="1.11").terminate == "host-unknown"
    assert web.client().request(ver="1.11").terminate == "improper-addressing"


def test_badRequests(tmp_path):
    """Not XML, not a body, a bad rid or wait: bad-request, never a traceback."""
    web = BOSHNode(tmp_path)
    client = web.client()
    assert client.raw("<body").answer.terminate == "bad-request"
    assert client.raw("<notbody xmlns='x' rid='1'/>").answer.terminate == "bad-request"
    assert client.raw(body(to=DOMAIN, rid="abc", ver="1.11")).answer.terminate == "bad-request"
    assert client.raw(body(to=DOMAIN, rid="1", wait="-1", ver="1.11")).answer.terminate \
        == "bad-request"
    assert client.raw("<!DOCTYPE x [<!ENTITY a 'b'>]><body/>").answer.terminate == "bad-request"
    assert web.resource.sessions == {}


def test_oversizedPayload(tmp_path):
    """A payload over the (unauthenticated) stanza size ends the session: policy-violation."""
    web = BOSHNode(tmp_path)
    client = web.client()
    client.create()
    answer = client.request("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                            % (NS_SASL, "A" * 20000))
    assert answer.terminate == "policy-violation"
    assert web.resource.sessions == {}


def test_oversizedBodyRefusedUnread(tmp_path):
    """A request body over http.max_request_size gets 413 before it is read."""
    web = BOSHNode(tmp_path)
    exchange = web.client().raw("x" * 70000)
    assert exchange.answer.status == 413


def test_boundedBuffering(tmp_path):
    """What waits for a request beyond limits.send_queue_limit ends the session."""
    web = BOSHNode(tmp_path, limits={"send_queue_limit": 20000, "max_stanza_size": 20000})
    client = web.login()
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    for i in range(30):
        tcp.send("<message to='juliet@%s/web' type='chat'><body>%s</body></message>"
                 % (DOMAIN, "x" * 1000))
    assert web.resource.sessions == {}
    assert web.factory.streams == set()


def test_bufferedStanzasComeWithTheNextRequest(tmp_path):
    """Stanzas that arrive with no request held are carried by the next one, together."""
    web = BOSHNode(tmp_path)
    client = web.login()
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    for text in ("one", "two"):
        tcp.send("<message to='juliet@%s/web' type='chat'><body>%s</body></message>"
                 % (DOMAIN, text))
    answer = client.request()
    assert answer.names() == ["message", "message"]


def test_corsAndPreflight(tmp_path):
    """Browsers on listed origins get CORS headers and a preflight; others 403."""
    web = BOSHNode(tmp_path, http={"bosh_origins": ("https://chat.example.org",)})
    client = web.client()
    preflight = client.raw(b"", method="OPTIONS",
                           headers=[("Origin", "https://chat.example.org")]).answer
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "Content-Type"
    answer = client.raw(body(to=DOMAIN, rid="5", ver="1.11"),
                        headers=[("Origin", "https://chat.example.org")]).answer
    assert answer.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert answer.get("sid")
    refused = client.raw(body(to=DOMAIN, rid="5", ver="1.11"),
                         headers=[("Origin", "https://evil.example")]).answer
    assert refused.status == 403 and "access-control-allow-origin" not in refused.headers


def test_anyOriginByDefault(tmp_path):
    """Without bosh_origins, every origin may use BOSH."""
    answer = BOSHNode(tmp_path).client().raw(
        body(to=DOMAIN, rid="5", ver="1.11"), headers=[("Origin", "https://a.example")]).answer
    assert answer.headers["access-control-allow-origin"] == "*"


def test_sessionsCountAgainstTheAddress(tmp_path):
    """A BOSH session counts as a connection of its address (limits.connections_per_ip)."""
    web = BOSHNode(tmp_path, limits={"connections_per_ip": 2})
    web.node.connect("1.2.3.4")
    web.client().create()
    assert web.client().create().terminate == "policy-violation"
    assert web.client(host="5.6.7.8").create().get("sid")


def test_drainingNodeSendsToOtherURI(tmp_path):
    """A draining node answers a new session with see-other-uri and the same path."""
    web = BOSHNode(tmp_path)
    web.factory.redirect = "other.example:5222"
    answer = web.client().create()
    assert answer.terminate == "see-other-uri"
    [uri] = answer.payloads
    assert uri.text.startswith("http://other.example:") and uri.text.endswith("/http-bind")


def test_shutdown(tmp_path):
    """A stopping server ends held requests with system-shutdown."""
    web = BOSHNode(tmp_path)
    client = web.login()
    held = client.post()
    [stream] = web.factory.streams
    stream.streamError("system-shutdown")
    assert held.answer.terminate == "system-shutdown"


def test_streamManagement(tmp_path):
    """Stream management (XEP-0198) works as on TCP: the same session code."""
    web = BOSHNode(tmp_path, features=("sm",))
    client = web.login()
    answer = client.request("<enable xmlns='urn:xmpp:sm:3'/>")
    assert answer.names() == ["enabled"]
    answer = client.request("<iq xmlns='jabber:client' type='get' id='p1'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>")
    assert answer.names()[0] == "iq" and answer.names()[-1] == "a" and "h='1'" in answer.text


def test_getExplains(tmp_path):
    """A browser opening the URL learns what it is."""
    answer = BOSHNode(tmp_path).client().raw(b"", method="GET").answer
    assert answer.status == 200 and b"BOSH" in answer.raw
