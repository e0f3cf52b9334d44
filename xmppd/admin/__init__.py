"""The admin socket: the running server's door for C{xmppctl}."""
