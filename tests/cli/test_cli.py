"""The securecustomer command, as a user runs it (the demo: test_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from securecustomer.cli import main


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
        assert 2 == main(["demo", "--dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert err.startswith("securecustomer demo: error: ")
        assert "not a valid securecustomer key file" in err
        assert "Traceback" not in err
