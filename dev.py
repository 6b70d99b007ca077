#!/usr/bin/env python3
"""Bootstrap for a fresh machine with only Python 3.11+: ``python3 dev.py demo|tests|...``.

Creates ``.venv-nox`` with nox and uv (once), then runs ``nox -s SESSION``. Any other
arguments go to nox unchanged, e.g. ``python3 dev.py -s bench``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BOOT = ROOT / ".venv-nox"
TOOLS = ["nox==2026.10.20", "uv==0.13.8"]


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        print("securecustomer needs Python 3.11 or newer", file=sys.stderr)
        return 2
    bindir = BOOT / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    marker = BOOT / "tools.txt"
    if not marker.exists() or marker.read_text() != "\n".join(TOOLS):
        venv.EnvBuilder(with_pip=True, clear=True).create(BOOT)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *TOOLS],
            check=True,
        )
        marker.write_text("\n".join(TOOLS))
    args = ["-s", *argv] if argv and not argv[0].startswith("-") else argv
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.call(
        [str(python), "-m", "nox", "-f", str(ROOT / "noxfile.py"), *args], env=env
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
