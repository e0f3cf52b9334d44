# -*- test-case-name: tests.test_benchmark_smoke -*-
"""
What Redis did during a phase of a cluster scenario: C{INFO commandstats}
before and after, over a plain socket (the generator has no Redis client
and needs none for one command).  The difference, per delivered unit, is
the number of Redis operations a stanza costs, which bounds how many
stanzas per second one single-threaded Redis can carry for N nodes.
"""

import socket


def info(port: int, section: str, host: str = "127.0.0.1") -> str:
    """The text of C{INFO section} from the Redis at C{host:port}."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"INFO " + section.encode() + b"\r\n")
        data = b""
        # a bulk reply: $LENGTH\r\n then LENGTH bytes and \r\n
        while b"\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n")
        length = int(head[1:])
        while len(body) < length + 2:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return body[:length].decode()


def parseCommandStats(text: str) -> dict[str, int]:
    """C{{command: calls}} from C{INFO commandstats} (lines C{cmdstat_get:calls=3,usec=...})."""
    calls = {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_"):].partition(":")
            values = dict(f.split("=", 1) for f in fields.split(",") if "=" in f)
            calls[name] = int(values.get("calls", 0))
    return calls


def commandCalls(port: int) -> dict[str, int]:
    return parseCommandStats(info(port, "commandstats"))


def callsDelta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per command between two L{commandCalls}, commands not called left out."""
    delta = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n for name, n in sorted(delta.items()) if n > 0}
