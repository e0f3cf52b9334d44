"""
xmppd: an XMPP server on Twisted and wokkel.

Importing the package applies L{xmppd._compat} (the shim that lets wokkel
18.0.0 import on current Twisted), so any module of ours can import wokkel.
L{xmppd.tap.makeService} builds the running server.
"""

from xmppd import _compat  # noqa: F401  (must run before anything imports wokkel)

__version__ = "0.1.0"
