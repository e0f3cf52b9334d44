"""
Offline message storage (XEP-0160) for xmppd, built only on the core's hooks
(DESIGN §3, STYLE example B): the core never imports this package; it is
enabled by naming "offline" in C{server.modules}.
"""
