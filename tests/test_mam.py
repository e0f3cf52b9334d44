"""
Tests for L{xmppd.features.mam.archive}: XEP-0313 message archives with XEP-0359 stanza-ids,
XEP-0059 paging and XEP-0441 preferences, with the XEPs' examples as XML
literals fed to one in-memory domain (memory storage, time from a Clock).
"""

import json

import pytest
from twisted.internet import defer

from tests.domainhelpers import DOMAIN, Domain, errorCondition, fromClient
from tests.helpers import parse
from xmppd.core.stanzas import holders, meta
from xmppd.features.mam import archive as mam
from xmppd.core.jid import makeJID, parseJID
from xmppd.features.mam.archive import NS_MAM_EXTENDED, NS_SID, MAMHandler, Prefs
from xmppd.features.mam.query import NS_MAM, formatDateTime, parseDateTime
from xmppd.storage.interfaces import ArchivedMessage, RosterItem

ROMEO = "romeo@%s" % DOMAIN
JULIET = "juliet@%s" % DOMAIN
NS_RSM = "http://jabber.org/protocol/rsm"
#: 2010-07-10T23:08:25Z, the time of XEP-0313's examples.
EXAMPLE_TIME = 1278803305


def acceptanceOf(stanza):
    """The list of Deferreds holding C{stanza} (issue 5), made if there is none yet."""
    found = meta(stanza)
    if found.acceptance is None:
        found.acceptance = []
    return found.acceptance


@pytest.fixture
def domain(tmp_path):
    d = Domain(tmp_path, features=("messages", "roster", "carbons", "mam"))
    d.clock.advance(EXAMPLE_TIME)
    return d


def handler(domain) -> MAMHandler:
    return domain.handler(MAMHandler)


def archived(domain, user="juliet", **kwargs):
    """Every message in C{user}'s archive (or a filtered page of them)."""
    kwargs.setdefault("limit", None)
    page = domain.storage.archive.query(user, DOMAIN, **kwargs).result
    return list(page.messages)


def stanzaIds(stanza):
    return [(c["by"], c["id"]) for c in stanza.elements() if (c.uri, c.name) == (NS_SID, "stanza-id")]


def chat(body, sender="romeo@example.org/orchard", to=JULIET, kind="chat", extra=""):
    return ("<message from='%s' to='%s' type='%s'><body>%s</body>%s</message>"
            % (sender, to, kind, body, extra))


def fill(domain, count, user="juliet", peer="romeo@example.org", start=EXAMPLE_TIME):
    """Put C{count} messages, one second apart, in C{user}'s archive; their ids, oldest first."""
    ids = []
    for n in range(count):
        archiveId = "id-%03d" % n
        xml = ("<message xmlns='jabber:client' from='%s/orchard' to='%s@%s/balcony'"
               " type='chat'><body>%d</body></message>" % (peer, user, DOMAIN, n))
        domain.storage.archive.append(user, DOMAIN, ArchivedMessage(
            archiveId, start + n, peer, xml))
        ids.append(archiveId)
    return ids


class Results:
    """The answer to one query: the result messages, then the IQ."""

    def __init__(self, stanzas):
        *self.messages, self.iq = stanzas
        for message in self.messages:
            assert message.name == "message", message.toXml()

    @property
    def ids(self):
        return [m.result["id"] for m in self.messages]

    @property
    def bodies(self):
        return [str(self.forwarded(m).body) for m in self.messages]

    @staticmethod
    def forwarded(message):
        result = parse(message.toXml()).result
        [inner] = [c for c in result.forwarded.elements() if c.name == "message"]
        return inner

    @property
    def fin(self):
        assert self.iq["type"] == "result", self.iq.toXml()
        return self.iq.fin

    def rsm(self, name):
        element = getattr(self.fin.set, name)
        return None if element is None else str(element)


def query(domain, stream, form="", rsm="", extra="", sender=JULIET + "/balcony", to=None,
          queryid="f27"):
    toAttr = " to='%s'" % to if to else ""
    domain.send("<iq type='set' id='q1' from='%s'%s><query xmlns='urn:xmpp:mam:2' queryid='%s'>"
                "%s%s%s</query></iq>" % (sender, toAttr, queryid, form, rsm, extra))
    return Results(stream.take())


def form(**fields):
    values = "".join(
        "<field var='%s'>%s</field>" % (var.replace("_", "-"), "".join(
            "<value>%s</value>" % v for v in (value if isinstance(value, list) else [value])))
        for var, value in fields.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>urn:xmpp:mam:2</value></field>%s</x>" % values)


def rsm(max=None, after=None, before=None):
    parts = []
    if max is not None:
        parts.append("<max>%d</max>" % max)
    if after is not None:
        parts.append("<after>%s</after>" % after)
    if before is not None:
        parts.append("<before>%s</before>" % before)
    return "<set xmlns='http://jabber.org/protocol/rsm'>%s</set>" % "".join(parts)


@pytest.fixture
def balcony(domain):
    return domain.bind(JULIET + "/balcony", available=True)


# -- archiving and stanza-ids (§3.5, XEP-0359) -----------------------------------------------


def test_incomingArchivedWithStanzaId(domain, balcony):
    """A chat to Juliet arrives with a stanza-id by her bare JID, the id of its archived copy (§3.5)."""
    domain.send(chat("Call me but love, and I'll be new baptized"))
    [got] = balcony.take()
    [(by, archiveId)] = stanzaIds(got)
    assert by == JULIET
    [stored] = archived(domain)
    assert (stored.id, stored.peer, stored.stamp) == (archiveId, ROMEO, EXAMPLE_TIME)
    again = parse(stored.xml)
    assert str(again.body).startswith("Call me") and again["from"] == ROMEO + "/orchard"
    assert stanzaIds(again) == [(JULIET, archiveId)]


def test_forgedStanzaIdRemoved(domain, balcony):
    """A stanza-id claiming to be the recipient's is replaced; others' stay (XEP-0359 §5)."""
    domain.send(chat("x", extra="<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.org'"
                                " id='forged'/><stanza-id xmlns='urn:xmpp:sid:0'"
                                " by='room@muc.example' id='kept'/>"))
    [got] = balcony.take()
    ids = stanzaIds(got)
    assert ("room@muc.example", "kept") in ids
    assert [i for by, i in ids if by == JULIET] == [archived(domain)[0].id]
    assert "forged" not in [i for _, i in ids]


def test_forgedStanzaIdRemovedWhenNotArchived(domain, balcony):
    """Even a message that is not archived loses a stanza-id forged in the recipient's name."""
    domain.send("<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat'>"
                "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
                "<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.org' id='forged'/></message>")
    [got] = balcony.take()
    assert stanzaIds(got) == []
    assert archived(domain) == []


def test_bothSidesArchived(domain, balcony):
    """A local chat is archived for the sender and the recipient, each with its own id."""
    domain.bind(ROMEO + "/orchard", available=True)
    fromClient(domain, chat("Hello"))
    [got] = balcony.take()
    [mine], [theirs] = archived(domain, "romeo"), archived(domain, "juliet")
    assert mine.id != theirs.id
    assert mine.peer == JULIET and theirs.peer == ROMEO
    # §3.5: the contact never sees an id of the sender's archive.
    assert stanzaIds(got) == [(JULIET, theirs.id)]
    assert parse(mine.xml)["to"] == JULIET


def test_messageToSelfArchivedOnce(domain):
    """A message to one's own account is archived once, not as sent and received."""
    domain.bind(ROMEO + "/orchard", available=True)
    fromClient(domain, chat("note", to=ROMEO))
    [stored] = archived(domain, "romeo")
    assert stored.peer == ROMEO


@pytest.mark.parametrize("xml", [
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='headline'>"
    "<body>News</body></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org/balcony' type='groupchat'>"
    "<body>Room</body></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org/balcony' type='error'>"
    "<body>x</body><error type='cancel'><item-not-found"
    " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat'>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat'>"
    "<body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat'>"
    "<body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
])
def test_notArchived(domain, balcony, xml):
    """Headlines, groupchat, errors, bodyless chats and no-store hints stay out of the archive."""
    domain.send(xml)
    assert archived(domain) == []
    for got in balcony.take():
        assert [by for by, _ in stanzaIds(got)] == []


@pytest.mark.parametrize("xml", [
    "<message from='romeo@example.org/orchard' to='juliet@example.org'><body>x</body></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='normal'>"
    "<body>x</body></message>",
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat'>"
    "<encrypted xmlns='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>",
])
def test_archived(domain, balcony, xml):
    """Normal messages with a body, and messages with the store hint, are archived (§6.1.1)."""
    domain.send(xml)
    assert len(archived(domain)) == 1


def test_bouncedNotArchived(domain, balcony):
    """A normal message to a resource that is not there is bounced, not archived."""
    domain.send(chat("x", to=JULIET + "/gone", kind="normal"))
    assert archived(domain) == []


def test_carbonCopiesArchivedOnce(domain):
    """Carbon copies are not archived again: one message, one archive entry (§6.1.1)."""
    balcony = domain.bind(JULIET + "/balcony", available=True, priority=1)
    chamber = domain.bind(JULIET + "/chamber", available=True)
    domain.send("<iq type='set' id='e' from='juliet@example.org/chamber'>"
                "<enable xmlns='urn:xmpp:carbons:2'/></iq>")
    chamber.take()
    domain.send(chat("Hi"))
    [original], [copy] = balcony.take(), chamber.take()
    [stored] = archived(domain)
    # XEP-0313 §3.5: the received carbon carries the stanza-id too.
    inner = copy.received.forwarded.message
    assert stanzaIds(inner) == [(JULIET, stored.id)] == stanzaIds(original)


def test_sentCarbonCarriesArchiveId(domain):
    """The sent carbon carries the sender's archive id (§3.5); the contact's copy does not."""
    orchard = domain.bind(ROMEO + "/orchard", available=True)
    garden = domain.bind(ROMEO + "/garden", available=True)
    balcony = domain.bind(JULIET + "/balcony", available=True)
    domain.send("<iq type='set' id='e' from='romeo@example.org/garden'>"
                "<enable xmlns='urn:xmpp:carbons:2'/></iq>")
    garden.take()
    fromClient(domain, chat("Hi"))
    [mine] = archived(domain, "romeo")
    [copy] = garden.take()
    assert stanzaIds(copy.sent.forwarded.message) == [(ROMEO, mine.id)]
    [got] = balcony.take()
    assert ROMEO not in [by for by, _ in stanzaIds(got)]
    assert orchard.take() == []


def test_replayedNotArchived(domain, balcony):
    """A message replayed from offline storage or stream management is not archived twice."""
    stanza = parse(chat("again"))
    meta(stanza).replayed = True
    domain.send(stanza)
    assert len(balcony.take()) == 1
    assert archived(domain) == []


def test_offlineAccountArchived(domain):
    """A message for an account with no session is archived, and stored with its stanza-id."""
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    domain.send(chat("Are you there?"))
    [entry] = archived(domain)
    [message] = stored
    assert stanzaIds(message) == [(JULIET, entry.id)]


def test_archiveWriteNeverDelaysDelivery(domain, balcony):
    """Delivery does not wait for the archive write, and a failed write only gets logged."""
    pending = defer.Deferred()
    domain.storage.archive.append = lambda *args: pending
    domain.send(chat("fast"))
    assert len(balcony.take()) == 1
    pending.errback(RuntimeError("disk full"))


# -- preferences (XEP-0441) ---------------------------------------------------------------------


def prefsIQ(domain, stream, payload, kind="set"):
    domain.send("<iq type='%s' id='juliet2' from='juliet@example.org/balcony'>%s</iq>"
                % (kind, payload))
    [reply] = stream.take()
    return reply


def test_prefsDefault(domain, balcony):
    """Preferences start as the server's default with both lists present and empty (XEP-0441 §2.1)."""
    reply = prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2'/>", "get")
    assert reply["type"] == "result"
    prefs = reply.prefs
    assert prefs.uri == NS_MAM and prefs["default"] == "always"
    assert [c.name for c in prefs.elements()] == ["always", "never"]
    assert list(prefs.always.elements()) == [] and list(prefs.never.elements()) == []


def test_prefsSet(domain, balcony):
    """Setting preferences answers with what applies and stores it (XEP-0441 §2.1's example)."""
    reply = prefsIQ(domain, balcony, """<prefs xmlns='urn:xmpp:mam:2' default='roster'>
    <always>
      <jid>romeo@montague.lit</jid>
    </always>
    <never>
      <jid>montague@montague.lit</jid>
    </never>
  </prefs>""")
    assert reply["type"] == "result"
    assert reply.prefs["default"] == "roster"
    assert [str(j) for j in reply.prefs.always.elements()] == ["romeo@montague.lit"]
    assert [str(j) for j in reply.prefs.never.elements()] == ["montague@montague.lit"]
    stored = json.loads(domain.storage.accountData.get("juliet", DOMAIN, "mam:prefs").result)
    assert stored == {"default": "roster", "always": ["romeo@montague.lit"],
                      "never": ["montague@montague.lit"]}
    again = prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2'/>", "get")
    assert again.prefs.toXml() == reply.prefs.toXml()


@pytest.mark.parametrize("payload, condition", [
    ("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>", "bad-request"),
    ("<prefs xmlns='urn:xmpp:mam:2'><never><jid>@@</jid></never></prefs>", "jid-malformed"),
])
def test_prefsSetInvalid(domain, balcony, payload, condition):
    """Invalid preferences are refused with an error and change nothing."""
    reply = prefsIQ(domain, balcony, payload)
    assert errorCondition(reply) == condition
    assert domain.storage.accountData.get("juliet", DOMAIN, "mam:prefs").result is None


def test_prefsNever(domain, balcony):
    """A contact in the never list is not archived, nor given a stanza-id."""
    prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2' default='always'>"
                             "<always/><never><jid>romeo@example.org</jid></never></prefs>")
    domain.send(chat("secret"))
    [got] = balcony.take()
    assert stanzaIds(got) == [] and archived(domain) == []
    domain.send(chat("public", sender="nurse@example.org/kitchen"))
    assert len(archived(domain)) == 1


def test_prefsDefaultNeverWithAlways(domain, balcony):
    """With default never, only JIDs in the always list are archived; a full JID entry matches only itself."""
    prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2' default='never'>"
                             "<always><jid>romeo@example.org/orchard</jid></always></prefs>")
    domain.send(chat("one"))
    domain.send(chat("two", sender="romeo@example.org/garden"))
    assert [parse(m.xml)["from"] for m in archived(domain)] == [ROMEO + "/orchard"]


def test_prefsNeverWinsOverAlways(domain, balcony):
    """A JID in both lists is not archived."""
    prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2' default='always'>"
                             "<always><jid>romeo@example.org</jid></always>"
                             "<never><jid>romeo@example.org</jid></never></prefs>")
    domain.send(chat("x"))
    assert archived(domain) == []


def test_prefsRoster(domain, balcony):
    """With default roster, contacts in the roster are archived and strangers are not."""
    domain.storage.rosters.setItem("juliet", DOMAIN, RosterItem(ROMEO, subscription="both"))
    prefsIQ(domain, balcony, "<prefs xmlns='urn:xmpp:mam:2' default='roster'/>")
    domain.send(chat("friend"))
    domain.send(chat("stranger", sender="tybalt@example.org/street"))
    assert [str(parse(m.xml).body) for m in archived(domain)] == ["friend"]


def test_prefsOutgoingUseTo(domain):
    """For a sent message the preferences apply to its 'to' (XEP-0441 §2.3.2)."""
    orchard = domain.bind(ROMEO + "/orchard", available=True)
    domain.send("<iq type='set' id='p' from='romeo@example.org/orchard'>"
                "<prefs xmlns='urn:xmpp:mam:2' default='always'>"
                "<never><jid>juliet@example.org</jid></never></prefs></iq>")
    orchard.take()
    fromClient(domain, chat("to juliet"))
    fromClient(domain, chat("to nurse", to="nurse@example.org"))
    assert [m.peer for m in archived(domain, "romeo")] == ["nurse@example.org"]


def test_prefsOfAnotherAccountForbidden(domain, balcony):
    """Nobody may read another account's preferences."""
    domain.send("<iq type='get' id='p' from='juliet@example.org/balcony' to='romeo@example.org'>"
                "<prefs xmlns='urn:xmpp:mam:2'/></iq>")
    [reply] = balcony.take()
    assert errorCondition(reply) == "forbidden"


def test_prefsMatching():
    """Bare entries match every resource, full entries only themselves (XEP-0441 §2.3.1)."""
    prefs = Prefs("never", always=frozenset(["romeo@example.org", "nurse@example.org/kitchen"]))
    assert prefs.archives(parseJID("romeo@example.org/orchard"))
    assert prefs.archives(parseJID("nurse@example.org/kitchen"))
    assert not prefs.archives(parseJID("nurse@example.org/garden"))
    assert Prefs("roster").archives(parseJID("x@example.org")) is None


class SlowAccountData:
    """Account data whose reads wait until the test says so."""

    def __init__(self, real):
        self.real = real
        self.reads = []

    def get(self, *args):
        d = defer.Deferred()
        self.reads.append((d, args))
        return d

    def finish(self):
        reads, self.reads = self.reads, []
        for d, args in reads:
            self.real.get(*args).chainDeferred(d)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_waitsForPreferencesInOrder(domain):
    """
    Messages for an account whose preferences are not in memory wait for
    them, then arrive in order with their stanza-ids; the wait counts in
    their acceptance.
    """
    slow = SlowAccountData(domain.storage.accountData)
    domain.storage.accountData = slow
    stored = []
    domain.hooks.add("message/offline", lambda event: stored.append(event.stanza) or True)
    first = domain.send(chat("one"))
    second = domain.send(chat("two"))
    third = domain.send("<message from='romeo@example.org/orchard' to='juliet@example.org'"
                        " type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/>"
                        "</message>")
    assert stored == [] and len(slow.reads) == 1
    acceptance = holders(first)
    assert acceptance and not any(d.called for d in acceptance)
    slow.finish()
    assert [s for s in stored] == [first, second, third]
    assert all(d.called for d in acceptance)
    ids = [m.id for m in archived(domain)]
    assert [i for _, i in stanzaIds(first) + stanzaIds(second)] == ids
    assert stanzaIds(third) == []
    assert handler(domain).queues == {}


def test_waitingMessagesBounded(domain, monkeypatch):
    """Past the bound on messages waiting for one account's preferences, senders get resource-constraint."""
    monkeypatch.setattr(mam, "MAX_WAITING", 3)
    orchard = domain.bind("romeo@example.org/orchard", available=True)
    domain.storage.accountData = SlowAccountData(domain.storage.accountData)
    domain.hooks.add("message/offline", lambda event: True)
    waiting = [domain.send(chat(str(n))) for n in range(3)]
    assert all(holders(stanza) for stanza in waiting)
    domain.send("<message from='romeo@example.org/orchard' to='juliet@example.org'"
                " type='chat' id='over'><body>over</body></message>")
    [bounce] = orchard.take()
    assert bounce["id"] == "over" and errorCondition(bounce) == "resource-constraint"
    domain.storage.accountData.finish()
    assert handler(domain).queues == {}


def test_cacheHitBuildsNoDeferred(domain, balcony, monkeypatch):
    """With the preferences in memory a message is archived without a Deferred being made."""
    domain.send(chat("warm up"))
    balcony.take()
    made = []
    real = mam.defer.Deferred

    class Counting(real):
        def __init__(self, *args, **kwargs):
            made.append(self)
            real.__init__(self, *args, **kwargs)

    monkeypatch.setattr(mam.defer, "Deferred", Counting)
    monkeypatch.setattr(handler(domain), "append", lambda account, message: None)
    domain.send(chat("hit"))
    assert len(balcony.take()) == 1
    assert made == []


def test_messageRoutedDuringReleaseWaitsItsTurn(domain):
    """A message routed to the account while held ones are being released comes after them, once."""
    slow = SlowAccountData(domain.storage.accountData)
    domain.storage.accountData = slow
    stored = []

    def store(event):
        stored.append(str(event.stanza.body))
        if len(stored) == 1:
            domain.send(chat("late", sender="nurse@example.org/kitchen"))
        return True

    domain.hooks.add("message/offline", store)
    domain.send(chat("one"))
    domain.send(chat("two"))
    slow.finish()
    assert stored == ["one", "two", "late"]
    assert [str(parse(m.xml).body) for m in archived(domain)] == ["one", "two", "late"]
    assert handler(domain).queues == {} and handler(domain).busy == set()


def test_heldMessageAcceptedWhenStored(domain):
    """A message that waited is accepted only once whoever took it after the wait has stored it."""
    slow = SlowAccountData(domain.storage.accountData)
    domain.storage.accountData = slow
    durable = defer.Deferred()

    def store(event):
        acceptanceOf(event.stanza).append(durable)
        return True

    domain.hooks.add("message/offline", store)
    message = domain.send(chat("one"))
    acceptance = holders(message)
    assert acceptance and not any(d.called for d in acceptance)
    slow.finish()
    # Stream management waits for every hold in the list, the store's included.
    assert durable in acceptance and not all(d.called for d in acceptance)
    durable.callback(None)
    assert all(d.called for d in acceptance)


def test_preferencesLoadedAtBind(domain):
    """An account's preferences are read when it binds, so its messages never wait."""
    domain.storage.accountData.set("juliet", DOMAIN, "mam:prefs", Prefs("never").toJSON())
    balcony = domain.bind(JULIET + "/balcony", available=True)
    assert handler(domain).cache.pinned[JULIET].default == "never"
    domain.send(chat("x"))
    [got] = balcony.take()
    assert stanzaIds(got) == [] and archived(domain) == []


# -- queries (§4) -----------------------------------------------------------------------------------


def test_queryAll(domain, balcony):
    """A query with no filters returns every message, oldest first, then the fin (§4's examples)."""
    ids = fill(domain, 3)
    domain.send("<iq type='set' id='juliet1' from='juliet@example.org/balcony'>"
                "<query xmlns='urn:xmpp:mam:2' queryid='f27' /></iq>")
    results = Results(balcony.take())
    assert results.ids == ids
    first = results.messages[0]
    assert first["to"] == JULIET + "/balcony" and first["from"] == JULIET
    assert first.result["queryid"] == "f27"
    forwarded = parse(first.toXml()).result.forwarded
    assert forwarded.delay["stamp"] == "2010-07-10T23:08:25Z"
    assert forwarded.delay.uri == "urn:xmpp:delay"
    assert Results.forwarded(first)["from"] == ROMEO + "/orchard"
    assert results.iq["id"] == "juliet1"
    assert results.fin["complete"] == "true"
    assert results.fin.uri == NS_MAM and results.fin.set.uri == NS_RSM
    assert (results.rsm("first"), results.rsm("last"), results.rsm("count")) == (
        ids[0], ids[-1], "3")


def test_queryEmptyArchive(domain, balcony):
    """An empty archive answers a complete fin with a count of zero."""
    results = query(domain, balcony)
    assert results.messages == [] and results.fin["complete"] == "true"
    assert results.rsm("first") is None and results.rsm("count") == "0"


def test_queryWithoutQueryId(domain, balcony):
    """Results of a query without a queryid carry none."""
    fill(domain, 1)
    domain.send("<iq type='set' id='q' from='juliet@example.org/balcony'>"
                "<query xmlns='urn:xmpp:mam:2'/></iq>")
    results = Results(balcony.take())
    assert results.messages[0].result.getAttribute("queryid") is None


def test_pagingForward(domain, balcony):
    """RSM max and after page forward without gaps until complete (§4.3.2)."""
    ids = fill(domain, 25)
    seen, after, pages = [], None, 0
    while True:
        results = query(domain, balcony, rsm=rsm(max=10, after=after))
        pages += 1
        seen.extend(results.ids)
        if results.fin.getAttribute("complete") == "true":
            break
        assert results.fin.getAttribute("complete") is None
        after = results.rsm("last")
    assert seen == ids and pages == 3


def test_pagingBackward(domain, balcony):
    """An empty <before/> gives the last page; <before>id</before> the page before it (§4.3.3)."""
    ids = fill(domain, 25)
    last = query(domain, balcony, rsm=rsm(max=10, before=""))
    assert last.ids == ids[15:]
    assert last.fin.getAttribute("complete") is None
    middle = query(domain, balcony, rsm=rsm(max=10, before=last.rsm("first")))
    assert middle.ids == ids[5:15]
    first = query(domain, balcony, rsm=rsm(max=10, before=middle.rsm("first")))
    assert first.ids == ids[:5] and first.fin["complete"] == "true"


def test_flipPage(domain, balcony):
    """<flip-page/> sends the same page newest first (§4.3.4)."""
    ids = fill(domain, 5)
    results = query(domain, balcony, rsm=rsm(max=3, before=""), extra="<flip-page/>")
    assert results.ids == list(reversed(ids[2:]))
    assert (results.rsm("first"), results.rsm("last")) == (ids[2], ids[4])


def test_maxCappedByServer(tmp_path):
    """A client asking for more than [mam] max_page gets that many and an incomplete fin (§4.3.1)."""
    domain = Domain(tmp_path, features=("messages", "mam"), sections={"mam": {"max_page": 4}})
    stream = domain.bind(JULIET + "/balcony", available=True)
    fill(domain, 6)
    results = query(domain, stream, rsm=rsm(max=100))
    assert len(results.ids) == 4 and results.fin.getAttribute("complete") is None
    default = query(domain, stream)
    assert len(default.ids) == 4


def test_maxZeroCounts(domain, balcony):
    """<max>0</max> returns no messages, only the count (XEP-0059 §2.7)."""
    fill(domain, 7)
    results = query(domain, balcony, rsm=rsm(max=0))
    assert results.messages == [] and results.rsm("count") == "7"


def test_filterWith(domain, balcony):
    """A bare JID in 'with' matches every resource of it; a full JID only that resource (§4.1.1)."""
    fill(domain, 2)
    fill(domain, 2, peer="nurse@example.org", start=EXAMPLE_TIME + 10)
    domain.storage.archive.append("juliet", DOMAIN, ArchivedMessage(
        "garden", EXAMPLE_TIME + 20, ROMEO,
        "<message xmlns='jabber:client' from='romeo@example.org/garden'"
        " to='juliet@example.org' type='chat'><body>g</body></message>"))
    bare = query(domain, balcony, form=form(**{"with": ROMEO}))
    assert bare.ids == ["id-000", "id-001", "garden"]
    full = query(domain, balcony, form=form(**{"with": ROMEO + "/garden"}))
    assert full.ids == ["garden"] and full.fin["complete"] == "true"


def test_filterWithFullJIDPages(domain, balcony):
    """Paging through a full-JID 'with' returns every match once, in order."""
    for n in range(30):
        resource = "garden" if n % 3 == 0 else "orchard"
        domain.storage.archive.append("juliet", DOMAIN, ArchivedMessage(
            "m%02d" % n, EXAMPLE_TIME + n, ROMEO,
            "<message xmlns='jabber:client' from='romeo@example.org/%s' to='juliet@example.org'"
            " type='chat'><body>%d</body></message>" % (resource, n)))
    wanted = ["m%02d" % n for n in range(0, 30, 3)]
    seen, after = [], None
    while True:
        results = query(domain, balcony, form=form(**{"with": ROMEO + "/garden"}),
                        rsm=rsm(max=4, after=after))
        seen.extend(results.ids)
        if results.fin.getAttribute("complete") == "true":
            break
        after = results.rsm("last")
    assert seen == wanted
    backwards = query(domain, balcony, form=form(**{"with": ROMEO + "/garden"}),
                      rsm=rsm(max=4, before=""))
    assert backwards.ids == wanted[-4:]


def test_filterTime(domain, balcony):
    """'start' and 'end' are inclusive XEP-0082 date-times (§4.1.2)."""
    ids = fill(domain, 10)
    results = query(domain, balcony, form=form(start="2010-07-10T23:08:27Z",
                                               end="2010-07-10T23:08:29.000+00:00"))
    assert results.ids == ids[2:5]
    after = query(domain, balcony, form=form(start="2010-07-11T01:08:30+02:00"))
    assert after.ids == ids[5:]


def test_filterIds(domain, balcony):
    """'after-id', 'before-id' and 'ids' select by archive id (§4.1.3)."""
    ids = fill(domain, 10)
    between = query(domain, balcony, form=form(after_id=ids[2], before_id=ids[6]))
    assert between.ids == ids[3:6] and between.fin["complete"] == "true"
    after = query(domain, balcony, form=form(after_id=ids[7]))
    assert after.ids == ids[8:]
    chosen = query(domain, balcony, form=form(ids=[ids[4], ids[1]]))
    assert chosen.ids == [ids[1], ids[4]]


def test_formAndRSMTogether(domain, balcony):
    """Paging with RSM inside an after-id/before-id range stays inside it."""
    ids = fill(domain, 20)
    page = query(domain, balcony, form=form(after_id=ids[2], before_id=ids[15]),
                 rsm=rsm(max=5, after=ids[8]))
    assert page.ids == ids[9:14] and page.fin.getAttribute("complete") is None
    page = query(domain, balcony, form=form(after_id=ids[2], before_id=ids[15]),
                 rsm=rsm(max=5, before=""))
    assert page.ids == ids[10:15]


@pytest.mark.parametrize("fields, paging", [
    ({"after_id": "nope"}, ""),
    ({"before_id": "nope"}, ""),
    ({"ids": ["id-001", "nope"]}, ""),
    ({}, "<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>"),
    ({}, "<set xmlns='http://jabber.org/protocol/rsm'><before>nope</before></set>"),
    ({"after_id": "nope"},
     "<set xmlns='http://jabber.org/protocol/rsm'><after>id-001</after></set>"),
])
def test_unknownIdItemNotFound(domain, balcony, fields, paging):
    """An id that is not in the archive, in the form or in RSM, gets item-not-found (§4.1.3, §4.3.2)."""
    fill(domain, 3)
    results = query(domain, balcony, form=form(**fields) if fields else "", rsm=paging)
    assert results.messages == []
    assert errorCondition(results.iq) == "item-not-found"


@pytest.mark.parametrize("payload, condition", [
    (form(start="yesterday"), "bad-request"),
    (form(start="2010-07-10T23:08:25"), "bad-request"),
    (form(**{"with": "@@"}), "bad-request"),
    (form(**{"{urn:example}free-text-search": "love"}), "feature-not-implemented"),
    (form(**{"include-groupchat": "true"}), "feature-not-implemented"),
    ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
     "<value>urn:example</value></field></x>", "bad-request"),
    ("<x xmlns='jabber:x:data' type='submit'><field var='start'/><field var='start'/></x>",
     "bad-request"),
    (rsm() .replace("</set>", "<max>many</max></set>"), "bad-request"),
    (rsm() .replace("</set>", "<max>-1</max></set>"), "bad-request"),
    (rsm() .replace("</set>", "<index>3</index></set>"), "feature-not-implemented"),
    (rsm(after="id-001", before="id-002"), "bad-request"),
])
def test_badQuery(domain, balcony, payload, condition):
    """Malformed forms, dates and paging get bad-request; unknown fields feature-not-implemented (§4.1.5)."""
    fill(domain, 3)
    results = query(domain, balcony, form=payload)
    assert results.messages == []
    assert errorCondition(results.iq) == condition


def test_queryOwnBareJID(domain, balcony):
    """A query addressed to the user's own bare JID is a query of the user's archive."""
    fill(domain, 2)
    assert len(query(domain, balcony, to=JULIET).ids) == 2


def test_queryAnotherArchiveForbidden(domain, balcony):
    """Another account's archive is forbidden (§8.1), whether or not it exists."""
    fill(domain, 2, user="romeo")
    assert errorCondition(query(domain, balcony, to=ROMEO).iq) == "forbidden"
    assert errorCondition(query(domain, balcony, to="ghost@example.org").iq) == "forbidden"


def test_queryDomainUnavailable(domain, balcony):
    """The domain itself keeps no archive."""
    assert errorCondition(query(domain, balcony, to=DOMAIN).iq) == "service-unavailable"


def test_queryForm(domain, balcony):
    """An IQ get of the query returns the form with every supported field, none required (§4.1.5)."""
    domain.send("<iq type='get' id='form1' from='juliet@example.org/balcony'>"
                "<query xmlns='urn:xmpp:mam:2'/></iq>")
    [reply] = balcony.take()
    x = parse(reply.toXml()).query.x
    assert x["type"] == "form"
    fields = {f["var"]: f for f in x.elements() if f.name == "field"}
    assert str(fields["FORM_TYPE"].value) == NS_MAM
    assert {var: f.getAttribute("type") for var, f in fields.items()} == {
        "FORM_TYPE": "hidden", "with": "jid-single", "start": "text-single",
        "end": "text-single", "before-id": "text-single", "after-id": "text-single",
        "ids": "list-multi"}
    validate = fields["ids"].validate
    assert validate.uri == "http://jabber.org/protocol/xdata-validate" and validate.open
    assert all(f.required is None for f in fields.values())


def test_metadata(domain, balcony):
    """Metadata names the first and last archived message (§5); an empty archive has none."""
    domain.send("<iq type='get' id='jui8921rr9' from='juliet@example.org/balcony'>"
                "<metadata xmlns='urn:xmpp:mam:2'/></iq>")
    [empty] = balcony.take()
    assert list(empty.metadata.elements()) == []
    ids = fill(domain, 3)
    domain.send("<iq type='get' id='jui8921rr9' from='juliet@example.org/balcony'>"
                "<metadata xmlns='urn:xmpp:mam:2'/></iq>")
    [reply] = balcony.take()
    assert (reply.metadata.start["id"], reply.metadata.start["timestamp"]) == (
        ids[0], "2010-07-10T23:08:25Z")
    assert (reply.metadata.end["id"], reply.metadata.end["timestamp"]) == (
        ids[2], "2010-07-10T23:08:27Z")


def test_resultsAreNotArchivedOrCopied(domain, balcony):
    """Query results delivered to the client are not archived themselves."""
    fill(domain, 2)
    query(domain, balcony)
    assert len(archived(domain)) == 2


def test_disco(domain):
    """Accounts announce MAM, its extended features and stanza-ids; the domain does not (§7)."""
    mamHandler = handler(domain)
    requestor = parseJID(JULIET + "/balcony")
    assert [str(f) for f in mamHandler.getDiscoInfo(requestor, makeJID("juliet", DOMAIN))] == [
        NS_MAM, NS_MAM_EXTENDED, NS_SID]
    assert mamHandler.getDiscoInfo(requestor, makeJID(None, DOMAIN)) == []


# -- retention and removal ---------------------------------------------------------------------------


def test_retention(tmp_path):
    """With retention_days, messages older than that are removed from every archive once a day."""
    domain = Domain(tmp_path, features=("messages", "mam"),
                    sections={"mam": {"retention_days": 1}})
    fill(domain, 1, start=0)
    fill(domain, 1, user="romeo", start=86400 * 1.5)
    domain.clock.advance(86400)
    assert len(archived(domain)) == 1
    domain.clock.advance(86400)
    assert archived(domain) == []
    assert len(archived(domain, "romeo")) == 1
    domain.clock.advance(86400)
    assert archived(domain, "romeo") == []


def test_noRetentionByDefault(domain):
    """By default the archive keeps everything."""
    fill(domain, 1, start=0)
    domain.clock.advance(86400 * 3650)
    assert len(archived(domain)) == 1


def test_removedAccountLosesArchive(domain):
    """Removing an account removes its archive."""
    fill(domain, 3)
    domain.storage.users.removeUser("juliet", DOMAIN)
    assert archived(domain) == []


# -- helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, stamp", [
    ("2010-07-10T23:08:25Z", EXAMPLE_TIME),
    ("2010-07-10T23:08:25.5Z", EXAMPLE_TIME + 0.5),
    ("2010-07-11T01:08:25+02:00", EXAMPLE_TIME),
    ("2010-07-10T20:08:25.123456789-03:00", EXAMPLE_TIME + 0.123456789),
])
def test_parseDateTime(text, stamp):
    """XEP-0082 date-times with zones and fractions are read exactly."""
    assert parseDateTime(text) == pytest.approx(stamp)


@pytest.mark.parametrize("text", ["2010-07-10", "2010-07-10T23:08:25", "23:08:25Z", "soon"])
def test_parseDateTimeRefuses(text):
    """Dates without a time or a zone are not XEP-0082 date-times."""
    with pytest.raises(ValueError):
        parseDateTime(text)


def test_formatDateTime():
    """Stamps are written in UTC with a Z, with milliseconds only when there are some."""
    assert formatDateTime(EXAMPLE_TIME) == "2010-07-10T23:08:25Z"
    assert formatDateTime(EXAMPLE_TIME + 0.25) == "2010-07-10T23:08:25.250Z"


def test_config():
    """The [mam] section's defaults: archive always, pages of at most 250, keep forever."""
    config = mam.MAMConfig()
    assert (config.default, config.max_page, config.retention_days) == ("always", 250, 0)
