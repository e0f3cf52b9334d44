"""
C{xmppctl}: the operator's command line.  Nothing imports from here; it
imports what it needs and, for a running server, talks to the admin socket.

C{ctl} builds the command line from the areas, one module each (C{accounts},
C{portability} with the XEP-0227 format in C{pie}, C{check},
C{connections}); what the areas share is in C{common}, and no area imports
another.
"""
