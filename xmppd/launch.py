# -*- test-case-name: tests.test_tap -*-
"""
How twistd and C{xmppd.tac} start a node: options, where the configuration
comes from, and turning every start-up problem into one readable line and a
non-zero exit instead of a traceback.

twistd's C{ServiceMaker} calls C{makeService(options)} on the module it
names, so that entry point lives here and hands the loaded configuration to
the one wiring function, L{xmppd.tap.makeService}.
"""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from xmppd.config import ConfigError, findConfigFile, loadConfig

def loadOrExit(path: str | None):
    """Load the configuration or exit with one readable line (never a traceback)."""
    try:
        return loadConfig(path)
    except ConfigError as e:
        raise SystemExit("xmppd: %s" % (e,))


def logFileFor(twistdOptions) -> object:
    """
    Where twistd would write its log for C{twistdOptions} (its own options,
    C{--logfile} and C{--nodaemon}; C{None} when unknown, as under
    C{xmppd.tac}): standard output, else the file, C{twistd.log} by default.
    """
    name = twistdOptions.get("logfile") if twistdOptions is not None else None
    if name == "-" or twistdOptions is None or (twistdOptions.get("nodaemon") and not name):
        return sys.stdout
    from twisted.python.logfile import LogFile
    return LogFile.fromFullPath(name or "twistd.log")


def useLogFormat(server, twistdOptions=None) -> None:
    """C{log.format = "json"}: the node gives twistd a JSON observer (L{xmppd.core.logformat})."""
    if server.config.log.format == "json":
        from xmppd.core.logformat import JSONLineObserver
        server.logObserver = JSONLineObserver(logFileFor(twistdOptions))


def makeServiceOrExit(config, reactor=None, twistdOptions=None):
    """L{makeService} for twistd: configuration-time errors become one line."""
    from xmppd import tap
    from xmppd.stream.tls import TLSConfigError
    try:
        server = tap.makeService(config, reactor=reactor)
    except (ConfigError, TLSConfigError, OSError, ValueError) as e:
        raise SystemExit("xmppd: %s" % (e,))
    server.onFatal = lambda message: _stopWithError(reactor, message)
    useLogFormat(server, twistdOptions)
    # twistd's text lines, with their time stamps made once per second.
    from xmppd.core.logformat import useCachedTimeStamps
    useCachedTimeStamps()
    # SIGHUP reloads the configuration, as daemons do (xmppd.admin.reload).
    from xmppd.admin.reload import HangupService
    HangupService(server, reactor).setServiceParent(server)
    # Start-up objects out of the collector's way once the node listens.
    from xmppd.core.collector import FreezeAfterStart
    if reactor is None:
        from twisted.internet import reactor
    FreezeAfterStart(server, reactor).setServiceParent(server)
    return server


def _stopWithError(reactor, message: str) -> None:
    if reactor is None:
        from twisted.internet import reactor
    # twistd has redirected sys.stderr into its log; the operator's terminal
    # (or the service manager's journal) should still get the one line.
    sys.__stderr__.write("xmppd: %s\n" % (message,))
    if reactor.running:
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.stop()


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = ("Run the xmppd XMPP server.  Without --config: $XMPPD_CONFIG, "
                "else ./xmppd.toml if it exists, else the built-in defaults "
                "(domain localhost, data in ./data).")
    optParameters = [
        ["config", "c", None, "TOML configuration file"],
    ]

    def postOptions(self):
        self["xmppdConfig"] = loadOrExit(findConfigFile(self["config"]))


def makeService(options: Options):
    """The twistd entry point (see the module docstring)."""
    return makeServiceOrExit(options["xmppdConfig"], twistdOptions=getattr(options, "parent", None))
