# -*- test-case-name: tests.test_vhosts,tests.test_config -*-
"""
Features by name (DESIGN §3: features are loaded by name from the
configuration; the core never imports them).

C{server.modules} in the configuration lists the features a node runs.  Each
name maps to a module that provides C{makeHandler(domain)}, called once per
served domain with its L{xmppd.core.local.LocalDomain}, returning a wokkel
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
    "presence": "xmppd.features.presence",
    "roster": "xmppd.features.roster",
    "messages": "xmppd.features.messages",
    "disco": "xmppd.features.disco",
    "version": "xmppd.features.version",
    "ping": "xmppd.features.ping",
    "vcard": "xmppd.features.vcard",
    "private": "xmppd.features.private",
    "blocking": "xmppd.features.blocking",
    "register": "xmppd.features.register",
    "last": "xmppd.features.last",
    "contact": "xmppd.features.contact",
    "caps": "xmppd.features.caps",
    "offline": "offline.handler",
    "carbons": "xmppd.features.carbons",
    "mam": "xmppd.features.mam.archive",
    "sm": "xmppd.features.sm",
    "muc": "muc.service",
}

#: Core modules that declare a configuration section but are not features of
#: a served domain (services with listeners of their own); imported with the
#: features so their sections exist before the configuration is read.
SECTION_MODULES: tuple[str, ...] = ("xmppd.components.server", "xmppd.admin.service", "xmppd.s2s.config")


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
