"""
Test-wide set-up: importing xmppd first applies the wokkel shim, so test
modules may import wokkel in any order.
"""

import xmppd  # noqa: F401

# The end-to-end kit (tests/e2e.py): the server, stoppedServer and
# makeServer fixtures, for every test module.
pytest_plugins = ["tests.e2e"]
