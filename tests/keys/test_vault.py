"""VaultTransitKeyProvider against a real OpenBao server: wrapping, versions, faults, auth.

The server (see `vaultserver`) is started once per session; tests that stop, seal or
freeze it get it back running and unsealed from the `vault` fixture. When OpenBao cannot
be started, these tests fail if CI is set and are skipped (with the reason) otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import secrets
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import pytest
import requests
from clock import FakeClock
from slowserver import SlowServer, head_length, http_answer, self_signed
from vaultserver import VaultServer, VaultServerUnavailableError

from securecustomer import Context, Keyring
from securecustomer.exceptions import (
    ConfigurationError,
    KeyProviderAccessDenied,
    KeyProviderError,
    KeyProviderTLSError,
    KeyProviderUnavailable,
    KeyUnwrapError,
)
from securecustomer.keys import MemoryKeyStore, RetryPolicy, VaultTransitKeyProvider, WrappedKey

MATERIAL = bytes(range(32))
CTX = {"securecustomer": "root-key", "version": "1"}
OTHER_CTX = {"securecustomer": "root-key", "version": "2"}
ROW = Context("customers", "email", row=1)


class CountingAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]
    """hvac's default adapter, recording the path of every request it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(url.split("/v1/", 1)[-1])
        return super().request(method, url, *args, **kwargs)


class Sleeps:
    """A RetryPolicy sleep that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    try:
        server = VaultServer.start_new()
    except VaultServerUnavailableError as exc:
        if "CI" in os.environ:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"{exc}\n  (skipped because CI is not set; with CI set this fails)")
    yield server
    server.close()


@pytest.fixture
def vault(vault_server: VaultServer) -> Iterator[VaultServer]:
    """The session's server, brought back running and unsealed after the test."""
    yield vault_server
    vault_server.ensure_ready()


@pytest.fixture
def key(vault: VaultServer) -> str:
    return vault.new_transit_key()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=2.0, sleep=sleeps)


@pytest.fixture
def client(vault: VaultServer) -> Iterator[hvac.Client]:
    """A root-token client whose adapter counts requests (``client.adapter.calls``)."""
    client = vault.client(adapter=CountingAdapter)
    yield client
    client.adapter.close()


@pytest.fixture
def transit(client: hvac.Client, key: str, retry: RetryPolicy) -> VaultTransitKeyProvider:
    return VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)


def cause_chain(exc: BaseException) -> list[BaseException]:
    chain = [exc]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    return chain


def tampered(wrapped: WrappedKey) -> WrappedKey:
    """*wrapped* with one base64 character of its Transit ciphertext changed."""
    data = bytearray(wrapped.ciphertext)
    data[12] = ord("A") if data[12] != ord("A") else ord("B")
    return WrappedKey(wrapped.provider, wrapped.key_ref, bytes(data))


class TestConfiguration:
    """Bad settings are refused at construction; nothing about the client is echoed."""

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"key": ""}, "not a Transit key name"),
            ({"key": "a/b"}, "not a Transit key name"),
            ({"key": "k", "mount_point": ""}, "not a Transit mount point"),
            ({"key": "k", "mount_point": "a b"}, "not a Transit mount point"),
            ({"key": "k", "namespace": "/"}, "not a Vault namespace"),
        ],
    )
    def test_refused(self, kwargs: dict[str, Any], fragment: str) -> None:
        client = hvac.Client(url="http://127.0.0.1:9")
        with pytest.raises(ConfigurationError, match=fragment):
            VaultTransitKeyProvider(client, **kwargs, insecure_http=True)

    def test_not_a_client(self) -> None:
        with pytest.raises(ConfigurationError, match=r"must be an hvac\.Client"):
            VaultTransitKeyProvider(object(), key="k")  # type: ignore[arg-type]

    def test_slashes_trimmed(self) -> None:
        client = hvac.Client(url="http://127.0.0.1:9")
        provider = VaultTransitKeyProvider(
            client, key="k", mount_point="/team/transit/", insecure_http=True
        )
        assert ["team/transit/k"] == provider.key_refs

    def test_foreign_wrapped_keys_refused_without_a_call(self) -> None:
        client = hvac.Client(url="http://127.0.0.1:9", adapter=CountingAdapter)
        provider = VaultTransitKeyProvider(client, key="k", insecure_http=True)
        good = b"vault:v1:AAAA#" + base64.b64encode(bytes(32))
        for wrapped, fragment in [
            (WrappedKey("local", "transit/k:v1", good), "not by this provider"),
            (WrappedKey("vault", "transit/other:v1", good), "not by this provider"),
            (WrappedKey("vault", "transit/k:v1", b"vault:v1:AAAA"), "malformed"),
            (WrappedKey("vault", "transit/k:v2", good), "malformed"),
            (WrappedKey("vault", "transit/k:v1", b"vault:v1:AA#c2hvcnQ="), "malformed"),
            (WrappedKey("vault", "transit/k:v1", b"\xff#" + good), "malformed"),
        ]:
            with pytest.raises(KeyUnwrapError, match=fragment):
                provider.unwrap(wrapped, context=CTX)
        assert [] == client.adapter.calls


class TestWrap:
    """wrap/unwrap round trips through Transit, bound to the keyring's context."""

    def test_round_trip(self, transit: VaultTransitKeyProvider, key: str) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        assert "vault" == wrapped.provider
        assert f"transit/{key}:v1" == wrapped.key_ref
        assert wrapped.ciphertext.startswith(b"vault:v1:")
        assert MATERIAL == transit.unwrap(wrapped, context=CTX)

    def test_operator_can_decrypt_the_transit_part(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, key: str
    ) -> None:
        """The part before '#' is a plain Transit ciphertext (for operators and tools)."""
        wrapped = transit.wrap(MATERIAL, context=CTX)
        ciphertext = wrapped.ciphertext.split(b"#")[0].decode()
        answer = vault.client().secrets.transit.decrypt_data(key, ciphertext=ciphertext)
        assert MATERIAL == base64.b64decode(answer["data"]["plaintext"])

    def test_wrong_context(self, transit: VaultTransitKeyProvider) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        with pytest.raises(KeyUnwrapError, match="bound to another context"):
            transit.unwrap(wrapped, context=OTHER_CTX)

    def test_tampered_ciphertext(self, transit: VaultTransitKeyProvider) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        with pytest.raises(KeyUnwrapError, match=r"did not decrypt .*authentication failed"):
            transit.unwrap(tampered(wrapped), context=CTX)

    def test_tampered_tag(self, transit: VaultTransitKeyProvider) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        head = wrapped.ciphertext.split(b"#")[0]
        forged = WrappedKey("vault", wrapped.key_ref, head + b"#" + base64.b64encode(bytes(32)))
        with pytest.raises(KeyUnwrapError, match="bound to another context"):
            transit.unwrap(forged, context=CTX)

    def test_another_transit_key(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, client: hvac.Client
    ) -> None:
        """A wrapped key copied to another Transit key's record does not decrypt."""
        other = VaultTransitKeyProvider(client, key=vault.new_transit_key(), insecure_http=True)
        wrapped = transit.wrap(MATERIAL, context=CTX)
        moved = WrappedKey("vault", other.key_refs[0] + ":v1", wrapped.ciphertext)
        with pytest.raises(KeyUnwrapError, match="did not decrypt"):
            other.unwrap(moved, context=CTX)

    def test_generate_key(
        self, transit: VaultTransitKeyProvider, client: hvac.Client, key: str
    ) -> None:
        """One datakey call gives new material from Vault and its wrapped form."""
        material, wrapped = transit.generate_key(context=CTX)
        assert [f"transit/datakey/plaintext/{key}"] == client.adapter.calls
        again, _ = transit.generate_key(context=CTX)
        assert 32 == len(material)
        assert material != again
        assert material == transit.unwrap(wrapped, context=CTX)
        with pytest.raises(KeyUnwrapError, match="another context"):
            transit.unwrap(wrapped, context=OTHER_CTX)

    @pytest.mark.parametrize("ignore_exceptions", [False, True])
    def test_raw_adapter(self, vault: VaultServer, key: str, ignore_exceptions: bool) -> None:
        """Adapters that return responses (and ones that never raise) work the same."""
        client = vault.client(adapter=hvac.adapters.RawAdapter, ignore_exceptions=ignore_exceptions)
        provider = VaultTransitKeyProvider(client, key=key, insecure_http=True)
        wrapped = provider.wrap(MATERIAL, context=CTX)
        assert MATERIAL == provider.unwrap(wrapped, context=CTX)
        client.adapter.token = "s.not-a-token"
        with pytest.raises(KeyProviderAccessDenied, match="invalid, expired or revoked"):
            provider.unwrap(wrapped, context=CTX)
        client.adapter.close()


class TestKeyVersions:
    """Rotation in Transit, rewrap to the latest version, and min_decryption_version."""

    def test_rewrap_after_rotation(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, key: str
    ) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        vault.client().secrets.transit.rotate_key(key)
        rewrapped = transit.rewrap(wrapped, context=CTX)
        assert f"transit/{key}:v2" == rewrapped.key_ref
        assert rewrapped.ciphertext.startswith(b"vault:v2:")
        assert MATERIAL == transit.unwrap(rewrapped, context=CTX)
        assert f"transit/{key}:v2" == transit.wrap(MATERIAL, context=CTX).key_ref
        with pytest.raises(KeyUnwrapError, match="another context"):
            transit.unwrap(rewrapped, context=OTHER_CTX)  # the binding survives the rewrap

    def test_min_decryption_version(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, key: str
    ) -> None:
        """Keys rewrapped before min_decryption_version is raised stay readable."""
        old = transit.wrap(MATERIAL, context=CTX)
        admin = vault.client()
        admin.secrets.transit.rotate_key(key)
        rewrapped = transit.rewrap(old, context=CTX)
        admin.secrets.transit.update_key_configuration(key, min_decryption_version=2)
        with pytest.raises(KeyUnwrapError, match="below the key's min_decryption_version"):
            transit.unwrap(old, context=CTX)
        with pytest.raises(KeyUnwrapError, match="min_decryption_version"):
            transit.rewrap(old, context=CTX)
        assert MATERIAL == transit.unwrap(rewrapped, context=CTX)

    def test_keyring_rewrap_roots(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, key: str
    ) -> None:
        """Master-key rotation: a new Transit version, then Keyring.rewrap_roots."""
        store = MemoryKeyStore()
        keyring = Keyring(transit, store).load()
        token = keyring.cipher("customers.email").encrypt("ada@example.com", context=ROW)
        vault.client().secrets.transit.rotate_key(key)
        assert 1 == keyring.rewrap_roots()
        assert [f"transit/{key}:v2"] == [w.key_ref for w in store.roots()[0].wrapped]
        vault.client().secrets.transit.update_key_configuration(key, min_decryption_version=2)
        fresh = Keyring(transit, store).load()
        assert "ada@example.com" == fresh.cipher("customers.email").decrypt(token, context=ROW)


class TestBatch:
    """unwrap_many decrypts many keys in one call and fails without leaking the others."""

    def test_one_call(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, key: str, client: hvac.Client
    ) -> None:
        contexts = [{"securecustomer": "root-key", "version": str(v)} for v in range(1, 4)]
        materials = [secrets.token_bytes(32) for _ in contexts]
        wrapped = [transit.wrap(m, context=c) for m, c in zip(materials, contexts, strict=True)]
        vault.client().secrets.transit.rotate_key(key)
        wrapped[2] = transit.rewrap(wrapped[2], context=contexts[2])  # two key versions
        client.adapter.calls.clear()
        assert materials == transit.unwrap_many(list(zip(wrapped, contexts, strict=True)))
        assert [f"transit/decrypt/{key}"] == client.adapter.calls
        assert [] == transit.unwrap_many([])

    def test_wrong_context(self, transit: VaultTransitKeyProvider) -> None:
        first = transit.wrap(MATERIAL, context=CTX)
        second = transit.wrap(MATERIAL, context=OTHER_CTX)
        with pytest.raises(KeyUnwrapError, match="another context"):
            transit.unwrap_many([(first, CTX), (second, CTX)])

    def test_partial_failure_leaks_nothing(self, transit: VaultTransitKeyProvider) -> None:
        good = transit.wrap(MATERIAL, context=CTX)
        bad = tampered(transit.wrap(MATERIAL, context=CTX))
        with pytest.raises(KeyUnwrapError, match=r"batch item 1: .*did not decrypt") as info:
            transit.unwrap_many([(good, CTX), (bad, CTX)])
        text = " ".join(f"{e} {vars(e)}" for e in cause_chain(info.value))
        assert base64.b64encode(MATERIAL).decode() not in text

    def test_all_failing(self, transit: VaultTransitKeyProvider) -> None:
        bad = tampered(transit.wrap(MATERIAL, context=CTX))
        with pytest.raises(KeyUnwrapError, match="authentication failed"):
            transit.unwrap_many([(bad, CTX), (bad, CTX)])


class TestKeyring:
    """A Keyring over Vault: the provider is called at load only, never per value."""

    def test_end_to_end(self, transit: VaultTransitKeyProvider, client: hvac.Client) -> None:
        store = MemoryKeyStore()
        keyring = Keyring(transit, store).load()
        key = transit.key_refs[0].split("/")[1]
        at_load = list(client.adapter.calls)  # datakey, and maybe a decrypt of its result
        assert f"transit/datakey/plaintext/{key}" == at_load[0]
        assert set(at_load) <= {f"transit/datakey/plaintext/{key}", f"transit/decrypt/{key}"}
        tokens = {}
        for n in range(20):
            cipher = keyring.cipher(f"customers.{n}")
            tokens[n] = cipher.encrypt(f"value {n}", context=ROW)
            assert f"value {n}" == cipher.decrypt(tokens[n], context=ROW)
        assert at_load == client.adapter.calls
        reader = Keyring(transit, store).load()
        assert "value 7" == reader.cipher("customers.7").decrypt(tokens[7], context=ROW)
        assert [*at_load, f"transit/decrypt/{key}"] == client.adapter.calls

    def test_several_roots_in_one_call(
        self, transit: VaultTransitKeyProvider, client: hvac.Client
    ) -> None:
        store = MemoryKeyStore()
        keyring = Keyring(transit, store).load()
        token = keyring.cipher("s").encrypt("x", context=ROW)
        keyring.rotate_root()
        client.adapter.calls.clear()
        reader = Keyring(transit, store).load()
        assert 1 == len(client.adapter.calls)
        assert "x" == reader.cipher("s").decrypt(token, context=ROW)


class TestOutages:
    """Sealed, stopped and hung servers: retried, then KeyProviderUnavailable."""

    def test_sealed(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, sleeps: Sleeps
    ) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        vault.seal()
        with pytest.raises(KeyProviderUnavailable, match=r"is sealed.*3 attempts") as info:
            transit.unwrap(wrapped, context=CTX)
        assert 2 == len(sleeps.waits)
        assert isinstance(info.value.__cause__, hvac.exceptions.VaultDown)
        vault.unseal()
        assert MATERIAL == transit.unwrap(wrapped, context=CTX)

    def test_stopped(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, sleeps: Sleeps
    ) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        vault.stop(kill=True)
        started = time.monotonic()
        with pytest.raises(KeyProviderUnavailable, match="cannot connect to Vault at") as info:
            transit.unwrap(wrapped, context=CTX)
        assert time.monotonic() - started < 2.0
        assert 2 == len(sleeps.waits)
        assert isinstance(info.value.__cause__, requests.ConnectionError)

    def test_hung(self, client: hvac.Client, key: str, vault: VaultServer, sleeps: Sleeps) -> None:
        """A server that accepts connections but never answers costs attempts x timeout."""
        policy = RetryPolicy(attempts=2, base_delay=0.01, timeout=0.3, sleep=sleeps)
        provider = VaultTransitKeyProvider(client, key=key, retry=policy, insecure_http=True)
        wrapped = provider.wrap(MATERIAL, context=CTX)
        with vault.frozen():
            started = time.monotonic()
            with pytest.raises(KeyProviderUnavailable, match=r"did not answer within 0\.3 s"):
                provider.unwrap(wrapped, context=CTX)
            elapsed = time.monotonic() - started
        assert 0.6 <= elapsed < 2.0
        assert 1 == len(sleeps.waits)

    def test_down_at_start(self, transit: VaultTransitKeyProvider, vault: VaultServer) -> None:
        store = MemoryKeyStore()
        vault.stop(kill=True)
        with pytest.raises(KeyProviderUnavailable, match=r"cannot connect .*3 attempts"):
            Keyring(transit, store).load()
        assert [] == store.roots()  # nothing half-written

    def test_cache_outlives_an_outage(
        self, transit: VaultTransitKeyProvider, vault: VaultServer, clock: FakeClock
    ) -> None:
        """Loaded keys work while Vault is down, until root_cache_ttl; then clean errors."""
        store = MemoryKeyStore()
        keyring = Keyring(transit, store, clock=clock, root_cache_ttl=300, cache_ttl=60)
        keyring.load()
        token = keyring.cipher("customers.1").encrypt("ada", context=ROW)
        vault.stop(kill=True)  # a crash: raft keeps what was committed
        clock.advance(299)
        assert "ada" == keyring.cipher("customers.1").decrypt(token, context=ROW)
        keyring.cipher("customers.2").encrypt("new scope, cached root", context=ROW)
        clock.advance(2)
        with pytest.raises(KeyProviderUnavailable, match="cannot connect"):
            keyring.cipher("customers.3").encrypt("needs the root again", context=ROW)
        vault.start()  # comes back sealed, with its data; start() unseals it
        keyring.cipher("customers.3").encrypt("works again", context=ROW)
        reader = Keyring(transit, store).load()
        assert "ada" == reader.cipher("customers.1").decrypt(token, context=ROW)

    def test_restart(self, transit: VaultTransitKeyProvider, vault: VaultServer) -> None:
        wrapped = transit.wrap(MATERIAL, context=CTX)
        vault.stop()
        vault.start()
        assert MATERIAL == transit.unwrap(wrapped, context=CTX)


class TestRefusals:
    """Revoked tokens, narrow policies, deleted keys, wrong mounts: no retry, clear words."""

    def test_revoked_token(
        self, vault: VaultServer, key: str, retry: RetryPolicy, sleeps: Sleeps
    ) -> None:
        token = vault.create_token([vault.transit_policy(f"p-{key}", key)])
        client = vault.client(token=token, adapter=CountingAdapter)
        provider = VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)
        wrapped = provider.wrap(MATERIAL, context=CTX)
        vault.revoke_token(token)
        client.adapter.calls.clear()
        with pytest.raises(KeyProviderAccessDenied, match="invalid, expired or revoked") as info:
            provider.unwrap(wrapped, context=CTX)
        assert [] == sleeps.waits
        assert 1 == len(client.adapter.calls)
        assert isinstance(info.value.__cause__, hvac.exceptions.Forbidden)
        client.adapter.close()

    def test_policy_for_another_key(
        self, vault: VaultServer, key: str, retry: RetryPolicy, sleeps: Sleeps
    ) -> None:
        token = vault.create_token([vault.transit_policy(f"p-{key}", key)])
        client = vault.client(token=token)
        other = VaultTransitKeyProvider(
            client, key=vault.new_transit_key(), retry=retry, insecure_http=True
        )
        with pytest.raises(
            KeyProviderAccessDenied, match="does not grant 'update' on transit/encrypt/k-"
        ):
            other.wrap(MATERIAL, context=CTX)
        assert [] == sleeps.waits
        client.adapter.close()

    def test_deleted_key(
        self, vault: VaultServer, client: hvac.Client, retry: RetryPolicy, sleeps: Sleeps
    ) -> None:
        """Documented outcome: KeyProviderAccessDenied saying the key is gone."""
        key = vault.new_transit_key(deletable=True)
        provider = VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)
        store = MemoryKeyStore()
        Keyring(provider, store).load()
        vault.client().secrets.transit.delete_key(key)
        gone = f"transit key '{key}' on mount 'transit' at .* not found: it was deleted"
        with pytest.raises(KeyProviderAccessDenied, match=gone):
            Keyring(provider, store).load()
        with pytest.raises(KeyProviderAccessDenied, match=gone):  # no upsert of a new key
            provider.wrap(MATERIAL, context=CTX)
        assert [] == sleeps.waits

    def test_wrong_mount(self, client: hvac.Client, key: str, retry: RetryPolicy) -> None:
        provider = VaultTransitKeyProvider(
            client, key=key, mount_point="nowhere", retry=retry, insecure_http=True
        )
        with pytest.raises(KeyProviderAccessDenied, match="no Transit secrets engine at 'nowhere'"):
            provider.wrap(MATERIAL, context=CTX)

    def test_wrong_key_type(self, vault: VaultServer, client: hvac.Client) -> None:
        key = f"sign-{secrets.token_hex(4)}"
        vault.client().secrets.transit.create_key(key, key_type="ed25519")
        provider = VaultTransitKeyProvider(client, key=key, insecure_http=True)
        with pytest.raises(KeyProviderError, match="refused transit encrypt") as info:
            provider.wrap(MATERIAL, context=CTX)
        assert type(info.value) is KeyProviderError


class TestAuthentication:
    """The application authenticates the hvac client; AppRole and namespaces work."""

    def test_approle(self, vault: VaultServer, key: str, retry: RetryPolicy) -> None:
        admin = vault.client()
        if "approle/" not in admin.sys.list_auth_methods()["data"]:
            admin.sys.enable_auth_method("approle")
        role = f"app-{key}"
        policy = vault.transit_policy(f"p-{key}", key)
        admin.auth.approle.create_or_update_approle(role, token_policies=[policy], token_ttl="5m")
        role_id = admin.auth.approle.read_role_id(role)["data"]["role_id"]
        secret_id = admin.auth.approle.generate_secret_id(role)["data"]["secret_id"]

        client = hvac.Client(url=vault.address)
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        provider = VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)
        keyring = Keyring(provider, MemoryKeyStore()).load()
        cipher = keyring.cipher("customers.email")
        assert "ada" == cipher.decrypt(cipher.encrypt("ada", context=ROW), context=ROW)
        assert MATERIAL == provider.unwrap(provider.wrap(MATERIAL, context=CTX), context=CTX)
        vault.client().secrets.transit.rotate_key(key)
        rewrapped = provider.rewrap(provider.wrap(MATERIAL, context=CTX), context=CTX)
        assert rewrapped.key_ref.endswith(":v2")
        other = VaultTransitKeyProvider(
            client, key=vault.new_transit_key(), retry=retry, insecure_http=True
        )
        with pytest.raises(KeyProviderAccessDenied):
            other.wrap(MATERIAL, context=CTX)
        client.adapter.close()

    def test_namespace(self, vault: VaultServer, client: hvac.Client, retry: RetryPolicy) -> None:
        namespace, key = f"team-{secrets.token_hex(4)}", "customers"
        admin = vault.client()
        admin.adapter.post(f"/v1/sys/namespaces/{namespace}", json={})
        admin.adapter.post(f"/v1/{namespace}/sys/mounts/transit", json={"type": "transit"})
        admin.adapter.post(f"/v1/{namespace}/transit/keys/{key}", json={})
        provider = VaultTransitKeyProvider(
            client, key=key, namespace=namespace, retry=retry, insecure_http=True
        )
        wrapped = provider.wrap(MATERIAL, context=CTX)
        assert "transit/customers:v1" == wrapped.key_ref
        assert MATERIAL == provider.unwrap(wrapped, context=CTX)
        assert f"namespace={namespace!r}" in repr(provider)
        outside = VaultTransitKeyProvider(
            client, key=key, retry=retry, insecure_http=True
        )  # root namespace
        with pytest.raises(KeyProviderAccessDenied, match="not found"):
            outside.unwrap(wrapped, context=CTX)


class TestSecrets:
    """Neither the token nor key material nor ciphertext reaches a repr or a message."""

    def test_repr_and_pickle(self, vault: VaultServer, transit: VaultTransitKeyProvider) -> None:
        text = repr(transit)
        assert text.startswith(f"<VaultTransitKeyProvider address='{vault.address}'")
        assert f"key={transit.key_refs[0].split('/')[1]!r}" in text
        assert vault.root_token not in text
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(transit)

    def test_credentials_in_the_url(self) -> None:
        client = hvac.Client(url="http://user:hunter2@127.0.0.1:9")
        provider = VaultTransitKeyProvider(client, key="k", insecure_http=True)
        assert "hunter2" not in repr(provider)
        assert "http://127.0.0.1:9" == provider.address

    def test_messages(self, vault: VaultServer, key: str, retry: RetryPolicy) -> None:
        token = vault.create_token([vault.transit_policy(f"p-{key}", key)])
        client = vault.client(token=token)
        provider = VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)
        wrapped = provider.wrap(MATERIAL, context=CTX)
        errors: list[BaseException] = []
        for attempt in [
            lambda: provider.unwrap(wrapped, context=OTHER_CTX),
            lambda: provider.unwrap(tampered(wrapped), context=CTX),
            lambda: provider.unwrap_many([(wrapped, CTX), (tampered(wrapped), CTX)]),
        ]:
            with pytest.raises(KeyProviderError) as info:
                attempt()
            errors.append(info.value)
        vault.seal()
        with pytest.raises(KeyProviderUnavailable) as info:
            provider.unwrap(wrapped, context=CTX)
        errors.append(info.value)
        vault.unseal()
        vault.revoke_token(token)
        with pytest.raises(KeyProviderAccessDenied) as info:
            provider.unwrap(wrapped, context=CTX)
        errors.append(info.value)
        client.adapter.close()

        secrets_ = [
            token,
            vault.root_token,
            base64.b64encode(MATERIAL).decode(),
            MATERIAL.hex(),
            wrapped.ciphertext.decode().split("#")[0],
        ]
        for error in errors:
            for exc in cause_chain(error):
                text = f"{exc} {exc!r}"
                assert [] == [s for s in secrets_ if s in text], text


def fake_wrapped(key: str = "k") -> WrappedKey:
    """A well-formed wrapped key of transit key *key* (for servers that are not Vault)."""
    return WrappedKey("vault", f"transit/{key}:v1", b"vault:v1:AAAA#" + base64.b64encode(bytes(32)))


def transit_answer(**data: str) -> bytes:
    return http_answer(json.dumps({"data": data}).encode())


class TestDeadline:
    """A server that trickles its answer (a byte every 0.5 s, so that no socket read ever
    times out) costs RetryPolicy.deadline, not the length of the answer."""

    def test_trickled_answer(self) -> None:
        answer = transit_answer(plaintext=base64.b64encode(MATERIAL).decode())
        with SlowServer(answer, interval=0.5) as slow:
            client = hvac.Client(url=slow.url)
            policy = RetryPolicy(attempts=3, deadline=2.0, timeout=2.0)
            provider = VaultTransitKeyProvider(client, key="k", retry=policy, insecure_http=True)
            started = time.monotonic()
            with pytest.raises(KeyProviderUnavailable, match=r"the 2 s deadline") as info:
                provider.unwrap(fake_wrapped(), context=CTX)
            elapsed = time.monotonic() - started
            assert 1 == slow.connections
            client.adapter.close()
        assert elapsed < 6.0, elapsed  # the answer alone takes 30 s and more
        assert f"Vault at {slow.url}" in str(info.value)

    def test_abandoned_call_closes_its_connection(self) -> None:
        """Past the deadline, the connection of the abandoned attempt is closed."""
        answer = transit_answer(ciphertext="vault:v1:" + "A" * 200)
        with SlowServer(answer, interval=0.5, at_once=head_length(answer)) as slow:
            client = hvac.Client(url=slow.url)
            policy = RetryPolicy(attempts=1, deadline=1.0, timeout=2.0)
            provider = VaultTransitKeyProvider(client, key="k", retry=policy, insecure_http=True)
            with pytest.raises(KeyProviderUnavailable, match="deadline"):
                provider.wrap(MATERIAL, context=CTX)
            assert slow.dropped.wait(5.0)  # the server saw the client go
            client.adapter.close()
        for thread in threading.enumerate():
            if thread.name.startswith("securecustomer-provider-call"):
                thread.join(5.0)
                assert not thread.is_alive()

    def test_deadline_spans_the_retries(
        self, transit: VaultTransitKeyProvider, vault: VaultServer
    ) -> None:
        """A hung server with a per-call timeout below the deadline: retried until it."""
        provider = VaultTransitKeyProvider(
            vault.client(),
            key=transit.key_refs[0].split("/")[1],
            retry=RetryPolicy(attempts=100, base_delay=0.01, deadline=1.5, timeout=0.4),
            insecure_http=True,
        )
        wrapped = provider.wrap(MATERIAL, context=CTX)
        with vault.frozen():
            started = time.monotonic()
            with pytest.raises(KeyProviderUnavailable):
                provider.unwrap(wrapped, context=CTX)
            elapsed = time.monotonic() - started
        assert elapsed < 4.0, elapsed


class TestTransportSecurity:
    """Plain HTTP and disabled certificate checks only when asked for by name; an
    untrusted certificate is reported as such and not retried."""

    def test_http_refused(self) -> None:
        client = hvac.Client(url="http://127.0.0.1:9")
        with pytest.raises(ConfigurationError, match=r"plain http://.*insecure_http=True"):
            VaultTransitKeyProvider(client, key="k")
        provider = VaultTransitKeyProvider(client, key="k", insecure_http=True)
        assert "http://127.0.0.1:9" == provider.address

    def test_other_schemes_refused(self) -> None:
        client = hvac.Client(url="ftp://127.0.0.1:9")
        with pytest.raises(ConfigurationError, match="not an https:// address"):
            VaultTransitKeyProvider(client, key="k", insecure_http=True)

    def test_disabled_verification_refused(self) -> None:
        client = hvac.Client(url="https://127.0.0.1:9", verify=False)
        with pytest.raises(ConfigurationError, match=r"verify=False.*insecure_skip_verify=True"):
            VaultTransitKeyProvider(client, key="k")
        VaultTransitKeyProvider(client, key="k", insecure_skip_verify=True)
        VaultTransitKeyProvider(hvac.Client(url="https://127.0.0.1:9"), key="k")

    def test_untrusted_certificate(self, tmp_path: Path) -> None:
        context, pem = self_signed(tmp_path)
        answer = transit_answer(ciphertext="vault:v1:AAAA")
        with SlowServer(answer, interval=0, tls=context) as server:
            client = hvac.Client(url=server.url)
            policy = RetryPolicy(attempts=3, base_delay=0.01)
            provider = VaultTransitKeyProvider(client, key="k", retry=policy)
            with pytest.raises(
                KeyProviderTLSError,
                match=r"TLS certificate of Vault at https:.* could not be verified \(self-signed",
            ):
                provider.wrap(MATERIAL, context=CTX)
            assert 1 == server.connections  # not retried
            client.adapter.close()
            trusted = hvac.Client(url=server.url, verify=str(pem))
            provider = VaultTransitKeyProvider(trusted, key="k", retry=policy)
            assert "transit/k:v1" == provider.wrap(MATERIAL, context=CTX).key_ref
            trusted.adapter.close()


def secrets_in_frames(error: BaseException, secrets_: list[str]) -> list[str]:
    """Where the reprs of the locals of the traceback frames (but the test's) hold a secret.

    The frames of the error and of every exception chained to it, as a crash reporter
    (Sentry and the like) records them.
    """
    found: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        pending += [exc.__cause__, exc.__context__]
        for frame, _ in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == __file__:
                continue
            for name, value in frame.f_locals.items():
                text = repr(value)
                if any(s in text for s in secrets_):
                    found.append(f"{frame.f_code.co_name}() {name} in {frame.f_code.co_filename}")
    return found


def forms(raw: bytes) -> list[str]:
    """The ways key bytes show in a repr: bytes, base64, hex."""
    return [repr(raw)[2:-1], base64.b64encode(raw).decode(), raw.hex()]


class TestSecretsInFrames:
    """Errors leave neither the token nor key material in the frames of their tracebacks."""

    def test_revoked_token(self, vault: VaultServer, key: str, retry: RetryPolicy) -> None:
        token = vault.create_token([vault.transit_policy(f"p-{key}", key)])
        client = vault.client(token=token)
        provider = VaultTransitKeyProvider(client, key=key, retry=retry, insecure_http=True)
        wrapped = provider.wrap(MATERIAL, context=CTX)
        vault.revoke_token(token)
        for call in (
            lambda: provider.unwrap(wrapped, context=CTX),
            lambda: provider.wrap(MATERIAL, context=CTX),
            lambda: provider.unwrap_many([(wrapped, CTX)]),
        ):
            with pytest.raises(KeyProviderAccessDenied) as info:
                call()
            assert [] == secrets_in_frames(info.value, [token, *forms(MATERIAL)])
        client.adapter.close()

    def test_wrong_context(self, transit: VaultTransitKeyProvider) -> None:
        """The key was unwrapped, then refused: the unwrapped key is in no frame."""
        wrapped = transit.wrap(MATERIAL, context=CTX)
        for call in (
            lambda: transit.unwrap(wrapped, context=OTHER_CTX),
            lambda: transit.unwrap_many([(wrapped, CTX), (wrapped, OTHER_CTX)]),
        ):
            with pytest.raises(KeyUnwrapError) as info:
                call()
            assert [] == secrets_in_frames(info.value, forms(MATERIAL))
