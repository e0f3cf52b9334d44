# -*- test-case-name: tests.test_collector -*-
"""
The garbage collector of a running node (DESIGN §5: "long-lived objects
after start-up can be frozen").

A started node holds some hundreds of thousands of objects that live as
long as the process: modules, classes, functions, the configuration,
parsed schemas.  CPython's full collection walks all of them, and it runs
whenever the objects that survived younger collections grew by a quarter
since the last one; after a restart, while every client reconnects at
once, that is several full collections of ~60 ms each within the first
seconds (measured with C{benchmarks/stormbench.py}: a quarter of the CPU
of 1000 FAST logins).  Once the node listens, L{FreezeAfterStart} collects
once and moves everything that exists into the permanent generation
(C{gc.freeze()}), so later collections walk only what sessions and stanzas
allocate.  What is frozen is never freed, which is what start-up objects
do anyway.

It also makes full collections rarer while the heap grows fast: CPython
starts one after every 10 collections of the middle generation once the
survivors grew by a quarter, which in a storm of reconnects (thousands of
new sessions a second) is one every few milliseconds of allocation; after
100 instead (L{FULL_AFTER}), the storm's FAST logins cost 15-20 % less CPU
(measured: 880-900 against 690-780 CPU-ms per 1000 at 1000 clients).  A
heap that does not grow is unaffected (the quarter rule already holds full
collections back), and garbage in reference cycles among long-lived
objects is still collected, at most ~700,000 allocations later.

Only a node run by twistd (L{xmppd.launch}) does this: a test process
builds and drops many servers and must be able to free them.
"""

from __future__ import annotations

import gc

from twisted.application import service
from twisted.logger import Logger


#: Collections of the middle generation between two full collections
#: (CPython's third threshold, 10 by default; see the module docstring).
FULL_AFTER = 100


class FreezeAfterStart(service.Service):
    """Once the node is ready and listening, collect and freeze (see the module docstring)."""

    log = Logger()

    def __init__(self, server, reactor, gcModule=gc):
        self.server = server
        self.reactor = reactor
        self.gc = gcModule

    def startService(self):
        service.Service.startService(self)
        # After the listeners (started later, ready on the same condition)
        # had their turn: a reactor turn after the node is ready.
        self.server.whenReady().addCallback(
            lambda _: self.reactor.callLater(0, self.freeze)).addErrback(lambda _: None)

    def freeze(self) -> None:
        if not self.running:
            return
        self.gc.collect()
        self.gc.freeze()
        young, middle, _ = self.gc.get_threshold()
        self.gc.set_threshold(young, middle, FULL_AFTER)
        self.log.debug("Froze {count} objects of the started node",
                       count=self.gc.get_freeze_count())
