"""The layers of docs/architecture.md: lower packages never import higher ones at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import securecustomer

ROOT = Path(securecustomer.__file__).parent
#: Each package, and the packages above it that it must never import.
HIGHER = {
    "crypto": ("keys", "sqlalchemy", "policy", "audit", "anonymize", "privacy", "cli"),
    "keys": ("sqlalchemy", "policy", "audit", "anonymize", "privacy", "cli"),
    "policy": ("sqlalchemy", "audit", "anonymize", "privacy", "cli"),
    "anonymize": ("sqlalchemy", "policy", "audit", "privacy", "cli"),
    "audit": ("sqlalchemy", "anonymize", "privacy", "cli"),
    "sqlalchemy": ("privacy", "cli"),
    "privacy": ("cli",),
}


def _imports(path: Path) -> set[str]:
    """The modules imported at module level (an import inside a function is a deliberate
    bridge that costs nothing until called, such as `PolicyEngine.query_filter`)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


class TestLayers:
    """No module of a package imports a package above it."""

    @pytest.mark.parametrize("package", sorted(HIGHER))
    def test_no_upward_import(self, package: str) -> None:
        forbidden = tuple(f"securecustomer.{name}" for name in HIGHER[package])
        offenders = sorted(
            f"{path.relative_to(ROOT)}: {name}"
            for path in (ROOT / package).rglob("*.py")
            for name in _imports(path)
            if name.startswith(forbidden)
        )
        assert [] == offenders

    def test_the_check_sees_imports(self) -> None:
        """The walker finds the imports it is meant to forbid (so the test can fail)."""
        names = _imports(ROOT / "privacy" / "_erase.py")
        assert "securecustomer.audit" in names
