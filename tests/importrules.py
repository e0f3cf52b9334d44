"""
An import-linter contract type for the one import rule import-linter cannot
say by itself: a feature uses another feature only through the public
interface that feature declares, never through its internals.

A feature (a module or package named in the contract's C{features}, such
as C{xmppd.features.roster} or C{muc}) declares its interface with
C{__all__} in the module that defines it.  Another feature may only
C{from that.module import name} for names in that C{__all__}; importing
the module itself, or a name it does not list, breaks the contract.  A
module without C{__all__} offers nothing to other features.  Inside one
feature (the modules of C{xmppd.features.mam}, of C{muc}) anything goes.

setup.cfg registers it (C{contract_types}) so that C{lint-imports} and
L{tests.test_layers} check it with the other contracts.  The source is read,
never imported.
"""

from __future__ import annotations

import ast
import importlib.util
import os

from importlinter import Contract, ContractCheck, fields, output


def moduleFile(name: str) -> str | None:
    """The source file of module C{name}, found from its root package without importing it."""
    root, _, rest = name.partition(".")
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        return None
    base = os.path.join(list(spec.submodule_search_locations)[0], *rest.split(".")) if rest else \
        list(spec.submodule_search_locations)[0]
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def parse(name: str) -> ast.Module | None:
    path = moduleFile(name)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def declaredInterface(name: str) -> frozenset[str]:
    """The names module C{name} lists in C{__all__}; empty when it has none."""
    tree = parse(name)
    for node in tree.body if tree is not None else ():
        if (isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                and isinstance(node.value, (ast.List, ast.Tuple))):
            return frozenset(e.value for e in node.value.elts
                             if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return frozenset()


def absoluteModule(importer: str, isPackage: bool, node: ast.ImportFrom) -> str:
    """The absolute module name a C{from ... import} statement names."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    if not isPackage:
        parts = parts[:-1]
    parts = parts[:len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def importStatements(importer: str, lineNumber: int) -> list[ast.stmt]:
    """The import statements of C{importer} that start on C{lineNumber}."""
    tree = parse(importer)
    if tree is None:
        return []
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno == lineNumber]


def interfaceProblems(importer: str, imported: str, lineNumber: int) -> list[str]:
    """What is wrong with the imports of C{imported} on that line of C{importer}, if anything."""
    problems = []
    interface = declaredInterface(imported)
    isPackage = (moduleFile(importer) or "").endswith("__init__.py")
    where = f"{importer}:{lineNumber}"
    for node in importStatements(importer, lineNumber):
        if isinstance(node, ast.Import):
            problems.append(f"{where} imports the module {imported}; import names from "
                            f"its interface (__all__) instead")
            continue
        module = absoluteModule(importer, isPackage, node)
        if module != imported:
            problems.append(f"{where} imports the module {imported} from {module}; import "
                            f"names from its interface (__all__) instead")
            continue
        for alias in node.names:
            if alias.name not in interface:
                problems.append(f"{where} imports {imported}.{alias.name}, which is not in "
                                f"that module's __all__ (its interface to other features)")
    return problems


def expandFeatures(graph, expressions) -> list[str]:
    """Feature module names; C{package.*} stands for every direct child of C{package}."""
    found = []
    for expression in expressions:
        if expression.endswith(".*"):
            found.extend(sorted(graph.find_children(expression[:-2])))
        else:
            found.append(expression)
    return found


def interfaceViolations(graph, features: list[str]) -> list[str]:
    """Every import in C{graph} by which one of C{features} reaches into another's internals."""

    def featureOf(module: str) -> str | None:
        for feature in features:
            if module == feature or module.startswith(feature + "."):
                return feature
        return None

    problems: list[str] = []
    for feature in features:
        for importer in sorted({feature} | graph.find_descendants(feature)):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                other = featureOf(imported)
                if other is None or other == feature:
                    continue
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    problems.extend(interfaceProblems(importer, imported, detail["line_number"]))
    return problems


class InterfaceContract(Contract):
    """
    Features import one another only through the names each declares in
    C{__all__} (see the module docstring).

    Configuration options:
        - features: the features, as module names (C{xmppd.features.*} for
          every direct child of C{xmppd.features}).
    """

    type_name = "interfaces"

    features = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        problems = interfaceViolations(graph, expandFeatures(graph, self.features))
        return ContractCheck(kept=not problems, metadata={"problems": problems})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for problem in check.metadata["problems"]:
            output.print_error(problem)
            output.new_line()
