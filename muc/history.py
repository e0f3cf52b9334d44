# -*- test-case-name: tests.test_muc_history -*-
"""
Discussion history (XEP-0045 §7.2.15): the last messages of a room, sent
to whoever enters, each with a delay stamp (XEP-0203) from the room.

A new occupant may ask for less with C{<history maxchars maxstanzas
seconds since/>}; every limit given applies, and C{maxchars} counts the
characters of the whole stanzas as sent, so an entry keeps its serialized
length.  The service keeps at most C{[muc] history_length} messages per
room.
"""

from __future__ import annotations

import collections
from datetime import datetime, timezone

from twisted.words.xish import domish

from muc.protocol import NS_MUC

#: Fixed cost of the delay element added to each message, counted in maxchars.
DELAY_CHARS = 80


def stamp(seconds: float) -> str:
    """An XEP-0082 DateTime in UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def parseStamp(text: str) -> float | None:
    """Seconds since the epoch of an XEP-0082 DateTime, or None."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class HistoryEntry:
    __slots__ = ("element", "when", "chars")

    def __init__(self, element: domish.Element, when: float, chars: int):
        self.element = element
        self.when = when
        self.chars = chars


class History:
    def __init__(self, length: int):
        self.entries: collections.deque[HistoryEntry] = collections.deque(maxlen=max(length, 0))

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, element: domish.Element, when: float, chars: int) -> None:
        if self.entries.maxlen:
            self.entries.append(HistoryEntry(element, when, chars + DELAY_CHARS))

    def remove(self, match) -> int:
        """
        Forget the entries whose element C{match} accepts (a moderated
        message is not replayed to newcomers, XEP-0424 §6); how many went.
        """
        kept = [entry for entry in self.entries if not match(entry.element)]
        removed = len(self.entries) - len(kept)
        if removed:
            self.entries = collections.deque(kept, maxlen=self.entries.maxlen)
        return removed

    def select(self, request: domish.Element | None, now: float) -> list[HistoryEntry]:
        """The entries a join asking C{request} (its C{<history/>}, or None) gets, oldest first."""
        entries = list(self.entries)
        if request is None:
            return entries
        maxStanzas = _integer(request.getAttribute("maxstanzas"))
        maxChars = _integer(request.getAttribute("maxchars"))
        seconds = _integer(request.getAttribute("seconds"))
        since = request.getAttribute("since")
        if seconds is not None:
            entries = [e for e in entries if e.when >= now - seconds]
        if since is not None:
            after = parseStamp(since)
            if after is not None:
                entries = [e for e in entries if e.when >= after]
        if maxStanzas is not None:
            entries = entries[-maxStanzas:] if maxStanzas else []
        if maxChars is not None:
            kept, total = [], 0
            for entry in reversed(entries):
                total += entry.chars
                if total > maxChars:
                    break
                kept.append(entry)
            entries = kept[::-1]
        return entries

    def toState(self) -> list[tuple[str, float, int]]:
        from xmppd.stream.elements import serialize
        return [(serialize(e.element), e.when, e.chars) for e in self.entries]

    def restore(self, state, parse) -> None:
        for xml, when, chars in state:
            self.entries.append(HistoryEntry(parse(xml), when, chars))


def historyRequest(presence: domish.Element) -> domish.Element | None:
    for x in presence.elements(NS_MUC, "x"):
        for history in x.elements(NS_MUC, "history"):
            return history
    return None


def _integer(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return max(number, 0)
