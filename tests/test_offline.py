"""
Tests for L{offline.handler}: offline messages (XEP-0160) kept for an
account with no available resource and delivered at its next available
presence, driven through the router with XML literals on a memory store.
"""

import json

import pytest
from twisted.internet import defer

from offline.handler import (BATCH, NS_MSGOFFLINE, OFFLINE_IMPORT_KEY, NotStored,
                             OfflineHandler, delayStamp)
from tests.domainhelpers import DOMAIN, Domain, errorCondition
from xmppd.core.stanzas import holders, marks, meta
from xmppd.cli import portability
from xmppd.storage.interfaces import NoSuchUser, StorageError

ROMEO = "romeo@example.org/orchard"
JULIET = "juliet@example.org"
BALCONY = JULIET + "/balcony"
CHAMBER = JULIET + "/chamber"
FEATURES = ("roster", "presence", "messages", "disco", "offline")

#: When the test clock says the first message arrived (2002-09-10T23:08:25Z).
NOW = 1031699305.0


def chat(body="Wherefore art thou?", to=JULIET, id="m1", kind="chat", extra=""):
    typeAttr = " type='%s'" % kind if kind else ""
    toAttr = " to='%s'" % to if to else ""
    return ("<message from='%s'%s id='%s'%s><body>%s</body>%s</message>"
            % (ROMEO, toAttr, id, typeAttr, body, extra))


def messages(stream):
    """The messages a stream got since the last look (presence left out)."""
    return [s for s in stream.take() if s.name == "message"]


def offlineAcceptance(stanza):
    """
    The Deferred offline storage put in the stanza's acceptance list: the
    last one (message delivery may hold one of its own while it looks the
    account up).
    """
    acceptance = holders(stanza)
    assert acceptance
    return acceptance[-1]


def delayOf(stanza):
    delays = [c for c in stanza.elements() if c.name == "delay" and c.uri == "urn:xmpp:delay"]
    return delays


class GatedCalls:
    """
    Wraps a storage object so that the calls named in C{gated} answer only
    when the test calls L{open}: storage that takes its time, as SQLite does.
    """

    def __init__(self, wrapped, *gated):
        self.wrapped = wrapped
        self.gated = set(gated)
        self.held = []
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self.wrapped, name)
        if name not in self.gated:
            return method

        def call(*args, **kwargs):
            self.calls.append(name)
            answer = defer.Deferred()
            self.held.append((method, args, kwargs, answer))
            return answer

        return call

    def open(self):
        """Answer every held call (and those they cause), in order."""
        while self.held:
            method, args, kwargs, answer = self.held.pop(0)
            defer.maybeDeferred(method, *args, **kwargs).chainDeferred(answer)


class FailingStore:
    def __init__(self, wrapped, error):
        self.wrapped = wrapped
        self.error = error

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    def store(self, *args):
        return defer.fail(self.error)


def makeDomain(tmp_path, maxMessages=None):
    sections = {} if maxMessages is None else {"offline": {"max_messages": maxMessages}}
    domain = Domain(tmp_path, features=FEATURES, sections=sections)
    domain.clock.advance(NOW)
    return domain


@pytest.fixture
def domain(tmp_path):
    return makeDomain(tmp_path)


def stored(domain, user="juliet"):
    """What the store holds for C{user}, past any wrapper a test put around it."""
    store = domain.storage.offline
    return getattr(store, "wrapped", store).fetch(user, DOMAIN).result


def comeOnline(domain, jid=BALCONY, priority=None):
    """A bound resource sends available presence."""
    payload = "<priority>%d</priority>" % priority if priority is not None else ""
    domain.send("<presence from='%s'>%s</presence>" % (jid, payload))


# -- storing -------------------------------------------------------------------


def test_storedWhenNobodyIsOnline(domain):
    """A chat to an account with no session is kept, and the sender hears nothing."""
    romeo = domain.bind(ROMEO, available=True)

    stanza = domain.send(chat())

    [kept] = stored(domain)
    assert "Wherefore art thou?" in kept.xml and kept.stamp == NOW
    assert "delay" not in kept.xml  # Stamped on delivery, not before.
    assert romeo.take() == []
    accepted = offlineAcceptance(stanza)
    assert accepted.called and accepted.result == kept.id


def test_storedWhenNoResourceIsAvailable(domain):
    """A resource that has not sent presence does not get a bare-JID chat: it is kept."""
    domain.bind(ROMEO, available=True)
    balcony = domain.bind(BALCONY)

    domain.send(chat())

    assert len(stored(domain)) == 1
    assert balcony.take() == []


def test_storedWhenOnlyNegativePriority(domain):
    """Resources with a negative priority never get bare-JID messages: the message is kept."""
    domain.bind(ROMEO, available=True)
    balcony = domain.bind(BALCONY, available=True, priority=-1)

    domain.send(chat())

    assert len(stored(domain)) == 1
    assert balcony.take() == []


def test_chatStateAloneNotStored(domain):
    """A chat state alone is not kept; the sender learns nobody is there."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send("<message from='%s' to='%s' type='chat' id='cs1'><composing "
                "xmlns='http://jabber.org/protocol/chatstates'/></message>" % (ROMEO, JULIET))

    assert stored(domain) == []
    [reply] = romeo.take()
    assert errorCondition(reply) == "service-unavailable"


def test_noStoreHintNotStored(domain):
    """A message hinted <no-store/> is not kept (XEP-0334 §4.2)."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send(chat(extra="<no-store xmlns='urn:xmpp:hints'/>"))

    assert stored(domain) == []
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_errorNeverStored(domain):
    """An error for an offline account is neither kept nor answered."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send("<message from='%s' to='%s' type='error' id='e1'><error type='cancel'>"
                "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                "</message>" % (ROMEO, JULIET))

    assert stored(domain) == []
    assert romeo.take() == []


def test_messageWithoutToStoredForOwnAccount(domain):
    """A message a user sends with no 'to' while no resource is available is kept for the account."""
    orchard = domain.bind(ROMEO)

    domain.send("<message from='%s' type='chat' id='n1'><body>Note to self</body></message>"
                % ROMEO)
    comeOnline(domain, ROMEO)

    [got] = messages(orchard)
    assert got["to"] == "romeo@example.org" and str(got.body) == "Note to self"


def test_overQuota(tmp_path):
    """Past max_messages the sender gets resource-constraint and nothing more is kept."""
    domain = makeDomain(tmp_path, maxMessages=2)
    romeo = domain.bind(ROMEO, available=True)
    for i in range(2):
        domain.send(chat("m%d" % i, id="m%d" % i))
    assert romeo.take() == []

    stanza = domain.send(chat("one too many", id="m2"))

    assert len(stored(domain)) == 2
    [reply] = romeo.take()
    assert errorCondition(reply) == "resource-constraint"
    assert reply["id"] == "m2" and reply["to"] == ROMEO and reply["from"] == JULIET
    accepted = offlineAcceptance(stanza)
    failures = []
    accepted.addErrback(failures.append)
    assert failures[0].check(NotStored)


def test_quotaCountsStoresUnderWay(tmp_path):
    """Messages still being written count against the quota."""
    domain = makeDomain(tmp_path, maxMessages=2)
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "store")
    romeo = domain.bind(ROMEO, available=True)

    for i in range(3):
        domain.send(chat("m%d" % i, id="m%d" % i))

    [reply] = romeo.take()
    assert errorCondition(reply) == "resource-constraint" and reply["id"] == "m2"
    gate.open()
    assert [">m%d<" % i in m.xml for i, m in enumerate(stored(domain))] == [True, True]
    assert romeo.take() == []


def test_quotaFreedByDelivery(tmp_path):
    """Once delivered, messages no longer count against the quota."""
    domain = makeDomain(tmp_path, maxMessages=1)
    romeo = domain.bind(ROMEO, available=True)
    domain.send(chat("first", id="m1"))
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    assert len(messages(balcony)) == 1
    domain.unbind(BALCONY)

    domain.send(chat("second", id="m2"))

    assert romeo.take() == []
    assert len(stored(domain)) == 1


def test_quotaZeroDisablesStorage(tmp_path):
    """With max_messages = 0 nothing is kept and the sender gets service-unavailable."""
    domain = makeDomain(tmp_path, maxMessages=0)
    romeo = domain.bind(ROMEO, available=True)

    domain.send(chat())

    assert stored(domain) == []
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_acceptanceWaitsForTheWrite(domain):
    """The message counts as accepted only once storage has it on disk."""
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "store")
    domain.bind(ROMEO, available=True)

    stanza = domain.send(chat())

    acceptance = holders(stanza)
    assert not all(d.called for d in acceptance)
    gate.open()
    assert all(d.called for d in acceptance)


@pytest.mark.parametrize("error, condition", [
    (StorageError("disk full"), "internal-server-error"),
    (NoSuchUser("juliet@example.org"), "service-unavailable"),
])
def test_storeFailureBounces(domain, error, condition):
    """When storage fails, the sender gets an error and the acceptance fails."""
    domain.storage.offline = FailingStore(domain.storage.offline, error)
    romeo = domain.bind(ROMEO, available=True)

    stanza = domain.send(chat())

    [reply] = romeo.take()
    assert errorCondition(reply) == condition
    accepted = offlineAcceptance(stanza)
    failures = []
    accepted.addErrback(failures.append)
    assert failures[0].check(NotStored)


def test_accountRemovedWhileStoring(domain):
    """A message for an account removed before it was written gets service-unavailable."""
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "store")
    romeo = domain.bind(ROMEO, available=True)
    domain.send(chat())

    domain.storage.users.removeUser("juliet", DOMAIN)
    gate.open()

    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_replayedNeverStoredAgain(domain):
    """A message re-sent from storage that finds nobody is not kept a second time."""
    romeo = domain.bind(ROMEO, available=True)
    from tests.helpers import parse
    stanza = parse(chat())
    meta(stanza).replayed = True

    domain.send(stanza)

    assert stored(domain) == []
    assert errorCondition(romeo.take()[0]) == "service-unavailable"


def test_unacknowledgedReplayStored(tmp_path):
    """A message a dead session never acknowledged is kept, even past the quota."""
    domain = makeDomain(tmp_path, maxMessages=1)
    romeo = domain.bind(ROMEO, available=True)
    domain.send(chat("first", id="m1"))
    from tests.helpers import parse
    stanza = parse(chat("unacked", id="m2", extra="<delay xmlns='urn:xmpp:delay' "
                        "from='example.org' stamp='2002-09-10T23:05:00.000Z'/>"))
    meta(stanza).replayed = meta(stanza).fromUnacked = True

    domain.send(stanza)

    assert len(stored(domain)) == 2
    assert romeo.take() == []
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    first, second = messages(balcony)
    # The stamp stream management gave it is kept.
    assert [d["stamp"] for d in delayOf(second)] == ["2002-09-10T23:05:00.000Z"]


def test_accountRemovalRemovesMessages(domain):
    """Removing an account removes its offline messages with it."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())

    domain.storage.users.removeUser("juliet", DOMAIN)
    domain.storage.users.addUser("juliet", DOMAIN, {})

    assert stored(domain) == []


# -- delivering ------------------------------------------------------------------


def test_deliveredOnInitialPresence(domain):
    """The kept message arrives with the initial presence, stamped with a delay from the server."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)
    domain.clock.advance(60)

    comeOnline(domain)

    [got] = messages(balcony)
    assert got["from"] == ROMEO and got["to"] == JULIET and got["type"] == "chat"
    assert str(got.body) == "Wherefore art thou?"
    [delay] = delayOf(got)
    assert delay["from"] == "example.org"
    assert delay["stamp"] == "2002-09-10T23:08:25.000Z"
    assert str(delay) == "Offline Storage"
    assert stored(domain) == []


def test_deliveredInOrder(domain):
    """Kept messages arrive oldest first."""
    domain.bind(ROMEO, available=True)
    for i in range(BATCH + 5):
        domain.send(chat("m%d" % i, id="m%d" % i))
    balcony = domain.bind(BALCONY)

    comeOnline(domain)

    assert [str(m.body) for m in messages(balcony)] == ["m%d" % i for i in range(BATCH + 5)]
    assert stored(domain) == []


def test_deliveredOnce(domain):
    """A second presence, or a second resource coming online, gets nothing again."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)
    chamber = domain.bind(CHAMBER)

    comeOnline(domain)
    comeOnline(domain, priority=3)
    comeOnline(domain, CHAMBER)

    assert len(messages(balcony)) == 1
    assert messages(chamber) == []


def test_concurrentInitialPresencesDeliverOnce(domain):
    """Two resources coming online while storage is slow still get each message once in all."""
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "fetch", "delete")
    domain.bind(ROMEO, available=True)
    domain.send(chat("a", id="m1"))
    domain.send(chat("b", id="m2"))
    balcony = domain.bind(BALCONY)
    chamber = domain.bind(CHAMBER)

    comeOnline(domain)
    comeOnline(domain, CHAMBER)
    assert gate.calls == ["fetch"]  # The second delivery waits for the first.
    gate.open()

    assert [str(m.body) for m in messages(balcony)] == ["a", "b"]
    assert messages(chamber) == []
    assert stored(domain) == []


def test_deliveryWaitsForStoresUnderWay(domain):
    """A message still being written when the user comes online is delivered with the rest."""
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "store")
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)

    comeOnline(domain)
    assert messages(balcony) == []
    gate.open()

    assert len(messages(balcony)) == 1
    assert stored(domain) == []


def test_onlyTheResourceThatCameOnline(domain):
    """Kept messages go to the resource that sent presence, not to other bound ones."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)
    chamber = domain.bind(CHAMBER)

    comeOnline(domain, CHAMBER)

    assert len(messages(chamber)) == 1
    assert messages(balcony) == []


def test_negativePriorityWaits(domain):
    """Presence with a negative priority gets nothing; moving to a non-negative one delivers."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)

    comeOnline(domain, priority=-5)
    assert messages(balcony) == []
    assert len(stored(domain)) == 1

    comeOnline(domain, priority=0)
    assert len(messages(balcony)) == 1


def test_sessionGoneDuringDelivery(domain):
    """A resource that leaves before the messages are fetched leaves them for next time."""
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "fetch")
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)
    comeOnline(domain)

    domain.unbind(BALCONY)
    gate.open()

    assert messages(balcony) == []
    assert len(stored(domain)) == 1


def test_fullJIDOfGoneResource(domain):
    """A chat to a resource that is gone is kept and reaches the next resource as it was addressed."""
    domain.bind(ROMEO, available=True)
    domain.send(chat(to=JULIET + "/garden"))
    balcony = domain.bind(BALCONY)

    comeOnline(domain)

    [got] = messages(balcony)
    assert got["to"] == JULIET + "/garden"


def test_deliveredMessageMarkedReplayed(domain):
    """A message delivered from storage carries the replayed mark, so it is never stored twice."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)

    comeOnline(domain)

    [got] = messages(balcony)
    assert marks(got).replayed is True


def test_brokenStoredMessageDropped(domain):
    """A stored row that is not a message is dropped; the others still arrive."""
    domain.storage.offline.store("juliet", DOMAIN, "<message", NOW)
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)

    comeOnline(domain)

    assert [str(m.body) for m in messages(balcony)] == ["Wherefore art thou?"]
    assert stored(domain) == []


def test_delayStampFormat():
    """Delay stamps are XEP-0082 UTC date-times with milliseconds and a Z."""
    assert delayStamp(0) == "1970-01-01T00:00:00.000Z"
    assert delayStamp(1031699305.25) == "2002-09-10T23:08:25.250Z"
    assert delayStamp(1031699305.9999) == "2002-09-10T23:08:25.999Z"


# -- imported messages -------------------------------------------------------------


def test_importKeyIsPortabilitys():
    """The handler reads the key xmppctl import writes."""
    assert OFFLINE_IMPORT_KEY == portability.OFFLINE_IMPORT_KEY


def test_importedMessagesDelivered(domain):
    """Messages left by xmppctl import arrive at the next login, before newer ones, and only once."""
    domain.bind(ROMEO, available=True)
    imported = [
        "<message xmlns='jabber:client' from='nurse@example.org/x' to='juliet@example.org' "
        "type='chat'><body>old</body><delay xmlns='urn:xmpp:delay' from='old.example' "
        "stamp='2001-01-01T00:00:00Z'/></message>",
        "<message xmlns='jabber:client' from='nurse@example.org/x' type='chat'>"
        "<body>no stamp, no to</body></message>",
        "<message",
        "<presence xmlns='jabber:client'/>",
    ]
    domain.storage.accountData.set("juliet", DOMAIN, OFFLINE_IMPORT_KEY, json.dumps(imported))
    domain.send(chat("new"))
    balcony = domain.bind(BALCONY)
    domain.clock.advance(10)

    comeOnline(domain)

    got = messages(balcony)
    assert [str(m.body) for m in got] == ["new", "old", "no stamp, no to"]
    assert [d["stamp"] for d in delayOf(got[1])] == ["2001-01-01T00:00:00Z"]
    assert got[2]["to"] == JULIET
    assert [d["stamp"] for d in delayOf(got[2])] == [delayStamp(NOW + 10)]
    assert domain.storage.accountData.get("juliet", DOMAIN, OFFLINE_IMPORT_KEY).result is None
    domain.unbind(BALCONY)
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    assert messages(balcony) == []


def countingKeyReads(domain):
    """The reads of the import key, counted."""
    data = domain.storage.accountData
    reads = []
    get = data.get

    def counting(username, host, key):
        if key == OFFLINE_IMPORT_KEY:
            reads.append(username)
        return get(username, host, key)

    data.get = counting
    return reads


def test_importKeyReadOnlyWhenImported(domain):
    """A login reads the import key only for accounts an import left messages for."""
    reads = countingKeyReads(domain)
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    # The first delivery reads it while the accounts with the key are listed.
    assert reads == ["juliet"]
    domain.unbind(BALCONY)
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    assert reads == ["juliet"]
    assert messages(balcony) == []


def test_importWhileRunningDelivered(domain, tmp_path):
    """Messages xmppctl import leaves while the server runs arrive at the next login."""
    reads = countingKeyReads(domain)
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    domain.unbind(BALCONY)
    imported = ["<message xmlns='jabber:client' from='nurse@example.org/x' type='chat'>"
                "<body>imported</body></message>"]
    domain.storage.accountData.set("juliet", DOMAIN, OFFLINE_IMPORT_KEY, json.dumps(imported))
    portability._markOfflineImport(str(tmp_path / "data"))
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    assert [str(m.body) for m in messages(balcony)] == ["imported"]
    assert reads == ["juliet", "juliet"]
    # Moved: not read again.
    domain.unbind(BALCONY)
    balcony = domain.bind(BALCONY)
    comeOnline(domain)
    assert reads == ["juliet", "juliet"]


def test_importNotJSON(domain):
    """A damaged import key is dropped rather than blocking delivery forever."""
    domain.storage.accountData.set("juliet", DOMAIN, OFFLINE_IMPORT_KEY, "{not json")
    balcony = domain.bind(BALCONY)

    comeOnline(domain)

    assert messages(balcony) == []
    assert domain.storage.accountData.get("juliet", DOMAIN, OFFLINE_IMPORT_KEY).result is None


# -- disco ------------------------------------------------------------------------


def test_discoAnnouncesMsgoffline(domain):
    """The server announces msgoffline in its disco#info (XEP-0160 §4)."""
    romeo = domain.bind(ROMEO, available=True)

    domain.send("<iq type='get' id='d1' from='%s' to='example.org'><query "
                "xmlns='http://jabber.org/protocol/disco#info'/></iq>" % ROMEO)

    [reply] = romeo.take()
    features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
    assert NS_MSGOFFLINE in features


def test_discoNothingForAccounts(domain):
    """Accounts announce nothing about offline storage."""
    from xmppd.core.jid import parseJID
    handler = domain.handler(OfflineHandler)
    assert handler.getDiscoInfo(parseJID(ROMEO), parseJID(JULIET)) == []
    assert handler.getDiscoInfo(parseJID(ROMEO), parseJID(DOMAIN), "node") == []


def test_mailboxesForgotten(domain):
    """Nothing is kept in memory for an account once its storage work is done."""
    domain.bind(ROMEO, available=True)
    domain.send(chat())
    balcony = domain.bind(BALCONY)
    comeOnline(domain)

    assert len(messages(balcony)) == 1
    assert domain.handler(OfflineHandler).mailboxes == {}


def test_waitingForTheCountIsBounded(tmp_path):
    """While the stored count is being read, no more than the quota waits; the rest are refused at once."""
    domain = makeDomain(tmp_path, maxMessages=2)
    gate = domain.storage.offline = GatedCalls(domain.storage.offline, "count")
    romeo = domain.bind(ROMEO, available=True)

    for i in range(3):
        domain.send(chat("m%d" % i, id="m%d" % i))

    [reply] = romeo.take()
    assert errorCondition(reply) == "resource-constraint" and reply["id"] == "m2"
    gate.open()
    assert len(stored(domain)) == 2


def test_refusalNotLeftUnhandled(tmp_path):
    """A refusal nobody waits for (no stream management) is not logged as an unhandled error."""
    domain = makeDomain(tmp_path, maxMessages=1)
    domain.bind(ROMEO, available=True)
    domain.send(chat("first", id="m1"))
    stanza = domain.send(chat("second", id="m2"))
    accepted = offlineAcceptance(stanza)

    domain.clock.advance(0)

    assert accepted.called and accepted.result is None
