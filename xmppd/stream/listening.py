# -*- test-case-name: tests.test_components -*-
"""
Opening a listening port for a service, the same way for every stream kind
(client, server, component and HTTP listeners): a port that cannot be had is
one line naming the configuration key, and a service stopped while its port
was opening does not keep it.  L{ListeningService} is the start and stop
the client, server and HTTP listeners share.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer, endpoints


class ListenError(Exception):
    """A listener could not start (port in use, bad interface...)."""


@defer.inlineCallbacks
def listenOn(service, key: str, description: str, factory):
    """
    Listen with C{factory} on the endpoint string C{description} (the value
    of the configuration key C{key}) for a listening C{service} (one with
    C{reactor}, C{running} and C{log}).  Fires with the port, or C{None} when
    the service stopped while the port was being opened (it is closed
    again); fails with L{ListenError}, one line naming the key, when the
    port cannot be had.  Shared by the c2s, component and s2s listeners.
    """
    endpoint = endpoints.serverFromString(service.reactor, description)
    try:
        port = yield endpoint.listen(factory)
    except Exception as e:
        raise ListenError("%s %s: cannot listen: %s" % (key, description, e))
    if not service.running:
        yield port.stopListening()
        return None
    service.log.info("{key} listening on {address}", key=key, address=port.getHost())
    return port


class ListeningService(service.Service):
    """
    A service whose listeners open once the node is ready: storage open,
    and in a cluster the cluster's secret known (C{server.whenReady()}), so
    no stream is taken that would make a dialback key or a fake SCRAM salt
    from a secret the other nodes do not share.  Subclasses give
    C{listeners()}, the C{(configuration key, endpoint, factory)}s to open,
    and may override L{listened} to keep something of each; C{ready} fires
    with the ports, or fails (the node stops with one line) when storage or
    a port cannot be had.  Shared by the client, server and HTTP listeners.
    """

    def __init__(self):
        self.ports: list = []
        self.ready = defer.Deferred()

    def listeners(self):
        raise NotImplementedError

    def startService(self):
        service.Service.startService(self)
        if self.ready.called:
            self.ready = defer.Deferred()
        d = self.server.whenReady()
        d.addCallback(lambda _: self.listen())
        d.addCallbacks(self.ready.callback, self.startFailed)

    @defer.inlineCallbacks
    def listen(self):
        for key, description, factory in self.listeners():
            port = yield listenOn(self, key, description, factory)
            if port is None:
                break
            self.ports.append(port)
            self.listened(port, factory)
        return self.ports

    def listened(self, port, factory) -> None:
        """C{port} listens with C{factory}."""

    def startFailed(self, failure):
        """Storage did not open or a port could not be bound: the node cannot run."""
        self.server.fatal(failure.getErrorMessage())
        self.ready.errback(failure)

    def stopListening(self):
        """Stop service and close the ports; fires once they are closed."""
        service.Service.stopService(self)
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
