"""
Tests for L{xmppd._compat}, the shim that lets wokkel 18.0.0 import.
"""

import subprocess
import sys

WOKKEL_MODULES = ["wokkel.disco", "wokkel.data_form", "wokkel.muc", "wokkel.pubsub",
                  "wokkel.server", "wokkel.component", "wokkel.xmppim", "wokkel.ping"]


def _importInFreshInterpreter(prelude):
    code = prelude + "\n" + "\n".join("import %s" % name for name in WOKKEL_MODULES)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_wokkelImportsWithShim():
    """Every wokkel module the server uses imports once the shim is loaded."""
    result = _importInFreshInterpreter("import xmppd._compat")
    assert result.returncode == 0, result.stderr


def test_shimStillNeeded():
    """
    Without the shim wokkel still fails to import; when this test fails, a fixed
    wokkel has been released and L{xmppd._compat} can be removed.
    """
    result = _importInFreshInterpreter("")
    assert result.returncode != 0
    assert "_PY3" in result.stderr or "twisted.python.constants" in result.stderr
