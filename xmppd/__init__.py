"""
xmppd: an XMPP server on Twisted and wokkel.

The package is importable without side effects; L{xmppd.tap.makeService} builds
the running server from a validated configuration.
"""

__version__ = "0.1.0"
