"""The securecustomer command and its demo, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from securecustomer.cli import main


class TestDemo:
    """`securecustomer demo` runs every step and says so."""

    def test_in_process(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        assert 0 == main(["demo", "--dir", str(tmp_path)])
        out = capsys.readouterr().out
        assert "row 8:     DecryptionError" in out
        assert "after erasure:   KeyDestroyedError" in out
        assert "every step behaved as expected" in out
        assert 0o600 == (tmp_path / "master.key").stat().st_mode & 0o777
        key = (tmp_path / "master.key").read_text()
        secret = key.split('"key": "')[1].split('"')[0]
        assert secret not in out

    def test_rerun_on_same_directory(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        assert 0 == main(["demo", "--dir", str(tmp_path)])
        assert 0 == main(["demo", "--dir", str(tmp_path)])
        assert "every step behaved as expected" in capsys.readouterr().out

    def test_as_module(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        result = subprocess.run(
            [sys.executable, "-m", "securecustomer", "demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert "every step behaved as expected" in result.stdout


class TestCommand:
    """Help, version and errors."""

    def test_no_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == main([])
        assert "demo" in capsys.readouterr().out

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["--version"])
        assert 0 == info.value.code
        assert "securecustomer 0.1.0" in capsys.readouterr().out

    def test_library_error_is_one_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "master.key").write_text("{}")
        (tmp_path / "master.key").chmod(0o600)
        assert 1 == main(["demo", "--dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert err.startswith("securecustomer: error: ")
        assert "not a valid securecustomer key file" in err
        assert "Traceback" not in err
