"""`securecustomer keys emergency KEY_ID`, as an operator runs it after a key leaked."""

from __future__ import annotations

import io

import pytest
from app.shop import APP_DIR, Shop, run, shop

from securecustomer.crypto import KeyState

__all__ = ["shop"]  # the fixture


class _Terminal(io.StringIO):
    """Standard input that says it is a terminal, with the operator's answer in it."""

    def isatty(self) -> bool:
        return True


def email_key(shop: Shop) -> int:
    primary = shop.keyring().keyset("shoppers.email").primary
    assert primary is not None
    return primary.key_id


def state(shop: Shop, key_id: int) -> KeyState:
    return next(s.state for s in shop.keyring().status() if s.key_id == key_id)


def args(shop: Shop, key_id: int, *extra: str) -> list[str]:
    models = ["--model", "app.models:Shopper", "--model", "app.models:Parcel"]
    return [
        "keys",
        "emergency",
        f"{key_id:#010x}",
        "--url",
        shop.url,
        *models,
        "--app-dir",
        APP_DIR,
        *shop.key_args(),
        *extra,
    ]


class TestEmergency:
    """The plan first, a confirmation, then revoke, re-encrypt, disable and an audit event."""

    def test_with_yes(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        key_id = email_key(shop)

        status, out, _ = run([*args(shop, key_id, *shop.trail_args()), "--yes"], capsys)

        new = email_key(shop)
        assert 0 == status
        assert out.startswith(f"key {key_id:#010x}: scope shoppers.email, version 1, state active")
        assert "  ... compromised key" in out
        assert "  shoppers: 3 values were under the key" in out
        assert "  shoppers: 3 re-encrypted, 0 errors, 0 conflicts" in out
        assert f"active key of the scope: {new:#010x} (version 2)" in out
        assert "values left under the key: 0" in out
        assert "the key is disabled" in out
        assert KeyState.DISABLED == state(shop, key_id)
        assert {1: "s1@example.com", 2: "s2@example.com", 3: "s3@example.com"} == shop.emails()
        assert ["key.compromise"] == shop.actions()
        assert shop.trail().verify().ok

    def test_dry_run_asks_nothing(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        key_id = email_key(shop)

        status, out, _ = run(args(shop, key_id, "--dry-run"), capsys)

        assert 0 == status
        assert "plan (dry run: nothing is changed):" in out
        assert "dry run: nothing was changed" in out
        assert "values left under the key: 3" in out
        assert KeyState.ACTIVE == state(shop, key_id)

    def test_refuses_without_a_terminal(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
        key_id = email_key(shop)

        status, out, err = run(args(shop, key_id), capsys)

        assert 2 == status
        assert "plan:" in out
        assert "not a terminal: add --yes" in err
        assert KeyState.ACTIVE == state(shop, key_id)

    @pytest.mark.parametrize(("answer", "expected"), [("yes\n", 0), ("no\n", 1), ("", 1)])
    def test_asks_on_a_terminal(
        self,
        shop: Shop,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        answer: str,
        expected: int,
    ) -> None:
        monkeypatch.setattr("sys.stdin", _Terminal(answer))
        key_id = email_key(shop)

        status, out, err = run(args(shop, key_id), capsys)

        assert expected == status
        assert "proceed? type yes: " in out
        if expected:
            assert "nothing was changed" in err
            assert KeyState.ACTIVE == state(shop, key_id)
        else:
            assert KeyState.DISABLED == state(shop, key_id)
            assert "no audit trail: no event written" in out

    def test_unknown_key(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run([*args(shop, 0x7FFFFFFF), "--yes"], capsys)

        assert (2, "") == (status, out)
        assert (
            "securecustomer keys emergency: error: no data key 0x7fffffff in the key store\n" == err
        )

    def test_bad_key_id(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        argv = args(shop, 1)
        argv[2] = "zz"

        with pytest.raises(SystemExit) as info:
            run(argv, capsys)

        assert 2 == info.value.code
        assert "'zz' is not a key id" in capsys.readouterr().err

    def test_bad_model(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        argv = [*args(shop, email_key(shop)), "--model", "app.models", "--yes"]

        status, _, err = run(argv, capsys)

        assert 2 == status
        assert "--model 'app.models': expected MODULE:CLASS" in err

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            run(["keys", "emergency", "--help"], capsys)

        assert 0 == info.value.code
        assert "KEY_ID" in capsys.readouterr().out
