# -*- test-case-name: tests.test_muc_archive -*-
"""
The archive of a room (XEP-0313 on the room's JID, §5 of XEP-0045 1.34's
"logging"), kept while C{muc#roomconfig_enablelogging} is on.

  - Every groupchat message with a body gets a C{<stanza-id by=room/>}
    (XEP-0359) before it is sent, so clients can refer to it and page from
    it; the message as occupants see it (without C{to}) is appended to the
    room's archive (L{xmppd.storage.interfaces.IRoomStore}), with the
    sender's occupant JID as its peer.  Writes never delay the broadcast.
  - C{<query xmlns='urn:xmpp:mam:2'/>} to the room's JID is answered by
    L{xmppd.features.mam.query}, as for an account's archive (forms, RSM paging,
    C{<fin/>}).  Who may read it: whoever may enter the room — not
    outcasts, and only members in a members-only room.  A room that does
    not log answers service-unavailable.
  - disco#info of a logging room lists C{urn:xmpp:mam:2}.

Implements: XEP-0313 0.8.0 (for MUC rooms), XEP-0359 0.7.0
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish

from muc.protocol import NS_STANZA_ID, element
from xmppd.features.mam.query import (NS_MAM, finElement, newArchiveId, parseStored, queryForm,
                                      resultMessage, runQuery)
from xmppd.storage.interfaces import ArchivedMessage
from xmppd.core.hooks import DELIVER

OPTIONS = ()

#: Most results one query returns.
MAX_PAGE = 250

log = Logger()


class RoomArchive:
    """The room store's archive, shaped like an account archive for L{xmppd.features.mam.query}."""

    def __init__(self, rooms):
        self.rooms = rooms

    def query(self, user, host, **kwargs):
        return self.rooms.queryMessages(host, user, **kwargs)


def register(hooks):
    hooks.add("room/groupchat", onGroupchat, DELIVER)
    hooks.add("room/iq", onIQ, DELIVER)
    hooks.add("room/disco", onDisco, DELIVER)


def onDisco(event):
    if event.room.config.get("logging"):
        event.features.append(NS_MAM)


def onGroupchat(event):
    room = event.room
    stanza = event.stanza
    if not room.config.get("logging"):
        return
    if not any(getattr(c, "name", None) == "body" for c in stanza.children):
        return
    record(room, stanza)


def record(room, stanza: domish.Element) -> str:
    """
    Give C{stanza} (as occupants will get it, without C{to}) the room's
    C{<stanza-id/>} and append it to the room's archive, its C{from} as the
    peer; the new archive id.  The write is not waited for.  The room's own
    messages (a moderation, L{muc.features.moderation}) are archived
    through here too, so clients catching up see them.
    """
    archiveId = newArchiveId()
    tag = domish.Element((NS_STANZA_ID, "stanza-id"))
    tag["id"] = archiveId
    tag["by"] = room.jidText
    stanza.addChild(tag)
    message = ArchivedMessage(archiveId, room.service.clock.seconds(), stanza["from"],
                              stored(stanza))
    d = room.service.storage.appendMessage(room.service.domain, room.name, message)
    d.addErrback(lambda f: log.failure("Archiving a message of {room}", f, room=room.jidText))
    return archiveId


def stored(stanza: domish.Element) -> str:
    """
    C{stanza} as the archive keeps it: with its C{jabber:client} namespace
    written out, as the account archive keeps messages, because a MAM
    result passes it through inside C{<forwarded/>}, where a C{<message/>}
    without it would be in the forwarding namespace and clients would not
    find it.
    """
    return stanza.toXml()


def forwardable(message: ArchivedMessage) -> ArchivedMessage:
    """
    A message archived before L{stored} wrote the namespace, given it, so
    that clients can read it in a result; any other, unchanged.
    """
    if message.xml.startswith("<message xmlns="):
        return message
    return dataclasses.replace(message, xml=parseStored(message.xml).toXml())


def mayRead(room, sender) -> bool:
    affiliation = room.affiliationOf(sender.userhost())
    if affiliation == "outcast":
        return False
    return not room.config.get("membersonly") or affiliation != "none"


def onIQ(event):
    iq = event.stanza
    # Not iq.elements(NS_MAM): without a name, Twisted's elements() ignores
    # the namespace and yields every child, so every other room IQ would
    # be taken for an archive query.
    query = next((elem for elem in iq.elements() if elem.uri == NS_MAM), None)
    if query is None:
        return None
    room = event.room
    if not room.config.get("logging"):
        room.refuse(iq, "service-unavailable", "this room keeps no archive")
        return True
    if not mayRead(room, event.sender):
        room.refuse(iq, "forbidden", "you may not read this room's archive")
        return True
    if query.name == "query" and iq["type"] == "get":
        reply = result(room, iq)
        reply.addChild(queryForm())
        room.service.send(reply)
        return True
    if query.name != "query" or iq["type"] != "set":
        room.refuse(iq, "feature-not-implemented")
        return True
    defer.ensureDeferred(answer(room, iq, query)).addErrback(
        lambda f: log.failure("Answering an archive query of {room}", f, room=room.jidText))
    return True


async def answer(room, iq, query) -> None:
    try:
        messages, complete, count = await runQuery(
            RoomArchive(room.service.storage), room.jid, query, MAX_PAGE)
    except StanzaError as e:
        room.service.send(e.toResponse(iq))
        return
    requester = iq["from"]
    queryId = query.getAttribute("queryid")
    for number, message in enumerate(messages):
        room.service.send(resultMessage(room.jid, requester, queryId, forwardable(message),
                                        "%s-%d" % (iq.getAttribute("id") or "mam", number)))
    reply = result(room, iq)
    reply.addChild(finElement(messages, complete, count))
    room.service.send(reply)


def result(room, iq) -> domish.Element:
    return element("iq", **{"type": "result", "from": room.jidText, "to": iq["from"],
                            "id": iq.getAttribute("id")})
