"""
Test-wide set-up: importing xmppd first applies the wokkel shim, so test
modules may import wokkel in any order.
"""

import xmppd  # noqa: F401

# The end-to-end kit (tests/e2e.py): the server, stoppedServer and
# makeServer fixtures, for every test module.
pytest_plugins = ["tests.e2e"]


def pytest_collection_modifyitems(session, config, items):
    """
    Run C{twisted.trial.unittest.TestCase}s (tests/test_library.py) before
    every other test.  Trial waits for a test by running the reactor itself
    (C{reactor.run()}, then C{crash()}) and checks it is clean with
    C{reactor.iterate()}; pytest-twisted runs the reactor once, for good, in
    a greenlet of its own, from its first test on, and from then on trial
    could neither run nor iterate it.  Before that first test, trial runs
    its tests as under C{trial}, on the same (asyncio) reactor, and
    pytest-twisted starts it afterwards as usual.
    """
    from twisted.trial.unittest import TestCase

    def isTrialCase(item) -> bool:
        cls = getattr(item, "cls", None)
        return isinstance(cls, type) and issubclass(cls, TestCase)

    items.sort(key=lambda item: not isTrialCase(item))
