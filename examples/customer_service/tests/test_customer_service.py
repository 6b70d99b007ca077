"""The example service end to end: HTTP in, encrypted SQLite and a verified audit trail out."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

AGENT = {"X-User": "alice", "X-Roles": "support_agent"}
ADMIN = {"X-User": "bob", "X-Roles": "admin"}
DPO = {"X-User": "dora", "X-Roles": "dpo"}
MARKETING = {"X-User": "mallory", "X-Roles": "marketing"}
JSON = {"Content-Type": "application/json"}

ADA = {"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7946 0958"}

Events = Callable[[], list[dict[str, Any]]]


def create(client: TestClient, customer: dict[str, str] = ADA) -> str:
    response = client.post("/customers", json=customer, headers=AGENT)
    assert 201 == response.status_code
    customer_id: str = response.json()["id"]
    return customer_id


class TestSetup:
    """The first run creates a private key file; the database holds no plaintext."""

    def test_key_file_is_private(self, settings: Any) -> None:
        assert 0o600 == stat.S_IMODE(settings.key_file.stat().st_mode)

    def test_first_run_is_repeatable(self, settings: Any) -> None:
        from customer_service.startup import first_run

        assert first_run(settings) is False

    def test_init_command(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from customer_service.__main__ import main

        monkeypatch.chdir(tmp_path)
        for name in [name for name in os.environ if name.startswith("CUSTOMER_SERVICE_")]:
            monkeypatch.delenv(name)

        assert 0 == main(["init"])

        out = capsys.readouterr().out
        assert "created master.key (mode 0600)" in out
        assert "export CUSTOMER_SERVICE_AUDIT_KEY=" in out
        assert (tmp_path / "customer_service.db").exists()
        assert 0o600 == stat.S_IMODE((tmp_path / "master.key").stat().st_mode)

    def test_settings_from_environment(self) -> None:
        from customer_service import Settings

        settings = Settings.from_env(
            {
                "CUSTOMER_SERVICE_KEY_FILE": "/etc/app/master.key",
                "CUSTOMER_SERVICE_AUDIT_KEY": "ab" * 32,
                "CUSTOMER_SERVICE_POOL_SIZE": "3",
                "CUSTOMER_SERVICE_MAX_BODY_BYTES": "1000",
            }
        )

        assert (Path("/etc/app/master.key"), bytes([0xAB]) * 32, 3, 1000) == (
            settings.key_file,
            settings.audit_key,
            settings.pool_size,
            settings.max_body_bytes,
        )
        assert "audit_key" not in repr(settings)  # the audit key is not shown

    def test_start_refuses_without_audit_key(self, settings: Any) -> None:
        from securecustomer.exceptions import ConfigurationError

        from customer_service import create_app

        app = create_app(dataclasses.replace(settings, audit_key=b""))
        with pytest.raises(ConfigurationError, match="CUSTOMER_SERVICE_AUDIT_KEY"), TestClient(app):
            pass

    def test_database_holds_ciphertext(self, client: TestClient, settings: Any) -> None:
        create(client)
        engine = sa.create_engine(settings.database_url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT name, email, phone FROM customers")).one()
        engine.dispose()
        stored = b"".join(bytes(value) for value in row)
        assert b"Ada" not in stored
        assert b"example" not in stored.lower()


class TestBadInput:
    """Malformed or oversized bodies get a 4xx, and nothing is stored."""

    def stored(self, settings: Any) -> int:
        engine = sa.create_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                count: int = conn.execute(sa.text("SELECT count(*) FROM customers")).scalar_one()
                return count
        finally:
            engine.dispose()

    @pytest.mark.parametrize("field", ["name", "email", "phone"])
    def test_a_lone_surrogate_is_422(self, client: TestClient, settings: Any, field: str) -> None:
        # Valid JSON, but no Unicode text: "\ud800" is half of a UTF-16 pair.
        body = {"name": "Ada", "email": "ada@example.com", "phone": "1"}
        raw = json.dumps(body).replace(f'"{body[field]}"', '"\\ud800"').encode()

        response = client.post("/customers", content=raw, headers=AGENT | JSON)

        assert 422 == response.status_code, response.text
        assert ["body", field] == response.json()["detail"][0]["loc"]
        assert "input" not in response.json()["detail"][0]  # bad values are not sent back
        assert 0 == self.stored(settings)

    def test_a_lone_surrogate_in_a_note_is_422(self, client: TestClient) -> None:
        customer_id = create(client)

        response = client.post(
            f"/customers/{customer_id}/notes",
            content=b'{"text": "a\\udfffb"}',
            headers=ADMIN | JSON,
        )

        assert 422 == response.status_code, response.text

    def test_a_body_over_the_limit_is_413(self, client: TestClient, settings: Any) -> None:
        name = "x" * settings.max_body_bytes

        response = client.post("/customers", json={"name": name, "email": "a@x.io"}, headers=AGENT)

        assert 413 == response.status_code
        assert 0 == self.stored(settings)

    def test_a_streamed_body_over_the_limit_is_413(self, client: TestClient, settings: Any) -> None:
        # No Content-Length: the body is counted as it arrives.
        chunk = b" " * 4096
        chunks = [
            b'{"name": "x", "email": "a@x.io"',
            *[chunk] * (settings.max_body_bytes // 4096),
            b"}",
        ]

        response = client.post("/customers", content=iter(chunks), headers=AGENT | JSON)

        assert 413 == response.status_code
        assert 0 == self.stored(settings)

    def test_a_body_within_the_limit_is_accepted(self, client: TestClient, settings: Any) -> None:
        name = "x" * (settings.max_body_bytes - 100)

        response = client.post("/customers", json={"name": name, "email": "a@x.io"}, headers=AGENT)

        assert 201 == response.status_code
        assert 1 == self.stored(settings)


class TestCustomers:
    """Reading and searching customers, as the policy shows them."""

    def test_agent_sees_masked_contact_and_no_notes(self, client: TestClient) -> None:
        customer_id = create(client)
        assert (
            201
            == client.post(
                f"/customers/{customer_id}/notes", json={"text": "prefers e-mail"}, headers=ADMIN
            ).status_code
        )

        response = client.get(f"/customers/{customer_id}", headers=AGENT)

        assert 200 == response.status_code
        assert {
            "id": customer_id,
            "name": "Ada Lovelace",
            "email": "A***@Example.com",
            "phone": "+** ** **** **58",
        } == response.json()

    def test_admin_sees_everything(self, client: TestClient) -> None:
        customer_id = create(client)
        client.post(f"/customers/{customer_id}/notes", json={"text": "VIP"}, headers=ADMIN)

        response = client.get(f"/customers/{customer_id}", headers=ADMIN)

        assert {"id": customer_id, **ADA, "notes": ["VIP"]} == response.json()

    def test_search_by_email_uses_the_blind_index(self, client: TestClient) -> None:
        ada = create(client)
        create(client, {"name": "Grace Hopper", "email": "grace@example.com"})

        response = client.get("/customers", params={"email": "  ada@EXAMPLE.com "}, headers=ADMIN)

        assert [ada] == [found["id"] for found in response.json()]
        assert [] == client.get("/customers", params={"email": "x@y.z"}, headers=ADMIN).json()

    def test_unknown_customer_is_404(self, client: TestClient) -> None:
        response = client.get("/customers/00000000-0000-4000-8000-000000000000", headers=ADMIN)
        assert 404 == response.status_code

    def test_no_user_is_401(self, client: TestClient) -> None:
        assert 401 == client.get("/audit/verify").status_code


class TestDenials:
    """A denied request is a 403, decrypts nothing, and leaves a "denied" event."""

    # --8<-- [start:denied]
    def test_denied_read(self, client: TestClient, audit_events: Events) -> None:
        customer_id = create(client)

        response = client.get(
            f"/customers/{customer_id}", headers={**MARKETING, "X-Request-Id": "req-9"}
        )

        assert 403 == response.status_code
        assert {"detail": "forbidden"} == response.json()
        event = audit_events()[-1]
        assert ("read", "denied", "AccessDenied") == (
            event["action"],
            event["outcome"],
            event["error_type"],
        )
        assert ("mallory", "req-9") == (event["actor"], event["request_id"])
        assert event["subject"].startswith("ps_")  # a pseudonym, never the id
        assert event["subject"] == event["resource_id"]  # the customer id is the subject's
        assert customer_id not in json.dumps(event)

    # --8<-- [end:denied]

    def test_agent_may_not_export_or_erase(self, client: TestClient) -> None:
        customer_id = create(client)
        assert 403 == client.get(f"/subjects/{customer_id}/export", headers=AGENT).status_code
        assert 403 == client.delete(f"/subjects/{customer_id}", headers=ADMIN).status_code
        assert 200 == client.get(f"/customers/{customer_id}", headers=ADMIN).status_code


class TestSubjectRights:
    """Export and erasure of one customer, through the DPO's endpoints."""

    def test_export_holds_decrypted_data(self, client: TestClient) -> None:
        customer_id = create(client)
        create(client, {"name": "Grace Hopper", "email": "grace@example.com"})
        client.post(f"/customers/{customer_id}/notes", json={"text": "VIP"}, headers=ADMIN)

        response = client.get(f"/subjects/{customer_id}/export", headers=DPO)

        assert 200 == response.status_code
        export = response.json()
        assert "Grace Hopper" not in response.text
        [customer] = export["records"]["customers"]
        assert (ADA["name"], ADA["email"], ADA["phone"]) == (
            customer["name"],
            customer["email"],
            customer["phone"],
        )
        assert ["VIP"] == [note["text"] for note in export["records"]["notes"]]

    def test_erase(self, client: TestClient) -> None:
        customer_id = create(client)
        client.post(f"/customers/{customer_id}/notes", json={"text": "VIP"}, headers=ADMIN)

        response = client.delete(f"/subjects/{customer_id}", headers=DPO)

        assert 200 == response.status_code
        receipt = response.json()
        assert ({"customers": 1}, {"notes": 1}, False) == (
            receipt["deleted"],
            receipt["shredded"],
            receipt["already_erased"],
        )
        assert receipt["keys_destroyed"]
        assert 404 == client.get(f"/customers/{customer_id}", headers=ADMIN).status_code
        found = client.get("/customers", params={"email": ADA["email"]}, headers=ADMIN)
        assert [] == found.json()
        export = client.get(f"/subjects/{customer_id}/export", headers=DPO).json()
        assert [] == export["records"]["customers"]
        assert [None] == [note["text"] for note in export["records"]["notes"]]
        assert {"notes": ["text"]} == export["erased"]

    def test_held_customer_is_not_erased(
        self, client: TestClient, settings: Any, audit_events: Events
    ) -> None:
        from securecustomer.privacy import LegalHolds

        customer_id = create(client)
        client.post(f"/customers/{customer_id}/notes", json={"text": "VIP"}, headers=ADMIN)
        engine = sa.create_engine(settings.database_url)
        try:
            holds = LegalHolds(engine, key=settings.audit_key)
            hold = holds.place(customer_id, matter="case 2026-17", placed_by="legal")

            response = client.delete(f"/subjects/{customer_id}", headers=DPO)

            assert 409 == response.status_code
            assert {"detail": "a legal hold forbids erasing this customer"} == response.json()
            read = client.get(f"/customers/{customer_id}", headers=ADMIN)
            assert (200, ADA["email"], ["VIP"]) == (
                read.status_code,
                read.json()["email"],
                read.json()["notes"],
            )
            events = audit_events()
            assert ["error"] == [e["outcome"] for e in events if e["action"] == "erase"]
            assert "subject.erase" not in [e["action"] for e in events]

            holds.release(hold.id)
            assert 200 == client.delete(f"/subjects/{customer_id}", headers=DPO).status_code
        finally:
            engine.dispose()

    def test_erase_again_is_safe(self, client: TestClient) -> None:
        customer_id = create(client)
        client.delete(f"/subjects/{customer_id}", headers=DPO)

        again = client.delete(f"/subjects/{customer_id}", headers=DPO)

        assert 200 == again.status_code
        assert again.json()["already_erased"] is True


class TestOversight:
    """The audit trail verifies after a whole session of use; the inventory lists the data."""

    def test_full_flow_then_verify(self, client: TestClient, audit_events: Events) -> None:
        customer_id = create(client)
        client.post(f"/customers/{customer_id}/notes", json={"text": "VIP"}, headers=ADMIN)
        client.get(f"/customers/{customer_id}", headers=AGENT)
        client.get(f"/customers/{customer_id}", headers=MARKETING)
        client.get("/customers", params={"email": ADA["email"]}, headers=AGENT)
        client.get(f"/subjects/{customer_id}/export", headers=DPO)
        client.delete(f"/subjects/{customer_id}", headers=DPO)

        response = client.get("/audit/verify", headers=DPO)

        assert 200 == response.status_code
        assert response.json()["ok"] is True
        actions = [(event["action"], event["actor"], event["outcome"]) for event in audit_events()]
        assert ("read", "mallory", "denied") in actions
        assert ("export", "dora", "success") in actions
        assert ("erase", "dora", "success") in actions
        assert not any("Ada" in str(event) for event in audit_events())

    def test_inventory(self, client: TestClient) -> None:
        response = client.get("/inventory", headers=ADMIN)

        assert 200 == response.status_code
        entries = {(e["table"], e["column"]): e for e in response.json()["entries"]}
        assert entries[("customers", "email")]["encrypted"] is True
        assert ("customers", "email_index") not in entries
        assert 403 == client.get("/inventory", headers=AGENT).status_code
