"""
Tests that the source's pointers into the source stay true as code moves:
every module's C{# -*- test-case-name: ... -*-} header (read the way
C{trial --testmodule} reads it) names test modules that exist, and every
epydoc link C{L{xmppd....}}, C{L{muc....}} or C{L{offline....}} in
C{xmppd/}, C{muc/} and C{offline/} names a module or attribute that imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re

import pytest
from twisted.scripts.trial import getTestModules
from zope.interface.interface import InterfaceClass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("xmppd", "muc", "offline")

#: An epydoc link to one of our names, as C{L{name}} or C{L{text <name>}}.
LINK = re.compile(r"L\{(?:[^{}<]*<\s*)?((?:xmppd|muc|offline)(?:\.\w+)+)\s*>?\}")


def sourceFiles() -> list[str]:
    """Every Python file of the packages, relative to the repository."""
    found = []
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(REPO, package)):
            found.extend(os.path.relpath(os.path.join(directory, name), REPO)
                         for name in files if name.endswith(".py"))
    return sorted(found)


def resolves(name: str) -> bool:
    """Whether C{name} is a module, or an attribute reached from the longest module prefix."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError as e:
            if not ".".join(parts[:split]).startswith(e.name or "\0"):
                raise  # a module that exists failed to import: say so
            continue
        for attribute in parts[split:]:
            if isinstance(target, InterfaceClass):
                # An interface's methods and attributes are not Python attributes.
                target = target.get(attribute)
            else:
                target = getattr(target, attribute, None)
            if target is None:
                return False
        return True
    return False


SOURCES = sourceFiles()


def test_sourcesFound():
    """The walk finds the packages' modules, so the tests below check something."""
    assert "xmppd/storage/__init__.py" in SOURCES
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES)
def test_testCaseNameHeader(path):
    """trial --testmodule finds, for every module, test modules that exist."""
    names = getTestModules(os.path.join(REPO, path))
    if os.path.basename(path) != "__init__.py":
        assert names, f"{path} has no '# -*- test-case-name: tests.test_x -*-' first line"
    for name in names:
        assert name == name.strip() and name.startswith("tests."), (
            f"{path}: {name!r} in its test-case-name header is not a tests.* module "
            f"name (comma-separated, no spaces)")
        assert importlib.util.find_spec(name) is not None, (
            f"{path}: its test-case-name header names {name}, which does not exist")


@pytest.mark.parametrize("path", SOURCES)
def test_docstringLinksResolve(path):
    """Every L{xmppd....}, L{muc....} and L{offline....} link names something that imports."""
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        text = f.read()
    broken = [f"{path}:{text.count(chr(10), 0, match.start()) + 1}: L{{{match.group(1)}}}"
              for match in LINK.finditer(text) if not resolves(match.group(1))]
    assert not broken, "links to names that do not exist:\n" + "\n".join(broken)
