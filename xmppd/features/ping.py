# -*- test-case-name: tests.test_ping -*-
"""
XMPP Ping (XEP-0199): answering pings, and pinging clients that went quiet.

Answering: a ping to the domain gets an empty result (XEP-0199 §4.2).  So
does a ping to the sender's own account (its bare JID, or no C{to}), which
the server handles on the account's behalf (RFC 6121 §8.5.2.1.3).  Pings to
other bare JIDs are left to the core, which answers C{service-unavailable}
the same whether the account exists or not (XEP-0199 §4.4 has clients ping
full JIDs, which are routed to the resource like any IQ).

Pinging (XEP-0199 §4.1): a TCP connection can die without either end
noticing, and its session would then linger, taking messages, forever.
Every client of the domain that has sent nothing for C{[ping]
idle_timeout} seconds gets a ping from the domain; if it still sends
nothing (any data counts, answer or not, through the stream's
C{lastReceived}) within C{[ping] timeout} seconds, its stream is closed with
C{connection-timeout} (RFC 6120 §4.9.3.4).  The check runs every
L{PingHandler.interval} seconds (half the shorter of the two times, at least
one), only while the domain has sessions, over the sessions this handler
heard being bound (hooks C{"session/bound"} and C{"session/closed"}); so a
ping goes out, and a silent stream is closed, up to one interval late.

Implements: XEP-0199 2.0.1
"""

from __future__ import annotations

import dataclasses
import itertools

from twisted.internet import task
from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import DELIVER
from xmppd.config import number, option, section
from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT

NS_PING = "urn:xmpp:ping"
PING_REQUEST = "/iq[@type='get']/ping[@xmlns='%s']" % NS_PING


@section("ping")
@dataclasses.dataclass(frozen=True)
class PingConfig:
    idle_timeout: float = option(
        300.0, number(minimum=0),
        "seconds a client may send nothing before the server pings it (XEP-0199); "
        "0 disables pinging")
    timeout: float = option(
        60.0, number(minimum=0),
        "seconds a pinged client has to send anything before its stream is closed "
        "with connection-timeout; 0 never closes it")


@implementer(IDisco)
class PingHandler(XMPPHandler, IQHandlerMixin):
    """See the module docstring."""

    log = Logger()
    iqHandlers = {PING_REQUEST: "onPing"}

    def __init__(self, domain, idleTimeout: float = 300.0, timeout: float = 60.0):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.idleTimeout = idleTimeout
        self.timeout = timeout
        shortest = min(t for t in (idleTimeout, timeout) if t) if idleTimeout else 0
        #: Seconds between two checks of the sessions.
        self.interval = max(1.0, shortest / 2)
        #: The domain's bound sessions -> when the ping went out, or None.
        self.watched: dict = {}
        self.ids = itertools.count(1)
        self.loop = None

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(PING_REQUEST, self.onRequest)

    # -- answering -----------------------------------------------------------

    def onRequest(self, iq: domish.Element) -> None:
        to = iq.getAttribute("to")
        if to is not None and "@" in to.partition("/")[0]:
            try:
                own = parseJID(to).userhost() == parseJID(iq["from"]).userhost()
            except (InvalidJID, KeyError):
                own = False
            if not own:
                return  # Another account: the core answers service-unavailable.
        self.handleRequest(iq)

    def onPing(self, iq: domish.Element) -> None:
        return None  # XEP-0199 §4.2: an empty result is the pong.

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is None and not nodeIdentifier:
            return [DiscoFeature(NS_PING)]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []

    # -- pinging idle clients --------------------------------------------------

    def register(self) -> None:
        if self.idleTimeout:
            self.domain.hooks.add("session/bound", self.onSessionBound, DELIVER)
            self.domain.hooks.add("session/closed", self.onSessionClosed, DELIVER)

    def onSessionBound(self, session) -> None:
        if session.jid.host != self.domain.domain:
            return
        if getattr(session.stream, "lastReceived", None) is None:
            return  # Not a stream that can tell when it last heard its peer.
        self.watched[session] = None
        if self.loop is None:
            self.loop = task.LoopingCall(self.check)
            self.loop.clock = self.domain.clock
            self.loop.start(self.interval, now=False)

    def onSessionClosed(self, session) -> None:
        self.watched.pop(session, None)
        if not self.watched and self.loop is not None:
            loop, self.loop = self.loop, None
            loop.stop()

    def check(self) -> None:
        """Ping the sessions that have been quiet, and close those that never answered."""
        now = self.domain.clock.seconds()
        for session, pingedAt in list(self.watched.items()):
            lastReceived = session.stream.lastReceived
            if pingedAt is not None:
                if lastReceived >= pingedAt:
                    self.watched[session] = pingedAt = None
                elif self.timeout and now - pingedAt >= self.timeout:
                    self.log.info("{jid} did not answer a ping: closing its stream",
                                  jid=session.jid.full())
                    self.watched.pop(session, None)
                    session.stream.streamError("connection-timeout",
                                               "no answer to a ping")
                    continue
                elif self.timeout or now - pingedAt < self.idleTimeout:
                    continue
            if now - lastReceived >= self.idleTimeout:
                self.ping(session)
                self.watched[session] = now

    def ping(self, session) -> None:
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["id"] = "ping-%d" % next(self.ids)
        iq["from"] = self.domain.domain
        iq["to"] = session.jid.full()
        iq.addElement((NS_PING, "ping"))
        self.domain.router.route(iq)


def makeHandler(domain) -> PingHandler:
    config = domain.config.ping
    handler = PingHandler(domain, config.idle_timeout, config.timeout)
    handler.register()
    return handler
