"""
C{xmppctl}: the operator's command line.  Nothing imports from here; it
imports what it needs and, for a running server, talks to the admin socket.
"""
