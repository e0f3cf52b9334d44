# -*- test-case-name: tests.test_muc_room -*-
"""
XEP-0045's namespaces, status codes and the small elements every part of
the MUC service builds (XEP-0045 §§5, 15, 19).
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.core.stanzas import NS_CLIENT, errorReply

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_MUC_ROOMCONFIG = NS_MUC + "#roomconfig"
NS_MUC_ROOMINFO = NS_MUC + "#roominfo"
NS_MUC_REGISTER = NS_MUC + "#register"
NS_MUC_REQUEST = NS_MUC + "#request"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
NS_REGISTER = "jabber:iq:register"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_CONFERENCE = "jabber:x:conference"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_STANZA_ID = "urn:xmpp:sid:0"

# Status codes (XEP-0045 §15.6 / the registry), named for what the user sees.
STATUS_NON_ANONYMOUS = "100"
STATUS_SELF = "110"
STATUS_CONFIG_CHANGED = "104"
STATUS_LOGGING = "170"
STATUS_LOGGING_OFF = "171"
STATUS_NOW_NON_ANONYMOUS = "172"
STATUS_NOW_SEMI_ANONYMOUS = "173"
STATUS_CREATED = "201"
STATUS_NICK_ASSIGNED = "210"
STATUS_BANNED = "301"
STATUS_NICK_CHANGED = "303"
STATUS_KICKED = "307"
STATUS_AFFILIATION_CHANGED = "321"
STATUS_MEMBERS_ONLY = "322"
STATUS_SHUTDOWN = "332"
STATUS_ERROR_REMOVED = "333"


def element(name: str, uri: str | None = NS_CLIENT, **attributes) -> domish.Element:
    """A C{jabber:client} stanza (or a child in C{uri}) with the given attributes."""
    elem = domish.Element((uri, name))
    for key, value in attributes.items():
        if value is not None:
            elem[key] = value
    return elem


def userX(statuses=(), item: domish.Element | None = None) -> domish.Element:
    """C{<x xmlns='…muc#user'>} with an item and status codes (§15.6)."""
    x = domish.Element((NS_MUC_USER, "x"))
    if item is not None:
        x.addChild(item)
    for code in statuses:
        x.addElement("status")["code"] = code
    return x


def itemElement(affiliation: str | None, role: str | None, jid: str | None = None,
                nick: str | None = None, reason: str | None = None,
                actor: str | None = None, uri: str = NS_MUC_USER) -> domish.Element:
    """An C{<item/>} of muc#user or muc#admin (§§5, 9, 10)."""
    item = domish.Element((uri, "item"))
    if affiliation is not None:
        item["affiliation"] = affiliation
    if role is not None:
        item["role"] = role
    if jid is not None:
        item["jid"] = jid
    if nick is not None:
        item["nick"] = nick
    if actor is not None:
        item.addElement("actor")["nick"] = actor
    if reason:
        item.addElement("reason", content=reason)
    return item


def child(parent: domish.Element, uri: str, name: str) -> domish.Element | None:
    """The first child C{name} in C{uri}, or C{None}."""
    for elem in parent.elements(uri, name):
        return elem
    return None


def text(parent: domish.Element | None, name: str) -> str | None:
    """The text of C{parent}'s first child C{name} (any namespace), or C{None}."""
    if parent is None:
        return None
    for elem in parent.elements():
        if elem.name == name:
            return str(elem)
    return None


def roomError(room: str, stanza: domish.Element, condition: str, text: str | None = None,
              errorType: str | None = None) -> domish.Element | None:
    """
    The error reply to C{stanza} that the room C{room} (its bare JID)
    generated: C{by} names the room (RFC 6120 §8.3.2, as every error
    example of XEP-0045 since 1.25 shows), or C{None} for a stanza that
    must not be answered.
    """
    reply = errorReply(stanza, condition, text, errorType)
    if reply is not None:
        for error in reply.elements(None, "error"):
            error["by"] = room
    return reply
