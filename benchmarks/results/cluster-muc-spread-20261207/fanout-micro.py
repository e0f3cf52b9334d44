"""
The cluster transport's part of a room message to 25 occupants on another
node, per copy (each occupant's text packed, as before) against per node
(one FanOut record): the owner's queueing and packing, the holder's
unpacking and hand-over to (stand-in) sessions, and the inbox bytes.  No
Redis, no sockets: only the code the change touched.

    .venv/bin/python benchmarks/results/cluster-muc-spread-20261207/fanout-micro.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

from twisted.words.xish import domish  # noqa: E402

from xmppd.cluster.transport import Transport, pack  # noqa: E402
from xmppd.core.jid import parseJID  # noqa: E402
from xmppd.core.prepared import Prepared  # noqa: E402
from xmppd.core.stanzas import StanzaText  # noqa: E402


class View:
    def __init__(self, i):
        self.node, self.token = "b", "abcd1234.%d" % i
        self.jid = parseJID("u%d@localhost/r%d" % (i, i))


class Session:
    def send(self, stanza):
        pass


class Directory:
    session = Session()

    def local(self, token):
        return self.session


class Clock:
    def callLater(self, *args):
        return None


transport = Transport("a", Directory(), None, None, None, Clock())
views = [View(i) for i in range(25)]
message = domish.Element((None, "message"))
message["from"], message["type"], message["id"] = "room1@conference.localhost/u7", "groupchat", "b"
message.addElement("body", content="XB123456789.7." + "lorem ipsum dolor sit amet " * 4)
N = 4000
for mode in ("per copy", "per node") * 2:
    size, owner, holder = 0, 0.0, 0.0
    for _ in range(N):
        prepared = Prepared(message)
        c0 = time.process_time()
        for view in views:
            to = view.jid.full()
            if mode == "per copy":
                transport.forward(view, StanzaText(prepared.textFor(to)))
            else:
                transport.forwardPrepared(view, prepared, to)
        value = pack(transport.queued.pop("b"))
        c1 = time.process_time()
        transport.deliver(["m", value])
        c2 = time.process_time()
        owner, holder, size = owner + c1 - c0, holder + c2 - c1, size + len(value)
    copies = N * len(views) / 1000
    print("%-8s owner %.2f ms/1k copies, holder %.2f ms/1k, inbox bytes per message %d"
          % (mode, owner * 1000 / copies, holder * 1000 / copies, size / N))
