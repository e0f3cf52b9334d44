# -*- test-case-name: tests.test_compat -*-
"""
Make wokkel 18.0.0 importable on current Twisted.

wokkel 18.0.0 (the newest release) imports two names that Twisted has since
removed: C{twisted.python.compat._PY3} (used by L{wokkel.data_form}, and thereby
by disco, pubsub and muc) and the module C{twisted.python.constants} (used by
L{wokkel.muc}), which lives on as the C{constantly} package.  Import this module
before anything from wokkel; L{tests.test_compat} fails as soon as a wokkel
release no longer needs it, so the shim can be deleted then.
"""

import sys

import constantly
import twisted.python.compat as _twistedCompat

if not hasattr(_twistedCompat, "_PY3"):
    _twistedCompat._PY3 = True

if "twisted.python.constants" not in sys.modules:
    try:
        import twisted.python.constants  # noqa: F401
    except ImportError:
        sys.modules["twisted.python.constants"] = constantly
