"""The SQL database fixtures of tests/sqlalchemy, lent to the privacy tests unchanged.

`db_url` (session, parametrized ``sqlite`` / ``postgresql`` / ``mariadb``) and the per-backend
`sqlite_url`, `postgresql_url`, `mariadb_url` come from tests/sqlalchemy/conftest.py, loaded
here by path (a conftest is not importable by name): a server that is down is started, one
that can't be reached fails its tests when CI is set and skips them otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).parent.parent / "sqlalchemy" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("_sqlalchemy_db_fixtures", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
_fixtures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_fixtures)

db_url = _fixtures.db_url
sqlite_url = _fixtures.sqlite_url
postgresql_url = _fixtures.postgresql_url
mariadb_url = _fixtures.mariadb_url
