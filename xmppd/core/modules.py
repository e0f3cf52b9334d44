# -*- test-case-name: tests.test_vhosts,tests.test_config -*-
"""
Loading features by name (DESIGN §3: features are loaded by name from the
configuration; the core never imports them).

C{server.modules} in the configuration lists the features a node runs.  Each
name maps to a module that provides C{makeHandler(domain)}, called once per
served domain with its L{xmppd.core.local.LocalDomain}, returning a wokkel
C{XMPPHandler} (or C{None} when the feature has nothing to do on that
domain).  A feature that runs a service of its own beside a domain (MUC)
also provides C{makeService(server, domain)}, see L{featureServices}.  A
feature module may declare a configuration section of its own
(see L{xmppd.config.schema.section}); the names and modules are listed in
L{xmppd.config.registry}, which imports every known feature before the
configuration is read so those sections exist.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from xmppd.config.registry import FEATURES


class ServiceRefused(Exception):
    """
    A feature's service cannot do what the node's administrators asked of
    it (L{xmppd.admin.operations} calls such services without importing
    their feature); C{str()} is one line for the operator.
    """


def loadFeature(name: str) -> ModuleType:
    return importlib.import_module(FEATURES[name])


def featureServices(server, domain: str) -> list:
    """
    The services the enabled features run beside the served C{domain}
    (a MUC service on its own domain): each feature module may provide
    C{makeService(server, domain)}, returning a Twisted service or C{None}.
    L{xmppd.tap.makeService} adds them to the node after the domain, so they
    start after it and stop before it.
    """
    services = []
    for name in server.config.server.modules:
        make = getattr(loadFeature(name), "makeService", None)
        if make is not None:
            made = make(server, domain)
            if made is not None:
                services.append(made)
    return services

