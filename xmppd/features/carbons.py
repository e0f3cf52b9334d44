# -*- test-case-name: tests.test_carbons -*-
"""
Message carbons (XEP-0280): every device of a user sees both sides of
every conversation, including what the user's other devices received or
sent.

A client turns carbons on and off for its own session with an IQ set of
C{<enable/>} or C{<disable/>} (§4, §5); the answer is an empty result, also
when the state does not change (§10.1).  The state lives in the session
directory (L{xmppd.core.sessions.ISessionDirectory.setCarbons}, the views'
C{carbons}), not here: in a cluster a message for the account is copied on
the node that routes it, which must know which of the account's resources
want copies wherever they are bound; the state ends with the binding (a
new bind of the same full JID starts without carbons), and the answer goes
once the other nodes can know it.  Requests must come
from a session of this domain (else C{not-allowed}, §4.1, §5.1), addressed
to nobody, the user's own bare JID or the domain; one addressed to another
account gets C{not-allowed} too (§5's example).  The domain announces
C{urn:xmpp:carbons:2} in disco (§3).

Copies never touch the original stanza: the original is cloned
(L{xmppd.core.stanzas.cloneStanza}), wrapped in C{<received/>} or
C{<sent/>} with a XEP-0297 C{<forwarded/>}, addressed from the user's bare JID to one resource, given
the original's type (§7, §8: SHOULD), and routed like any other stanza.
Each copy carries the in-process mark C{carbonCopy}, so stream management
and offline storage can tell a copy from a message.

In a cluster a message is copied once, on the node that routes it; the
copies travel to their resources' nodes like any stanza, nothing else is
done there.  A message the cluster routes again because its resource
went before its node could deliver it (the mark C{clusterRelayed}) was
copied the first time and is not copied again, and a copy whose resource
went that way is dropped, like the copy to a session that ended before
stream management could resend it: the original went elsewhere.

  - Received (§7): hooks C{"message/bare"} and C{"message/full"} at
    L{RECEIVED_PRIORITY}, below blocking (a blocked message gets no copy)
    and the archive (so the copy carries the archive's C{<stanza-id/>},
    XEP-0313 §3.5), above delivery (L{xmppd.features.messages}).  It
    takes nothing: it works out which resources RFC 6121 §8.5 delivery will
    give the message to (the same rule as L{xmppd.features.messages}:
    L{xmppd.core.delivery.mostAvailable}) and sends a copy to every other
    carbons-enabled session of the recipient, available or not.  A message that no resource
    gets (it goes to offline storage, or is bounced) gets no copies, so no
    device sees it twice when it is later delivered from storage.
  - Sent (§8): hook C{"c2s/outgoing"} at L{SENT_PRIORITY}, after the hooks
    that may stop a stanza (blocking), so only messages that are routed are
    copied; every carbons-enabled session of the sender other than the
    sending one gets a copy, whether or not the sender enabled carbons.  A
    message to the user's own account gets received copies only, so no
    device gets the same message twice.  When the archive has just given
    the message an id in the sender's archive (the in-process mark
    C{archiveSentId} set by L{xmppd.features.mam.archive}), the forwarded copy carries it as a
    C{<stanza-id/>} (XEP-0313 §3.5: SHOULD).

Eligibility (§6, the suggested rules): type "chat"; type "normal" (or none)
with a C{<body/>}.  Never errors (§6 needs message tracking for those),
groupchat, headlines, messages from a MUC room or its occupants (a
C{<x xmlns='http://jabber.org/protocol/muc#user'/>}, received side only),
copies themselves, replays of stored or unacknowledged messages (the
in-process mark C{replayed}: their copies went out the first time), and
messages with C{<private xmlns='urn:xmpp:carbons:2'/>} (§9) or the XEP-0334
C{<no-copy/>} hint (§4.3 of XEP-0334).  The receiving side removes
C{<private/>} before delivery (§9: SHOULD); the sending side keeps it for
the recipient's server.

Implements: XEP-0280 1.0.1 (Message Carbons), XEP-0297 1.0 (forwarding),
XEP-0334 0.3.0 (no-copy hint)
"""

from __future__ import annotations


from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.core.hooks import COPY, DELIVER
from xmppd.core.jid import InvalidJID, makeJID, parseJID
from xmppd.core.delivery import mostAvailable
from xmppd.core.stanzas import NS_CLIENT, cloneStanza, hasBody, hasChild, marks, messageType, meta

#: Carbons' interface to other features (the archive leaves copies out):
#: L{isCarbon}.  Anything else here is internal.
__all__ = ["NS_CARBONS", "isCarbon", "makeHandler"]

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"

ENABLE = "/iq[@type='set']/enable[@xmlns='%s']" % NS_CARBONS
DISABLE = "/iq[@type='set']/disable[@xmlns='%s']" % NS_CARBONS

#: After blocking (policy) and the archive (stamps), before delivery.
RECEIVED_PRIORITY = COPY
#: After every hook that may stop a client's stanza, and after the archive's.
SENT_PRIORITY = COPY


def isCarbon(stanza: domish.Element) -> bool:
    """Whether C{stanza} is itself a carbon copy (a C{<received/>} or C{<sent/>} wrapper)."""
    for child in stanza.elements():
        if child.uri == NS_CARBONS and child.name in ("received", "sent"):
            return True
    return False


def isEligible(stanza: domish.Element) -> bool:
    """
    §6: whether a message is one of the instant messages carbons copy; the
    checks shared by both directions (no C{<private/>}, no C{<no-copy/>}).
    """
    found = marks(stanza)
    if found.replayed or found.carbonCopy:
        return False
    kind = messageType(stanza)
    if kind != "chat" and not (kind == "normal" and hasBody(stanza)):
        return False
    if isCarbon(stanza) or hasChild(stanza, NS_CARBONS, "private"):
        return False
    return not hasChild(stanza, NS_HINTS, "no-copy")


def wrap(original: domish.Element, direction: str, account: str, to: str,
         stanzaId: tuple[str, str] | None = None) -> domish.Element:
    """
    The carbon copy of C{original} for the resource C{to} of C{account} (a
    bare JID string), C{direction} "received" or "sent" (§7, §8).
    C{stanzaId}: C{(by, id)} of a C{<stanza-id/>} (XEP-0359) to add to the
    forwarded copy.
    """
    message = domish.Element((NS_CLIENT, "message"))
    message["from"] = account
    message["to"] = to
    kind = original.getAttribute("type")
    if kind is not None:
        message["type"] = kind
    forwarded = message.addElement((NS_CARBONS, direction)).addElement((NS_FORWARD, "forwarded"))
    copy = cloneStanza(original)
    if stanzaId is not None:
        sid = copy.addElement((NS_SID, "stanza-id"))
        sid["by"], sid["id"] = stanzaId
    forwarded.addChild(copy)
    meta(message).carbonCopy = True
    return message


@implementer(IDisco)
class CarbonsHandler(XMPPHandler, IQHandlerMixin):
    """Carbons for one served domain; see the module docstring."""

    log = Logger()
    iqHandlers = {ENABLE: "onEnable", DISABLE: "onDisable"}

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)

    def register(self) -> None:
        hooks = self.domain.hooks
        # Only a cluster routes a message again (see the module docstring):
        # a lone node does not even ask.
        received = (self.onReceivedInCluster if self.domain.config.cluster.enabled
                    else self.onReceived)
        hooks.add("message/bare", received, RECEIVED_PRIORITY)
        hooks.add("message/full", received, RECEIVED_PRIORITY)
        hooks.add("c2s/outgoing", self.onSent, SENT_PRIORITY)
        # Enabling inline in a Bind 2 request (XEP-0386, L{xmppd.c2s.sasl2}).
        hooks.add("sasl2/features", self.onSASL2Features, DELIVER)
        hooks.add("bind2/inline", self.onBind2Inline, DELIVER)

    # -- enabling (§4, §5) ----------------------------------------------------

    def requester(self, iq: domish.Element):
        """The session asking, if it may ask; see the module docstring."""
        try:
            sender = parseJID(iq.getAttribute("from") or "")
        except InvalidJID:
            raise StanzaError("not-allowed")
        session = self.domain.sessions.get(sender) if sender.resource else None
        if session is None or sender.host != self.host:
            raise StanzaError("not-allowed")  # §4.1: not a client of this server.
        to = iq.getAttribute("to")
        if to is not None and to not in (self.host, sender.userhost()):
            raise StanzaError("not-allowed")  # §5: another user's carbons.
        return session

    def onEnable(self, iq: domish.Element):
        return self.domain.sessions.setCarbons(self.requester(iq).jid, True)

    def onDisable(self, iq: domish.Element):
        return self.domain.sessions.setCarbons(self.requester(iq).jid, False)

    def onSASL2Features(self, event) -> None:
        if event.stream.domain == self.host:
            event.bindFeatures.append(NS_CARBONS)

    def onBind2Inline(self, event):
        """
        C{<enable xmlns='urn:xmpp:carbons:2'/>} inside C{<bind/>}: the new
        session gets copies from the start; nothing is answered in
        C{<bound/>} (XEP-0386 §4 lists no answer for carbons).
        """
        stream = event.stream
        if stream.domain != self.host or stream.session is None:
            return None
        if next(event.request.elements(NS_CARBONS, "enable"), None) is None:
            return None
        return self.domain.sessions.setCarbons(stream.session.jid, True)

    @staticmethod
    def isEnabled(session) -> bool:
        return session.carbons

    # -- IDisco (§3) ----------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        if target.user is None and not nodeIdentifier:
            return [DiscoFeature(NS_CARBONS)]
        return []

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []

    # -- received copies (§7) -------------------------------------------------

    def deliveredTo(self, event, sessions) -> list:
        """
        The sessions RFC 6121 §8.5 delivery (L{xmppd.features.messages})
        will give the message to, among C{sessions}, the recipient's.
        """
        recipient = event.recipient
        kind = messageType(event.stanza)
        if recipient.resource is not None:
            session = self.domain.sessions.get(recipient)
            if session is not None:
                return [session]  # §8.5.3.1
            if kind != "chat":
                return []  # §8.5.3.2.1: bounced.
        if kind not in ("normal", "chat"):
            return []
        return mostAvailable(sessions)  # §8.5.2.1.1

    def onReceived(self, event):
        """C{message/bare}, C{message/full}: copy to the recipient's other devices."""
        if event.domain is not self.domain:
            return None
        stanza = event.stanza
        directory = self.domain.sessions
        if not directory.carbonSessions:
            # Nobody has carbons on: only the SHOULD of §9 remains to do.
            self.removePrivate(stanza)
            return None
        if self.removePrivate(stanza):
            return None
        if not isEligible(stanza):
            return None
        if hasChild(stanza, NS_MUC_USER, "x"):
            return None  # §6: from a MUC room or one of its occupants.
        recipient = event.recipient
        # The recipient's resources, looked up once for both questions.
        sessions = directory.sessionsOf(recipient)
        if not any(session.carbons for session in sessions):
            return None
        targets = self.deliveredTo(event, sessions)
        if not targets:
            return None  # Stored or bounced: no device has it, so no copy either.
        sender = event.sender
        account = recipient.userhost()
        for session in sessions:
            if not session.carbons or session in targets:
                continue
            if sender is not None and session.jid == sender:
                continue  # The user's own device sent it (see the module docstring).
            self.domain.router.route(wrap(stanza, "received", account, session.jid.full()))
        return None

    def onReceivedInCluster(self, event):
        """
        L{onReceived} on a node of a cluster, where a message may be routed
        again (see the module docstring): copied where it was first routed,
        so not again; a copy for a resource that went is dropped (C{True}
        stops it).
        """
        stanza = event.stanza
        if event.domain is not self.domain or not marks(stanza).clusterRelayed:
            return self.onReceived(event)
        recipient = event.recipient
        if (recipient.resource is not None and isCarbon(stanza)
                and stanza.getAttribute("from") == recipient.userhost()
                and self.domain.sessions.get(recipient) is None):
            return True
        self.removePrivate(stanza)
        return None

    @staticmethod
    def removePrivate(stanza: domish.Element) -> bool:
        """§9: drop C{<private/>} from a message about to be delivered; whether there was one."""
        found = [child for child in stanza.elements()
                 if child.uri == NS_CARBONS and child.name == "private"]
        for child in found:
            stanza.children.remove(child)
        return bool(found)

    # -- sent copies (§8) -----------------------------------------------------

    def onSent(self, event):
        """C{c2s/outgoing}: copy a user's message to the user's other devices."""
        session, stanza = event.session, event.stanza
        if (session is None or stanza.name != "message"
                or not self.domain.sessions.carbonSessions or session.jid.host != self.host):
            return None
        recipient = event.recipient
        if recipient is None or recipient.userhost() == session.jid.userhost():
            return None  # To the user's own account: received copies cover it.
        if not isEligible(stanza):
            return None
        account = makeJID(session.jid.user, session.jid.host)
        stanzaId = marks(stanza).archiveSentId
        for other in self.domain.sessions.sessionsOf(account):
            if not other.carbons or other is session:
                continue
            self.domain.router.route(
                wrap(stanza, "sent", account.full(), other.jid.full(), stanzaId))
        return None


def makeHandler(domain) -> CarbonsHandler:
    handler = CarbonsHandler(domain)
    handler.register()
    return handler
