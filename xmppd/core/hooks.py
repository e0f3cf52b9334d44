# -*- test-case-name: tests.test_hooks -*-
"""
Named events with priorities: how features cooperate without importing each
other (DESIGN §3, Prosody's events, ejabberd's hooks).

Core code fires a hook at each decision several features care about
("message/offline", "roster/changed", "account/removed", ...) with an
C{...Event} payload.  Callbacks run highest priority first; for L{Hooks.fire}
the first one that returns something other than C{None} decides and the rest
are not called.  A callback that raises is logged and skipped: a broken
feature must never break delivery.  Hook names and their payloads are listed
where they are fired, in the module docstring of the firing module.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Callable

from twisted.logger import Logger

Callback = Callable[[Any], Any]


class Hooks:
    """
    The node's hooks.  A callback may be registered for one I{scope} (a
    served domain: features live per domain and register through
    L{ScopedHooks}) or for every scope (C{scope=None}).  Firing with a scope
    runs the callbacks of that scope and the unscoped ones, merged by
    priority; firing without one runs them all (node-wide events such as
    shutdown).  The merged list for each (name, scope) is built once, so a
    node serving many domains pays per stanza only for the callbacks of the
    stanza's domain.
    """

    log = Logger()

    def __init__(self):
        # (name, scope) -> list of (-priority, serial, callback), kept sorted
        self._callbacks: dict[tuple[str, Any], list[tuple[int, int, Callback]]] = {}
        # (name, scope) -> the callbacks a fire runs, in order (cache)
        self._merged: dict[tuple[str, Any], tuple[Callback, ...]] = {}
        self._serial = itertools.count()

    def add(self, name: str, callback: Callback, priority: int = 0, scope: Any = None) -> None:
        """Call C{callback(event)} when C{name} fires; equal priorities run in order added."""
        bisect.insort(self._callbacks.setdefault((name, scope), []),
                      (-priority, next(self._serial), callback))
        self._forget(name)

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
            if scope is None:
                entries = [entry for (n, _), found in self._callbacks.items() if n == name
                           for entry in found]
            else:
                entries = self._callbacks.get((name, None), []) + self._callbacks.get(key, [])
            merged = self._merged[key] = tuple(entry[2] for entry in sorted(entries))
        return merged

    def has(self, name: str, scope: Any = None) -> bool:
        return bool(self.callbacks(name, scope))

    def fire(self, name: str, event: Any = None, scope: Any = None) -> Any:
        """Run the callbacks until one returns a result; return it (or C{None})."""
        for callback in self.callbacks(name, scope):
            try:
                result = callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)
                continue
            if result is not None:
                return result
        return None

    def notify(self, name: str, event: Any = None, scope: Any = None) -> None:
        """Run every callback; results are ignored (for events nobody vetoes)."""
        for callback in self.callbacks(name, scope):
            try:
                callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)

    def scoped(self, scope: Any) -> "ScopedHooks":
        """These hooks as one served domain's features see them."""
        return ScopedHooks(self, scope)


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

    def add(self, name: str, callback: Callback, priority: int = 0) -> None:
        self.hooks.add(name, callback, priority, self.scope)

    def remove(self, name: str, callback: Callback) -> None:
        self.hooks.remove(name, callback, self.scope)

    def has(self, name: str) -> bool:
        return self.hooks.has(name, self.scope)

    def fire(self, name: str, event: Any = None) -> Any:
        return self.hooks.fire(name, event, self.scope)

    def notify(self, name: str, event: Any = None) -> None:
        self.hooks.notify(name, event, self.scope)
