# -*- test-case-name: tests.test_config -*-
"""
Features by name: which names C{server.modules} may list, which module each
one is, and which modules declare configuration sections (DESIGN §3:
features are loaded by name from the configuration; nothing below them
imports them).

It lives with the configuration because the configuration is what names
features: the loader validates C{server.modules} against L{FEATURES} and
imports every feature module first (L{importFeatures}) so the sections they
declare exist before the file is checked.  L{xmppd.core.modules} loads the
enabled ones for each served domain.
"""

from __future__ import annotations

import importlib
import importlib.util

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
    "privacy": "xmppd.features.privacy.handler",
    "invisible": "xmppd.features.invisible",
    "register": "xmppd.features.register",
    "last": "xmppd.features.last",
    "contact": "xmppd.features.contact",
    "caps": "xmppd.features.caps",
    "clientcaps": "xmppd.features.clientcaps.handler",
    "offline": "offline.handler",
    "carbons": "xmppd.features.carbons",
    "mam": "xmppd.features.mam.archive",
    "sm": "xmppd.features.sm",
    "fast": "xmppd.features.fast",
    "muc": "muc.service",
    "pubsub": "xmppd.features.pubsub.service",
    "pep": "xmppd.features.pep.handler",
    "avatars": "xmppd.features.avatars",
    "nickname": "xmppd.features.nickname",
    "bookmarks": "xmppd.features.bookmarks",
    "upload": "xmppd.features.upload.service",
}

#: Core modules that declare a configuration section but are not features of
#: a served domain (services with listeners of their own); imported with the
#: features so their sections exist before the configuration is read.
SECTION_MODULES: tuple[str, ...] = ("xmppd.components.server", "xmppd.admin.service", "xmppd.s2s.config")


def isInstalled(name: str) -> bool:
    return importlib.util.find_spec(FEATURES[name]) is not None


#: What a node runs when the configuration does not say: every known feature.
DEFAULT_FEATURES: tuple[str, ...] = tuple(name for name in FEATURES if isInstalled(name))


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
