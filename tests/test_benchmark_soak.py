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
    # the caches and queues of the server, with their bounds, in the summary
    bounds = {(r["kind"], r["name"]): r for r in result["bounds"]}
    for key in (("cache", "jid_parse"), ("cache", "roster"), ("queue", "sm_unacked"),
                ("queue", "muc_history"), ("queue", "sqlite_writes")):
        assert bounds[key]["end"] is not None, key
    assert bounds[("cache", "roster")]["max"] > 0
    assert bounds[("cache", "jid_parse")]["bound"] == 65536
    assert bounds[("queue", "sm_unacked")]["longest_max"] <= bounds[("queue", "sm_unacked")][
        "bound"]
    assert all(r["max"] <= r["bound"] for r in result["bounds"]
               if r["kind"] == "cache" and r["bound"] is not None and r["max"] is not None)
    summary = (out / "summary.md").read_text()
    assert "| cache | `roster` |" in summary and "| queue | `sm_unacked` |" in summary
    # --report on a run from before the gauges: the table says so, nothing fails
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    with open(out / "samples.jsonl", "w") as f:
        for row in rows:
            row["metrics"] = {k: v for k, v in row["metrics"].items()
                              if not k.startswith(("xmppd_cache_", "xmppd_queue_"))}
            f.write(json.dumps(row) + "\n")
    result.pop("bounds")
    (out / "summary.json").write_text(json.dumps(result))
    assert soak.rerender(str(out)) == 0
    assert "No cache or queue gauges" in (out / "summary.md").read_text()


def test_boundsTableWithMissingSamples():
    """
    The caches-and-queues table: at the end of the warm-up, the largest
    after it, at the end, the longest single queue and the bound; a sample
    without the gauges (a failed scrape) is skipped, a name missing from
    one shows as "–".
    """
    metrics = [
        {'xmppd_cache_entries{cache="roster"}': 10.0,
         'xmppd_queue_items{queue="sm_unacked"}': 4.0,
         'xmppd_queue_longest{queue="sm_unacked"}': 2.0,
         'xmppd_queue_capacity{queue="sm_unacked"}': 1000.0},
        {},
        {'xmppd_cache_entries{cache="roster"}': 12.0,
         'xmppd_cache_entries{cache="jid_parse"}': 7.0,
         'xmppd_cache_capacity{cache="jid_parse"}': 65536.0,
         'xmppd_queue_items{queue="sm_unacked"}': 9.0,
         'xmppd_queue_longest{queue="sm_unacked"}': 5.0,
         'xmppd_queue_capacity{queue="sm_unacked"}': 1000.0,
         'xmppd_c2s_sessions{transport="tcp"}': 3.0},
        {'xmppd_cache_entries{cache="roster"}': 11.0,
         'xmppd_queue_items{queue="sm_unacked"}': 1.0,
         'xmppd_queue_longest{queue="sm_unacked"}': 1.0,
         'xmppd_queue_capacity{queue="sm_unacked"}': 1000.0}]
    samples = [(t, soak.boundsOf(m)) for t, m in zip((10, 20, 30, 40), metrics)]
    table = {r["name"]: r for r in soak.boundsTable(samples, mixStart=15)}
    assert set(table) == {"roster", "jid_parse", "sm_unacked"}
    assert (table["roster"]["warm"], table["roster"]["max"], table["roster"]["end"]) == (
        10, 12, 11)
    assert table["roster"]["bound"] is None and table["roster"]["bound_note"]
    assert (table["jid_parse"]["warm"], table["jid_parse"]["end"]) == (None, None)
    assert table["sm_unacked"]["longest_max"] == 5 and table["sm_unacked"]["max"] == 9
    text = "\n".join(soak.boundsMarkdown(soak.boundsTable(samples, 15)))
    assert "| cache | `jid_parse` | – | 7 | – |  | 65536 |" in text
    assert "| queue | `sm_unacked` | 4 | 9 | 1 | 5 | 1000 |" in text
    assert "No cache or queue gauges" in "\n".join(soak.boundsMarkdown([]))
    # no sample before the mix: its first one stands for the end of the warm-up
    table = {r["name"]: r for r in soak.boundsTable(samples, mixStart=5)}
    assert table["roster"]["warm"] == 10
