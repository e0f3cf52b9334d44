# -*- test-case-name: tests.test_hooks -*-
"""
Named events with priorities: how features cooperate without importing each
other (DESIGN §3, Prosody's events, ejabberd's hooks).

Core code fires a hook at each decision several features care about
("message/offline", "roster/changed", "account/removed", ...) with an
C{...Event} payload.  Every hook is declared once, in a L{Catalogue} (the
node's is L{xmppd.core.events.CATALOGUE}), as a L{Hook}: its name, its
payload type, and whether results count.  Registering a callback for a name
nobody declared raises L{UnknownHook}, so a misspelt name fails at start,
not silently in production.

What a callback may rely on:

  - Order.  Callbacks run by priority, highest first; a priority is a named
    L{Band} (L{FIRST}, L{POLICY}, L{STAMP}, L{COPY}, L{DELIVER}, L{OBSERVE}),
    or a step after one (C{POLICY.then(1)}) where two callbacks of one band
    must keep an order.  Equal priorities run in the order registered.
  - Results.  For L{Hooks.fire} the first callback that returns something
    other than C{None} decides, and the rest are not called; L{Hooks.notify}
    calls every callback and ignores results.
  - Failures.  A callback that raises is logged and skipped: a broken
    feature must never break delivery.
  - Waiting.  A callback may return a Deferred: the chain resumes at the
    next callback when it fires.  For C{fire}, a non-C{None} result of the
    Deferred stops the chain as a plain result does; a failing Deferred is
    logged and skipped like a raising callback.  While a chain waits, the
    stanza of its payload (C{event.stanza}, if it has one) is held
    (L{xmppd.core.stanzas.hold}): under stream management the client's
    stanza is acknowledged only once the chain, and what the caller does
    with its result, is over.  Callbacks of one chain never run
    concurrently, and the sender's later stanzas wait behind a held one
    (RFC 6120 §10.1, L{xmppd.core.ordering}): a feature never has to
    order one sender's stanzas itself, only work that outlives the
    stanza (a queue of its own must hold what it keeps).
  - What C{fire} and C{notify} return.  When no callback waited, a plain
    value (C{fire}: the result or C{None}; C{notify}: C{None}), synchronously
    and without allocating a Deferred: this is the hot path, several hooks
    per message.  When the chain waited, a Deferred that fires with that
    same value once the chain is over; the hold is let go right after the
    callbacks the caller added to it have run, so a caller finishes what it
    does with the result (delivery, a bounce) under the hold.  Callers of a
    hook whose callbacks may wait handle both (L{whenDone}).

A callback may be registered for one I{scope} (a served domain: features
live per domain and register through L{ScopedHooks}) or for every scope.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Callable, Iterator

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppd.core.stanzas import hold

Callback = Callable[[Any], Any]


class Band(int):
    """
    A named priority band.  Callbacks of a higher band run first.  Use the
    band that says what the callback does, not where it happens to land.
    """

    def __new__(cls, name: str, value: int):
        band = int.__new__(cls, value)
        band.name = name
        return band

    def then(self, step: int) -> "Band":
        """
        A priority C{step} places after this band's own and before the next
        band: for two callbacks of one band whose order matters.
        """
        if not 0 < step < 50:
            raise ValueError("a step within a band is between 1 and 49")
        return Band("%s.then(%d)" % (self.name, step), int(self) - step)

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


#: Sees the stanza before anything may stop it (state others change).
FIRST = Band("FIRST", 400)
#: May refuse or stop the stanza (blocking, rate limits, room vetoes).
POLICY = Band("POLICY", 300)
#: Records or marks what passed policy, before copies and delivery (archive ids).
STAMP = Band("STAMP", 200)
#: Copies the stanza to other parties, carrying the stamps (carbons).
COPY = Band("COPY", 100)
#: Does what the hook is about (delivery, presence, storage).
DELIVER = Band("DELIVER", 0)
#: Follows what happened, after everyone else (clean-up, bookkeeping).
OBSERVE = Band("OBSERVE", -100)

BANDS = (FIRST, POLICY, STAMP, COPY, DELIVER, OBSERVE)


class UnknownHook(KeyError):
    """A callback was registered for a hook name no catalogue declares."""


class Hook(str):
    """
    A declared hook: a string (its name, so it is its own dictionary key)
    that knows its payload type and whether results count.
    """

    payload: type | None
    results: bool
    doc: str

    def __new__(cls, name: str, payload: type | None, results: bool, doc: str = ""):
        hook = str.__new__(cls, name)
        hook.payload = payload
        hook.results = results
        hook.doc = doc
        return hook

    @property
    def name(self) -> str:
        return str(self)


class Catalogue:
    """
    Every hook a node knows.  The core declares its hooks in
    L{xmppd.core.events}; a feature that fires hooks of its own declares
    them next to its code with L{declare}, on the same catalogue.
    """

    def __init__(self):
        self._hooks: dict[str, Hook] = {}

    def declare(self, name: str, payload: type | None = None, results: bool = True,
                doc: str = "") -> Hook:
        """
        Declare C{name}: C{results} True for a hook fired with C{fire} (the
        first non-C{None} result decides), False for one that is notified.
        Declaring a name again with the same shape returns the same hook
        (modules may be reloaded); with another shape it is an error.
        """
        known = self._hooks.get(name)
        if known is not None:
            if (known.payload, known.results) != (payload, results):
                raise ValueError("hook %r is declared twice, differently" % (name,))
            return known
        hook = self._hooks[name] = Hook(name, payload, results, doc)
        return hook

    def __getitem__(self, name: str) -> Hook:
        try:
            return self._hooks[name]
        except KeyError:
            raise UnknownHook("no hook is declared as %r" % (name,)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._hooks

    def __iter__(self) -> Iterator[Hook]:
        return iter(sorted(self._hooks.values()))


def whenDone(result: Any, then: Callable, *args: Any) -> Any:
    """
    Call C{then(result, *args)} with what C{fire} returned: now for a plain
    value, once the chain is over for a chain that waited (then still under
    its hold).  Returns what C{then} returns, or the Deferred.
    """
    if isinstance(result, defer.Deferred):
        return result.addCallback(then, *args)
    return then(result, *args)


def describe(callback: Callback) -> str:
    """A callback as a person reads it: module and qualified name."""
    function = getattr(callback, "__func__", callback)
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or repr(function)
    return "%s.%s" % (module, name)


#: A chain's state while it waits: nothing has arrived yet.
_WAITING = object()
#: No callback is left.
_END = object()


#: Every hook of the node: the core's, declared in L{xmppd.core.events}, and
#: those features declare next to their code.  The one module-level registry
#: (like Twisted's plugin cache): declarations are made at import time, so
#: every L{Hooks} sees the same names.  It lives here, not in events, so
#: that events imports hooks and never the other way round.
CATALOGUE = Catalogue()


class Hooks:
    """
    The node's hooks; see the module docstring.  Firing with a scope runs
    the callbacks of that scope and the unscoped ones, merged by priority;
    firing without one runs them all (node-wide events such as shutdown).
    The merged list for each (name, scope) is built once, so a node serving
    many domains pays per stanza only for the callbacks of the stanza's
    domain.
    """

    log = Logger()

    def __init__(self, catalogue: Catalogue | None = None):
        self.catalogue = CATALOGUE if catalogue is None else catalogue
        # (name, scope) -> list of (-priority, serial, callback, band), kept sorted
        self._callbacks: dict[tuple[str, Any], list[tuple[int, int, Callback, Band]]] = {}
        # (name, scope) -> the callbacks a fire runs, in order (cache)
        self._merged: dict[tuple[str, Any], tuple[Callback, ...]] = {}
        self._serial = itertools.count()

    def add(self, name: str, callback: Callback, priority: Band = DELIVER,
            scope: Any = None) -> None:
        """
        Call C{callback(event)} when C{name} fires; equal priorities run in
        order added.  Raises L{UnknownHook} for an undeclared name and
        C{TypeError} for a priority that is not a L{Band}.
        """
        hook = self.catalogue[name]
        if not isinstance(priority, Band):
            raise TypeError("the priority of a callback on %r is a Band (FIRST, POLICY, "
                            "...), not %r" % (str(hook), priority))
        bisect.insort(self._callbacks.setdefault((str(hook), scope), []),
                      (-priority, next(self._serial), callback, priority))
        self._forget(hook)

    def remove(self, name: str, callback: Callback, scope: Any = None) -> None:
        entries = self._callbacks.get((name, scope), [])
        entries[:] = [entry for entry in entries if entry[2] != callback]
        self._forget(name)

    def _forget(self, name: str) -> None:
        for key in [key for key in self._merged if key[0] == name]:
            del self._merged[key]

    def callbacks(self, name: str, scope: Any = None) -> tuple[Callback, ...]:
        """What firing C{name} for C{scope} runs, in order."""
        key = (name, scope)
        merged = self._merged.get(key)
        if merged is None:
            self.catalogue[name]  # Firing an undeclared name is a bug too.
            merged = self._merged[key] = tuple(entry[2] for entry in self._entries(name, scope))
        return merged

    def _entries(self, name: str, scope: Any) -> list[tuple[int, int, Callback, Band]]:
        """The entries firing C{name} for C{scope} runs, in order."""
        if scope is None:
            entries = [entry for (n, _), found in self._callbacks.items() if n == name
                       for entry in found]
        else:
            entries = (self._callbacks.get((name, None), [])
                       + self._callbacks.get((name, scope), []))
        return sorted(entries)

    def has(self, name: str, scope: Any = None) -> bool:
        return bool(self.callbacks(name, scope))

    def fire(self, name: str, event: Any = None, scope: Any = None) -> Any:
        """
        Run the callbacks until one returns a result; return it (or
        C{None}), or a Deferred of it when a callback waited.
        """
        # The iterator, not an index: a chain that waits goes on from it.
        callbacks = iter(self.callbacks(name, scope))
        for callback in callbacks:
            try:
                result = callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)
                continue
            if result is not None:
                if result is True or not isinstance(result, defer.Deferred):
                    return result
                return _Chain(self, name, event, callbacks, callback, True).start(result)
        return None

    def notify(self, name: str, event: Any = None, scope: Any = None) -> Any:
        """
        Run every callback; results are ignored (for events nobody vetoes).
        C{None}, or a Deferred firing with C{None} when a callback waited.
        """
        callbacks = iter(self.callbacks(name, scope))
        for callback in callbacks:
            try:
                result = callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)
                continue
            if result is not None and isinstance(result, defer.Deferred):
                return _Chain(self, name, event, callbacks, callback, False).start(result)
        return None

    def scoped(self, scope: Any) -> "ScopedHooks":
        """These hooks as one served domain's features see them."""
        return ScopedHooks(self, scope)

    # -- who listens ---------------------------------------------------------

    def table(self, scope: Any = None) -> list[tuple[str, tuple[str, ...]]]:
        """
        Who listens to what, in the order they run: one C{(hook name,
        callbacks described)} per hook that has callbacks for C{scope}
        (with C{scope} None: every scope), sorted by name.
        """
        return [(name, tuple(describe(callback) for callback, _ in listening))
                for name, listening in self.listeners(scope)]

    def listeners(self, scope: Any = None, own: bool = False
                  ) -> list[tuple[str, tuple[tuple[Callback, Band], ...]]]:
        """
        L{table} with the callbacks themselves and the band each runs in:
        one C{(hook name, ((callback, band), ...))} per hook that has
        callbacks, sorted by name, the callbacks in the order they run.
        With C{own}, only the callbacks registered for exactly C{scope}
        (with C{scope} None: those registered for every scope, the
        node-wide listeners); without, what firing for C{scope} runs.
        """
        names = sorted({name for (name, _), found in self._callbacks.items() if found})
        rows = []
        for name in names:
            entries = (sorted(self._callbacks.get((name, scope), [])) if own
                       else self._entries(name, scope))
            if entries:
                rows.append((name, tuple((entry[2], entry[3]) for entry in entries)))
        return rows

    def logTable(self, scope: Any = None) -> None:
        """One debug line per hook: who listens, in order (at start)."""
        for name, listening in self.table(scope):
            self.log.debug("Hook {name} ({scope}): {listening}", name=name,
                           scope=scope or "node", listening=", ".join(listening))


class _Chain:
    """
    A chain of callbacks that waited: the rest of L{Hooks.fire} or
    L{Hooks.notify}, resumed each time a Deferred a callback returned fires.
    Made only when a callback returns a Deferred.
    """

    __slots__ = ("hooks", "name", "event", "callbacks", "current", "results", "done",
                 "held", "inline", "arrived")

    def __init__(self, hooks: Hooks, name: str, event: Any, callbacks: Iterator[Callback],
                 current: Callback, results: bool):
        self.hooks = hooks
        self.name = name
        self.event = event
        #: The callbacks still to run (the rest of the firing's iterator).
        self.callbacks = callbacks
        #: The callback whose result the chain follows now.
        self.current = current
        self.results = results
        self.done: defer.Deferred | None = None
        self.held: defer.Deferred | None = None
        self.inline = False
        self.arrived: Any = _WAITING

    def start(self, waiting: defer.Deferred) -> Any:
        """Follow the first Deferred: a plain result if nothing really waited."""
        outcome = self.run(waiting)
        if outcome is not _WAITING:
            return outcome
        stanza = getattr(self.event, "stanza", None)
        if isinstance(stanza, domish.Element):
            self.held = hold(stanza)
        self.done = defer.Deferred()
        return self.done

    def run(self, result: Any) -> Any:
        """Go on from C{result}; the chain's outcome, or L{_WAITING}."""
        while True:
            if isinstance(result, defer.Deferred):
                self.arrived = _WAITING
                self.inline = True
                result.addBoth(self.arrive)
                self.inline = False
                result, self.arrived = self.arrived, None
                if result is _WAITING:
                    return _WAITING
                result = self.settle(result)
            if result is not None and self.results:
                return result
            result = self.next()
            if result is _END:
                return None

    def next(self) -> Any:
        """The next result that matters, or L{_END}."""
        for callback in self.callbacks:
            self.current = callback
            try:
                result = callback(self.event)
            except Exception:
                self.hooks.log.failure("Hook {name} callback {callback!r} failed",
                                       name=self.name, callback=callback)
                continue
            if result is not None and (self.results or isinstance(result, defer.Deferred)):
                return result
        return _END

    def settle(self, result: Any) -> Any:
        if isinstance(result, Failure):
            self.hooks.log.failure("Hook {name} callback {callback!r} failed", result,
                                   name=self.name, callback=self.current)
            return None
        return result

    def arrive(self, result: Any) -> None:
        if self.inline:
            self.arrived = result
            return None
        try:
            outcome = self.run(self.settle(result))
        except Exception:
            self.hooks.log.failure("Hook {name} failed while resuming", name=self.name)
            outcome = None
        if outcome is not _WAITING:
            self.finish(outcome)
        return None

    def finish(self, outcome: Any) -> None:
        """The chain is over: the caller's callbacks run, then the hold is let go."""
        done, held = self.done, self.held
        self.done = self.held = None
        try:
            done.callback(outcome)
        finally:
            if held is not None:
                held.callback(None)


class ScopedHooks:
    """
    L{Hooks} for one scope: what C{LocalDomain.hooks} is.  Features register
    and fire through it unchanged, and only ever hear their own domain's
    events (and node-wide ones).
    """

    __slots__ = ("hooks", "scope")

    def __init__(self, hooks: Hooks, scope: Any):
        self.hooks = hooks
        self.scope = scope

    def add(self, name: str, callback: Callback, priority: Band = DELIVER) -> None:
        self.hooks.add(name, callback, priority, self.scope)

    def remove(self, name: str, callback: Callback) -> None:
        self.hooks.remove(name, callback, self.scope)

    def has(self, name: str) -> bool:
        return self.hooks.has(name, self.scope)

    def fire(self, name: str, event: Any = None) -> Any:
        return self.hooks.fire(name, event, self.scope)

    def notify(self, name: str, event: Any = None) -> Any:
        return self.hooks.notify(name, event, self.scope)

    def table(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.hooks.table(self.scope)
