"""
Tests for the import rules (setup.cfg, C{[importlinter]}; README, "Where
things are"): the layers, nothing importing the command line, features
cooperating only through declared interfaces, and no import cycles.  A
wrong import fails here, in the README's test command, as well as in
C{lint-imports}.
"""

import os
import subprocess
import sys
import textwrap

import grimp
import pytest

from tests.importrules import expandFeatures, interfaceViolations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("xmppd", "muc", "offline")

#: Import cycles that exist today and are being removed in another branch of
#: issue 11 (the storage and command-line split): each entry is the set of
#: modules of one cycle.  Delete an entry once its cycle is gone; nothing may
#: be added here.
#: Cycles tolerated for now (none: the last ones went with issue 11).
KNOWN_CYCLES: list[set[str]] = []


def importCycles(graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    cycles = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        onStack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    onStack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                    break
                if child in onStack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        onStack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(component)
    return cycles


def test_importContracts():
    """Every import contract in setup.cfg holds (the report is shown when one breaks)."""
    # In a process of its own: once wokkel is imported, zope.interface
    # declarations on abc.ABC break import-linter's contract classes.
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--config", "setup.cfg", "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_noImportCycles(monkeypatch):
    """No two modules of xmppd, muc or offline import each other, directly or through others."""
    monkeypatch.syspath_prepend(ROOT)
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    unexpected = [sorted(cycle) for cycle in importCycles(graph) if cycle not in KNOWN_CYCLES]
    assert unexpected == []


def test_cycleFinder():
    """The cycle check sees a cycle through three modules, and none in a chain."""
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c", "d"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="d")
    assert importCycles(graph) == []
    graph.add_import(importer="c", imported="a")
    assert importCycles(graph) == [{"a", "b", "c"}]


def writePackage(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def interfaceCheck(tmp_path, monkeypatch, files: dict[str, str]):
    writePackage(tmp_path, files)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("feats", cache_dir=None)
    return interfaceViolations(graph, expandFeatures(graph, ["feats.*"]))


FEATURE_B = """
    __all__ = ["shared"]

    def shared():
        pass

    def internal():
        pass
"""


def test_interfaceNamesPass(tmp_path, monkeypatch):
    """A feature importing a name another feature lists in __all__ keeps the contract."""
    problems = interfaceCheck(tmp_path, monkeypatch, {
        "feats/__init__.py": "",
        "feats/b.py": FEATURE_B,
        "feats/a/__init__.py": "",
        "feats/a/use.py": "from feats.b import shared\nfrom . import other\n",
        "feats/a/other.py": "",
    })
    assert problems == []


@pytest.mark.parametrize("source, problem", [
    ("from feats.b import internal\n", "feats.b.internal, which is not in"),
    ("import feats.b\n", "imports the module feats.b;"),
    ("from feats import b\n", "imports the module feats.b from feats;"),
    ("def later():\n    from ..b import internal\n", "feats.b.internal, which is not in"),
])
def test_interfaceInternalsBreak(tmp_path, monkeypatch, source, problem):
    """Reaching into another feature's internals, even lazily or relatively, breaks the contract."""
    [message] = interfaceCheck(tmp_path, monkeypatch, {
        "feats/__init__.py": "",
        "feats/b.py": FEATURE_B,
        "feats/a/__init__.py": "",
        "feats/a/use.py": source,
    })
    assert problem in message
