# -*- test-case-name: tests.test_invisible -*-
"""
Invisible mode (XEP-0186): a session is online for its user but offline to
the user's contacts.

A session sends an IQ set with C{<invisible/>} (namespace
C{urn:xmpp:invisible:0}, or C{:1} with its C{probe} attribute, §3.1) and
C{<visible/>} (§3.2) with no C{to}, or its own bare JID or domain;
anyone else gets C{service-unavailable}.  The mode belongs to the session
(§2): it ends with it, and another resource of the account is not touched.

While invisible (§3.1.1), as the presence feature
(L{xmppd.features.presence}) reads it from the domain's presence state:

  - going invisible after initial presence sends unavailable presence from
    the resource to the contacts that had its presence (roster
    subscription "from" or "both");
  - later broadcasts reach the user's own resources but no contact;
  - probes and new subscribers find the resource offline (no presence is
    sent for it), exactly as for a resource that is really offline;
  - directed presence goes where the client sends it (rooms keep working),
    messages and IQs arrive as before;
  - with C{probe='false'} (version 1), initial presence sends no probes.

Going visible (§3.2) sends the resource's current presence to the same
contacts, so they see it online again.  The server announces both
namespaces in its disco#info and the account's (§4).

Implements: XEP-0186 0.14 (Invisible Command)
"""

from __future__ import annotations

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.events import SESSION_CLOSED
from xmppd.core.hooks import OBSERVE
from xmppd.core.stanzas import copyStanza, ownAccountSender, unavailableFrom
from xmppd.features.roster import rosterManager

NS_INVISIBLE_0 = "urn:xmpp:invisible:0"
NS_INVISIBLE_1 = "urn:xmpp:invisible:1"
NAMESPACES = (NS_INVISIBLE_0, NS_INVISIBLE_1)
#: slixmpp (1.8) sends <visible/> in this namespace, which the XEP never
#: defined; accepted so its users can come back, never announced.
NS_VISIBLE_SLIXMPP = "urn:xmpp:visible:0"

#: (element, namespace) of the commands understood.
COMMANDS = tuple(("invisible", ns) for ns in NAMESPACES) + tuple(
    ("visible", ns) for ns in NAMESPACES + (NS_VISIBLE_SLIXMPP,))


@implementer(IDisco)
class InvisibleHandler(XMPPHandler, IQHandlerMixin):
    """The invisible command for one served domain's sessions."""

    iqHandlers = {"/iq[@type='set']/%s[@xmlns='%s']" % (name, ns): "on" + name.capitalize()
                  for name, ns in COMMANDS}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.rosters = rosterManager(domain)

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)
        # After the presence feature has said goodbye for the session.
        self.domain.hooks.add(SESSION_CLOSED, self.onSessionClosed, OBSERVE)

    @property
    def state(self):
        return self.domain.presence

    def session(self, iq: domish.Element):
        """The requesting session; only the account itself may ask."""
        session = self.domain.sessions.get(ownAccountSender(iq, self.host))
        if session is None:
            raise StanzaError("service-unavailable")
        return session

    def onInvisible(self, iq: domish.Element) -> None:
        """§3.1: hide the session from contacts."""
        session = self.session(iq)
        command = next(iq.elements())
        probe = True
        if command.uri == NS_INVISIBLE_1:
            # XML Schema booleans: "false" or "0" turn probes off.
            probe = command.getAttribute("probe", "true") not in ("false", "0")
        full = session.jid.full()
        wasInvisible = self.state.isInvisible(full)
        self.state.setInvisible(full, probe)
        if not wasInvisible and session.available:
            self.rosters.runLogged(session.jid.user, self.tellContacts, session.jid,
                                   unavailableFrom(session))

    def onVisible(self, iq: domish.Element) -> None:
        """§3.2: show the session to contacts again, with its current presence."""
        session = self.session(iq)
        full = session.jid.full()
        if not self.state.isInvisible(full):
            return
        self.state.setVisible(full)
        presence = self.state.lastPresence(full) if session.available else None
        if presence is not None:
            self.rosters.runLogged(session.jid.user, self.tellContacts, session.jid, presence)

    async def tellContacts(self, jid: JID, presence: domish.Element) -> None:
        """Send C{presence} (from the resource C{jid}) to the contacts subscribed to it."""
        roster = await self.rosters.getRoster(jid.user)
        route = self.domain.router.route
        for contact, item in roster.items.items():
            if item.subscription in ("from", "both"):
                stanza = copyStanza(presence, to=contact)
                stanza["from"] = jid.full()
                route(stanza)

    def onSessionClosed(self, session) -> None:
        """The mode ends with the session (§2)."""
        if session.jid.host == self.host:
            self.state.setVisible(session.jid.full())

    # -- disco (§4) ------------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if nodeIdentifier or target.host != self.host or target.resource is not None:
            return []
        return [DiscoFeature(ns) for ns in NAMESPACES]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> InvisibleHandler:
    return InvisibleHandler(domain)
