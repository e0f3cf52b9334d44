# -*- test-case-name: tests.test_library -*-
"""
xmppd as a library: what another Twisted program calls to run an XMPP server
inside its own service tree, without twistd.

    from twisted.application.service import MultiService
    import xmppd

    services = MultiService()
    xmppd.makeServer("/etc/xmppd/xmppd.toml").setServiceParent(services)

L{makeServer} takes the configuration as a TOML file's path, as a dict of
the same shape as that file, or as a L{xmppd.config.Config} loaded already,
and returns the server's root service, built by the one wiring function
L{xmppd.tap.makeService}, exactly what C{twistd -n xmppd} runs.
L{whenListening} tells the program where the server listens once it has
started, which is how it learns the ports when the configuration asks for
port 0.  C{xmppd/__init__.py} re-exports both names lazily, so
C{import xmppd} stays cheap.  L{xmppd.testing} builds its test server on
them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from xmppd.config import Config, ConfigError, configFromDict, describe, loadConfig

#: The listening services of a node, by service name, with the configuration
#: keys of their listeners in the order each service opens them.
_LISTENERS = (
    ("c2s", ("c2s.endpoint", "c2s.direct_tls_endpoint")),
    ("s2s", ("s2s.listen", "s2s.direct_tls_listen")),
    ("components", ("components.listen",)),
    ("http", ("http.endpoint", "http.tls_endpoint")),
)


def loadServerConfig(config: "str | os.PathLike | FilePath | Mapping[str, Any] | Config"
                     ) -> Config:
    """
    The L{Config} for C{config}: a L{Config} as it is, a path read with
    L{xmppd.config.loadConfig}, a mapping validated with
    L{xmppd.config.configFromDict}.  A mapping has the TOML file's shape
    (C{{"server": {"domains": ["example.org"]}, "c2s": {"endpoint":
    "tcp:0"}}}); in it, tuples may stand for arrays and path objects
    (C{pathlib}'s, Twisted's C{FilePath}) for strings, the rest is checked
    as a file's values are.

    @raise ConfigError: the file cannot be read or the configuration is not
        valid; the text is one line naming the key.
    """
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, os.PathLike, FilePath)):
        return loadConfig(_plain(config))
    if isinstance(config, Mapping):
        return configFromDict(_plain(config))
    raise ConfigError(f"configuration: expected a file path, a dict or a Config, "
                      f"got {describe(config)}")


def _plain(value: Any) -> Any:
    """C{value} with the types C{tomllib} gives: dicts, lists, strings."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, FilePath):
        return value.path
    return value


def makeServer(config: "str | os.PathLike | FilePath | Mapping[str, Any] | Config",
               reactor: Any = None):
    """
    Build, without starting, an xmppd node: a
    L{twisted.application.service.MultiService} (an
    L{xmppd.core.server.XMPPServer}) to add to the program's own service
    tree.  Starting it opens storage, then listens; stopping it closes the
    listeners and client streams first and storage last, and returns a
    Deferred that fires when all of that is done.

    @param config: a TOML file's path, a dict of the same shape, or a
        L{Config}; see L{loadServerConfig}.
    @param reactor: the reactor to listen with; the global one by default.

    @raise ConfigError: the configuration is not valid (one line naming
        the key).
    @raise xmppd.stream.tls.TLSConfigError: the configured certificate or
        key cannot be used.
    @raise OSError: the data directory cannot be made or written.
    """
    # Imported here so that checking a configuration does not load the server.
    from xmppd.tap import makeService
    return makeService(loadServerConfig(config), reactor=reactor)


def whenListening(server) -> defer.Deferred:
    """
    A Deferred that fires, once the started C{server} (from L{makeServer})
    listens, with a dict from each listener's configuration key to the
    address it listens on (an L{twisted.internet.interfaces.IAddress}):
    C{addresses["c2s.endpoint"].port} is the client port, also when the
    configuration said port 0.  The keys are those of the listeners the
    configuration enables, among C{c2s.endpoint}, C{c2s.direct_tls_endpoint},
    C{s2s.listen}, C{s2s.direct_tls_listen}, C{components.listen}, C{http.endpoint}
    and C{http.tls_endpoint}.  It
    fails as the server's start fails (storage that does not open, a port
    already in use: one line naming the key), and then takes that failure
    over from the listening service, whose own C{ready} Deferred would
    otherwise log it a second time as unhandled.
    """
    services = [(server.getServiceNamed(name), keys) for name, keys in _LISTENERS
                if name in server.namedServices]
    waits = [_observe(service.ready) for service, keys in services]
    d = defer.gatherResults(waits, consumeErrors=True)

    def collect(_):
        addresses = {}
        for service, keys in services:
            ports = getattr(service, "ports", None)
            if ports is None:  # the component service has one port at most
                ports = [] if service.port is None else [service.port]
            # Each service opens its listeners in the order of its keys and
            # skips the ones its configuration leaves empty.
            enabled = [key for key in keys if _configured(server.config, key)]
            addresses.update((key, port.getHost()) for key, port in zip(enabled, ports))
        return addresses

    d.addCallback(collect)
    d.addErrback(lambda failure: failure.value.subFailure
                 if isinstance(failure.value, defer.FirstError) else failure)
    return d


def _configured(config: Config, key: str) -> bool:
    section, _, name = key.partition(".")
    return bool(getattr(getattr(config, section), name))


def _observe(ready: defer.Deferred) -> defer.Deferred:
    """
    A Deferred of our own with C{ready}'s result: a success stays on
    C{ready}'s chain for other waiters, a failure is ours to report.
    """
    mine = defer.Deferred()

    def passOn(result):
        if isinstance(result, Failure):
            mine.errback(result)
            return None
        mine.callback(result)
        return result

    ready.addBoth(passOn)
    return mine
