"""
The archive of a room (XEP-0313 on the room's JID), kept while the room's
configuration enables logging (muc/features/archive.py).
"""

from __future__ import annotations

from tests.helpers import parse
from tests.muchelpers import MUC, ROOM, errorCondition

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
ROMEO = "romeo@example.org/orchard"
JULIET = "juliet@example.org/balcony"
NURSE = "nurse@example.org/kitchen"


def loggingRoom(**config) -> MUC:
    m = MUC(rate=0)
    m.create(ROMEO, "romeo", config={"muc#roomconfig_enablelogging": "1", **config})
    m.join(JULIET, "juliet")
    m.clear()
    return m


def query(m: MUC, jid: str, rsm: str = "", id: str = "q1"):
    m.send("<iq type='set' id='%s' from='%s' to='%s'><query xmlns='%s' queryid='x'>%s"
           "</query></iq>" % (id, jid, ROOM, NS_MAM, rsm))
    got = m.take(jid)
    # Archived stanzas are passed through as text: read them as a client would.
    results = [parse(s.toXml()) for s in got if s.name == "message"]
    [answer] = [s for s in got if s.name == "iq"]
    return results, answer


def stanzaIds(stanza):
    return [(e["id"], e["by"]) for e in stanza.elements(NS_SID, "stanza-id")]


def test_messagesCarryTheRoomsStanzaId():
    """In a logging room every occupant gets each message with the same stanza-id by the room."""
    m = loggingRoom()
    m.say(JULIET, "Wherefore art thou")
    [toRomeo] = m.take(ROMEO)
    [toJuliet] = m.take(JULIET)
    [(archiveId, by)] = stanzaIds(toRomeo)
    assert by == ROOM and stanzaIds(toJuliet) == [(archiveId, by)]


def test_forgedStanzaIdRemoved():
    """A stanza-id a client claims in the room's name is replaced by the room's own."""
    m = loggingRoom()
    m.send("<message type='groupchat' from='%s' to='%s'><body>hi</body>"
           "<stanza-id xmlns='%s' id='forged' by='%s'/></message>" % (JULIET, ROOM, NS_SID, ROOM))
    [toRomeo] = m.take(ROMEO)
    [(archiveId, _)] = stanzaIds(toRomeo)
    assert archiveId != "forged"


def test_queryReturnsTheRoomsMessagesInOrder():
    """An occupant's archive query gets the room's messages, oldest first, then a fin with the count."""
    m = loggingRoom()
    for text in ("one", "two", "three"):
        m.say(JULIET, text)
    m.clear()
    results, answer = query(m, ROMEO)
    bodies = [str(next(r.elements(NS_MAM, "result")).forwarded.message.body) for r in results]
    assert bodies == ["one", "two", "three"]
    assert all(r["from"] == ROOM for r in results)
    forwarded = next(results[0].elements(NS_MAM, "result")).forwarded
    assert forwarded.message["from"] == ROOM + "/juliet"
    assert answer["type"] == "result"
    fin = next(answer.elements(NS_MAM, "fin"))
    assert fin.getAttribute("complete") == "true"
    assert str(next(fin.elements(NS_RSM, "set")).count) == "3"


def test_queryPages():
    """A query with RSM max gets that many and an incomplete fin; the next page continues after it."""
    m = loggingRoom()
    for text in ("one", "two", "three"):
        m.say(JULIET, text)
    m.clear()
    results, answer = query(m, ROMEO, "<set xmlns='%s'><max>2</max></set>" % NS_RSM)
    assert len(results) == 2
    fin = next(answer.elements(NS_MAM, "fin"))
    assert fin.getAttribute("complete") is None
    last = str(next(fin.elements(NS_RSM, "set")).last)
    results, answer = query(m, ROMEO, "<set xmlns='%s'><after>%s</after></set>" % (NS_RSM, last),
                            id="q2")
    assert [str(next(r.elements(NS_MAM, "result")).forwarded.message.body)
            for r in results] == ["three"]


def test_roomWithoutLoggingHasNoArchive():
    """A room that does not log answers archive queries with service-unavailable and adds no ids."""
    m = MUC(rate=0)
    m.create(ROMEO, "romeo")
    m.join(JULIET, "juliet")
    m.clear()
    m.say(JULIET, "unlogged")
    assert stanzaIds(m.take(ROMEO)[0]) == []
    m.send("<iq type='set' id='q' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (ROMEO, ROOM, NS_MAM))
    [error] = m.take(ROMEO)
    assert errorCondition(error) == "service-unavailable"


def test_membersOnlyArchiveForMembers():
    """The archive of a members-only room is closed to non-members (forbidden)."""
    m = loggingRoom(**{"muc#roomconfig_membersonly": "1"})
    m.send("<iq type='set' id='q' from='%s' to='%s'><query xmlns='%s'/></iq>"
           % (NURSE, ROOM, NS_MAM))
    [error] = m.take(NURSE)
    assert errorCondition(error) == "forbidden"


def test_discoAnnouncesArchiveWhenLogging():
    """disco#info of a logging room lists urn:xmpp:mam:2."""
    m = loggingRoom()
    m.send("<iq type='get' id='d' from='%s' to='%s'>"
           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (JULIET, ROOM))
    [reply] = m.take(JULIET)
    features = {f["var"] for f in reply.query.elements(reply.query.uri, "feature")}
    assert NS_MAM in features


def test_otherIQsAreNotArchiveQueries():
    """In a logging room, an IQ of a namespace nobody serves gets service-unavailable, not an archive error."""
    m = loggingRoom()
    m.send("<iq type='set' id='x' from='%s' to='%s'><thing xmlns='urn:example:unknown'/></iq>"
           % (ROMEO, ROOM))
    [error] = m.take(ROMEO)
    assert errorCondition(error) == "service-unavailable"


def forwardedMessage(result):
    forwarded = next(next(result.elements(NS_MAM, "result")).elements(
        "urn:xmpp:forward:0", "forwarded"))
    return [c for c in forwarded.elements() if c.name == "message"]


def test_forwardedMessagesAreInTheClientNamespace():
    """A result forwards the room's message as a jabber:client message, which clients look for."""
    m = loggingRoom()
    m.say(JULIET, "Wherefore art thou")
    m.clear()
    results, _ = query(m, ROMEO)
    [message] = forwardedMessage(results[0])
    assert message.uri == "jabber:client"


def test_messagesArchivedWithoutNamespaceAreRepaired():
    """A message an older version archived without its namespace still reaches clients as jabber:client."""
    from xmppd.storage.interfaces import ArchivedMessage
    m = loggingRoom()
    m.storage.rooms.appendMessage(m.service.domain, "room", ArchivedMessage(
        "old-1", 1.0, ROOM + "/juliet",
        "<message from='%s/juliet' type='groupchat'><body>old</body></message>" % ROOM))
    results, _ = query(m, ROMEO)
    [message] = forwardedMessage(results[0])
    assert message.uri == "jabber:client" and str(message.body) == "old"
