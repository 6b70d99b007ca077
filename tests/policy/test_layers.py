"""The policy package stands alone: importing it loads no SQL or logging library."""

from __future__ import annotations

import subprocess
import sys


class TestImports:
    """securecustomer.policy is pure and synchronous (docs/architecture.md)."""

    def test_no_sqlalchemy_structlog_or_yaml(self) -> None:
        code = (
            "import sys, securecustomer.policy as p\n"
            "p.PolicyEngine(p.Policy.from_dict({'version': 1}))\n"
            "print(sorted(m for m in ('sqlalchemy', 'structlog', 'yaml') if m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "[]" == result.stdout.strip()
