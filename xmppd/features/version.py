# -*- test-case-name: tests.test_version -*-
"""
Software version of the server (XEP-0092).

The domain answers C{jabber:iq:version} queries with the name "xmppd" and
the version of this package.  The operating system is left out unless
C{[version] show_os} is on: XEP-0092's security considerations warn that
it helps attackers pick exploits, and nobody needs it to talk to the
server.  Queries to an account's bare JID are not the server's to answer
(an account's software is its client's): they are left to the core, which
answers C{service-unavailable} (RFC 6121 §8.5.2.1.3).

Implements: XEP-0092 1.1
"""

from __future__ import annotations

import dataclasses
import platform

from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

import xmppd
from xmppd.config import boolean, option, section

NS_VERSION = "jabber:iq:version"
VERSION_REQUEST = "/iq[@type='get']/query[@xmlns='%s']" % NS_VERSION
NAME = "xmppd"


@section("version")
@dataclasses.dataclass(frozen=True)
class VersionConfig:
    show_os: bool = option(
        False, boolean(),
        "tell who asks for the software version (XEP-0092) the operating "
        "system too; off for privacy")


def operatingSystem() -> str:
    return ("%s %s" % (platform.system(), platform.release())).strip()


def toDomain(iq: domish.Element) -> bool:
    """Whether C{iq} is addressed to the domain itself rather than an account."""
    to = iq.getAttribute("to")
    return to is not None and "@" not in to.partition("/")[0]


@implementer(IDisco)
class VersionHandler(XMPPHandler, IQHandlerMixin):
    """Answers software version queries to the domain."""

    iqHandlers = {VERSION_REQUEST: "onVersion"}

    def __init__(self, showOS: bool = False):
        XMPPHandler.__init__(self)
        self.showOS = showOS

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(VERSION_REQUEST, self.onRequest)

    def onRequest(self, iq: domish.Element) -> None:
        # Left unhandled, a query to an account gets the core's answer.
        if toDomain(iq):
            self.handleRequest(iq)

    def onVersion(self, iq: domish.Element) -> domish.Element:
        query = domish.Element((NS_VERSION, "query"))
        query.addElement("name", content=NAME)
        query.addElement("version", content=xmppd.__version__)
        if self.showOS:
            query.addElement("os", content=operatingSystem())
        return query

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is None and not nodeIdentifier:
            return [DiscoFeature(NS_VERSION)]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> VersionHandler:
    return VersionHandler(showOS=domain.config.version.show_os)
