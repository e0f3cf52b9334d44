# -*- test-case-name: tests.test_messages -*-
"""
Delivery rules that more than one feature applies (RFC 6121 §8.5): message
delivery picks its recipients with them, and carbons (XEP-0280) uses the same
choice to tell which resources already received a message.
"""

from __future__ import annotations


def mostAvailable(sessions, everyone: bool = False) -> list:
    """
    The sessions a message to the bare JID goes to (RFC 6121 §8.5.2.1.1):
    those that are available with the highest non-negative priority, or with
    C{everyone} (headlines) all available ones with a non-negative priority.
    One pass over C{sessions} (the directory's own list: it is not copied).
    """
    chosen = []
    best = -1
    for session in sessions:
        if not session.available:
            continue
        priority = session.priority
        if priority < 0:
            continue
        if everyone or priority == best:
            chosen.append(session)
        elif priority > best:
            best = priority
            chosen = [session]
    return chosen
