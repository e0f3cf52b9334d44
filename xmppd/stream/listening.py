# -*- test-case-name: tests.test_components -*-
"""
Opening a listening port for a service, the same way for every stream kind
(client, server and component listeners): a port that cannot be had is one
line naming the configuration key, and a service stopped while its port
was opening does not keep it.
"""

from __future__ import annotations

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
