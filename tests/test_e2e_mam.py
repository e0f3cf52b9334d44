"""
End-to-end: slixmpp clients with the XEP-0313 plugin page through their
message archives on a real node (L{xmppd.features.mam.archive}), on SQLite.
"""

import itertools

import pytest_twisted
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from twisted.internet import defer

from tests.e2e import TIMEOUT, wait

ensureDeferred = pytest_twisted.ensureDeferred

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
COUNT = 250
PAGE = 50
_handlers = itertools.count()


async def mamClient(server, user, resource):
    client = server.client(user, resource)
    client.xmpp.register_plugin("xep_0313")
    await client.login()
    return client


class Page:
    """One answer to a query: the results (archive id, forwarded message) and the fin."""

    def __init__(self, results, iq):
        self.results = results
        self.fin = iq["mam_fin"]

    @property
    def ids(self):
        return [archiveId for archiveId, _ in self.results]

    @property
    def bodies(self):
        return [message["body"] for _, message in self.results]

    @property
    def complete(self) -> bool:
        return self.fin["complete"] in (True, "true")

    @property
    def first(self):
        return self.fin["rsm"]["first"]

    @property
    def last(self):
        return self.fin["rsm"]["last"]


async def _query(client, max, after=None, before=None, with_=None) -> Page:
    xmpp = client.xmpp
    iq = xmpp.make_iq_set()
    queryId = "q%d" % next(_handlers)
    iq["mam"]["queryid"] = queryId
    if with_ is not None:
        iq["mam"]["with"] = with_
    iq["mam"]["rsm"]["max"] = str(max)
    if after is not None:
        iq["mam"]["rsm"]["after"] = after
    if before is not None:
        iq["mam"]["rsm"]["before"] = before or True
    results = []

    def onResult(message):
        result = message["mam_result"]
        if result["queryid"] == queryId and message["from"] == xmpp.boundjid.bare:
            results.append((result["id"], result["forwarded"]["stanza"]))

    name = "mam-" + queryId
    xmpp.register_handler(Callback(
        name, MatchXPath("{jabber:client}message/{%s}result" % NS_MAM), onResult))
    try:
        reply = await iq.send(timeout=TIMEOUT)
    finally:
        xmpp.remove_handler(name)
    return Page(results, reply)


def query(client, max, after=None, before=None, with_=None) -> defer.Deferred:
    return wait(_query(client, max, after, before, with_))


async def pageForward(client, with_=None):
    """Every page from the start of the archive, following <last/>."""
    pages, after = [], None
    while True:
        page = await query(client, PAGE, after=after, with_=with_)
        pages.append(page)
        if page.complete:
            return pages
        after = page.last


async def pageBackward(client):
    """Every page from the end of the archive, following <first/>."""
    pages, before = [], ""
    while True:
        page = await query(client, PAGE, before=before)
        pages.append(page)
        if page.complete:
            return pages
        before = page.first


@ensureDeferred
async def test_pagingThroughTwoHundredFiftyMessages(server):
    """
    After Romeo sends Juliet 250 messages, both page through their archives
    in pages of 50, forwards and backwards, and see every message once, in
    order, under the stanza-ids Juliet's client was given.
    """
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await mamClient(server, "romeo", "orchard")
    juliet = await mamClient(server, "juliet", "balcony")
    bodies = ["message %03d" % n for n in range(COUNT)]

    for body in bodies:
        romeo.send("juliet@localhost/balcony", body)
    stanzaIds = []
    for body in bodies:
        message = await juliet.nextMessage()
        assert message["body"] == body
        [sid] = message.xml.findall("{%s}stanza-id" % NS_SID)
        assert sid.get("by") == "juliet@localhost"
        stanzaIds.append(sid.get("id"))

    forward = await pageForward(juliet)
    assert [len(page.results) for page in forward] == [PAGE] * (COUNT // PAGE)
    assert [body for page in forward for body in page.bodies] == bodies
    assert [i for page in forward for i in page.ids] == stanzaIds
    assert [page.complete for page in forward] == [False] * 4 + [True]
    for page in forward:
        assert (page.first, page.last) == (page.ids[0], page.ids[-1])
        assert page.fin["rsm"]["count"] == str(COUNT)

    backward = await pageBackward(juliet)
    assert [len(page.results) for page in backward] == [PAGE] * (COUNT // PAGE)
    assert [body for page in reversed(backward) for body in page.bodies] == bodies
    assert [i for page in reversed(backward) for i in page.ids] == stanzaIds

    sent = await pageForward(romeo, with_="juliet@localhost")
    assert [body for page in sent for body in page.bodies] == bodies
    sentIds = [i for page in sent for i in page.ids]
    assert len(set(sentIds)) == COUNT and not set(sentIds) & set(stanzaIds)
    for _, message in sent[0].results:
        assert message["from"] == "romeo@localhost/orchard"
        assert message["to"] == "juliet@localhost/balcony"


@ensureDeferred
async def test_archiveSurvivesRestart(makeServer):
    """The archive is on disk: after a restart the messages are still there, under the same ids."""
    server = await makeServer()
    await server.addUser("romeo")
    await server.addUser("juliet")
    romeo = await mamClient(server, "romeo", "orchard")
    juliet = await mamClient(server, "juliet", "balcony")
    romeo.send("juliet@localhost/balcony", "Good night, good night!")
    message = await juliet.nextMessage()
    [sid] = message.xml.findall("{%s}stanza-id" % NS_SID)
    # The archive write does not hold up delivery; a query runs after it.
    before = await query(juliet, PAGE)
    assert before.ids == [sid.get("id")]

    await server.close()
    await server.start()
    juliet = await mamClient(server, "juliet", "balcony")
    after = await query(juliet, PAGE)
    assert after.ids == [sid.get("id")]
    assert after.bodies == ["Good night, good night!"]


@ensureDeferred
async def test_queryFormAndPreferences(server):
    """A client reads the query form, sets 'never' for a contact, and that contact's messages are not archived."""
    await server.addUser("romeo")
    await server.addUser("juliet")
    await server.addUser("tybalt")
    juliet = await mamClient(server, "juliet", "balcony")
    romeo = await server.login("romeo", "orchard")
    tybalt = await server.login("tybalt", "street")
    mamPlugin = juliet.xmpp.plugin["xep_0313"]

    form = await wait(mamPlugin.get_fields())
    assert {"with", "start", "end", "before-id", "after-id", "ids"} <= set(form.get_fields())

    iq = juliet.xmpp.make_iq_set()
    prefs = iq.xml.makeelement("{%s}prefs" % NS_MAM, {"default": "always"})
    never = prefs.makeelement("{%s}never" % NS_MAM, {})
    jid = never.makeelement("{%s}jid" % NS_MAM, {})
    jid.text = "tybalt@localhost"
    never.append(jid)
    prefs.append(never)
    iq.xml.append(prefs)
    reply = await wait(iq.send(timeout=TIMEOUT))
    assert reply["type"] == "result"

    tybalt.send("juliet@localhost/balcony", "Thou art a villain")
    romeo.send("juliet@localhost/balcony", "I love thee")
    assert (await juliet.nextMessage())["body"] == "Thou art a villain"
    assert (await juliet.nextMessage())["body"] == "I love thee"
    page = await query(juliet, PAGE)
    assert page.bodies == ["I love thee"] and page.complete
