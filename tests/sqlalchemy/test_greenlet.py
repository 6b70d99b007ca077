"""greenlet: needed by SQLAlchemy's asyncio API only, installed by the ``async`` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

# Run as if greenlet were not installed: a None entry makes its import fail.
SCRIPT = """
import sys
sys.modules["greenlet"] = None
import sqlalchemy as sa
import securecustomer.audit, securecustomer.cli, securecustomer.privacy
from securecustomer import Keyring, LocalKeyProvider
from securecustomer.keys import MemoryKeyStore
from securecustomer.sqlalchemy import EncryptedString, default_keyring

default_keyring.bind(Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load())
table = sa.Table("t", sa.MetaData(), sa.Column("v", EncryptedString(context=("t", "v"))))
engine = sa.create_engine("sqlite://")
table.metadata.create_all(engine)
with engine.begin() as conn:
    conn.execute(table.insert(), [{"v": "sync works"}])
    print(conn.execute(sa.select(table.c.v)).scalar_one())
try:
    import sqlalchemy.ext.asyncio
except ImportError as exc:
    print(exc)
"""


class TestWithoutGreenlet:
    """The synchronous API works without greenlet; the asyncio API says what is missing."""

    def test_sync_works_and_async_names_greenlet(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False
        )

        assert 0 == result.returncode, result.stderr
        lines = result.stdout.splitlines()
        assert "sync works" == lines[0]
        assert "requires that the Python 'greenlet' library is installed" in lines[1]

    def test_the_async_extra_installs_it(self) -> None:
        extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]

        assert ["greenlet"] == [spec.split(">")[0] for spec in extras["async"]]
