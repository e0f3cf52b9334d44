"""
One module (or small package) per protocol area a served domain offers.
Each provides C{makeHandler(domain)} and is loaded by name from
C{server.modules} (L{xmppd.core.modules}).  Features cooperate through hooks
and through the small interfaces other features document, never through each
other's internals.
"""
