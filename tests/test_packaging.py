"""The declared dependencies are the ones the code imports, and no others.

An AST walk over ``src/securecustomer`` finds every import: ``import x``, ``from x import y``
and ``importlib.import_module("x")`` (also through a module's own helper that passes its
first argument to ``import_module``, such as the anonymizer's ``_optional``). Each import is
*eager* (runs when the module is imported: module level, class bodies, module-level ``try``
and ``if``) or *lazy* (inside a function, or in a module-level ``try`` that catches
``ImportError``); imports under ``if TYPE_CHECKING:`` do not run and are left out.
Top-level module names are mapped to distributions with
``importlib.metadata.packages_distributions()``.

Then: every eager third-party import is a declared dependency; every lazy one is a declared
dependency or comes with an extra (the extra's distribution or one it requires, as botocore
comes with boto3); every declared dependency is imported eagerly somewhere, and every
extra's distribution somewhere.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import securecustomer

PACKAGE = Path(securecustomer.__file__).parent
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
#: Distributions an extra declares that the code never imports itself, and why.
NOT_IMPORTED = {
    "greenlet": "SQLAlchemy's asyncio extension (AsyncSession, AsyncEngine) imports it",
}
#: Dependencies that every install needs but that are imported at first use, and why.
LAZY_DEPENDENCIES = {
    "structlog": "the audit package's own log (audit/_log.py): 80 ms to import, with rich",
}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return _normalized(match.group(0))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(
            isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"}
            for n in names
        ):
            return True
    return False


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def _import_helpers(tree: ast.Module) -> set[str]:
    """Module-level functions that pass their first parameter to ``import_module``."""
    helpers = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.args.args:
            first = node.args.args[0].arg
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and _is_import_module(call.func)
                    and call.args
                    and isinstance(call.args[0], ast.Name)
                    and call.args[0].id == first
                ):
                    helpers.add(node.name)
    return helpers


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(module name, eager) for each import in the module at *path*."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    helpers = _import_helpers(tree)

    def visit(node: ast.AST, eager: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child, eager)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            eager = False
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.body:
                yield from visit(child, False)
            for part in (node.handlers, node.orelse, node.finalbody):
                for child in part:
                    yield from visit(child, eager)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, eager
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, eager
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                _is_import_module(node.func)
                or (isinstance(node.func, ast.Name) and node.func.id in helpers)
            )
        ):
            yield node.args[0].value, eager
        for child in ast.iter_child_nodes(node):
            yield from visit(child, eager)

    for statement in tree.body:
        yield from visit(statement, True)


def _third_party() -> dict[str, dict[str, bool]]:
    """Third-party distribution -> {where imported: eagerly?} over the whole package."""
    distributions = importlib.metadata.packages_distributions()
    found: dict[str, dict[str, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, eager in _imports(path):
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top in {"securecustomer", "__future__"}:
                continue
            assert top in distributions, f"{path}: {module} is installed by no distribution"
            for dist in distributions[top]:
                where = found.setdefault(_normalized(dist), {})
                name = str(path.relative_to(PACKAGE))
                where[name] = where.get(name, False) or eager
    return found


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_requirement_name(r) for r in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }
    return core, extras


def _with_requirements(dist: str) -> set[str]:
    """*dist* and the distributions it requires unconditionally."""
    names = {dist}
    for requirement in importlib.metadata.requires(dist) or []:
        if "extra ==" not in requirement:
            names.add(_requirement_name(requirement))
    return names


class TestDeclaredDependencies:
    """pyproject's dependencies and extras are exactly what the code imports."""

    def test_eager_imports_are_dependencies(self) -> None:
        core, _ = _declared()
        undeclared = sorted(
            f"{dist} ({', '.join(sorted(m for m, eager in where.items() if eager))})"
            for dist, where in _third_party().items()
            if any(where.values()) and dist not in core
        )
        assert [] == undeclared

    def test_lazy_imports_come_with_an_extra(self) -> None:
        core, extras = _declared()
        provided = set(core)
        for dists in extras.values():
            for dist in dists:
                provided |= _with_requirements(dist)
        missing = sorted(
            f"{dist} ({', '.join(sorted(where))})"
            for dist, where in _third_party().items()
            if not any(where.values()) and dist not in provided
        )
        assert [] == missing

    def test_dependencies_are_imported_eagerly(self) -> None:
        """A dependency only imported lazily belongs in an extra; one never imported, out."""
        core, _ = _declared()
        found = _third_party()
        imported = {dist for dist, where in found.items() if any(where.values())}
        assert [] == sorted(core - imported - set(LAZY_DEPENDENCIES))
        assert set(LAZY_DEPENDENCIES) <= core
        assert [] == sorted(d for d in LAZY_DEPENDENCIES if d in imported or d not in found)

    def test_extras_are_imported(self) -> None:
        _, extras = _declared()
        imported = set(_third_party()) | set(NOT_IMPORTED)
        unused = sorted(
            f"{extra}: {dist}"
            for extra, dists in extras.items()
            for dist in dists
            if dist not in imported
        )
        assert [] == unused

    def test_optional_modules_are_not_imported_eagerly(self) -> None:
        _, extras = _declared()
        optional = set().union(*extras.values())
        eager = sorted(
            f"{dist}: {module}"
            for dist, where in _third_party().items()
            if dist in optional
            for module, is_eager in where.items()
            if is_eager
        )
        assert [] == eager


class TestTheWalker:
    """The walk finds the kinds of import the checks above depend on (so they can fail)."""

    @pytest.mark.parametrize(
        ("module", "name", "eager"),
        [
            ("sqlalchemy/_types.py", "sqlalchemy", True),  # import at module level
            ("keys/_vault.py", "requests", False),  # import inside a function
            ("keys/_vault.py", "hvac.exceptions", False),  # import_module in a function
            ("keys/_aws.py", "boto3", False),  # import inside a function
            ("keys/_aws.py", "botocore.exceptions", False),  # import_module in a function
            ("policy/_document.py", "yaml", False),  # in a function, under try/ImportError
            ("anonymize/_anonymizer.py", "pandas", False),  # through the module's helper
        ],
    )
    def test_finds(self, module: str, name: str, eager: bool) -> None:
        assert (name, eager) in set(_imports(PACKAGE / module))

    def test_type_checking_imports_do_not_run(self, tmp_path: Path) -> None:
        path = tmp_path / "m.py"
        path.write_text(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    import boto3\n"
            "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
            "class C:\n    import attrs\n"
        )
        assert [("typing", True), ("yaml", False), ("attrs", True)] == list(_imports(path))

    def test_import_module_at_module_level_is_eager(self, tmp_path: Path) -> None:
        path = tmp_path / "m.py"
        path.write_text(
            "import importlib\n"
            "errors = importlib.import_module('hvac.exceptions')\n"
            "def f():\n    return importlib.import_module('boto3')\n"
        )
        assert [("importlib", True), ("hvac.exceptions", True), ("boto3", False)] == list(
            _imports(path)
        )
