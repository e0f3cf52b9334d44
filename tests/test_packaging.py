"""
Tests for setup.cfg telling the truth: every third-party package the code
imports is declared in C{install_requires}, so C{pip install .} gives a
server that starts, and every package folder is listed in C{packages}, so
none is left out of the installed copy.
"""

import ast
import configparser
import importlib.metadata
import os
import re
import sys

import grimp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWN = ("xmppd", "muc", "offline")


def setupConfig() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"), encoding="utf-8")
    return parser


def normalized(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declaredRequirements() -> set[str]:
    lines = setupConfig()["options"]["install_requires"].splitlines()
    return {normalized(re.match(r"[A-Za-z0-9._-]+", line.strip()).group(0))
            for line in lines if line.strip()}


def listedPackages() -> set[str]:
    return {line.strip() for line in setupConfig()["options"]["packages"].splitlines()
            if line.strip()}


def importedTopLevel(monkeypatch) -> set[str]:
    """The top-level names xmppd, muc, offline and the twistd plugins import, lazily or not."""
    monkeypatch.syspath_prepend(ROOT)
    graph = grimp.build_graph(*OWN, include_external_packages=True, cache_dir=None)
    names = {module.split(".")[0] for module in graph.modules}
    pluginFolder = os.path.join(ROOT, "twisted", "plugins")
    for fileName in os.listdir(pluginFolder):
        if fileName.endswith(".py"):
            with open(os.path.join(pluginFolder, fileName), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(OWN) - set(sys.stdlib_module_names)


def test_everyImportDeclared(monkeypatch):
    """Each third-party package the server imports is in install_requires, so pip installs it."""
    distributions = importlib.metadata.packages_distributions()
    declared = declaredRequirements()
    undeclared = {}
    for name in sorted(importedTopLevel(monkeypatch)):
        providers = {normalized(d) for d in distributions.get(name, ())} - {"xmppd"}
        if not providers & declared:
            undeclared[name] = sorted(providers) or "no installed distribution provides it"
    assert undeclared == {}


def test_everyPackageListed():
    """Every folder with an __init__.py is installed, and setup.cfg lists no folder that is gone."""
    found = {"twisted.plugins"}
    for top in OWN:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                found.add(os.path.relpath(folder, ROOT).replace(os.sep, "."))
    assert listedPackages() == found
