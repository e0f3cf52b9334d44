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
    log = Logger()

    def __init__(self):
        # name -> list of (-priority, serial, callback), kept sorted
        self._callbacks: dict[str, list[tuple[int, int, Callback]]] = {}
        self._serial = itertools.count()

    def add(self, name: str, callback: Callback, priority: int = 0) -> None:
        """Call C{callback(event)} when C{name} fires; equal priorities run in order added."""
        bisect.insort(self._callbacks.setdefault(name, []),
                      (-priority, next(self._serial), callback))

    def remove(self, name: str, callback: Callback) -> None:
        entries = self._callbacks.get(name, [])
        entries[:] = [entry for entry in entries if entry[2] != callback]

    def has(self, name: str) -> bool:
        return bool(self._callbacks.get(name))

    def fire(self, name: str, event: Any = None) -> Any:
        """Run the callbacks until one returns a result; return it (or C{None})."""
        for _, _, callback in self._callbacks.get(name, ()):
            try:
                result = callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)
                continue
            if result is not None:
                return result
        return None

    def notify(self, name: str, event: Any = None) -> None:
        """Run every callback; results are ignored (for events nobody vetoes)."""
        for _, _, callback in self._callbacks.get(name, ()):
            try:
                callback(event)
            except Exception:
                self.log.failure("Hook {name} callback {callback!r} failed",
                                 name=name, callback=callback)
