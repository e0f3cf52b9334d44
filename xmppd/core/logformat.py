# -*- test-case-name: tests.test_logformat -*-
"""
C{log.format = "json"} (issue 17, item 7): one JSON object a line, for a
log collector, instead of twistd's text lines; and, for those text lines,
time stamps made once per second (L{useCachedTimeStamps}).

Each line has C{time} (UTC, ISO 8601), C{level}, C{namespace}, C{text} (the
line the text format would show) and the event's own fields when they are
plain values: the login, logout, s2s and abuse lines give C{event},
C{user}/C{jid}, C{peer}, C{mechanism}, C{limit}... so a collector can
filter on them without parsing sentences.  A field whose name says it is a
secret (password, token, secret, SASL data) is never written, whatever
logged it; the server's own lines never carry one either.
"""

from __future__ import annotations

import json
import time

from twisted.logger import ILogObserver, formatEvent, formatTime, timeFormatRFC3339
from zope.interface import implementer

#: Parts of a field name that mark it as secret: never written.
SECRET_WORDS = ("password", "passwd", "token", "secret", "sasl", "credential", "authorization")

_PLAIN = (str, int, float, bool, type(None))


def eventAsDict(event: dict) -> dict:
    """The JSON object of one log event (see the module docstring)."""
    level = event.get("log_level")
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.get("log_time", 0)))
        + ".%03dZ" % int((event.get("log_time", 0) % 1) * 1000),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "text": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or key in ("format", "message", "isError",
                                                              "why", "failure"):
            continue
        lowered = key.lower()
        if any(word in lowered for word in SECRET_WORDS):
            continue
        if isinstance(value, _PLAIN):
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return record


@implementer(ILogObserver)
class JSONLineObserver:
    """Writes each event to C{outFile} as one line of JSON."""

    def __init__(self, outFile):
        self.outFile = outFile

    def __call__(self, event: dict) -> None:
        try:
            line = json.dumps(eventAsDict(event), ensure_ascii=False, default=str)
        except Exception:
            # A log line must never break the code that logs.
            line = json.dumps({"text": "unserializable log event", "level": "error"})
        self.outFile.write(line + "\n")
        flush = getattr(self.outFile, "flush", None)
        if flush is not None:
            flush()


def cachedFormatTime(when, timeFormat=timeFormatRFC3339, default: str = "-") -> str:
    """
    Twisted's C{formatTime}, computed once per second and format: the time
    stamp of a text log line has a resolution of one second, and Twisted
    finds the local time zone and formats the stamp anew for every event
    (half the cost of a login's log line, ~5 % of a FAST login in the
    reconnect storm, benchmarks/RESULTS.md).
    """
    if when is None or timeFormat is None:
        return default
    key = (int(when // 1), timeFormat)
    text = _stamps.get(key)
    if text is None:
        if len(_stamps) > 8:
            _stamps.clear()
        text = _stamps[key] = formatTime(when // 1, timeFormat, default)
    return text


_stamps: dict = {}


def useCachedTimeStamps() -> bool:
    """
    Make twistd's text log observer (C{twisted.logger.textFileLogObserver},
    which looks C{formatTime} up in its module at every event) use
    L{cachedFormatTime}; whether it could.  Called for a node run by
    twistd (L{xmppd.launch}); the lines are unchanged.
    """
    from twisted.logger import _file, _format
    if getattr(_file, "formatTime", None) is not _format.formatTime:
        return False
    _file.formatTime = cachedFormatTime
    return True
