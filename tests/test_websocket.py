"""
XMPP over WebSocket (RFC 7395, L{xmppd.c2s.websocket}) in memory: the
handshake's checks, the framing, the same client stream as TCP, and bad
input, with a whole server in memory (L{tests.streamhelpers.Node}), an HTTP
channel over a fake transport and a wsproto client (L{tests.wshelpers}),
time from a L{Clock}.
"""

from __future__ import annotations

import dataclasses
import re

from twisted.web.resource import Resource

from xmppd.c2s.listeners import C2SFactory
from xmppd.c2s.websocket import NS_FRAMING, XMPPWebSocketResource, standalone
from xmppd.http.service import WebSite
from tests.streamhelpers import DOMAIN, Node, plain
from tests.wshelpers import MemoryWebSocket

OPEN = "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, DOMAIN)
CLOSE = "<close xmlns='%s'/>" % (NS_FRAMING,)
BIND = ("<iq xmlns='jabber:client' type='set' id='b1'>"
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>")


class WebNode:
    """A L{Node} with the WebSocket resource on a site of its own."""

    def __init__(self, tmp_path, http=None, **kwargs):
        self.node = Node(tmp_path, **kwargs)
        self.config = dataclasses.replace(self.node.config.http, **(http or {}))
        self.factory = C2SFactory(self.node.server, None, False, self.node.peers,
                                  self.node.authFailures)
        root = Resource()
        root.putChild(b"xmpp-websocket",
                      XMPPWebSocketResource(self.factory, self.config.websocket_origins))
        self.site = WebSite(root, self.config, self.node.limits.connections_per_ip,
                            reactor=self.node.clock)

    def connect(self, **kwargs) -> MemoryWebSocket:
        return MemoryWebSocket(self.site, **kwargs)

    def login(self, user: str = "juliet", **kwargs) -> MemoryWebSocket:
        ws = self.connect(**kwargs)
        assert ws.status == 101, (ws.status, ws.body)
        ws.send(OPEN)
        [success] = ws.send(plain(user, self.node_password(user)).decode())
        assert success.startswith("<success"), success
        assert len(ws.send(OPEN)) == 2
        [bound] = ws.send(BIND)
        assert "type='result'" in bound, bound
        return ws

    def node_password(self, user: str) -> str:
        from tests.streamhelpers import PASSWORDS
        return PASSWORDS[user]


def test_handshakeAnswersTheSubprotocol(tmp_path):
    """RFC 7395 §3.2: the server's answer names the xmpp subprotocol."""
    ws = WebNode(tmp_path).connect(subprotocols=("chat", "xmpp"))
    assert ws.status == 101
    assert ws.subprotocol == "xmpp"


def test_openAndFeatures(tmp_path):
    """C{<open/>} is answered by C{<open/>} and the features, each message standalone."""
    ws = WebNode(tmp_path).connect()
    header, features = ws.send(OPEN)
    assert re.match(r"^<open xmlns='%s' id='[^']+' from='%s' version='1.0' xml:lang='en'/>$"
                    % (NS_FRAMING, DOMAIN), header), header
    assert features.startswith("<stream:features xmlns:stream='http://etherx.jabber.org/"
                               "streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
    # No STARTTLS: TLS is the HTTP connection's.
    assert "starttls" not in features


def test_sameSessionCodeAsTCP(tmp_path):
    """A WebSocket client logs in, binds, and chats with a TCP client of the same node."""
    web = WebNode(tmp_path)
    ws = web.login("juliet")
    tcp = web.node.connect("5.6.7.8").login("romeo", "orchard")
    assert ws.send("<message xmlns='jabber:client' to='romeo@%s/orchard' type='chat'>"
                   "<body>hi</body></message>" % DOMAIN) == []
    [message] = tcp.received().elements
    assert str(message.body) == "hi"
    assert message["from"] == "juliet@%s/web" % DOMAIN
    tcp.send("<message to='juliet@%s/web' type='chat'><body>hello</body></message>" % DOMAIN)
    [received] = ws.read()
    assert received.startswith("<message xmlns='jabber:client' ")
    assert "<body>hello</body>" in received


def test_clientCloses(tmp_path):
    """RFC 7395 §3.6: the client's C{<close/>} is answered by C{<close/>} and a close frame."""
    ws = WebNode(tmp_path).login()
    assert ws.send(CLOSE) == [CLOSE]
    assert ws.closeCode == 1000


def test_streamErrorThenClose(tmp_path):
    """A stream error (here an unknown host) is followed by C{<close/>} (§3.6)."""
    ws = WebNode(tmp_path).connect()
    messages = ws.send("<open xmlns='%s' to='elsewhere.example' version='1.0'/>" % NS_FRAMING)
    assert messages[0].startswith("<open ")
    assert messages[1].startswith("<stream:error xmlns:stream='http://etherx.jabber.org/"
                                  "streams'><host-unknown ")
    assert messages[2:] == [CLOSE]
    assert ws.closeCode == 1000


def test_seeOtherUri(tmp_path):
    """A draining node sends a new WebSocket to the same URL on the other host (§3.6.1)."""
    web = WebNode(tmp_path)
    web.factory.redirect = "other.example:5222"
    ws = web.connect()
    messages = ws.send(OPEN)
    assert messages[0].startswith("<open ")
    assert re.match(r"^<close xmlns='%s' see-other-uri=\"ws://other\.example:\d+"
                    r"/xmpp-websocket\"/>$" % NS_FRAMING, messages[1]), messages[1]


def test_restartNeedsOpen(tmp_path):
    """After SASL the client opens again; a stanza first is a stream error."""
    web = WebNode(tmp_path)
    ws = web.connect()
    ws.send(OPEN)
    ws.send(plain("juliet", web.node_password("juliet")).decode())
    messages = ws.send(BIND)
    assert "<bad-format " in messages[-2] and messages[-1] == CLOSE


def test_oneElementPerMessage(tmp_path):
    """Two elements in one message, or one over two messages, are refused (§3.3.3)."""
    ws = WebNode(tmp_path).login()
    messages = ws.send("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>")
    assert any("<bad-format " in m for m in messages), messages
    (tmp_path / "2").mkdir()
    ws = WebNode(tmp_path / "2").login()
    # The message ends inside the stanza: refused at once.
    messages = ws.send("<message xmlns='jabber:client' to='romeo@%s'><body>half" % DOMAIN)
    assert "<bad-format " in messages[0] and messages[1] == CLOSE


def test_notXML(tmp_path):
    """A message that is not well-formed is C{not-well-formed}; text alone is C{bad-format}."""
    ws = WebNode(tmp_path).connect()
    ws.send(OPEN)
    messages = ws.send("<a></b>")
    assert "<not-well-formed " in messages[0] and messages[1] == CLOSE
    (tmp_path / "2").mkdir()
    ws = WebNode(tmp_path / "2").connect()
    ws.send(OPEN)
    messages = ws.send("hello")
    assert "<bad-format " in messages[0] and messages[1] == CLOSE


def test_binaryMessage(tmp_path):
    """XMPP travels in text messages (§3.3.3)."""
    ws = WebNode(tmp_path).connect()
    ws.send(OPEN)
    messages = ws.sendBytes(b"<presence/>")
    assert "<bad-format " in messages[0] and messages[1] == CLOSE


def test_whitespaceMessageIgnored(tmp_path):
    """A whitespace-only message (a keepalive some clients send) is ignored."""
    ws = WebNode(tmp_path).login()
    assert ws.send(" \n") == []
    assert not ws.stream.closing


def test_oversizedMessageRefusedBeforeItIsWhole(tmp_path):
    """
    A message over the stanza size limit gets C{policy-violation} while it
    is still arriving: its pieces are parsed as they come, never buffered
    whole.
    """
    web = WebNode(tmp_path, limits={"max_stanza_size": 10000,
                                    "max_stanza_size_unauthenticated": 4096})
    ws = web.login()
    ws.send("<message xmlns='jabber:client' to='romeo@%s'><body>" % DOMAIN, finished=False)
    for _ in range(5):
        ws.send("x" * 4000, finished=False)
        if ws.messages and ws.messages[-1] == CLOSE:
            break
    assert "<policy-violation " in ws.messages[-2], ws.messages[-2:]
    assert ws.messages[-1] == CLOSE
    assert web.node.server.sessions is not None


def test_subprotocolRequired(tmp_path):
    """Without the xmpp subprotocol the handshake gets 400 (RFC 6455 §4.2.1)."""
    ws = WebNode(tmp_path).connect(subprotocols=())
    assert ws.status == 400
    assert b"xmpp" in ws.body


def test_notAnUpgrade(tmp_path):
    """A plain GET gets 426 Upgrade Required."""
    web = WebNode(tmp_path)
    ws = web.connect(handshake=False)
    ws.channel.dataReceived(b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert ws.transport.value().startswith(b"HTTP/1.1 426 ")
    assert b"upgrade: websocket" in ws.transport.value().lower()


def test_origins(tmp_path):
    """With C{http.websocket_origins} set, other origins get 403; listed ones connect."""
    web = WebNode(tmp_path, http={"websocket_origins": ("https://chat.example.org",)})
    assert web.connect(origin="https://evil.example").status == 403
    assert web.connect(origin="https://chat.example.org").status == 101
    # Not a browser: nothing to check.
    assert web.connect().status == 101


def test_connectionsPerIPSharedWithTCP(tmp_path):
    """
    C{limits.connections_per_ip} counts WebSocket and TCP clients together:
    over it the handshake gets 429, and a TCP connection is refused too.
    """
    web = WebNode(tmp_path, limits={"connections_per_ip": 2})
    first = web.connect(host="9.9.9.9")
    second = web.connect(host="9.9.9.9")
    assert (first.status, second.status) == (101, 101)
    assert web.connect(host="9.9.9.9").status == 429
    assert web.connect(host="9.9.9.8").status == 101
    tcp = web.node.connect("9.9.9.9")
    assert b"too many connections" in tcp.transport.value()
    first.lose()
    assert web.connect(host="9.9.9.9").status == 101


def test_negotiationTimeout(tmp_path):
    """A WebSocket that never logs in is closed after C{limits.negotiation_timeout}."""
    web = WebNode(tmp_path)
    ws = web.connect()
    ws.send(OPEN)
    web.node.clock.advance(web.node.limits.negotiation_timeout)
    messages = ws.read()
    assert "<connection-timeout " in messages[0] and messages[1] == CLOSE


def test_behindProxy(tmp_path):
    """
    Through a trusted proxy that says HTTPS, the stream is secure (no
    encryption-required) but has no channel binding to offer; the client's
    address is the one the proxy reports.
    """
    web = WebNode(tmp_path, c2s={"require_tls": True, "plain_without_tls": False})
    ws = web.connect(host="127.0.0.1", extra=[(b"x-forwarded-proto", b"https"),
                                               (b"x-forwarded-for", b"203.0.113.7")])
    features = ws.send(OPEN)[1]
    assert "<mechanism>SCRAM-SHA-256</mechanism>" in features
    assert "PLUS" not in features
    assert ws.stream.secure
    assert ws.stream.peerAddress == "203.0.113.7"
    assert web.node.peers.count("203.0.113.7") == 1


def test_untrustedProxyHeadersIgnored(tmp_path):
    """The same headers from an address that is no trusted proxy change nothing."""
    web = WebNode(tmp_path, c2s={"require_tls": True, "plain_without_tls": False})
    ws = web.connect(host="198.51.100.1", extra=[(b"x-forwarded-proto", b"https"),
                                                  (b"x-forwarded-for", b"203.0.113.7")])
    ws.send(OPEN)
    assert not ws.stream.secure
    assert ws.stream.peerAddress == "198.51.100.1"


def test_standalone():
    """Serialized elements get the declarations a message of their own needs."""
    assert standalone("<message to='a'/>") == "<message xmlns='jabber:client' to='a'/>"
    assert standalone("<iq/>") == "<iq xmlns='jabber:client'/>"
    assert standalone("<presence>x</presence>") == \
        "<presence xmlns='jabber:client'>x</presence>"
    assert standalone("<message xmlns='jabber:component:accept'/>") == \
        "<message xmlns='jabber:component:accept'/>"
    assert standalone("<stream:features><a/></stream:features>") == \
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><a/>" \
        "</stream:features>"
    assert standalone("<r xmlns='urn:xmpp:sm:3'/>") == "<r xmlns='urn:xmpp:sm:3'/>"
    assert standalone("<iqx/>") == "<iqx/>"


def test_oversizedFrameRefusedBeforeItIsWhole(tmp_path):
    """One huge frame is refused the same way, after little more than the limit."""
    from wsproto.events import Message
    web = WebNode(tmp_path, limits={"max_stanza_size": 10000,
                                    "max_stanza_size_unauthenticated": 4096})
    ws = web.login()
    frame = ws.ws.send(Message(data="<message xmlns='jabber:client'><body>" + "x" * 200000
                               + "</body></message>"))
    read = 0
    messages = []
    while read < len(frame) and not messages:
        ws.channel.dataReceived(frame[read:read + 8192])
        read += 8192
        messages = ws.read()
    assert read <= 10000 + 2 * 8192
    assert "<policy-violation " in messages[0] and messages[1] == CLOSE


def test_streamManagement(tmp_path):
    """Stream management (XEP-0198) works as on TCP: the same session code."""
    web = WebNode(tmp_path, features=("sm",))
    ws = web.login()
    [enabled] = ws.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    assert enabled.startswith("<enabled xmlns='urn:xmpp:sm:3' ")
    ws.send("<iq xmlns='jabber:client' type='get' id='p1'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert ws.send("<r xmlns='urn:xmpp:sm:3'/>")[-1] == "<a xmlns='urn:xmpp:sm:3' h='1'/>"


def test_startTagCutByTheMessageEnd(tmp_path):
    """An element, then a start tag the message ends inside of, even in a frame of its own."""
    ws = WebNode(tmp_path).login()
    ws.send("<presence xmlns='jabber:client'/><presence", finished=False)
    messages = ws.send("", finished=True)
    assert any("<bad-format " in m for m in messages), messages


PING_IQ = "<iq xmlns='jabber:client' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>"


def results(messages: list[str]) -> list[str]:
    """The ids of the IQ answers (result or error) among C{messages}."""
    return [re.search(r" id='([^']*)'", m).group(1) for m in messages if m.startswith("<iq")]


def test_framesInPieces(tmp_path):
    """Frames split at every byte and several in one read, with a ping between them: each message is read once and whole, and the ping is answered (the fast path of whole text frames, and control frames through wsproto)."""
    from wsproto.events import Message, Ping
    ws = WebNode(tmp_path).login()
    data = (ws.ws.send(Message(data=PING_IQ % "p1")) + ws.ws.send(Ping(b"hi"))
            + ws.ws.send(Message(data=PING_IQ % ("p2" + "x" * 300))))
    for i in range(len(data)):
        ws.channel.dataReceived(data[i:i + 1])
    assert b"\x8a\x02hi" in ws.transport.value(), "the ping is answered with its payload"
    assert results(ws.read()) == ["p1", "p2" + "x" * 300]
    ws.channel.dataReceived(ws.ws.send(Message(data=PING_IQ % "p3"))
                            + ws.ws.send(Message(data=PING_IQ % "p4")))
    assert results(ws.read()) == ["p3", "p4"]


def test_framesThePathDoesNotTake(tmp_path):
    """A fragmented message, and a frame larger than the fast path reads, are wsproto's; the stream goes on the same."""
    from xmppd.c2s.websocket import FAST_FRAME
    ws = WebNode(tmp_path).login()
    assert results(ws.send(PING_IQ % "f1")) == ["f1"]
    ws.send("<iq xmlns='jabber:client' type='get' id='f2'>", finished=False)
    assert results(ws.send("<ping xmlns='urn:xmpp:ping'/></iq>")) == ["f2"]
    big = "b" * (FAST_FRAME + 100)
    assert results(ws.send(PING_IQ % big)) == [big]
    assert results(ws.send(PING_IQ % "f3")) == ["f3"]


def test_unmaskedFrameRefused(tmp_path):
    """A client frame without a mask fails the WebSocket (RFC 6455 §5.1: 1002), as wsproto decides."""
    ws = WebNode(tmp_path).login()
    payload = (PING_IQ % "u1").encode()
    ws.channel.dataReceived(b"\x81" + bytes((len(payload),)) + payload)
    ws.read()
    assert ws.closeCode == 1002
