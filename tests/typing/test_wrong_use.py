"""The typed API catches wrong uses: mypy --strict rejects them (and accepts the right ones).

`plugin_types.py` shows what type-checks; this runs mypy on two tiny files, one right and
one wrong, so that a change that made everything ``Any`` would fail here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import securecustomer

RIGHT = """\
from sqlalchemy.types import TypeEngine

from securecustomer.crypto import Context, FieldCipher
from securecustomer.sqlalchemy import EncryptedString


def read(cipher: FieldCipher, token: bytes, context: Context) -> str:
    name: str = cipher.decrypt_as(token, str, context=context)
    return name


column_type: TypeEngine[str] = EncryptedString()
"""

WRONG = """\
from sqlalchemy.types import TypeEngine

from securecustomer.crypto import Context, FieldCipher
from securecustomer.sqlalchemy import EncryptedString


def read(cipher: FieldCipher, token: bytes, context: Context) -> str:
    name: str = cipher.decrypt_as(token, int, context=context)
    return name


column_type: TypeEngine[int] = EncryptedString()
"""


def test_wrong_uses_fail_to_type_check(tmp_path: Path) -> None:
    (tmp_path / "right.py").write_text(RIGHT, encoding="utf-8")
    (tmp_path / "wrong.py").write_text(WRONG, encoding="utf-8")
    env = dict(os.environ)
    # Check the package these tests import (a source checkout's src/, or the installed one:
    # mypy refuses a site-packages directory in MYPYPATH).
    where = Path(securecustomer.__file__).resolve().parents[1]
    if where.name != "site-packages":
        env["MYPYPATH"] = str(where)
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull]
    result = subprocess.run(
        [*command, "--no-color-output", "--no-error-summary", "right.py", "wrong.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert [
        'wrong.py:8: error: Incompatible types in assignment (expression has type "int", '
        'variable has type "str")  [assignment]',
        "wrong.py:12: error: Incompatible types in assignment (expression has type "
        '"EncryptedString", variable has type "TypeEngine[int]")  [assignment]',
    ] == errors, result.stdout + result.stderr
