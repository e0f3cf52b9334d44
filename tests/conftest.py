"""
Test-wide set-up: importing xmppd first applies the wokkel shim, so test
modules may import wokkel in any order.
"""

import xmppd  # noqa: F401
