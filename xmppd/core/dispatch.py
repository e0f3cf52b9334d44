# -*- test-case-name: tests.test_dispatch -*-
"""
Running wokkel C{XMPPHandler}s inside the server without XPath scans.

wokkel handlers register XPath observers on their C{xmlstream}
(C{"/iq[@type='get']/query[@xmlns='jabber:iq:version']"}) and answer through
C{xmlstream.send}.  Inside the server there is no stream: L{DomainStream}
stands in for one.  It turns each observer's XPath, once, at registration,
into a key (stanza name, type, payload namespace, payload name), so routing a
stanza to its handler is a few dict lookups whatever the number of handlers
(DESIGN §5: no per-stanza scan over all handlers).  What a handler sends goes
to the router like every other stanza (DESIGN §2).

XPath the key form cannot express falls back to real XPath matching on a
short list, logged at registration so it stays the exception.

An IQ request a wokkel C{IQHandlerMixin} answers later (a roster set that
writes to storage) is held (L{xmppd.core.stanzas.hold}) until its answer
has gone to the router, so its sender's next stanza waits for it (RFC 6120
§10.1, L{xmppd.core.ordering}: a roster get after a roster set reads what
the set wrote).

Those requests are answered by L{xmppd.core.ordering.handleRequest}, wokkel's own with one
difference: a failure that names its stanza error (an exception with a
C{stanzaCondition}, as storage faults have: L{xmppd.storage.StorageFull}
gives C{resource-constraint}) is answered with that error and not logged
with a traceback: whoever raised it has told the operator already, once,
not once per request (issue 18, storage faults).
"""

from __future__ import annotations

import re
from typing import Callable

from twisted.logger import Logger
from twisted.words.xish import domish, xpath
from wokkel.subprotocols import IQHandlerMixin

from xmppd.core.ordering import Answering

Observer = Callable[[domish.Element], None]

_QUERY = re.compile(
    r"""^/(?P<name>iq|message|presence)
        (?:\[(?P<types>@type=(?P<q>["'])[\w-]+(?P=q)(?:\s+or\s+@type=["'][\w-]+["'])*)\])?
        (?:/(?P<child>[\w.-]+|\*)(?:\[@xmlns=["'](?P<ns>[^"']+)["']\])?)?$""",
    re.VERBOSE)
_TYPE = re.compile(r"""@type=["']([\w-]+)["']""")


def parseQuery(query: str):
    """
    The dispatch keys an XPath observer query stands for, or C{None} when the
    query is beyond the key form.  C{"/iq[@type='get' or @type='set']/query[@xmlns='x']"}
    gives C{[("iq", "get", "x", "query"), ("iq", "set", "x", "query")]}.
    """
    match = _QUERY.match(query.strip())
    if match is None:
        return None
    types = _TYPE.findall(match.group("types") or "") or [None]
    child, ns = match.group("child"), match.group("ns")
    if child == "*":
        child = None
    if child is not None and ns is None:
        return None  # a payload name in any namespace: not worth a key form
    return [(match.group("name"), stanzaType, ns, child) for stanzaType in types]


def isHandled(stanza: domish.Element) -> bool:
    """
    Whether a handler set C{stanza.handled}: wokkel's own flag (its
    C{IQHandlerMixin} sets it as a plain instance attribute, so it cannot
    live in L{xmppd.core.stanzas.StanzaMeta}).  Read from the instance dict,
    never with C{getattr}: domish elements answer unknown attributes with
    their child of that name, so a client could send C{<handled/>} inside a
    stanza and have it skipped.
    """
    return stanza.__dict__.get("handled") is True


def payloadOf(stanza: domish.Element) -> domish.Element | None:
    for child in stanza.children:
        if isinstance(child, domish.Element):
            return child
    return None


class StanzaDispatcher:
    """XPath-observer semantics with dict lookups; see the module docstring."""

    log = Logger()

    def __init__(self):
        self._byKey: dict[tuple, list[tuple[int, int, Observer]]] = {}
        self._slow: list[tuple[int, int, object, Observer]] = []
        self._serial = 0

    def addObserver(self, query: str, observer: Observer, priority: int = 0) -> None:
        self._serial += 1
        keys = parseQuery(query)
        if keys is None:
            self.log.warn("Observer query {query!r} needs XPath matching per stanza",
                          query=query)
            self._slow.append((-priority, self._serial, xpath.internQuery(query), observer))
            self._slow.sort(key=lambda entry: entry[:2])
            return
        for key in keys:
            entries = self._byKey.setdefault(key, [])
            entries.append((-priority, self._serial, observer))
            entries.sort(key=lambda entry: entry[:2])

    def removeObserver(self, query: str, observer: Observer) -> None:
        for entries in self._byKey.values():
            entries[:] = [e for e in entries if e[2] != observer]
        self._slow[:] = [e for e in self._slow if e[3] != observer]

    def observersFor(self, stanza: domish.Element) -> list[Observer]:
        name, stanzaType = stanza.name, stanza.getAttribute("type")
        payload = payloadOf(stanza)
        ns, child = (payload.uri, payload.name) if payload is not None else (None, None)
        keys = {(name, t, n, c) for t in (stanzaType, None)
                for n, c in ((ns, child), (ns, None), (None, None))}
        found = []
        for key in keys:
            found.extend(self._byKey.get(key, ()))
        found.sort(key=lambda entry: entry[:2])
        observers = [entry[2] for entry in found]
        for _, _, query, observer in self._slow:
            if query.matches(stanza):
                observers.append(observer)
        return observers

    def dispatch(self, stanza: domish.Element) -> bool:
        """
        Call the matching observers, highest priority first, until one marks
        the stanza C{handled}; return whether any did.
        """
        for observer in self.observersFor(stanza):
            observer(stanza)
            if isHandled(stanza):
                return True
        return isHandled(stanza)


class DomainStream:
    """
    The C{xmlstream} that a domain's wokkel handlers are connected to: their
    observers go to the L{StanzaDispatcher}, what they send to the router.
    """

    def __init__(self, router, dispatcher: StanzaDispatcher):
        self.router = router
        self.dispatcher = dispatcher
        #: The IQ requests its wokkel handlers are answering.
        self.answering = Answering()

    def send(self, obj) -> None:
        if isinstance(obj, domish.Element):
            held = self.answering.sending(obj)
            self.router.route(obj)
            if held is not None:
                held.callback(None)

    def addObserver(self, query, observer, priority=0, *args, **kwargs):
        if args or kwargs:
            observer = _bind(observer, args, kwargs)
        elif getattr(observer, "__name__", None) == "handleRequest" and isinstance(
                getattr(observer, "__self__", None), IQHandlerMixin):
            observer = self.heldRequest(observer)
        self.dispatcher.addObserver(query, observer, priority)

    def heldRequest(self, handleRequest: Observer) -> Observer:
        """
        wokkel's C{handleRequest} (as L{xmppd.core.ordering.handleRequest}), holding the IQ when
        the answer does not come at once, until it has been sent (through
        L{send}, where wokkel's handlers send: their parent is the domain's
        collection).
        """
        def request(iq: domish.Element) -> None:
            self.answering.request(handleRequest, iq)
        return request

    def answer(self, handleRequest: Observer, iq: domish.Element) -> None:
        """
        Have a wokkel handler that sends through this stream answer C{iq}
        from a hook (PEP's pubsub requests), held as L{heldRequest} holds.
        """
        self.answering.request(handleRequest, iq)

    def removeObserver(self, query, observer):
        self.dispatcher.removeObserver(query, observer)


def _bind(observer, args, kwargs):
    def bound(stanza):
        return observer(stanza, *args, **kwargs)
    return bound
