"""AwsKmsKeyProvider against moto's KMS server over HTTP: wrapping, key states, outages, errors.

The server is started once per session (`kmsserver`); every test gets fresh KMS keys. With
CI set, a server that cannot be started fails these tests; without, it skips them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import botocore.exceptions as boto_errors
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber
except ImportError:  # pragma: no cover - boto3 is in the test dependency group
    if "CI" in os.environ:
        raise
    pytest.skip("boto3 is not installed (pip install boto3)", allow_module_level=True)

from kmsserver import REGION, KmsServer, KmsServerUnavailableError, free_port
from slowserver import SlowServer, http_answer, self_signed

import securecustomer
from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    KeyProviderAccessDenied,
    KeyProviderError,
    KeyProviderTLSError,
    KeyProviderUnavailable,
    KeyUnwrapError,
)
from securecustomer.keys import MemoryKeyStore, RetryPolicy, WrappedKey
from securecustomer.keys._aws import AwsKmsKeyProvider, _classify

CONTEXT = {"securecustomer": "root-key", "version": "1"}
WHERE = Context("customers", "email", row=1)
MATERIAL = bytes(range(32))


class Calls:
    """The KMS operations a client calls (``before-call``) and sends over HTTP (``before-send``)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        self.sends: list[str] = []
        client.meta.events.register("before-call.kms", self._on_call)
        client.meta.events.register("before-send.kms", self._on_send)

    def _on_call(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name.rsplit(".", 1)[1])

    def _on_send(self, event_name: str, **_: Any) -> None:
        self.sends.append(event_name.rsplit(".", 1)[1])


@pytest.fixture(scope="session")
def kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsServer]:
    try:
        server = KmsServer.start(tmp_path_factory.mktemp("moto"))
    except KmsServerUnavailableError as exc:
        problem = str(exc)
    else:
        yield server
        server.close()
        return
    if "CI" in os.environ:
        pytest.fail(problem, pytrace=False)
    pytest.skip(f"{problem}\n  (skipped because CI is not set; with CI set this fails)")


@pytest.fixture
def server(kms_server: KmsServer) -> KmsServer:
    """The session's server, running: a test that stopped it may have left it down."""
    kms_server.start_again()
    return kms_server


@pytest.fixture
def key_arn(server: KmsServer) -> str:
    return server.create_key(Description="securecustomer test key")


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff waits a RetryPolicy asked for (it never really sleeps in these tests)."""
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay=0.05, timeout=2.0, sleep=sleeps.append)


def make(server: KmsServer, key_id: str, retry: RetryPolicy | None = None) -> AwsKmsKeyProvider:
    return AwsKmsKeyProvider(server.client(), key_id=key_id, retry=retry, insecure_http=True)


def calls_of(provider: AwsKmsKeyProvider) -> Calls:
    return Calls(provider._client)


def cause_code(error: BaseException) -> str:
    """The AWS error code of the botocore error chained to *error*."""
    cause = error.__cause__
    assert isinstance(cause, ClientError)
    return str(cause.response["Error"]["Code"])


def key_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[1]  # moto's DisableKey & co. want the bare key id


class TestWrapping:
    """Encrypt and Decrypt over HTTP, bound to the encryption context and pinned to the key."""

    def test_round_trip(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        assert ("aws-kms", key_arn) == (wrapped.provider, wrapped.key_ref)
        assert MATERIAL not in wrapped.ciphertext
        assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)

    @pytest.mark.parametrize("form", ["alias", "key id"])
    def test_other_key_id_forms(self, server: KmsServer, key_arn: str, form: str) -> None:
        """Aliases and bare key ids work too; `key_ref` is always the ARN KMS reports."""
        key_id = server.create_alias(key_arn) if form == "alias" else key_id_of(key_arn)
        provider = make(server, key_id)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        assert key_arn == wrapped.key_ref
        assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)

    def test_other_context_refused(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        seen = calls_of(provider)
        with pytest.raises(KeyUnwrapError, match="another encryption context") as caught:
            provider.unwrap(wrapped, context={**CONTEXT, "version": "2"})
        assert "InvalidCiphertextException" == cause_code(caught.value)
        assert ["Decrypt"] == seen.sends  # not retried

    def test_altered_ciphertext_refused(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        flipped = wrapped.ciphertext[:-1] + bytes([wrapped.ciphertext[-1] ^ 1])
        with pytest.raises(KeyUnwrapError):
            provider.unwrap(WrappedKey("aws-kms", wrapped.key_ref, flipped), context=CONTEXT)

    def test_other_key_refused_without_a_call(self, server: KmsServer, key_arn: str) -> None:
        wrapped = make(server, key_arn).wrap(MATERIAL, context=CONTEXT)
        other = make(server, server.create_key())
        seen = calls_of(other)
        with pytest.raises(KeyUnwrapError, match="wrong key_id"):
            other.unwrap(wrapped, context=CONTEXT)
        assert [] == seen.calls

    def test_other_key_refused_by_kms(self, server: KmsServer, key_arn: str) -> None:
        """Through an alias the key is pinned by KMS (Decrypt's KeyId) instead.

        AWS answers ``IncorrectKeyException`` (`KeyUnwrapError`, see `TestClassify`); moto
        answers ``AccessDeniedException``. Either way the key stays wrapped.
        """
        wrapped = make(server, key_arn).wrap(MATERIAL, context=CONTEXT)
        other = make(server, server.create_alias(server.create_key()))
        with pytest.raises(KeyProviderError):
            other.unwrap(wrapped, context=CONTEXT)

    def test_wrapped_by_another_kind_of_provider(self, server: KmsServer, key_arn: str) -> None:
        local = LocalKeyProvider.generate().wrap(MATERIAL, context=CONTEXT)
        provider = make(server, key_arn)
        with pytest.raises(KeyUnwrapError, match=r"local:.*not by AWS KMS"):
            provider.unwrap(local, context=CONTEXT)
        with pytest.raises(KeyUnwrapError, match="cannot be rewrapped"):
            provider.rewrap(local, context=CONTEXT)

    def test_context_must_be_str_to_str(self, server: KmsServer, key_arn: str) -> None:
        with pytest.raises(ContextError):
            make(server, key_arn).wrap(MATERIAL, context={"version": 1})  # type: ignore[dict-item]


class TestGenerateKey:
    """GenerateDataKey: 32 fresh bytes from KMS, and their wrapped form."""

    def test_generate(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        material, wrapped = provider.generate_key(context=CONTEXT)
        again, _ = provider.generate_key(context=CONTEXT)
        assert (32, key_arn) == (len(material), wrapped.key_ref)
        assert material != again
        assert material == provider.unwrap(wrapped, context=CONTEXT)
        with pytest.raises(KeyUnwrapError):
            provider.unwrap(wrapped, context={"securecustomer": "root-key", "version": "9"})


class TestRewrap:
    """ReEncrypt moves wrapped keys inside KMS: to the same key, or to another one."""

    def test_same_key(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        seen = calls_of(provider)
        fresh = provider.rewrap(wrapped, context=CONTEXT)
        assert ["ReEncrypt"] == seen.calls
        assert key_arn == fresh.key_ref
        assert wrapped.ciphertext != fresh.ciphertext
        assert MATERIAL == provider.unwrap(fresh, context=CONTEXT)

    def test_to_another_key(self, server: KmsServer, key_arn: str) -> None:
        old = make(server, key_arn)
        wrapped = old.wrap(MATERIAL, context=CONTEXT)
        new_arn = server.create_key()
        new = make(server, new_arn)
        moved = new.rewrap(wrapped, context=CONTEXT)
        assert new_arn == moved.key_ref
        assert MATERIAL == new.unwrap(moved, context=CONTEXT)
        with pytest.raises(KeyUnwrapError):
            old.unwrap(moved, context=CONTEXT)

    def test_other_context_refused(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        with pytest.raises(KeyUnwrapError):
            provider.rewrap(wrapped, context={**CONTEXT, "version": "2"})


class TestKeyring:
    """A Keyring over KMS, end to end: KMS is called at load, and not for data."""

    def test_calls_only_at_load(self, server: KmsServer, key_arn: str) -> None:
        store = MemoryKeyStore()
        first = make(server, key_arn)
        seen = calls_of(first)
        keyring = Keyring(first, store).load()
        at_load = list(seen.calls)
        assert "GenerateDataKey" == at_load[0]  # the first root key, made by KMS
        tokens = {}
        for scope in ("customers.email", "customers.phone", "subject:42"):
            cipher = keyring.cipher(scope)
            tokens[scope] = cipher.encrypt(f"value of {scope}", context=WHERE)
            assert f"value of {scope}" == cipher.decrypt(tokens[scope], context=WHERE)
        keyring.rotate("customers.email")
        assert at_load == seen.calls

        second = make(server, key_arn)
        seen_second = calls_of(second)
        reader = Keyring(second, store).load()
        for scope, token in tokens.items():
            assert f"value of {scope}" == reader.cipher(scope).decrypt(token, context=WHERE)
        assert ["Decrypt"] == seen_second.calls

    def test_rewrap_roots_to_a_new_kms_key(self, server: KmsServer, key_arn: str) -> None:
        """Master-key rotation: root keys move to a new KMS key; the old one can then go."""
        store = MemoryKeyStore()
        old = make(server, key_arn)
        token = Keyring(old, store).load().cipher("s").encrypt("v", context=WHERE)
        new = make(server, server.create_key())
        assert 1 == Keyring(new, store, recovery=[old]).load().rewrap_roots()
        server.client().disable_key(KeyId=key_id_of(key_arn))
        assert "v" == Keyring(new, store).load().cipher("s").decrypt(token, context=WHERE)

    def test_rewrap_roots_same_key_uses_reencrypt(self, server: KmsServer, key_arn: str) -> None:
        store = MemoryKeyStore()
        provider = make(server, key_arn)
        Keyring(provider, store).load().rotate_root()
        seen = calls_of(provider)
        assert 2 == Keyring(provider, store).load().rewrap_roots()
        assert ["ReEncrypt", "ReEncrypt"] == [c for c in seen.calls if c != "Decrypt"]


class TestKeyStates:
    """A disabled key, or one pending deletion: `KeyProviderAccessDenied` saying what to do.

    Never retried. A keyring with a recovery provider loads through it instead.
    """

    def test_disabled(
        self, server: KmsServer, key_arn: str, retry: RetryPolicy, sleeps: list[float]
    ) -> None:
        provider = make(server, key_arn, retry)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        server.client().disable_key(KeyId=key_id_of(key_arn))
        seen = calls_of(provider)
        with pytest.raises(KeyProviderAccessDenied, match=r"is disabled.*enable it") as caught:
            provider.unwrap(wrapped, context=CONTEXT)
        assert key_arn in str(caught.value)
        assert "DisabledException" == cause_code(caught.value)
        assert (["Decrypt"], []) == (seen.sends, sleeps)
        for call in (
            lambda: provider.wrap(MATERIAL, context=CONTEXT),
            lambda: provider.generate_key(context=CONTEXT),
            lambda: provider.rewrap(wrapped, context=CONTEXT),
        ):
            with pytest.raises(KeyProviderAccessDenied, match="is disabled"):
                call()
        server.client().enable_key(KeyId=key_id_of(key_arn))
        assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)

    def test_pending_deletion(
        self, server: KmsServer, key_arn: str, retry: RetryPolicy, sleeps: list[float]
    ) -> None:
        provider = make(server, key_arn, retry)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        admin = server.client()
        admin.schedule_key_deletion(KeyId=key_id_of(key_arn), PendingWindowInDays=7)
        with pytest.raises(KeyProviderAccessDenied, match="cancel the deletion"):
            provider.unwrap(wrapped, context=CONTEXT)
        assert [] == sleeps
        admin.cancel_key_deletion(KeyId=key_id_of(key_arn))  # AWS leaves it disabled
        with pytest.raises(KeyProviderAccessDenied, match="is disabled"):
            provider.unwrap(wrapped, context=CONTEXT)
        admin.enable_key(KeyId=key_id_of(key_arn))
        assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)

    def test_missing_key(self, server: KmsServer, key_arn: str) -> None:
        gone = key_arn.replace(key_id_of(key_arn), "00000000-0000-0000-0000-000000000000")
        with pytest.raises(KeyProviderAccessDenied, match="was not found"):
            make(server, gone).wrap(MATERIAL, context=CONTEXT)

    def test_keyring_loads_through_recovery(self, server: KmsServer, key_arn: str) -> None:
        store, offline = MemoryKeyStore(), LocalKeyProvider.generate()
        provider = make(server, key_arn)
        token = (
            Keyring(provider, store, recovery=[offline])
            .load()
            .cipher("s")
            .encrypt("v", context=WHERE)
        )
        server.client().disable_key(KeyId=key_id_of(key_arn))
        with pytest.raises(KeyProviderAccessDenied, match="is disabled"):
            Keyring(provider, store).load()
        recovered = Keyring(provider, store, recovery=[offline]).load()
        assert "v" == recovered.cipher("s").decrypt(token, context=WHERE)


class TestOutage:
    """KMS down or hung: retried with backoff, then `KeyProviderUnavailable`; caches go on."""

    def test_down_at_start(self, tmp_path: Path, sleeps: list[float]) -> None:
        """Nothing listens at the endpoint: a clear error once the attempts are spent."""
        dead = KmsServer(free_port(), tmp_path / "never-started.log")
        provider = AwsKmsKeyProvider(
            dead.client(),
            key_id="alias/customers",
            retry=RetryPolicy(attempts=3, sleep=sleeps.append),
            insecure_http=True,
        )
        seen = calls_of(provider)
        with pytest.raises(KeyProviderUnavailable) as caught:
            Keyring(provider, MemoryKeyStore()).load()
        message = str(caught.value)
        assert f"AWS KMS at {dead.url} could not be reached" in message
        assert "3 attempts" in message
        assert isinstance(caught.value.__cause__, boto_errors.EndpointConnectionError)
        assert (3, 2) == (len(seen.sends), len(sleeps))

    def test_server_stopped(
        self, server: KmsServer, key_arn: str, retry: RetryPolicy, sleeps: list[float]
    ) -> None:
        provider = make(server, key_arn, retry)
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        seen = calls_of(provider)
        server.stop()
        try:
            with pytest.raises(KeyProviderUnavailable, match="Decrypt: 3 attempts"):
                provider.unwrap(wrapped, context=CONTEXT)
        finally:
            server.start_again()  # a new, empty moto: later tests make their own keys
        assert ["Decrypt"] * 3 == seen.sends  # 3 attempts, and none by botocore
        assert 2 == len(sleeps)
        assert all(0 <= s <= 0.05 * 2**i for i, s in enumerate(sleeps))

    def test_hung_server_times_out(
        self, server: KmsServer, key_arn: str, sleeps: list[float]
    ) -> None:
        """`from_session` gives the client RetryPolicy.timeout and no botocore retries."""
        policy = RetryPolicy(attempts=2, timeout=0.3, sleep=sleeps.append)
        provider = AwsKmsKeyProvider.from_session(
            server.session(),
            key_id=key_arn,
            endpoint_url=server.url,
            retry=policy,
            insecure_http=True,
        )
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)
        seen = calls_of(provider)
        server.pause()
        started = time.monotonic()
        try:
            with pytest.raises(KeyProviderUnavailable, match="ReadTimeoutError"):
                provider.unwrap(wrapped, context=CONTEXT)
        finally:
            server.resume()
        assert time.monotonic() - started < 2.0
        assert (["Decrypt"] * 2, 1) == (seen.sends, len(sleeps))
        assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)  # keys survive a pause

    def test_keyring_outlives_an_outage_for_its_cache_age(
        self, server: KmsServer, key_arn: str, clock: Any
    ) -> None:
        policy = RetryPolicy(attempts=2, timeout=0.3, sleep=lambda _: None)
        provider = AwsKmsKeyProvider.from_session(
            server.session(),
            key_id=key_arn,
            endpoint_url=server.url,
            retry=policy,
            insecure_http=True,
        )
        store = MemoryKeyStore()
        keyring = Keyring(
            provider, store, clock=clock, root_cache_ttl=60.0, cache_ttl=3600.0
        ).load()
        token = keyring.cipher("known").encrypt("v", context=WHERE)
        seen = calls_of(provider)
        server.pause()
        try:
            clock.advance(59)  # within the root cache age: everything works, no KMS call
            assert "v" == keyring.cipher("known").decrypt(token, context=WHERE)
            keyring.cipher("new.during.outage").encrypt("w", context=WHERE)
            assert [] == seen.calls
            clock.advance(2)  # root keys must be re-read through KMS now: a clean failure
            with pytest.raises(KeyProviderUnavailable, match="2 attempts"):
                keyring.cipher("after.cache.age").encrypt("x", context=WHERE)
            assert [] == store.data_keys("after.cache.age")  # nothing half-written
            assert "v" == keyring.cipher("known").decrypt(token, context=WHERE)
        finally:
            server.resume()
        keyring.cipher("after.cache.age").encrypt("x", context=WHERE)  # KMS is back


class TestAccessDenied:
    """Credentials or policies that refuse: `KeyProviderAccessDenied` at once, no retry.

    moto checks signatures and IAM policies when its IAM authentication is on (switched on
    for these tests only). It answers in its own XML, which botocore reads as code "403";
    the HTTP status classifies it. AWS's own codes are checked in `TestClassify`.
    """

    @pytest.fixture
    def app_credentials(self, server: KmsServer) -> Iterator[dict[str, str]]:
        """An IAM user allowed to Encrypt only; IAM authentication on while the test runs."""
        iam = server.client("iam")
        iam.create_user(UserName="app")
        policy = {"Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": "*"}
        iam.put_user_policy(
            UserName="app",
            PolicyName="encrypt-only",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
        )
        key = iam.create_access_key(UserName="app")["AccessKey"]
        server.set_iam_auth(True)
        try:
            yield {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        finally:
            server.set_iam_auth(False)
            iam.delete_access_key(UserName="app", AccessKeyId=key["AccessKeyId"])
            iam.delete_user_policy(UserName="app", PolicyName="encrypt-only")
            iam.delete_user(UserName="app")

    def test_policy_denies(
        self,
        server: KmsServer,
        key_arn: str,
        app_credentials: dict[str, str],
        retry: RetryPolicy,
        sleeps: list[float],
    ) -> None:
        provider = AwsKmsKeyProvider(
            server.client(
                access_key=app_credentials["access_key"], secret_key=app_credentials["secret_key"]
            ),
            key_id=key_arn,
            retry=retry,
            insecure_http=True,
        )
        wrapped = provider.wrap(MATERIAL, context=CONTEXT)  # allowed
        seen = calls_of(provider)
        with pytest.raises(KeyProviderAccessDenied, match="refused Decrypt") as caught:
            provider.unwrap(wrapped, context=CONTEXT)
        assert (["Decrypt"], []) == (seen.sends, sleeps)
        assert app_credentials["secret_key"] not in str(caught.value)

    def test_unknown_access_key(
        self, server: KmsServer, key_arn: str, app_credentials: dict[str, str]
    ) -> None:
        stranger = server.client(access_key="AKIAI44QH8DHBEXAMPLE", secret_key="not-a-secret")
        with pytest.raises(KeyProviderAccessDenied, match="check the credentials"):
            AwsKmsKeyProvider(stranger, key_id=key_arn, insecure_http=True).wrap(
                MATERIAL, context=CONTEXT
            )


def _client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Decrypt")


def _case_id(value: object) -> str:
    if isinstance(value, ClientError):
        response = value.response
        return f"{response['Error']['Code']}-{response['ResponseMetadata']['HTTPStatusCode']}"
    return value.__name__ if isinstance(value, type) else type(value).__name__


class TestClassify:
    """The one translation boundary, with the error codes AWS KMS really sends."""

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (_client_error("ThrottlingException"), KeyProviderUnavailable),
            (_client_error("RequestLimitExceeded"), KeyProviderUnavailable),
            (_client_error("KMSInternalException", 500), KeyProviderUnavailable),
            (_client_error("DependencyTimeoutException", 503), KeyProviderUnavailable),
            (_client_error("KeyUnavailableException", 500), KeyProviderUnavailable),
            (_client_error("Unknown", 502), KeyProviderUnavailable),
            (_client_error("Unknown", 429), KeyProviderUnavailable),
            (_client_error("AccessDeniedException"), KeyProviderAccessDenied),
            (_client_error("UnrecognizedClientException"), KeyProviderAccessDenied),
            (_client_error("InvalidSignatureException"), KeyProviderAccessDenied),
            (_client_error("ExpiredTokenException"), KeyProviderAccessDenied),
            (_client_error("403", 403), KeyProviderAccessDenied),
            (_client_error("DisabledException"), KeyProviderAccessDenied),
            (_client_error("KMSInvalidStateException"), KeyProviderAccessDenied),
            (_client_error("NotFoundException"), KeyProviderAccessDenied),
            (_client_error("InvalidCiphertextException"), KeyUnwrapError),
            (_client_error("IncorrectKeyException"), KeyUnwrapError),
            (_client_error("ValidationException"), KeyProviderError),
            (_client_error("InvalidKeyUsageException"), KeyProviderError),
            (
                boto_errors.EndpointConnectionError(endpoint_url="https://kms"),
                KeyProviderUnavailable,
            ),
            (boto_errors.ConnectTimeoutError(endpoint_url="https://kms"), KeyProviderUnavailable),
            (boto_errors.ReadTimeoutError(endpoint_url="https://kms"), KeyProviderUnavailable),
            (boto_errors.ConnectionClosedError(endpoint_url="https://kms"), KeyProviderUnavailable),
            (boto_errors.NoCredentialsError(), KeyProviderAccessDenied),
            (
                boto_errors.PartialCredentialsError(provider="env", cred_var="x"),
                KeyProviderAccessDenied,
            ),
            (
                boto_errors.SSLError(endpoint_url="https://kms", error="bad cert"),
                KeyProviderTLSError,
            ),
            (boto_errors.ParamValidationError(report="Plaintext: b'secret'"), KeyProviderError),
            (ValueError("secret"), KeyProviderError),
        ],
        ids=_case_id,
    )
    def test_mapping(self, error: Exception, expected: type[KeyProviderError]) -> None:
        translated = _classify(error, operation="Decrypt", key="arn:aws:kms:k")
        assert expected is type(translated)
        assert "secret" not in str(translated)

    def test_messages_never_echo_the_service(self) -> None:
        """The service's message is in the chained cause; ours is composed, never copied."""
        error = _client_error("AccessDeniedException", message="token=SECRETTOKEN")
        assert "SECRETTOKEN" not in str(_classify(error, operation="Decrypt"))

    @pytest.mark.parametrize(("code", "tries"), [("ThrottlingException", 4), ("AccessDenied", 1)])
    def test_retries_only_unavailable(self, code: str, tries: int, sleeps: list[float]) -> None:
        error, attempts = _client_error(code), []

        def call() -> None:
            attempts.append(error)
            raise error

        with pytest.raises(KeyProviderError) as caught:
            RetryPolicy(attempts=4, sleep=sleeps.append).run(call, classify=_classify, what="x")
        assert error is caught.value.__cause__
        assert (tries, tries - 1) == (len(attempts), len(sleeps))


class TestConfiguration:
    """Construction, repr and pickling; boto3 is an optional extra."""

    def test_repr_shows_key_and_region_only(self, server: KmsServer, key_arn: str) -> None:
        provider = make(server, key_arn)
        assert f"<AwsKmsKeyProvider key_id='{key_arn}' region='eu-west-1'>" == repr(provider)
        assert [key_arn] == provider.key_refs
        assert [] == make(server, "alias/customers").key_refs

    def test_not_picklable(self, server: KmsServer, key_arn: str) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(make(server, key_arn))

    def test_refuses_bad_arguments(self, server: KmsServer) -> None:
        with pytest.raises(ConfigurationError, match="boto3 KMS client"):
            AwsKmsKeyProvider(server.client("iam"), key_id="alias/customers", insecure_http=True)
        with pytest.raises(ConfigurationError, match="key_id"):
            AwsKmsKeyProvider(server.client(), key_id=" ", insecure_http=True)
        with pytest.raises(ConfigurationError, match="RetryPolicy"):
            AwsKmsKeyProvider(server.client(), key_id="alias/c", retry=3, insecure_http=True)  # type: ignore[arg-type]
        assert (
            "alias/c"
            == AwsKmsKeyProvider(server.client(), key_id="alias/c", insecure_http=True).key_id
        )

    def test_malformed_answer(self, server: KmsServer) -> None:
        """An answer without the expected field (botocore's Stubber plays KMS here)."""
        provider = make(server, "alias/customers")
        with Stubber(provider._client) as stub:
            stub.add_response("encrypt", {"KeyId": "arn:aws:kms:eu-west-1:1:key/k"})
            with pytest.raises(KeyProviderError, match="without a valid CiphertextBlob"):
                provider.wrap(MATERIAL, context=CONTEXT)

    def test_without_boto3(self) -> None:
        """``import securecustomer.keys`` works without boto3; the provider says what to install."""
        script = (
            "import json, sys\n"
            "import securecustomer.keys\n"
            "loaded = 'boto3' in sys.modules or 'botocore' in sys.modules\n"
            "sys.modules['boto3'] = sys.modules['botocore'] = None  # as if not installed\n"
            "from securecustomer.keys._aws import AwsKmsKeyProvider\n"
            "try:\n"
            "    AwsKmsKeyProvider(object(), key_id='alias/customers')\n"
            "except ImportError as exc:\n"
            "    print(json.dumps([loaded, str(exc)]))\n"
        )
        src = str(Path(securecustomer.__file__).parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        loaded, message = json.loads(done.stdout)
        assert not loaded
        assert 'pip install "securecustomer[aws]"' in message


SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN" + "x" * 40
KMS_JSON = "application/x-amz-json-1.1"
FAKE_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def offline_session(token: str | None = None) -> Any:
    """A boto3 session with dummy credentials (and *token*), for servers that are not AWS."""
    import boto3

    return boto3.Session(
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        region_name=REGION,
    )


def forms(raw: bytes) -> list[str]:
    """The ways key bytes show in a log line or a repr: bytes, base64, hex."""
    return [repr(raw)[2:-1], base64.b64encode(raw).decode(), raw.hex()]


class TestDeadline:
    """A server that trickles its answer (a byte every 0.5 s: no socket read times out)
    costs RetryPolicy.deadline, not the length of the answer."""

    def test_trickled_answer(self) -> None:
        body = json.dumps(
            {"KeyId": FAKE_ARN, "Plaintext": base64.b64encode(MATERIAL).decode()}
        ).encode()
        with SlowServer(http_answer(body, content_type=KMS_JSON), interval=0.5) as slow:
            policy = RetryPolicy(attempts=3, deadline=2.0, timeout=2.0)
            provider = AwsKmsKeyProvider.from_session(
                offline_session(),
                key_id=FAKE_ARN,
                endpoint_url=slow.url,
                retry=policy,
                insecure_http=True,
            )
            started = time.monotonic()
            with pytest.raises(KeyProviderUnavailable, match=r"the 2 s deadline") as caught:
                provider.unwrap(WrappedKey("aws-kms", FAKE_ARN, b"blob"), context=CONTEXT)
            elapsed = time.monotonic() - started
            assert 1 == slow.connections
        assert elapsed < 6.0, elapsed  # the answer alone takes 90 s and more
        assert f"AWS KMS at {slow.url}" in str(caught.value)


class TestTransportSecurity:
    """Plain HTTP and disabled certificate checks only when asked for by name; an
    untrusted certificate is reported as such and not retried."""

    def test_http_refused(self, server: KmsServer) -> None:
        with pytest.raises(ConfigurationError, match=r"plain http://.*insecure_http=True"):
            AwsKmsKeyProvider(server.client(), key_id="alias/c")
        with pytest.raises(ConfigurationError, match=r"plain http://.*insecure_http=True"):
            AwsKmsKeyProvider.from_session(
                server.session(), key_id="alias/c", endpoint_url=server.url
            )
        AwsKmsKeyProvider(server.client(), key_id="alias/c", insecure_http=True)

    def test_disabled_verification_refused(self) -> None:
        client = offline_session().client("kms", endpoint_url="https://127.0.0.1:9", verify=False)
        with pytest.raises(ConfigurationError, match=r"verify=False.*insecure_skip_verify=True"):
            AwsKmsKeyProvider(client, key_id="alias/c")
        with pytest.raises(ConfigurationError, match="insecure_skip_verify=True"):
            AwsKmsKeyProvider.from_session(offline_session(), key_id="alias/c", verify=False)
        AwsKmsKeyProvider(client, key_id="alias/c", insecure_skip_verify=True)
        AwsKmsKeyProvider.from_session(offline_session(), key_id="alias/c")  # AWS: https

    def test_untrusted_certificate(self, tmp_path: Path) -> None:
        context, pem = self_signed(tmp_path)
        body = json.dumps({"KeyId": FAKE_ARN, "CiphertextBlob": "YmxvYg=="}).encode()
        answer = http_answer(body, content_type=KMS_JSON)
        with SlowServer(answer, interval=0, tls=context) as server:
            policy = RetryPolicy(attempts=3, base_delay=0.01)
            provider = AwsKmsKeyProvider.from_session(
                offline_session(), key_id=FAKE_ARN, endpoint_url=server.url, retry=policy
            )
            with pytest.raises(
                KeyProviderTLSError,
                match=r"TLS certificate of AWS KMS at https:.* could not be verified \(self-signed",
            ):
                provider.wrap(MATERIAL, context=CONTEXT)
            assert 1 == server.connections  # not retried
            trusted = AwsKmsKeyProvider.from_session(
                offline_session(),
                key_id=FAKE_ARN,
                endpoint_url=server.url,
                retry=policy,
                verify=str(pem),
            )
            assert FAKE_ARN == trusted.wrap(MATERIAL, context=CONTEXT).key_ref


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class TestSecretsInLogsAndFrames:
    """botocore's DEBUG logs and the frames of errors hold neither keys nor tokens."""

    def test_botocore_debug_logs(self, server: KmsServer, key_arn: str) -> None:
        capture = Capture()
        logger = logging.getLogger("botocore")
        level = logger.level
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
        try:
            provider = AwsKmsKeyProvider.from_session(
                offline_session(SESSION_TOKEN),
                key_id=key_arn,
                endpoint_url=server.url,
                insecure_http=True,
            )
            wrapped = provider.wrap(MATERIAL, context=CONTEXT)
            assert MATERIAL == provider.unwrap(wrapped, context=CONTEXT)
            generated, _ = provider.generate_key(context=CONTEXT)
        finally:
            logger.removeHandler(capture)
            logger.setLevel(level)
        text = "\n".join(capture.lines)
        assert "Plaintext" in text  # botocore did log the calls ...
        secrets_ = [SESSION_TOKEN, *forms(MATERIAL), *forms(generated)]
        assert [] == [s for s in secrets_ if s in text]  # ... but not the secrets

    def test_frames_of_a_refused_wrap(self, server: KmsServer, key_arn: str) -> None:
        server.set_iam_auth(True)
        try:
            provider = AwsKmsKeyProvider.from_session(
                offline_session(SESSION_TOKEN),
                key_id=key_arn,
                endpoint_url=server.url,
                insecure_http=True,
            )
            with pytest.raises(KeyProviderAccessDenied) as caught:
                provider.wrap(MATERIAL, context=CONTEXT)
        finally:
            server.set_iam_auth(False)
        found = []
        for exc in (caught.value, caught.value.__cause__):
            assert exc is not None
            for frame, _ in traceback.walk_tb(exc.__traceback__):
                if frame.f_code.co_filename == __file__:
                    continue
                for name, value in frame.f_locals.items():
                    text = repr(value)
                    if any(s in text for s in [SESSION_TOKEN, *forms(MATERIAL)]):
                        found.append(f"{frame.f_code.co_name}() {name}")
        assert [] == found
