"""
Helpers for tests that bind sessions directly in a session directory
(L{xmppd.core.sessions.ISessionDirectory}), as c2s would.
"""

from __future__ import annotations


def bindNow(directory, jid, stream):
    """
    Bind C{stream} to C{jid} and return the view: the directory's bind is
    asynchronous, and the in-memory one settles at once.
    """
    results = []
    directory.bind(jid, stream).addBoth(results.append)
    [session] = results
    if not hasattr(session, "jid"):
        session.raiseException()
    return session
