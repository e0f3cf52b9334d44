# -*- test-case-name: tests.test_local -*-
"""
Features by name (DESIGN §3: features are loaded by name from the
configuration; the core never imports them).

C{server.modules} in the configuration lists the features a node runs.  Each
name maps to a module that provides C{makeHandler(domain)}, called once per
served domain with its L{xmppd.local.LocalDomain}, returning a wokkel
C{XMPPHandler} (or C{None} when the feature has nothing to do on that
domain).  A feature that runs a service of its own beside a domain (MUC)
also provides C{makeService(server, domain)}, see L{featureServices}.  A
feature module may declare a configuration section of its own
(see L{xmppd.config.section}); L{importFeatures} imports every known feature
before the configuration is read so those sections exist.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Feature name -> module.  Order matters only for disco listings.
FEATURES: dict[str, str] = {
    "presence": "xmppd.presence",
    "roster": "xmppd.roster",
    "messages": "xmppd.messages",
    "disco": "xmppd.disco",
    "version": "xmppd.version",
    "ping": "xmppd.ping",
    "vcard": "xmppd.vcard",
    "private": "xmppd.privatexml",
    "blocking": "xmppd.blocking",
    "register": "xmppd.register",
    "last": "xmppd.last",
    "contact": "xmppd.contact",
    "caps": "xmppd.caps",
    "offline": "offline.handler",
    "carbons": "xmppd.carbons",
    "mam": "xmppd.mam",
    "sm": "xmppd.sm",
    "muc": "muc.service",
}

#: Core modules that declare a configuration section but are not features of
#: a served domain (services with listeners of their own); imported with the
#: features so their sections exist before the configuration is read.
SECTION_MODULES: tuple[str, ...] = ("xmppd.components", "xmppd.admin", "xmppd.s2s.config")


def isInstalled(name: str) -> bool:
    return importlib.util.find_spec(FEATURES[name]) is not None


#: What a node runs when the configuration does not say: every known feature.
DEFAULT_FEATURES: tuple[str, ...] = tuple(name for name in FEATURES if isInstalled(name))


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


def importFeatures() -> None:
    """
    Import every known feature module that exists, and L{SECTION_MODULES},
    so their config sections register.
    """
    for moduleName in SECTION_MODULES:
        importlib.import_module(moduleName)
    for name, moduleName in FEATURES.items():
        try:
            importlib.import_module(moduleName)
        except ModuleNotFoundError as e:
            if e.name != moduleName:
                raise
