# -*- test-case-name: tests.test_logformat -*-
"""
C{log.format = "json"} (issue 17, item 7): one JSON object a line, for a
log collector, instead of twistd's text lines.

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

from twisted.logger import ILogObserver, formatEvent
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
