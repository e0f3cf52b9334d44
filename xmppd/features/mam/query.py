# -*- test-case-name: tests.test_mam -*-
"""
Queries of the message archive (XEP-0313 §4, §5, C{urn:xmpp:mam:2}), paged
with XEP-0059 result set management; the archive itself, and the handler
that answers these IQs, are L{xmppd.features.mam.archive}'s.

Queries (§4): an IQ set of C{<query/>} with an optional data form
(XEP-0004 via C{wokkel.data_form}, FORM_TYPE C{urn:xmpp:mam:2}): C{with}
(a bare JID matches its every resource; a full JID only itself, §4.1.1),
C{start} and C{end} (XEP-0082 date-times, inclusive, §4.1.2), C{before-id},
C{after-id}, C{ids} (§4.1.3).  An unknown field gets
C{feature-not-implemented} (§4.1.5); a malformed form, value or date
C{bad-request}; an unknown id, in the form or in RSM,
C{item-not-found} (§4.1.3, §4.3.2).  Paging (§4.3, XEP-0059): C{<max/>}
(default L{DEFAULT_PAGE}, at most C{[mam] max_page}; C{0} returns only the
count), C{<after/>}, C{<before/>} (empty: the last page, §4.3.3); an RSM
cursor takes precedence over the form's id on the same side; C{<index/>}
gets C{feature-not-implemented} (XEP-0059 §2.6).  Each match is sent as a
message with C{<result/>}, C{<forwarded/>} and a XEP-0203 C{<delay/>}
(§4.2), oldest first (newest first with C{<flip-page/>}, §4.3.4), then the
IQ result with C{<fin/>}: C{complete='true'} when nothing lies beyond the
page in its direction, and the RSM C{first}, C{last} (oldest and newest of
the page) and C{count}.  An IQ get of C{<query/>} returns the form
(§4.1.5), of C{<metadata/>} the first and last archived message (§5).

Everything here is given what it needs (the archive storage, the account,
C{[mam] max_page}) and does no access control: L{xmppd.features.mam.archive.MAMHandler}
decides whose archive an IQ may read (§8.1) before calling in.

Implements: XEP-0313 0.8.0 (Message Archive Management, §4-§5),
XEP-0059 1.0 (Result Set Management), XEP-0082 1.1 (date-times)
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel import data_form

from xmppd.core.jid import InvalidJID, parseJID
from xmppd.core.stanzas import NS_CLIENT, meta
from xmppd.storage.interfaces import ArchivedMessage, ItemNotFound

#: MAM's interface to other features: the query protocol, which the MUC
#: room archive (L{muc.features.archive}) answers too, and the form archived
#: stanzas are stored in (L{parseStored}, which L{muc.state} reuses for room
#: history).  Anything else here is internal to L{xmppd.features.mam}.
__all__ = ["NS_MAM", "finElement", "newArchiveId", "parseStored", "queryForm", "resultMessage",
           "runQuery"]

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"

#: Results per page when the client does not say (XEP-0313 §4.3.1).
DEFAULT_PAGE = 50

#: The query form's fields (§4.1) and their types (§4.1.5's example).
FORM_FIELDS = (("with", "jid-single"), ("start", "text-single"), ("end", "text-single"),
               ("before-id", "text-single"), ("after-id", "text-single"),
               ("ids", "list-multi"))
SINGLE_FIELDS = frozenset(("with", "start", "end", "before-id", "after-id"))


# -- date-times (XEP-0082) ----------------------------------------------------

_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")


def newArchiveId() -> str:
    """An archive id: unique and unpredictable (XEP-0313 §3, XEP-0359 §5 rule 2)."""
    return secrets.token_urlsafe(12)


def parseDateTime(text: str) -> float:
    """
    A XEP-0082 DateTime (C{CCYY-MM-DDThh:mm:ss[.sss]TZD}, the zone required)
    as seconds since the epoch.

    @raise ValueError: not such a date-time.
    """
    match = _DATETIME.match(text.strip())
    if match is None:
        raise ValueError(text)
    base, fraction, zone = match.groups()
    if zone == "Z":
        zone = "+00:00"
    stamp = datetime.fromisoformat(base + zone).timestamp()
    if fraction:
        stamp += float("0" + fraction)
    return stamp


def formatDateTime(stamp: float) -> str:
    """C{stamp} (seconds since the epoch) as a XEP-0082 DateTime in UTC."""
    moment = datetime.fromtimestamp(stamp, timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- elements -----------------------------------------------------------------

def firstChild(element: domish.Element, uri: str, name: str) -> domish.Element | None:
    for child in element.elements():
        if child.uri == uri and child.name == name:
            return child
    return None


def involves(xml: str, full: str) -> bool:
    """Whether the archived stanza C{xml} is to or from the full JID C{full}."""
    stanza = parseStored(xml)
    for attribute in ("from", "to"):
        value = stanza.getAttribute(attribute)
        if value is not None:
            try:
                if parseJID(value).full() == full:
                    return True
            except InvalidJID:
                pass
    return False


def parseStored(xml: str) -> domish.Element:
    """An element L{xmppd.features.mam.archive} serialized (trusted input: no hardening needed)."""
    found = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = found.append
    stream.DocumentEndEvent = lambda: None
    stream.parse("<archive xmlns='%s'>%s</archive>" % (NS_CLIENT, xml))
    return found[0]


# -- the form (§4.1) ---------------------------------------------------------

def queryForm() -> domish.Element:
    """§4.1.5: the C{<query/>} listing the fields a query may use (none required)."""
    form = data_form.Form("form", formNamespace=NS_MAM)
    for var, fieldType in FORM_FIELDS:
        form.addField(data_form.Field(fieldType, var))
    x = form.toElement()
    for field in x.elements(NS_DATA, "field"):
        if field.getAttribute("var") == "ids":
            validate = field.addElement((NS_VALIDATE, "validate"))
            validate["datatype"] = "xs:string"
            validate.addElement("open")
    query = domish.Element((NS_MAM, "query"))
    query.addChild(x)
    return query


def parseForm(query: domish.Element) -> dict:
    """
    The filters of a query's data form: C{with} as a JID, C{start}/C{end} as
    epoch seconds, C{before-id}/C{after-id} strings, C{ids} a list.
    """
    x = firstChild(query, NS_DATA, "x")
    if x is None:
        return {}
    try:
        form = data_form.Form.fromElement(x)
    except data_form.Error:
        raise StanzaError("bad-request", text="malformed data form")
    if form.formType != "submit":
        raise StanzaError("bad-request", text="the form must be of type submit")
    fields = dict(form.fields)
    # A FORM_TYPE sent without type='hidden' arrives as an ordinary field.
    formType = fields.pop("FORM_TYPE", None)
    namespace = form.formNamespace or (formType.value if formType is not None else None)
    if namespace not in (None, NS_MAM):
        raise StanzaError("bad-request", text="FORM_TYPE must be %s" % NS_MAM)
    filters: dict = {}
    for var, field in fields.items():
        if var not in SINGLE_FIELDS and var != "ids":
            raise StanzaError("feature-not-implemented", text="unknown field %s" % (var[:100],))
        values = [str(value).strip() for value in field.values if str(value).strip()]
        if not values:
            continue
        if var == "ids":
            filters["ids"] = values
            continue
        if len(values) > 1:
            raise StanzaError("bad-request", text="%s takes one value" % var)
        value = values[0]
        if var == "with":
            try:
                filters["with"] = parseJID(value)
            except InvalidJID:
                raise StanzaError("bad-request", text="with: not a JID")
        elif var in ("start", "end"):
            try:
                filters[var] = parseDateTime(value)
            except ValueError:
                raise StanzaError("bad-request",
                                  text="%s: not a XEP-0082 date-time" % var)
        else:
            filters[var] = value
    return filters


# -- paging (§4.3, XEP-0059) -------------------------------------------------

async def runQuery(archive, account, query: domish.Element, maxPage: int):
    """
    The page of C{account}'s archive that C{query} (a C{<query/>}) asks
    for: C{(messages oldest first, complete, count or None)}.

    @raise StanzaError: the query is malformed, asks for what is not
        implemented, or names an id that is not in the archive.
    """
    filters = parseForm(query)
    limit, afterId, beforeId, backwards = parseRSM(query, maxPage)
    if filters.get("ids"):
        if len(filters["ids"]) > maxPage:
            raise StanzaError("policy-violation",
                              text="at most %d ids in one query" % maxPage)
    # A cursor given by RSM takes precedence over the form's on its side;
    # the form's must still exist (§4.1.3).
    for side, cursor in (("after-id", afterId), ("before-id", beforeId)):
        if cursor is not None and filters.get(side):
            await mustExist(archive, account, [filters[side]])
    if afterId is None:
        afterId = filters.get("after-id")
    if beforeId is None:
        beforeId = filters.get("before-id")
    if filters.get("ids"):
        await mustExist(archive, account, filters["ids"])
    try:
        return await fetch(
            archive, account, filters.get("with"), filters.get("start"), filters.get("end"),
            afterId, beforeId, filters.get("ids"), limit, backwards)
    except ItemNotFound:
        raise StanzaError("item-not-found")


def parseRSM(query: domish.Element, maxPage: int):
    """C{(max, after, before, backwards)} of the query's XEP-0059 C{<set/>}."""
    limit = DEFAULT_PAGE
    afterId = beforeId = None
    backwards = False
    rsm = firstChild(query, NS_RSM, "set")
    if rsm is None:
        return min(limit, maxPage), None, None, False
    for child in rsm.elements():
        if child.uri != NS_RSM:
            continue
        text = str(child).strip()
        if child.name == "max":
            try:
                limit = int(text)
            except ValueError:
                raise StanzaError("bad-request", text="<max/> must be an integer")
            if limit < 0:
                raise StanzaError("bad-request", text="<max/> must not be negative")
        elif child.name == "after":
            if not text:
                raise StanzaError("bad-request", text="<after/> needs an id")
            afterId = text
        elif child.name == "before":
            backwards = True
            beforeId = text or None
        elif child.name == "index":
            raise StanzaError("feature-not-implemented", text="paging by index")
    if afterId is not None and backwards:
        # §4.3.2: undefined in RSM; before-id and after-id do this.
        raise StanzaError("bad-request", text="<after/> and <before/> together")
    return min(limit, maxPage), afterId, beforeId, backwards


async def mustExist(archive, account, ids) -> None:
    """item-not-found unless every id in C{ids} is in the archive (§4.1.3)."""
    wanted = set(ids)
    page = await archive.query(
        account.user, account.host, ids=wanted, limit=len(wanted))
    if len(page.messages) != len(wanted):
        raise StanzaError("item-not-found")


async def fetch(archive, account, with_, start, end, afterId, beforeId, ids, limit: int,
                backwards: bool):
    """
    One page: C{(messages oldest first, complete, count or None)}.  A
    full JID in C{with} is matched against each message's C{to} and
    C{from}, scanning the bare JID's messages (§4.1.1).
    """
    peer = None if with_ is None else with_.userhost()
    common = dict(peer=peer, start=start, end=end, ids=ids)
    if with_ is None or with_.resource is None:
        page = await archive.query(account.user, account.host, afterId=afterId,
                                   beforeId=beforeId, limit=limit, reverse=backwards,
                                   **common)
        return list(page.messages), page.complete, page.count
    full = with_.full()
    chunk = max(limit + 1, DEFAULT_PAGE)
    found: list = []
    while len(found) <= limit:
        page = await archive.query(account.user, account.host, afterId=afterId,
                                   beforeId=beforeId, limit=chunk, reverse=backwards,
                                   **common)
        batch = list(page.messages)
        for message in (reversed(batch) if backwards else batch):
            if involves(message.xml, full):
                found.append(message)
                if len(found) > limit:
                    break
        if page.complete or not batch:
            break
        if backwards:
            beforeId = batch[0].id
        else:
            afterId = batch[-1].id
    complete = len(found) <= limit
    found = found[:limit]
    if backwards:
        found.reverse()
    return found, complete, None


# -- results (§4.2, §4.3, §5) ------------------------------------------------

def resultMessage(account, requester: str, queryId: str | None, archived: ArchivedMessage,
                  messageId: str) -> domish.Element:
    """§4.2: one result, the archived stanza forwarded with its delay, as C{messageId}."""
    message = domish.Element((NS_CLIENT, "message"))
    message["from"] = account.userhost()
    message["to"] = requester
    message["id"] = messageId
    result = message.addElement((NS_MAM, "result"))
    if queryId is not None:
        result["queryid"] = queryId
    result["id"] = archived.id
    forwarded = result.addElement((NS_FORWARD, "forwarded"))
    delay = forwarded.addElement((NS_DELAY, "delay"))
    delay["stamp"] = formatDateTime(archived.stamp)
    # Serialized by us when archived: passed through without parsing.
    forwarded.addRawXml(archived.xml)
    meta(message).mamResult = True
    return message


def finElement(messages, complete: bool, count: int | None) -> domish.Element:
    """§4.3: the C{<fin/>} closing a query, with its RSM C{<set/>}."""
    fin = domish.Element((NS_MAM, "fin"))
    if complete:
        fin["complete"] = "true"
    rsm = fin.addElement((NS_RSM, "set"))
    if messages:
        rsm.addElement("first", content=messages[0].id)
        rsm.addElement("last", content=messages[-1].id)
    if count is not None:
        rsm.addElement("count", content=str(count))
    return fin


async def metadata(archive, account) -> domish.Element:
    """§5: the first and last message of C{account}'s archive."""
    element = domish.Element((NS_MAM, "metadata"))
    first = await archive.query(account.user, account.host, limit=1)
    if not first.messages:
        return element
    last = await archive.query(account.user, account.host, limit=1, reverse=True)
    for name, message in (("start", first.messages[0]), ("end", last.messages[-1])):
        item = element.addElement(name)
        item["id"] = message.id
        item["timestamp"] = formatDateTime(message.stamp)
    return element
