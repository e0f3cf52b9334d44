"""
xmppdbench: the standalone benchmark of xmppd (see benchmarks/README.md).

One command (C{python3 benchmarks/run.py}) starts xmppd from a configuration
of its own under a temporary directory, provisions its accounts with
C{xmppctl import} of a XEP-0227 file, drives the load from a separate process
pinned to another core, and reports server CPU time per 1000 units, rates,
latency percentiles, memory and which side was CPU-bound.

Modules: L{dataset} (accounts and rosters as XEP-0227), L{procstat} (CPU,
scheduler and memory accounting from /proc), L{stats} (percentiles and the
per-phase figures), L{client} (the generator's byte-scanning XMPP client),
L{load} (the load generator, stdlib + optional uvloop, run as its own
process), L{bench} (the orchestrator), L{report} (markdown).
The generator imports neither Twisted nor xmppd, so it stays cheap and can
run under any Python 3.11.
"""
