"""Importing the library loads no optional dependency: each loads when its feature is used.

A structural check, not a timing one (benchmarks/imports.py measures the time): a fresh
interpreter imports the package, then lists which of the optional libraries are in
``sys.modules``. The Vault provider's hvac (the ``vault`` extra) is blocked in another
interpreter, where making a provider says which extra to install.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Optional libraries (extras, or what an optional library pulls in) and what loads them.
OPTIONAL = {
    "hvac": "VaultTransitKeyProvider (the vault extra)",
    "requests": "VaultTransitKeyProvider (the vault extra, through hvac)",
    "urllib3": "VaultTransitKeyProvider (through requests)",
    "boto3": "AwsKmsKeyProvider (the aws extra)",
    "botocore": "AwsKmsKeyProvider (the aws extra)",
    "rich": "structlog's console renderer, when installed",
    "pandas": "the anonymizer's data frames (the pandas extra)",
    "pyarrow": "the anonymizer's Arrow tables (the arrow extra)",
    "yaml": "YAML policy documents (the yaml extra)",
}

LOADED = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))
"""


def _loaded(imports: str) -> list[str]:
    script = LOADED.format(imports=imports, names=sorted(OPTIONAL))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert 0 == result.returncode, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


class TestImportLoadsNoOptionalLibrary:
    """``import securecustomer`` and ``securecustomer.sqlalchemy`` load none of them."""

    @pytest.mark.parametrize(
        "imports",
        [
            "import securecustomer",
            "import securecustomer.keys",
            "import securecustomer.sqlalchemy",
            "from securecustomer.keys import AwsKmsKeyProvider, VaultTransitKeyProvider",
        ],
    )
    def test_none_loaded(self, imports: str) -> None:
        assert [] == _loaded(imports)

    def test_audit_loads_structlog_when_it_logs(self) -> None:
        """The audit package (and the CLI over it) logs its own failures through structlog,
        imported at the first message: structlog brings rich's console renderer."""
        imports = "import securecustomer.audit, securecustomer.privacy, securecustomer.cli"
        script = f"{imports}\nimport sys\nprint('structlog' in sys.modules)\n"

        assert [] == _loaded(imports)
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
        assert "False" == result.stdout.strip(), result.stderr

    def test_policy_engine_loads_with_row_resource(self) -> None:
        """The policy engine (unneeded by encrypted columns) loads when first asked for."""
        script = (
            "import sys, securecustomer.sqlalchemy as sa_\n"
            "print('securecustomer.policy' in sys.modules)\n"
            "sa_.row_resource\n"
            "print('securecustomer.policy' in sys.modules)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )

        assert 0 == result.returncode, result.stderr
        assert ["False", "True"] == result.stdout.split()

    def test_the_check_can_fail(self) -> None:
        """The check sees a library that was imported."""
        assert ["hvac", "requests", "urllib3"] == _loaded("import securecustomer, hvac")


# Run as if hvac were not installed: a None entry makes its import fail.
WITHOUT_HVAC = """
import sys
sys.modules["hvac"] = None
from securecustomer.keys import VaultTransitKeyProvider

class Adapter:
    base_uri = "https://vault.example:8200"

class Client:
    adapter = Adapter()

try:
    VaultTransitKeyProvider(Client(), key="customers")
except ImportError as exc:
    print(type(exc).__name__, exc.name, exc)
"""


class TestWithoutHvac:
    """Without the vault extra, the package imports and the provider names the extra."""

    def test_provider_names_the_extra(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", WITHOUT_HVAC], capture_output=True, text=True, check=False
        )

        assert 0 == result.returncode, result.stderr
        assert (
            "ImportError hvac VaultTransitKeyProvider needs hvac, which is not installed: "
            'pip install "securecustomer[vault]"'
        ) == result.stdout.strip()
