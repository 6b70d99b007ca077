"""The documentation's examples run, and print what the pages say they print.

The Python blocks of a page run in order in one namespace, in a temporary directory; a
``text`` block right after a Python block is that block's expected output. A ``toml`` block
with ``title="NAME"`` is written to NAME first. Blocks importing a web framework are left
out (the project does not depend on one).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).parents[2] / "docs"
PAGES = ["audit.md", "policies.md", "anonymize.md", "privacy.md"]
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.S | re.M
)
WEB = re.compile(r"^\s*(from|import) (fastapi|flask)", re.M)


def _dedent(body: str, indent: str) -> str:
    return "\n".join(
        line[len(indent) :] if line.startswith(indent) else line for line in body.split("\n")
    )


def examples(text: str) -> list[tuple[int, str, str, str | None]]:
    """(offset, kind, body, expected output) for every toml and python block of a page."""
    found: list[tuple[int, str, str, str | None]] = []
    blocks = list(FENCE.finditer(text))
    for index, block in enumerate(blocks):
        info = block.group("info").strip()
        kind = info.split()[0] if info else ""
        body = _dedent(block.group("body"), block.group("indent"))
        if kind == "toml" and (title := re.search(r'title="([^"]+)"', info)):
            found.append((block.start(), f"file:{title.group(1)}", body, None))
        if kind != "python" or WEB.search(body):
            continue
        expected = None
        if index + 1 < len(blocks):
            nxt = blocks[index + 1]
            between = text[block.end() : nxt.start()]
            if nxt.group("info").strip() == "text" and not between.strip():
                expected = _dedent(nxt.group("body"), nxt.group("indent"))
        found.append((block.start(), "python", body, expected))
    return found


@pytest.fixture(autouse=True)
def fresh_subject_registry() -> Any:
    """A page runs as in a fresh process: subject models other tests registered (a
    process-wide registry) are set aside while it runs, and put back after; the trail and
    keyring a page binds as defaults are unbound after it, so later tests see none."""
    from securecustomer.audit import default_trail
    from securecustomer.privacy import _subjects
    from securecustomer.sqlalchemy import default_keyring

    saved = dict(_subjects._registry)
    trail, keyring = default_trail._trail, default_keyring._keyring
    _subjects._registry.clear()
    yield
    _subjects._registry.clear()
    _subjects._registry.update(saved)
    default_trail._trail, default_keyring._keyring = trail, keyring  # what the page bound


class TestPages:
    """Each page's examples, run top to bottom like a reader would."""

    @pytest.mark.parametrize("page", PAGES)
    def test_examples(self, page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        ran = 0
        for offset, kind, body, expected in examples((DOCS / page).read_text("utf-8")):
            if kind.startswith("file:"):
                (tmp_path / kind[5:]).write_text(body, "utf-8")
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = compile(body, f"{page}, block at {offset}", "exec", dont_inherit=True)
                exec(code, namespace)  # noqa: S102 - the docs examples
            ran += 1
            if expected is not None:
                assert expected == out.getvalue(), f"{page}: output of the block at {offset}"
        assert ran > 0
