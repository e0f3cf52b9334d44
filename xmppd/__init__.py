"""
xmppd: an XMPP server on Twisted and wokkel.

Importing the package applies L{xmppd._compat} (the shim that lets wokkel
18.0.0 import on current Twisted), so any module of ours can import wokkel.
L{xmppd.tap.makeService} builds the running server.

The public API for programs that embed xmppd is L{makeServer} and
L{whenListening} (from L{xmppd.api}), and L{xmppd.testing} for their tests.
Both names are imported on first use, so C{import xmppd} loads neither the
server nor the reactor.
"""

from xmppd import _compat  # noqa: F401  (must run before anything imports wokkel)

__version__ = "0.1.0"

#: Names of L{xmppd.api} available as C{xmppd.<name>}.
_API = ("makeServer", "whenListening")


def __getattr__(name: str):
    # PEP 562: the first xmppd.makeServer imports xmppd.api, once.
    if name in _API:
        from xmppd import api
        return getattr(api, name)
    raise AttributeError(f"module 'xmppd' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
