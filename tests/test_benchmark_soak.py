"""
The soak scenario (issue 18, item 3: C{benchmarks/soakbench.py}) stays
working: a run at its smallest (20 sessions for about two seconds of the
mix, every kind of traffic and both kinds of reconnect) against xmppd from
this checkout, counting every accepted message end to end.  The long run
and its numbers are in benchmarks/RESULTS.md; nothing here is timed.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.xmppdbench import soak

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")
BIN = os.path.dirname(sys.executable)


def test_splitCountsNestedMessages():
    """An archive result (a message inside a message) is one top-level element."""
    result = (b"<message to='a'><result xmlns='urn:xmpp:mam:2'><forwarded><message id='x'>"
              b"<body>hi</body></message></forwarded></result></message>")
    elements, rest = soak.split(result + b"<r xmlns='urn:xmpp:sm:3'/><presence/><iq type='res")
    assert [name for name, _ in elements] == [b"message", b"r", b"presence"]
    assert elements[0][1] == result
    assert rest == b"<iq type='res"
    elements, rest = soak.split(b"<message><body/></message></stream:stream>")
    assert [name for name, _ in elements] == [b"message", b"/stream"] and rest == b""


def test_svgAndIntervals():
    rows = [{"t_s": t, "phase": "mix", "rss_kb": 1000 + t, "server_cpu_pct": 5.0,
             "chat_p99_ms": 3.0, "chat_n": 100, "gc_p99_ms": None, "reactor_lag_s": 0.001,
             "offline_stored": 1.0} for t in range(10, 700, 10)]
    picture = soak.svg(rows, 5, 650, "test")
    assert picture.startswith("<svg") and picture.count("<polyline") == 2
    table = soak.intervals(rows, 5, end=650, exact={0: [0.001, 0.002, 0.004]})
    assert [r["from_min"] for r in table] == [0, 5, 10]
    assert table[-1]["to_min"] == 10.8
    assert table[0]["chat_p99_ms_worst"] == 3.0 and table[0]["chat_p99_ms"] == 4.0
    assert table[1]["chat_p99_ms"] is None and table[0]["samples_p99_over_100ms"] == 0


@pytest.mark.skipif(not os.access(os.path.join(BIN, "twistd"), os.X_OK),
                    reason="twistd is not next to this Python")
def test_soakRunLosesNothing(tmp_path):
    """The smallest soak: logins, rooms, chat, presence, archives, reconnects; zero lost."""
    out = tmp_path / "soak"
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "soakbench.py"), "--sessions", "20",
         "--minutes", "0.04", "--rooms", "1", "--occupants", "4", "--chat", "20",
         "--groupchat", "4", "--presence", "5", "--mam", "3", "--reconnects", "120",
         "--relogin-share", "0.5", "--sample", "1", "--drain", "30", "--server-cpus", "",
         "--gen-cpus", "", "--out", str(out)],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "summary.json") as f:
        result = json.load(f)
    assert result["chat"]["sent"] > 0
    assert result["chat"]["accepted"] == result["chat"]["sent"]
    assert result["chat"]["lost"] == 0
    assert result["groupchat"]["lost_deliveries"] == 0
    assert result["groupchat"]["deliveries"] == result["groupchat"]["deliveries_expected"] > 0
    assert result["mam"]["answered"] == result["mam"]["queries"] > 0
    assert result["errors"] == {}
    assert result["server_log"]["tracebacks"] == 0
    assert (out / "samples.csv").exists() and (out / "soak.svg").exists()
