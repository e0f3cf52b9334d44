"""
slixmpp-omemo for the end-to-end tests (tests/test_e2e_omemo.py): the
XEP-0384 plugin on memory storage with blind trust before verification,
and the OMEMO libraries of both versions, imported only after
L{tolerateZopeDeclarations} so that they load in any test process.

Why the workaround: C{oldmemo.etree} and C{twomemo.etree} build their XML
schemas (xmlschema 4) when imported, and xmlschema lists a schema class's
cached properties with C{dir(cls)} then C{getattr(cls, name)}.  Once
anything has imported C{zope.interface.common.mapping} (wokkel's data
forms do, so every xmppd test process has), the C{collections.abc} classes
carry zope's C{__provides__} descriptor, which C{dir()} lists for their
subclasses but which raises C{AttributeError} on a subclass: the import
fails with C{AttributeError: __provides__}.  Skipping such names is what
xmlschema means to do (a name whose value cannot be read is no cached
property).
"""

from __future__ import annotations

from functools import cached_property

from xmlschema.validators.xsdbase import XsdValidator


def tolerateZopeDeclarations() -> None:
    """Make xmlschema skip class attributes that raise when read (see the module docstring)."""

    def cachedProperties(cls):
        for name in dir(cls):
            try:
                value = getattr(cls, name)
            except AttributeError:
                continue
            if isinstance(value, cached_property):
                yield name

    XsdValidator._cached_properties = classmethod(cachedProperties)


tolerateZopeDeclarations()

import oldmemo  # noqa: E402 - after the workaround above
import oldmemo.etree  # noqa: E402
import twomemo  # noqa: E402
import twomemo.etree  # noqa: E402
from omemo.storage import Just, Maybe, Nothing, Storage  # noqa: E402
from slixmpp_omemo import XEP_0384  # noqa: E402

__all__ = ["MemoryStorage", "OMEMO", "OLD", "TWO", "oldmemo", "twomemo"]

#: The two OMEMO versions' namespaces.
TWO = twomemo.twomemo.NAMESPACE
OLD = oldmemo.oldmemo.NAMESPACE


class MemoryStorage(Storage):
    """The OMEMO library's key-value storage, kept in memory for one client."""

    def __init__(self):
        super().__init__()
        self.data: dict = {}

    async def _load(self, key: str) -> Maybe:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class OMEMO(XEP_0384):
    """
    slixmpp-omemo with memory storage and blind trust before verification;
    the plugin config C{memory} hands a device's storage to its next login.
    """

    def plugin_init(self) -> None:
        self.memory = self.config.get("memory") or MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return self.memory

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(self, blindlyTrusted, identifier) -> None:
        pass

    async def _prompt_manual_trust(self, manuallyTrusted, identifier) -> None:
        raise AssertionError(f"BTBV asked for a manual decision on {manuallyTrusted}")
