# -*- test-case-name: tests.test_nickname -*-
"""
The C{"nickname"} feature: user nickname (XEP-0172) in presence
subscription requests.

Publishing and notifying a nickname (§4.5, the PEP node
C{http://jabber.org/protocol/nick}) is plain PEP (L{xmppd.features.pep})
and needs nothing here.  XEP-0172 §4.1 says a client SHOULD include the
user's nickname in a subscription request; nothing in the XEP forbids the
user's server to help (it is written for clients, and the nick is the
sender's own assertion either way), and many clients leave it out while
their users expect contacts to see who is asking.  So when a local user
sends C{<presence type='subscribe'/>} without a C{<nick/>}, the server adds
the nickname the account published to its nick node, if that node's access
model is C{open} or C{presence} (a nickname the user restricted to a roster
group or a whitelist is never handed to someone not yet a contact).  A
C{<nick/>} the client put there is left alone.  The note of §4.1 (no nick
in presence broadcasts, available or unavailable) is kept: only
C{subscribe} is touched.

The nickname is kept per account (bounded, least recently used out),
filled from PEP once and read again after the account publishes to the node
(C{"pep/published"}); at most C{[nickname] accounts_cached} accounts.

Hooks used: C{"pep/published"} (L{xmppd.features.pep.handler.PEP_PUBLISHED}),
C{"c2s/outgoing"} (band STAMP), C{"account/removed"}.

Implements: XEP-0172 1.1
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppd.config import integer, option, section
from xmppd.core.hooks import OBSERVE, STAMP
from xmppd.features.pep.handler import PEP_PUBLISHED, pepOf

__all__ = ["NS_NICK", "NicknameConfig", "NicknameHandler", "makeHandler"]

NS_NICK = "http://jabber.org/protocol/nick"

@section("nickname")
@dataclasses.dataclass(frozen=True)
class NicknameConfig:
    accounts_cached: int = option(
        10000, integer(1),
        "accounts whose published nickname is kept in memory for their "
        "subscription requests (XEP-0172); others read it from PEP once")


#: Access models under which the nickname may go to someone not yet a contact.
SHAREABLE = ("open", "presence")


class NicknameHandler(XMPPHandler):
    """See the module docstring."""

    log = Logger()

    def __init__(self, domain):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.maxCached = domain.config.nickname.accounts_cached
        #: Bare JID -> the nickname to add, "" for none.
        self.nicks: OrderedDict[str, str] = OrderedDict()
        #: Nicknames published since start: a look-up that began before one
        #: is not remembered (it may have read the old nickname).
        self.changes = 0

    def connectionInitialized(self) -> None:
        hooks = self.domain.hooks
        hooks.add(PEP_PUBLISHED, self.onPublished, OBSERVE)
        hooks.add("c2s/outgoing", self.onOutgoing, STAMP)
        hooks.add("account/removed", self.onAccountRemoved, OBSERVE)

    def remember(self, owner: str, nick: str) -> None:
        self.nicks[owner] = nick
        self.nicks.move_to_end(owner)
        while len(self.nicks) > self.maxCached:
            self.nicks.popitem(last=False)

    def onAccountRemoved(self, event) -> None:
        self.nicks.pop("%s@%s" % (event.username, event.domain), None)

    def onPublished(self, event) -> None:
        if event.node == NS_NICK and event.owner.host == self.domain.domain:
            # The access model may have changed too: read both again on use.
            self.nicks.pop(event.owner.userhost(), None)
            self.changes += 1

    async def lookUp(self, owner) -> str:
        """The nickname of C{owner} to add to its subscription requests, "" for none."""
        pep = pepOf(self.domain)
        if pep is None or await pep.accessModelOf(owner, NS_NICK) not in SHAREABLE:
            return ""
        found = await pep.itemsOf(owner, NS_NICK, maxItems=1)
        payload = found[0][1] if found else None
        if payload is None or payload.uri != NS_NICK or payload.name != "nick":
            return ""
        return str(payload).strip()

    def onOutgoing(self, event):
        stanza, session = event.stanza, event.session
        if (stanza.name != "presence" or session is None
                or stanza.getAttribute("type") != "subscribe"
                or session.jid.host != self.domain.domain
                or next(stanza.elements(NS_NICK, "nick"), None) is not None):
            return None
        owner = session.jid.userhostJID()
        known = self.nicks.get(owner.full())
        if known is not None:
            self.nicks.move_to_end(owner.full())
            addNick(stanza, known)
            return None
        d = defer.ensureDeferred(self.lookUp(owner))
        changes = self.changes

        def found(nick):
            if changes == self.changes:
                self.remember(owner.full(), nick)
            addNick(stanza, nick)

        d.addCallback(found)
        d.addErrback(lambda failure: self.log.failure("Nickname: reading PEP", failure))
        return d


def addNick(presence: domish.Element, nick: str) -> None:
    if nick:
        presence.addElement((NS_NICK, "nick"), content=nick)


def makeHandler(domain) -> NicknameHandler:
    return NicknameHandler(domain)
