# -*- test-case-name: tests.test_clientcaps -*-
"""
The C{clientcaps} feature: feeds a domain's L{EntityCaps} from the
presence its users send and receive (XEP-0115; what is learnt and how is
in L{xmppd.features.clientcaps.tracker}).

Hooks, all in the band C{STAMP} (after policy: a presence blocking stops is
not learnt from; before the presence feature, which takes the stanza):

  - C{"presence/self"}: a local user's own available presence is learnt
    from, its unavailable presence forgets;
  - C{"presence/bare"}, C{"presence/full"}: the same for presence from
    other domains (local users' presence is heard at C{"presence/self"});
  - C{"session/closed"}: a session's full JID is forgotten;
  - C{"iq/host"}: results and errors answering the domain's disco#info
    queries are taken here, and nothing else is.

Implements: XEP-0115 1.6.0 §6.3
"""

from __future__ import annotations

from wokkel.subprotocols import XMPPHandler

from xmppd.core.hooks import STAMP
from xmppd.features.clientcaps.tracker import capsOf


class ClientCapsHandler(XMPPHandler):
    """See the module docstring."""

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.caps = capsOf(domain)

    def connectionInitialized(self) -> None:
        hooks = self.domain.hooks
        hooks.add("presence/self", self.onSelf, STAMP)
        hooks.add("presence/bare", self.onInbound, STAMP)
        hooks.add("presence/full", self.onInbound, STAMP)
        hooks.add("session/closed", self.onSessionClosed, STAMP)
        hooks.add("iq/host", self.onHostIQ, STAMP)

    def onSelf(self, event) -> None:
        sender = event.sender
        if event.domain is not self.domain or sender is None or sender.resource is None:
            return None
        self.learn(sender, event.stanza)
        return None

    def onInbound(self, event) -> None:
        sender = event.sender
        if (event.domain is not self.domain or sender is None or sender.resource is None
                or sender.host == self.domain.domain):
            return None
        self.learn(sender, event.stanza)
        return None

    def learn(self, sender, presence) -> None:
        """An available presence announces caps; an unavailable one ends them."""
        stanzaType = presence.getAttribute("type")
        if stanzaType is None:
            self.caps.announced(sender, presence)
        elif stanzaType == "unavailable":
            self.caps.forget(sender)

    def onSessionClosed(self, session) -> None:
        if session.jid.host == self.domain.domain:
            self.caps.forget(session.jid)

    def onHostIQ(self, event):
        if event.domain is not self.domain or event.stanza.getAttribute("type") not in (
                "result", "error"):
            return None
        return True if self.caps.answered(event.stanza, event.sender) else None


def makeHandler(domain) -> ClientCapsHandler:
    return ClientCapsHandler(domain)
