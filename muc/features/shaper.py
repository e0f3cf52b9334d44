# -*- test-case-name: tests.test_muc_room -*-
"""
Per-occupant rate limiting: a token bucket per occupant, C{[muc] rate}
messages a second on average and C{[muc] burst} at once.  A message over the
limit is refused with a C{wait} resource-constraint error (RFC 6120
§8.3.3.18), so the client may send it again later; nothing is broadcast.
"""

from muc.events import Refusal
from xmppd.core.hooks import POLICY

OPTIONS = ()


def register(hooks):
    hooks.add("room/message", onMessage, POLICY)
    hooks.add("room/pm", onMessage, POLICY)


def onMessage(event):
    room = event.room
    settings = room.service.settings
    if not settings.rate:
        return None
    occupant = event.occupant
    now = room.service.clock.seconds()
    tokens = occupant.tokens
    if tokens is None:
        tokens, occupant.refilled = float(settings.burst), now
    tokens = min(float(settings.burst), tokens + (now - occupant.refilled) * settings.rate)
    occupant.refilled = now
    if tokens < 1.0:
        occupant.tokens = tokens
        return Refusal("resource-constraint", "you are sending messages too fast", "wait")
    occupant.tokens = tokens - 1.0
    return None
