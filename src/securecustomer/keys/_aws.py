"""AwsKmsKeyProvider: a master key in AWS KMS, through boto3 (the ``aws`` extra).

boto3 is optional (``pip install "securecustomer[aws]"``): this module imports it only
when a provider is made, so ``import securecustomer.keys`` works without it.

Every error of botocore is translated in one place, `_classify`:

- `KeyProviderUnavailable`, retried: connection refused, DNS failure, connect and read
  timeouts, a dropped connection; ``ThrottlingException``, ``RequestLimitExceeded``,
  ``KMSInternalException``, ``DependencyTimeoutException``, ``KeyUnavailableException``;
  any HTTP 429 or 5xx.
- `KeyProviderAccessDenied`, not retried: ``AccessDeniedException``,
  ``UnrecognizedClientException``, a bad signature or an expired token, any HTTP 401 or
  403, no credentials found. Also a KMS key that cannot be used (``DisabledException``,
  ``KMSInvalidStateException``: pending deletion; ``NotFoundException``): the message
  names the key and says what to do (enable it, cancel the deletion, or restore the
  keyring from a recovery provider), and a keyring with recovery providers falls back
  to them.
- `KeyUnwrapError`: ``InvalidCiphertextException`` (another encryption context, an
  altered key store), ``IncorrectKeyException`` (a key wrapped by another KMS key).
- `KeyProviderTLSError`, not retried: a certificate that cannot be verified, a failed
  TLS handshake.
- `KeyProviderError`, not retried: anything else (``ValidationException``).

A call that has not finished at ``RetryPolicy.deadline`` raises `KeyProviderUnavailable`
naming the deadline. Key material and session tokens are redacted from botocore's DEBUG
log (`_secrets.redact_botocore_logs`), and the tracebacks of errors leaving the provider
keep no local variables (`_secrets.scrubbed`): botocore's frames hold the signed request.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, NoReturn, TypeVar

from securecustomer.exceptions import (
    ConfigurationError,
    ContextError,
    KeyProviderAccessDenied,
    KeyProviderError,
    KeyProviderTLSError,
    KeyProviderUnavailable,
    KeyUnwrapError,
    UnpicklableError,
)
from securecustomer.keys._records import WrappedKey
from securecustomer.keys._retry import RetryPolicy
from securecustomer.keys._secrets import redact_botocore_logs, scrubbed
from securecustomer.keys._tls import check_address, check_verify, tls_failure

__all__ = ["AwsKmsKeyProvider"]

_T = TypeVar("_T")

_INSTALL = (
    'AwsKmsKeyProvider needs boto3, which is not installed: pip install "securecustomer[aws]"'
)
_ALGORITHM = "SYMMETRIC_DEFAULT"
_CA_HINT = "give the client the CA bundle (verify='/path/to/ca.pem' or AWS_CA_BUNDLE)"

# Error codes of KMS (and of AWS's signature and throttling front end), by outcome.
_UNAVAILABLE = frozenset(
    [
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSInternalException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    ]
)
_DENIED = frozenset(
    [
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "AuthFailure",
    ]
)
_UNWRAP = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
# botocore exception classes, by name: no credentials, or a transient network failure.
_CREDENTIALS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "NoAuthTokenError",
    "TokenRetrievalError",
    "SSOError",
)
_TRANSIENT = (
    "ConnectionError",  # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError
    "HTTPClientError",  # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError
    "IncompleteReadError",
)


def _botocore() -> ModuleType:
    """``botocore.exceptions``, imported at first use: boto3 is the optional ``aws`` extra.

    Imported by name rather than with an import statement, because boto3 and botocore
    ship no type information (and a static import would need them installed to type-check).
    """
    try:
        importlib.import_module("boto3")
        return importlib.import_module("botocore.exceptions")
    except ImportError as exc:
        raise ImportError(_INSTALL, name="boto3") from exc


class AwsKmsKeyProvider:
    """A master key in AWS KMS, which never leaves KMS: root keys are wrapped there.

    ``wrap`` is KMS ``Encrypt``, ``unwrap`` is ``Decrypt`` pinned to this provider's
    key (a key wrapped by another KMS key is refused), ``generate_key`` is
    ``GenerateDataKey`` (``AES_256``) and ``rewrap`` is ``ReEncrypt`` to this provider's
    key: the same key (after KMS's automatic rotation, its newest backing key) or, for a
    provider made with another *key_id*, a new KMS key; the material never leaves KMS.
    The keyring's context (root key version) is the KMS encryption context of every
    call, so a wrapped key only unwraps for the same root key version. KMS logs
    encryption contexts in CloudTrail: they hold identifiers, never secrets.

    *key_id* is a key ARN (best: the keyring can then tell its wrappings from those of
    other KMS keys), a key id, an alias name (``alias/customers``) or an alias ARN.
    `WrappedKey.key_ref` is always the key's ARN, as KMS reports it.

    Retries and timeouts: the provider retries transient failures itself (*retry*: a
    `RetryPolicy`, exponential backoff with full jitter, a deadline) and never retries
    a refusal. botocore must then not retry as well, or the attempts multiply (its
    default ``legacy`` mode makes up to 5 per call): `from_session` builds a client
    with ``retries={"total_max_attempts": 1}`` and ``connect_timeout`` =
    ``read_timeout`` = ``retry.timeout``. A client you build yourself should use the
    same ``botocore.config.Config``; its timeouts are then the per-call timeout. A call
    gives up at ``retry.deadline`` however slowly KMS answers.

    Transport: the endpoint must be ``https://`` (AWS's always are) and the client must
    check certificates; an ``http://`` endpoint (a test server) needs
    ``insecure_http=True`` and ``verify=False`` needs ``insecure_skip_verify=True``. A
    certificate that cannot be verified raises `KeyProviderTLSError`, not retried.

    A disabled KMS key, or one pending deletion, raises `KeyProviderAccessDenied`
    naming the key and what to do (enable it, cancel the deletion, or restore the
    keyring from a recovery provider); it is not retried. So does a key that does not
    exist (deleted, or wrong region).

    Example:
        ```python
        import boto3

        provider = AwsKmsKeyProvider.from_session(
            boto3.Session(region_name="eu-west-1"),
            key_id="arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            retry=RetryPolicy(attempts=5, timeout=3.0),
        )
        keyring = Keyring(provider, store, recovery=[offline_provider]).load()
        ```
    """

    name = "aws-kms"

    def __init__(
        self,
        client: Any,
        *,
        key_id: str,
        retry: RetryPolicy | None = None,
        insecure_http: bool = False,
        insecure_skip_verify: bool = False,
    ) -> None:
        _botocore()
        if not isinstance(key_id, str) or not key_id.strip():
            raise ConfigurationError(
                "key_id must name a KMS key: a key ARN, a key id, alias/<name> or an alias ARN"
            )
        meta = getattr(client, "meta", None)
        if getattr(getattr(meta, "service_model", None), "service_name", None) != "kms":
            raise ConfigurationError(
                f"client must be a boto3 KMS client (boto3.client('kms', ...)), "
                f"not {type(client).__name__}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a RetryPolicy")
        self._client = client
        self._key_id = key_id
        self._retry = retry if retry is not None else RetryPolicy()
        self._region = str(getattr(meta, "region_name", None) or "?")
        self._endpoint = str(getattr(meta, "endpoint_url", None) or "?")
        check_address("AWS KMS", self._endpoint, insecure_http=insecure_http)
        check_verify(
            "AWS KMS",
            self._endpoint,
            _verify_of(client),
            insecure_skip_verify=insecure_skip_verify,
        )
        redact_botocore_logs()

    @classmethod
    def from_session(
        cls,
        session: Any,
        *,
        key_id: str,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | None = None,
        insecure_http: bool = False,
        insecure_skip_verify: bool = False,
    ) -> AwsKmsKeyProvider:
        """A provider whose KMS client comes from *session* (a ``boto3.Session``).

        The client times out after ``retry.timeout`` seconds to connect and to read, and
        botocore does not retry (the provider does). *endpoint_url* points to a VPC
        endpoint, a FIPS endpoint or a test server; *verify* is boto3's (a CA bundle
        path, or False, which needs *insecure_skip_verify*).

        Example:
            ```python
            provider = AwsKmsKeyProvider.from_session(
                boto3.Session(profile_name="app"), key_id="alias/customers"
            )
            ```
        """
        _botocore()
        config_module = importlib.import_module("botocore.config")
        policy = retry if retry is not None else RetryPolicy()
        config = config_module.Config(
            connect_timeout=policy.timeout,
            read_timeout=policy.timeout,
            retries={"total_max_attempts": 1},
        )
        client = session.client(
            "kms", region_name=region_name, endpoint_url=endpoint_url, config=config, verify=verify
        )
        return cls(
            client,
            key_id=key_id,
            retry=policy,
            insecure_http=insecure_http,
            insecure_skip_verify=insecure_skip_verify,
        )

    # -- KeyProvider ----------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """The KMS key this provider wraps with, as given (not secret)."""
        return self._key_id

    @property
    def key_refs(self) -> list[str]:
        """The key's ARN when *key_id* is one (else empty): what `WrappedKey.key_ref` holds.

        An alias or a bare key id names no ARN before KMS answers; the keyring then tells
        this provider's wrappings apart by trying them (`unwrap` refuses the others).
        """
        return [self._key_id] if _is_key_arn(self._key_id) else []

    @scrubbed
    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        """KMS ``Encrypt`` of *material* under this provider's key, bound to *context*."""
        response = self._call(
            "Encrypt",
            self._key_id,
            KeyId=self._key_id,
            Plaintext=material,
            EncryptionContext=_check_context(context),
            EncryptionAlgorithm=_ALGORITHM,
        )
        return self._wrapped("Encrypt", response)

    @scrubbed
    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        """KMS ``Decrypt``, pinned to this provider's key; `KeyUnwrapError` if it fails.

        A key wrapped by another KMS key is refused without a call when both keys are
        named by ARN or key id; otherwise KMS refuses it (``IncorrectKeyException``).
        """
        self._check_mine(wrapped)
        response = self._call(
            "Decrypt",
            wrapped.key_ref,
            CiphertextBlob=wrapped.ciphertext,
            EncryptionContext=_check_context(context),
            KeyId=self._key_id,
            EncryptionAlgorithm=_ALGORITHM,
        )
        return _field("Decrypt", response, "Plaintext", bytes)

    @scrubbed
    def generate_key(self, *, context: dict[str, str]) -> tuple[bytes, WrappedKey]:
        """KMS ``GenerateDataKey``: 32 new random bytes and their wrapped form."""
        response = self._call(
            "GenerateDataKey",
            self._key_id,
            KeyId=self._key_id,
            KeySpec="AES_256",
            EncryptionContext=_check_context(context),
        )
        return _field("GenerateDataKey", response, "Plaintext", bytes), self._wrapped(
            "GenerateDataKey", response
        )

    @scrubbed
    def rewrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> WrappedKey:
        """KMS ``ReEncrypt`` of *wrapped* to this provider's key, inside KMS.

        The source key is pinned to ``wrapped.key_ref`` (the key that wrapped it), which
        may be another KMS key: this is how root keys move to a new KMS key.
        """
        if wrapped.provider != self.name:
            raise KeyUnwrapError(
                f"a key wrapped by {wrapped.provider}:{wrapped.key_ref} cannot be rewrapped "
                "by AWS KMS: unwrap it with its own provider and wrap it again"
            )
        source = wrapped.key_ref
        keys = source if source == self._key_id else f"{source} or {self._key_id}"
        checked = _check_context(context)
        response = self._call(
            "ReEncrypt",
            keys,
            CiphertextBlob=wrapped.ciphertext,
            SourceEncryptionContext=checked,
            SourceKeyId=source,
            DestinationKeyId=self._key_id,
            DestinationEncryptionContext=checked,
            SourceEncryptionAlgorithm=_ALGORITHM,
            DestinationEncryptionAlgorithm=_ALGORITHM,
        )
        return self._wrapped("ReEncrypt", response)

    def __repr__(self) -> str:
        return f"<AwsKmsKeyProvider key_id={self._key_id!r} region={self._region!r}>"

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError(
            "AwsKmsKeyProvider holds a KMS client with credentials and cannot be pickled"
        )

    # -- the one boundary -----------------------------------------------------------------

    def _call(self, operation: str, key: str, **params: Any) -> Any:
        method = getattr(self._client, _SNAKE[operation])
        endpoint = self._endpoint

        def classify(exc: BaseException) -> KeyProviderError:
            return _classify(exc, operation=operation, key=key, endpoint=endpoint)

        return self._retry.run(
            lambda: method(**params),
            classify=classify,
            what=operation,
            where=f"AWS KMS at {endpoint} (key {key})",
        )

    def _wrapped(self, operation: str, response: Any) -> WrappedKey:
        return WrappedKey(
            provider=self.name,
            key_ref=_field(operation, response, "KeyId", str),
            ciphertext=_field(operation, response, "CiphertextBlob", bytes),
        )

    def _check_mine(self, wrapped: WrappedKey) -> None:
        if wrapped.provider != self.name:
            raise KeyUnwrapError(
                f"key was wrapped by master key {wrapped.provider}:{wrapped.key_ref}, "
                "not by AWS KMS (wrong provider?)"
            )
        mine, theirs = _key_part(self._key_id), _key_part(wrapped.key_ref)
        if mine and theirs and mine != theirs:
            raise KeyUnwrapError(
                f"key was wrapped by AWS KMS key {wrapped.key_ref}, not by {self._key_id} "
                "(wrong key_id? rewrap() moves keys from one KMS key to another)"
            )


_SNAKE = {
    "Encrypt": "encrypt",
    "Decrypt": "decrypt",
    "GenerateDataKey": "generate_data_key",
    "ReEncrypt": "re_encrypt",
}


def _classify(
    exc: BaseException,
    *,
    operation: str = "a call",
    key: str = "the KMS key",
    endpoint: str = "its endpoint",
) -> KeyProviderError:
    """Translate an exception of the boto3 client into the library's error.

    Messages name the operation, the key and the AWS error code, never credentials,
    key material or the request; the original exception is chained by the caller.
    """
    botocore = _botocore()
    if isinstance(exc, botocore.ClientError):
        return _from_response(exc.response, operation=operation, key=key)
    if isinstance(exc, botocore.SSLError):  # a certificate does not get better by retrying
        return KeyProviderTLSError(
            f"{tls_failure('AWS KMS', endpoint, exc, _CA_HINT)} ({operation})"
        )
    if isinstance(exc, tuple(getattr(botocore, n) for n in _TRANSIENT)):
        return KeyProviderUnavailable(
            f"AWS KMS at {endpoint} could not be reached ({type(exc).__name__} in {operation})"
        )
    if isinstance(exc, tuple(getattr(botocore, n) for n in _CREDENTIALS)):
        return KeyProviderAccessDenied(
            f"AWS KMS {operation}: no usable AWS credentials ({type(exc).__name__}); "
            "configure them for the boto3 session (environment, profile or role)"
        )
    if isinstance(exc, botocore.ParamValidationError):
        return KeyProviderError(f"AWS KMS {operation}: botocore refused the request parameters")
    return KeyProviderError(f"AWS KMS {operation} failed: unexpected {type(exc).__name__}")


def _from_response(response: Any, *, operation: str, key: str) -> KeyProviderError:
    response = response if isinstance(response, dict) else {}
    code = str(response.get("Error", {}).get("Code", "") or "Unknown")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    status = status if isinstance(status, int) else 0
    said = f"{code}, HTTP {status}" if status else code
    if code == "DisabledException":
        return KeyProviderAccessDenied(
            f"AWS KMS key {key} is disabled ({operation}): enable it (aws kms enable-key) "
            "or restore the keyring from a recovery provider"
        )
    if code == "KMSInvalidStateException":
        return KeyProviderAccessDenied(
            f"AWS KMS key {key} cannot be used in its current state ({operation}: {said}): "
            "if it is pending deletion, cancel the deletion (aws kms cancel-key-deletion) and "
            "enable it, or restore the keyring from a recovery provider"
        )
    if code == "NotFoundException":
        return KeyProviderAccessDenied(
            f"AWS KMS key {key} was not found ({operation}): check key_id and the region, "
            "or restore the keyring from a recovery provider if the key was deleted"
        )
    if code in _UNWRAP:
        return KeyUnwrapError(
            f"AWS KMS could not unwrap a key wrapped by {key} ({operation}: {code}): another "
            "KMS key, another encryption context, or the key store was altered"
        )
    if code in _DENIED or status in (401, 403):
        return KeyProviderAccessDenied(
            f"AWS KMS refused {operation} on {key} ({said}): check the credentials, and that "
            f"the IAM policy and the key policy allow kms:{operation}"
        )
    if code in _UNAVAILABLE or status == 429 or status >= 500:
        return KeyProviderUnavailable(f"AWS KMS could not serve {operation} now ({said})")
    return KeyProviderError(f"AWS KMS rejected {operation} on {key} ({said})")


def _field(operation: str, response: Any, name: str, kind: type[_T]) -> _T:
    value = response.get(name) if isinstance(response, dict) else None
    if not isinstance(value, kind) or not value:
        raise KeyProviderError(f"AWS KMS answered {operation} without a valid {name}")
    return value


def _verify_of(client: Any) -> object:
    """The ``verify`` the client was made with: botocore keeps it on its HTTP session.

    botocore has no public accessor; an unknown layout counts as verifying (boto3's
    default), which the classifier still catches at call time.
    """
    endpoint = getattr(client, "_endpoint", None)
    return getattr(getattr(endpoint, "http_session", None), "_verify", True)


def _check_context(context: dict[str, str]) -> dict[str, str]:
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in context.items()
    ):
        raise ContextError("an AWS KMS encryption context maps str keys to str values")
    return context


def _is_key_arn(ref: str) -> bool:
    return ref.startswith("arn:") and ":key/" in ref


def _key_part(ref: str) -> str | None:
    """The key id in a key ARN or bare key id, lowercased; None for aliases."""
    if _is_key_arn(ref):
        return ref.rsplit(":key/", 1)[1].lower()
    if ref.startswith(("arn:", "alias/")):
        return None
    return ref.lower()
