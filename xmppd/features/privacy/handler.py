# -*- test-case-name: tests.test_privacy -*-
"""
Privacy lists (XEP-0016) for the clients that still use them: the
C{jabber:iq:privacy} protocol.  What a list does to stanzas is decided by
the domain's one policy check (L{xmppd.features.privacy.policy}), which
reads the block list (XEP-0191) first, so both protocols agree.

The protocol, for requests from the account itself (no C{to}, or its own
bare JID; anyone else gets C{service-unavailable}):

  - a get of an empty query gives the names of the lists, the session's
    active list and the account's default list (§2.3); a get of one
    C{<list name=''/>} gives that list, C{item-not-found} for a name not
    stored, and asking for more than one list is C{bad-request} (§2.3);
  - C{<active name=''/>} makes a list the session's active list and
    C{<active/>} declines it (the default list applies again, §2.4);
    C{<default name=''/>} and C{<default/>} set or decline the default
    list (§2.5); a name not stored is C{item-not-found}, and changing the
    default while another resource of the account uses it (it has no
    active list) is C{conflict};
  - C{<list name=''>} with items creates or replaces a list, without items
    removes it (§2.6, §2.8); removing a list another resource has active, or
    the default while another resource uses it, is C{conflict}.  Items are
    checked (L{xmppd.features.privacy.rules.parseList}): a malformed one is
    C{bad-request}; more than C{[privacy] max_items} items, or more than
    C{max_lists} lists, is C{policy-violation}.  Every connected resource
    of the account gets the change pushed (an IQ set with the list's name
    alone, §2.6).

The block list (XEP-0191) is shown as the list C{urn:xmpp:blocking}, one
deny-everything JID item per blocked JID, listed while it is not empty.  A
set of that list replaces the block list (without items: unblocks
everyone), and blocking clients get the pushes and the presence of a block
or an unblock; its items must be C{jid} items with action C{deny} and no
stanza kinds (else C{bad-request}), since a block list holds nothing else.
It applies to every session always, ahead of any other list, so it cannot
be made active or default (C{not-allowed}).

A set query carries exactly one child (C{bad-request} otherwise, §2.6).
Lists are kept as JSON under the account-data key C{"privacy"}, with the
default list's name; active lists belong to a session and end with it.

Implements: XEP-0016 1.7 (Privacy Lists)
"""

from __future__ import annotations

import dataclasses
import itertools
import json

from twisted.internet import defer
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppd.config import integer, option, section
from xmppd.core.stanzas import NS_CLIENT, ownAccountSender
from xmppd.features.privacy.policy import (BLOCKLIST_NAME, PRIVACY_KEY, blocklistAsList,
                                           policyOf)
from xmppd.features.privacy.rules import NS_PRIVACY, Stored, listElement, parseList

PRIVACY_GET = "/iq[@type='get']/query[@xmlns='%s']" % NS_PRIVACY
PRIVACY_SET = "/iq[@type='set']/query[@xmlns='%s']" % NS_PRIVACY


@section("privacy")
@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    max_lists: int = option(
        20, integer(minimum=1),
        "most privacy lists (XEP-0016) one account may keep; one more gets policy-violation")
    max_items: int = option(
        250, integer(minimum=1),
        "most items in one privacy list; a longer list gets policy-violation")


@implementer(IDisco)
class PrivacyHandler(XMPPHandler, IQHandlerMixin):
    """The privacy lists of one served domain's accounts; see the module docstring."""

    iqHandlers = {PRIVACY_GET: "onGet", PRIVACY_SET: "onSet"}

    def __init__(self, domain, maxLists: int = 20, maxItems: int = 250):
        XMPPHandler.__init__(self)
        self.domain = domain
        self.host = domain.domain
        self.maxLists = maxLists
        self.maxItems = maxItems
        self.policy = policyOf(domain)
        #: Bare JID -> L{Stored}, shared with the policy check.
        self.cache = self.policy.enablePrivacy()
        #: Bare JID -> lock: one account's changes are stored in order.
        self.locks: dict[str, defer.DeferredLock] = {}
        self.pushIds = itertools.count(1)

    def connectionInitialized(self) -> None:
        for query in self.iqHandlers:
            self.xmlstream.addObserver(query, self.handleRequest)

    # -- who asks ------------------------------------------------------------

    def account(self, iq: domish.Element) -> JID:
        """The session asking about its own account's lists, or service-unavailable."""
        return ownAccountSender(iq, self.host)

    def othersUsingDefault(self, sender: JID) -> bool:
        """Whether a resource of the account other than C{sender} has no active list."""
        active = self.policy.active
        return any(session.jid != sender and session.jid.full() not in active
                   for session in self.domain.sessions.sessionsOf(sender.userhostJID()))

    def othersWithActive(self, sender: JID, name: str) -> bool:
        active = self.policy.active
        return any(session.jid != sender and active.get(session.jid.full()) == name
                   for session in self.domain.sessions.sessionsOf(sender.userhostJID()))

    # -- get (§2.3) ----------------------------------------------------------

    async def onGet(self, iq: domish.Element) -> domish.Element:
        sender = self.account(iq)
        stored = await self.cache.load(sender.userhostJID())
        request = next(iq.elements(NS_PRIVACY, "query"))
        children = list(request.elements())
        query = domish.Element((NS_PRIVACY, "query"))
        blocked = await self.policy.blocklists.load(sender.userhostJID())
        if not children:
            active = self.policy.active.get(sender.full())
            if active is not None:
                query.addElement("active")["name"] = active
            if stored.default is not None:
                query.addElement("default")["name"] = stored.default
            if blocked:
                query.addElement("list")["name"] = BLOCKLIST_NAME
            for name in stored.lists:
                query.addElement("list")["name"] = name
            return query
        if len(children) != 1 or children[0].name != "list" or children[0].uri != NS_PRIVACY:
            raise StanzaError("bad-request", text="ask for the names, or for one list")
        name = children[0].getAttribute("name") or ""
        if name == BLOCKLIST_NAME and blocked:
            query.addChild(listElement(blocklistAsList(blocked)))
            return query
        privacyList = stored.lists.get(name)
        if privacyList is None:
            raise StanzaError("item-not-found")
        query.addChild(listElement(privacyList))
        return query

    # -- set (§2.4-§2.8) -----------------------------------------------------

    async def onSet(self, iq: domish.Element) -> None:
        sender = self.account(iq)
        request = next(iq.elements(NS_PRIVACY, "query"))
        children = list(request.elements())
        if len(children) != 1 or children[0].uri != NS_PRIVACY or \
                children[0].name not in ("active", "default", "list"):
            raise StanzaError("bad-request", text="set one of <active/>, <default/>, <list/>")
        command = children[0]
        lock = self.locks.get(sender.userhost())
        if lock is None:
            lock = self.locks[sender.userhost()] = defer.DeferredLock()
        await lock.acquire()
        try:
            return await self.setters[command.name](self, sender, command)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self.locks.pop(sender.userhost(), None)

    async def setActive(self, sender: JID, command: domish.Element) -> None:
        """§2.4: the session's active list, or none."""
        name = command.getAttribute("name")
        if name == BLOCKLIST_NAME:
            raise StanzaError("not-allowed", text="the block list always applies")
        if name is not None:
            stored = await self.cache.load(sender.userhostJID())
            if name not in stored.lists:
                raise StanzaError("item-not-found")
        self.policy.setActive(sender, name)

    async def setDefault(self, sender: JID, command: domish.Element) -> None:
        """§2.5: the account's default list, or none."""
        name = command.getAttribute("name")
        if name == BLOCKLIST_NAME:
            raise StanzaError("not-allowed", text="the block list always applies")
        account = sender.userhostJID()
        stored = await self.cache.load(account)
        if name is not None and name not in stored.lists:
            raise StanzaError("item-not-found")
        if name == stored.default:
            return
        if stored.default is not None and self.othersUsingDefault(sender):
            raise StanzaError("conflict", text="another resource uses the default list")
        await self.save(account, Stored(dict(stored.lists), name))

    async def setList(self, sender: JID, command: domish.Element) -> None:
        """§2.6, §2.8: create, replace or remove a list, then push the change."""
        account = sender.userhostJID()
        stored = await self.cache.load(account)
        name = command.getAttribute("name")
        if not name:
            raise StanzaError("bad-request", text="a list needs a name")
        if name == BLOCKLIST_NAME:
            await self.setBlocklist(account, command)
            self.push(account, name)
            return
        lists = dict(stored.lists)
        default = stored.default
        if any(True for _ in command.elements(NS_PRIVACY, "item")):
            privacyList = parseList(command, self.maxItems)
            if name not in lists and len(lists) >= self.maxLists:
                raise StanzaError("policy-violation", type="modify",
                                  text="an account keeps at most %d lists" % (self.maxLists,))
            lists[name] = privacyList
        else:
            if name not in lists:
                raise StanzaError("item-not-found")
            if self.othersWithActive(sender, name) or (
                    name == default and self.othersUsingDefault(sender)):
                raise StanzaError("conflict", text="another resource uses this list")
            del lists[name]
            if name == default:
                default = None
            if self.policy.active.get(sender.full()) == name:
                self.policy.setActive(sender, None)
        await self.save(account, Stored(lists, default))
        self.push(account, name)

    async def setBlocklist(self, account: JID, command: domish.Element) -> None:
        """The block list, set as a privacy list: it replaces the block list."""
        blocklist = parseList(command, self.policy.blocklistMax) if any(
            True for _ in command.elements(NS_PRIVACY, "item")) else None
        jids = []
        for item in blocklist.items if blocklist is not None else ():
            if item.type != "jid" or item.action != "deny" or item.kinds:
                raise StanzaError("bad-request", text="the block list holds only JIDs denied "
                                  "every stanza (type jid, action deny, no kinds)")
            jids.append(item.value)
        current = await self.policy.blocklists.load(account)
        await self.policy.changeBlocklist(account, jids,
                                          [jid for jid in current if jid not in jids])

    #: What a set names -> the method that does it.
    setters = {"active": setActive, "default": setDefault, "list": setList}

    def save(self, account: JID, stored: Stored) -> defer.Deferred:
        """Store first; the policy sees the new lists once they are stored."""
        accountData = self.domain.storage.accountData
        if not stored.lists:
            d = accountData.delete(account.user, account.host, PRIVACY_KEY)
        else:
            d = accountData.set(account.user, account.host, PRIVACY_KEY,
                                json.dumps(stored.toJSON(), ensure_ascii=False))
        return d.addCallback(lambda _: self.cache.keep(account, stored))

    def push(self, account: JID, name: str) -> None:
        """§2.6: every connected resource hears which list changed."""
        for session in self.domain.sessions.sessionsOf(account):
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = "privacy-push-%d" % (next(self.pushIds),)
            iq["from"] = account.full()
            iq["to"] = session.jid.full()
            iq.addElement((NS_PRIVACY, "query")).addElement("list")["name"] = name
            self.domain.router.route(iq)

    # -- disco ---------------------------------------------------------------

    def getDiscoInfo(self, requestor, target, nodeIdentifier=""):
        """The server announces the protocol."""
        if nodeIdentifier or target.user is not None or target.host != self.host:
            return []
        return [DiscoFeature(NS_PRIVACY)]

    def getDiscoItems(self, requestor, target, nodeIdentifier=""):
        return []


def makeHandler(domain) -> PrivacyHandler:
    config = domain.config.privacy
    return PrivacyHandler(domain, maxLists=config.max_lists, maxItems=config.max_items)
