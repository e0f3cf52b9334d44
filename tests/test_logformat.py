"""
Issue 17, item 7: C{log.format = "json"} (L{xmppd.core.logformat}): one
JSON object a line with the event's fields, secrets never written, and
twistd really logging that way, by the plugin and by C{xmppd.tac}.
"""

from __future__ import annotations

import io
import json
import os

from twisted.logger import LogLevel
from twisted.python.failure import Failure

from tests.test_tap import (REPO, TWISTD, assertCleanShutdown, repoEnvironment,
                            runUntilListening, writeConfig)
from xmppd.core.logformat import JSONLineObserver, eventAsDict


def event(**fields):
    base = {"log_format": "{user}@{domain} authenticated with {mechanism} from {peer}",
            "log_level": LogLevel.info, "log_namespace": "xmppd.c2s.stream.ClientStream",
            "log_time": 1765152000.25, "user": "juliet", "domain": "example.org",
            "mechanism": "PLAIN", "peer": "192.0.2.1", "event": "login"}
    base.update(fields)
    return base


def test_fieldsAndText():
    """The line has time, level, namespace, the text line and the plain fields."""
    record = eventAsDict(event())
    assert record == {
        "time": "2025-12-08T00:00:00.250Z", "level": "info",
        "namespace": "xmppd.c2s.stream.ClientStream",
        "text": "juliet@example.org authenticated with PLAIN from 192.0.2.1",
        "user": "juliet", "domain": "example.org", "mechanism": "PLAIN",
        "peer": "192.0.2.1", "event": "login"}


def test_secretsNeverWritten():
    """A field named like a secret is dropped, whoever logged it; objects are not dumped."""
    record = eventAsDict(event(password="hunter2", sasl_data="cD13", metricsToken="abc",
                               secret=b"x", stream=object()))
    text = json.dumps(record)
    for leaked in ("hunter2", "cD13", "abc"):
        assert leaked not in text
    assert set(record) == set(eventAsDict(event()))


def test_failureHasTraceback():
    """A logged failure carries its traceback as text."""
    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    record = eventAsDict(event(log_failure=failure, log_level=LogLevel.critical))
    assert record["level"] == "critical"
    assert "ZeroDivisionError" in record["traceback"]


def test_oneLinePerEvent():
    """Each event is one line of JSON, even with newlines in its text."""
    out = io.StringIO()
    observer = JSONLineObserver(out)
    observer(event(user="line\nbreak"))
    observer(event())
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["login", "login"]


def assertJSONLog(output: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any("c2s.direct_tls_endpoint listening" in r["text"] for r in records)


def test_twistdPluginLogsJSON(tmp_path):
    """'twistd -n xmppd' with log.format = "json" writes only JSON lines, to stdout."""
    output, returncode = runUntilListening(
        [TWISTD, "-n", "--pidfile=", "xmppd", "--config",
         writeConfig(tmp_path, extra='[log]\nformat = "json"\n')],
        tmp_path, repoEnvironment())
    assertJSONLog(output)
    assertCleanShutdown(output, returncode)


def test_tacLogsJSON(tmp_path):
    """'twistd -ny xmppd.tac' with log.format = "json" too."""
    output, returncode = runUntilListening(
        [TWISTD, "-ny", os.path.join(REPO, "xmppd.tac"), "--pidfile="], tmp_path,
        repoEnvironment(XMPPD_CONFIG=writeConfig(tmp_path, extra='[log]\nformat = "json"\n')))
    assertJSONLog(output)
    assertCleanShutdown(output, returncode)


def test_cachedTimeStampsUnchanged():
    """Text log lines carry the same time stamps when they are made once per second."""
    import random
    from twisted.logger import formatTime, timeFormatRFC3339
    from xmppd.core.logformat import cachedFormatTime
    rng = random.Random(7)
    moments = [0.0, 0.999, 1.0, 1e9 + 0.25, 1234567890.999999] + [
        rng.uniform(0, 2e9) for _ in range(200)]
    for when in moments:
        for timeFormat in (timeFormatRFC3339, "%Y/%W", None):
            assert cachedFormatTime(when, timeFormat) == formatTime(when, timeFormat)
    assert cachedFormatTime(None) == formatTime(None) == "-"


def test_twistdUsesCachedTimeStamps(monkeypatch):
    """twistd's text observer gets the cached time stamps; a Twisted without the seam is left be."""
    from twisted.logger import _file, _format
    from xmppd.core import logformat
    monkeypatch.setattr(_file, "formatTime", _format.formatTime)
    assert logformat.useCachedTimeStamps()
    assert _file.formatTime is logformat.cachedFormatTime
    monkeypatch.setattr(_file, "formatTime", lambda *args: "-")
    assert not logformat.useCachedTimeStamps()
