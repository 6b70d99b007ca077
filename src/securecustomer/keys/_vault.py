"""VaultTransitKeyProvider: root keys wrapped by a Vault (or OpenBao) Transit key.

The provider speaks to the Transit secrets engine through an ``hvac.Client`` that the
application creates and authenticates (token, AppRole, Kubernetes, ...). Every call goes
through a `RetryPolicy`, and every error of hvac or requests is translated in one place,
`_classify`::

    what happened                                   raised
    ----------------------------------------------  ----------------------------------
    cannot connect, timeout, HTTP 5xx, sealed, 429   KeyProviderUnavailable (retried)
    no answer within RetryPolicy.deadline            KeyProviderUnavailable
    certificate not verified, TLS handshake failed   KeyProviderTLSError
    403 (token invalid, expired or revoked, or the   KeyProviderAccessDenied
        policy does not allow the call)
    no Transit mount at mount_point (404)            KeyProviderAccessDenied
    Transit key deleted or never created             KeyProviderAccessDenied
    decrypt refused: altered ciphertext, another     KeyUnwrapError
        key, version below min_decryption_version
    context tag does not match (wrong context)       KeyUnwrapError

Messages name the Vault address, namespace, mount and key, never a token, key
material or ciphertext; the tracebacks of errors leaving the provider keep no local
variables (`_secrets.scrubbed`), since hvac's frames hold the token.

hvac (and requests, which it brings) is the optional ``vault`` extra (``pip install
"securecustomer[vault]"``): this module imports them only when a provider is made, so
``import securecustomer`` neither needs them nor pays for their import (about 40 ms).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import importlib
import json
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs

from securecustomer.crypto._keys import derive
from securecustomer.exceptions import (
    ConfigurationError,
    KeyProviderAccessDenied,
    KeyProviderError,
    KeyProviderTLSError,
    KeyProviderUnavailable,
    KeyUnwrapError,
    UnpicklableError,
)
from securecustomer.keys._records import WrappedKey
from securecustomer.keys._retry import RetryPolicy
from securecustomer.keys._secrets import scrubbed
from securecustomer.keys._tls import check_address, check_verify, tls_failure

if TYPE_CHECKING:
    import requests

__all__ = ["VaultClient", "VaultTransitKeyProvider"]

_INSTALL = (
    "VaultTransitKeyProvider needs hvac, which is not installed: "
    'pip install "securecustomer[vault]"'
)

_LABEL_CONTEXT = b"securecustomer/v1/vault-context"
_TAG_SEPARATOR = b"#"
_BATCH = 250
_NAME = re.compile(r"\w(?:[\w.@-]*\w)?")
_PATH = re.compile(r"\w(?:[\w.@-]*\w)?(?:/\w(?:[\w.@-]*\w)?)*")
_VERSION = re.compile(r"vault:v(\d+):")
_DECRYPTING = frozenset({"decrypt", "rewrap"})
_CA_HINT = "give the hvac client the CA bundle (hvac.Client(verify='/path/to/ca.pem'))"


def _hvac_errors() -> Any:
    """``hvac.exceptions``, imported at first use: hvac is the optional ``vault`` extra.

    Imported by name: hvac ships no type information, so its exception classes are
    reached through this Any-typed module, the one place where this file touches hvac.
    """
    try:
        return importlib.import_module("hvac.exceptions")
    except ImportError as exc:
        raise ImportError(_INSTALL, name="hvac") from exc


class _Adapter(Protocol):
    @property
    def base_uri(self) -> str: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


class VaultClient(Protocol):
    """What the provider needs of an ``hvac.Client``: its adapter (address, session, token)."""

    @property
    def adapter(self) -> _Adapter: ...


class _UnexpectedAnswer(KeyProviderError):
    """Vault answered 2xx with a body the provider cannot read (a proxy, another API)."""


@attrs.frozen
class _Call:
    """One Transit call, described for error messages (nothing secret in here)."""

    operation: str  # "encrypt", "decrypt", "datakey", "rewrap"
    path: str  # relative to the namespace: "transit/datakey/plaintext/customers"
    address: str
    namespace: str | None
    mount: str
    key: str
    timeout: float

    @property
    def key_name(self) -> str:
        namespace = f" in namespace {self.namespace!r}" if self.namespace else ""
        return f"transit key {self.key!r} on mount {self.mount!r}{namespace}"

    @property
    def where(self) -> str:
        return f"Vault at {self.address} ({self.key_name})"


class VaultTransitKeyProvider:
    """A master key held by Vault's (or OpenBao's) Transit secrets engine.

    The key never leaves Vault: root keys are sent to ``transit/encrypt`` and
    ``transit/decrypt`` (the only data Vault sees), new root keys come from
    ``transit/datakey/plaintext``, `rewrap` moves a wrapped key to the latest key
    version with ``transit/rewrap`` (Vault decrypts and re-encrypts internally) and
    `unwrap_many` decrypts many keys in one batch call.

    *client* is an ``hvac.Client`` that the application has authenticated (a token,
    AppRole, Kubernetes, ...) and keeps authenticated (renewing or re-logging in).
    *namespace* is put in the request path, so it is relative to the client's own
    namespace, if it has one. Each connect and each read may take *retry.timeout*
    seconds (passed per request to the client's adapter; the client's own ``timeout`` is
    not used), transient failures are retried as *retry* says, and a call gives up at
    *retry.deadline* however slowly the server answers (the attempt is abandoned and its
    connection closed).

    Transport: the client's address must be ``https://`` and its certificate check on;
    a plain ``http://`` address needs ``insecure_http=True`` and ``verify=False`` needs
    ``insecure_skip_verify=True`` (`ConfigurationError` otherwise). A certificate that
    cannot be verified raises `KeyProviderTLSError` at once, without retrying.

    Binding the context: Transit's ``associated_data`` would be verified by Vault, but
    ``transit/rewrap`` does not accept it (rewrapping such a ciphertext fails), so the
    context is bound by a tag instead: ``HMAC-SHA256(HKDF(material), canonical JSON of
    context)``, checked after every decryption and unchanged by a rewrap. A wrapped key
    is stored as ``<Transit ciphertext>#<base64 tag>`` (the part before ``#`` is what
    ``bao write transit/decrypt/<key> ciphertext=...`` accepts), and its ``key_ref`` is
    ``<mount>/<key>:v<key version>``.

    The application's policy needs ``update`` on ``<mount>/encrypt/<key>``,
    ``<mount>/decrypt/<key>``, ``<mount>/datakey/plaintext/<key>`` and
    ``<mount>/rewrap/<key>``, and should not have ``create``: with it, and with
    ``disable_upsert`` off on the mount, an encryption under a deleted key silently
    creates a new key of the same name. Set ``bao write <mount>/config/keys
    disable_upsert=true``.

    Faults: a sealed, stopped or hung Vault raises `KeyProviderUnavailable` once the
    retries are spent (a keyring loaded before keeps working until its
    ``root_cache_ttl``, and works again once Vault is back); a revoked or expired token
    or a policy without the call raises `KeyProviderAccessDenied` at once; so does a
    deleted Transit key, in a message saying that it is gone; a wrapped key that Vault
    refuses to decrypt (altered, another key, a version below
    ``min_decryption_version``) or that was bound to another context raises
    `KeyUnwrapError`. The error of hvac or requests is chained as the cause.

    Example:
        ```python
        client = hvac.Client(url="https://vault.example:8200")
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        provider = VaultTransitKeyProvider(client, key="customers", retry=RetryPolicy(attempts=5))
        keyring = Keyring(provider, FileKeyStore("keys.json")).load()
        ```
    """

    name = "vault"

    def __init__(
        self,
        client: VaultClient,
        *,
        key: str,
        mount_point: str = "transit",
        namespace: str | None = None,
        retry: RetryPolicy | None = None,
        insecure_http: bool = False,
        insecure_skip_verify: bool = False,
    ) -> None:
        _hvac_errors()
        if getattr(client, "adapter", None) is None:
            raise ConfigurationError("client must be an hvac.Client (it has no adapter)")
        mount = mount_point.strip("/") if isinstance(mount_point, str) else ""
        if not _PATH.fullmatch(mount):
            raise ConfigurationError(f"not a Transit mount point: {mount_point!r}")
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise ConfigurationError(f"not a Transit key name: {key!r}")
        space = namespace.strip("/") if isinstance(namespace, str) else None
        if namespace is not None and not (space and _PATH.fullmatch(space)):
            raise ConfigurationError(f"not a Vault namespace: {namespace!r}")
        self._client = client
        self._key = key
        self._mount = mount
        self._namespace = space
        self._retry = retry if retry is not None else RetryPolicy()
        self._base = f"/v1/{space}/{mount}" if space else f"/v1/{mount}"
        adapter = client.adapter
        check_address("Vault", self.address, insecure_http=insecure_http)
        check_verify(
            "Vault", self.address, _verify_of(adapter), insecure_skip_verify=insecure_skip_verify
        )

    # -- identity -------------------------------------------------------------------------

    @property
    def key_refs(self) -> list[str]:
        """The Transit key this provider uses, as ``<mount>/<key>`` (not secret)."""
        return [f"{self._mount}/{self._key}"]

    @property
    def address(self) -> str:
        """The Vault server's address, without any credentials in it."""
        return _public_address(str(self._client.adapter.base_uri))

    def __repr__(self) -> str:
        namespace = f" namespace={self._namespace!r}" if self._namespace else ""
        return (
            f"<VaultTransitKeyProvider address={self.address!r}{namespace} "
            f"mount={self._mount!r} key={self._key!r}>"
        )

    def __reduce__(self) -> NoReturn:
        raise UnpicklableError(
            "VaultTransitKeyProvider holds an authenticated client; not picklable"
        )

    # -- KeyProvider ----------------------------------------------------------------------

    @scrubbed
    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        """Encrypt *material* under the latest version of the Transit key."""
        payload = {"plaintext": _b64(material)}
        data = self._post("encrypt", f"encrypt/{self._key}", payload)
        return self._wrapped(_field(data, "ciphertext"), material, context)

    @scrubbed
    def generate_key(self, *, context: dict[str, str]) -> tuple[bytes, WrappedKey]:
        """A new 256-bit key from Vault's random source, and its wrapped form (one call)."""
        data = self._post("datakey", f"datakey/plaintext/{self._key}", {"bits": 256})
        material = _unb64(_field(data, "plaintext"))
        return material, self._wrapped(_field(data, "ciphertext"), material, context)

    @scrubbed
    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        """Decrypt *wrapped*; `KeyUnwrapError` if it fails or was wrapped for another context."""
        transit, tag = self._split(wrapped)
        data = self._post("decrypt", f"decrypt/{self._key}", {"ciphertext": transit})
        material = _unb64(_field(data, "plaintext"))
        self._check(material, tag, context)
        return material

    @scrubbed
    def rewrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> WrappedKey:
        """The same key under the Transit key's latest version; Vault never returns it."""
        transit, tag = self._split(wrapped)
        data = self._post("rewrap", f"rewrap/{self._key}", {"ciphertext": transit})
        return self._pack(_field(data, "ciphertext"), tag)

    @scrubbed
    def unwrap_many(self, items: list[tuple[WrappedKey, dict[str, str]]]) -> list[bytes]:
        """Decrypt several wrapped keys with batch calls (up to 250 keys per call)."""
        split = [self._split(wrapped) for wrapped, _ in items]
        materials: list[bytes] = []
        for start in range(0, len(split), _BATCH):
            chunk = split[start : start + _BATCH]
            payload = {
                "batch_input": [{"ciphertext": transit} for transit, _ in chunk],
                # a partial failure answers 200 with per-item errors; the default (400)
                # would put the other items' plaintext into hvac's exception
                "partial_failure_response_code": 200,
            }
            data = self._post("decrypt", f"decrypt/{self._key}", payload)
            results = data.get("batch_results")
            if not isinstance(results, list) or len(results) != len(chunk):
                raise KeyProviderError(
                    f"Vault at {self.address} answered a batch decrypt with "
                    f"{len(results) if isinstance(results, list) else 'no'} results "
                    f"for {len(chunk)} keys"
                )
            for offset, result in enumerate(results):
                error = result.get("error") if isinstance(result, dict) else "no result"
                if error:
                    call = self._describe("decrypt", f"decrypt/{self._key}")
                    raise KeyUnwrapError(
                        f"batch item {start + offset}: {_unwrap_message(call, str(error))}"
                    )
                materials.append(_unb64(_field(result, "plaintext")))
        for (_, context), (_, tag), material in zip(items, split, materials, strict=True):
            self._check(material, tag, context)
        return materials

    # -- helpers --------------------------------------------------------------------------

    def _describe(self, operation: str, path: str) -> _Call:
        return _Call(
            operation=operation,
            path=f"{self._mount}/{path}",
            address=self.address,
            namespace=self._namespace,
            mount=self._mount,
            key=self._key,
            timeout=self._retry.timeout,
        )

    def _post(self, operation: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to ``<namespace>/<mount>/<path>`` with retries; the answer's ``data``."""
        url = f"{self._base}/{path}"
        adapter = self._client.adapter
        timeout = self._retry.timeout
        call = self._describe(operation, path)
        answers = _Answers()

        def attempt() -> dict[str, Any]:
            hooks = {"response": [answers.add]}
            return _data(adapter.post(url, json=payload, timeout=timeout, hooks=hooks), url)

        classify: Callable[[BaseException], KeyProviderError] = functools.partial(
            _classify, call=call
        )
        return self._retry.run(
            attempt,
            classify=classify,
            what=f"transit {operation}",
            where=call.where,
            abandon=answers.abandon,
        )

    def _key_ref(self, ciphertext: str) -> str:
        match = _VERSION.match(ciphertext)
        if match is None:
            raise KeyProviderError(
                f"Vault at {self.address} returned a ciphertext without a vault:v<N>: prefix"
            )
        return f"{self._mount}/{self._key}:v{match.group(1)}"

    def _wrapped(self, ciphertext: str, material: bytes, context: dict[str, str]) -> WrappedKey:
        return self._pack(ciphertext, _tag(material, context))

    def _pack(self, ciphertext: str, tag: bytes) -> WrappedKey:
        return WrappedKey(
            provider=self.name,
            key_ref=self._key_ref(ciphertext),
            ciphertext=ciphertext.encode("ascii") + _TAG_SEPARATOR + base64.b64encode(tag),
        )

    def _split(self, wrapped: WrappedKey) -> tuple[str, bytes]:
        """The Transit ciphertext and the context tag of *wrapped*, checked against its ref."""
        base, _, version = wrapped.key_ref.rpartition(":v")
        if wrapped.provider != self.name or base != self.key_refs[0]:
            raise KeyUnwrapError(
                f"key was wrapped by {wrapped.provider}:{wrapped.key_ref}, not by this "
                f"provider's transit key {self.key_refs[0]} (wrong key or mount?)"
            )
        transit, separator, encoded = wrapped.ciphertext.rpartition(_TAG_SEPARATOR)
        try:
            tag = base64.b64decode(encoded, validate=True)
            text = transit.decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            tag, text = b"", ""
        match = _VERSION.match(text)
        if not separator or len(tag) != 32 or match is None or match.group(1) != version:
            raise KeyUnwrapError(
                f"a key wrapped by transit key {wrapped.key_ref} is malformed: "
                "the key store was altered"
            )
        return text, tag

    def _check(self, material: bytes, tag: bytes, context: dict[str, str]) -> None:
        if not hmac.compare_digest(_tag(material, context), tag):
            raise KeyUnwrapError(
                f"a key wrapped by transit key {self._key!r} on mount {self._mount!r} was "
                "bound to another context: the key store was altered (a wrapped key was "
                "moved to another record)"
            )


# -- the one place where hvac's and requests' errors become the library's -------------------


def _classify(exc: BaseException, *, call: _Call) -> KeyProviderError:
    """Translate an error of hvac or requests raised by one Transit call.

    Transient failures name the server and the key (`RetryPolicy` adds the call and the
    number of attempts); refusals also name the call, since they are not retried.
    """
    hvac_errors = _hvac_errors()
    import requests  # hvac's transport: installed with it, imported with it

    where = f"Vault at {call.address}"
    if isinstance(exc, requests.exceptions.SSLError):  # before ConnectionError, its base
        return KeyProviderTLSError(
            f"{tls_failure('Vault', call.address, exc, _CA_HINT)} ({call.key_name})"
        )
    if isinstance(exc, requests.Timeout):
        return KeyProviderUnavailable(
            f"{where} did not answer within {call.timeout:g} s ({call.key_name})"
        )
    if isinstance(exc, requests.ConnectionError):
        return KeyProviderUnavailable(
            f"cannot connect to {where}: is it running and reachable? ({call.key_name})"
        )
    if isinstance(exc, requests.RequestException):
        return KeyProviderUnavailable(
            f"request to {where} failed: {type(exc).__name__} ({call.key_name})"
        )
    what = f"transit {call.operation} with {call.key_name}"
    if isinstance(exc, _UnexpectedAnswer):
        return KeyProviderError(f"{where} answered {what} with something else than Transit: {exc}")
    if not isinstance(exc, hvac_errors.VaultError):
        return KeyProviderError(f"{where}: {what} failed: {type(exc).__name__}")
    reason = _reason(exc)
    if isinstance(exc, (hvac_errors.Forbidden, hvac_errors.Unauthorized)):
        return KeyProviderAccessDenied(
            f"{where} denied {what}: the token is invalid, expired or revoked, or its "
            f"policy does not grant 'update' on {call.path}"
        )
    if isinstance(exc, hvac_errors.InvalidPath):
        namespace = f" in namespace {call.namespace!r}" if call.namespace else ""
        return KeyProviderAccessDenied(
            f"{where} has no Transit secrets engine at {call.mount!r}{namespace}: "
            f"check mount_point and namespace ({reason})"
        )
    if isinstance(exc, hvac_errors.InvalidRequest):
        if "encryption key not found" in reason:
            return KeyProviderAccessDenied(
                f"{call.key_name} at {call.address} not found: it was deleted or never "
                "created, or the provider names the wrong key. Keys wrapped by it cannot "
                "be unwrapped until it is restored (transit/restore from a backup); a "
                "recovery provider of the keyring can unwrap them meanwhile"
            )
        if call.operation in _DECRYPTING:
            return KeyUnwrapError(_unwrap_message(call, reason))
        return KeyProviderError(f"{where} refused {what}: {reason}")
    if isinstance(exc, hvac_errors.VaultDown):
        state = "is sealed: unseal it" if "sealed" in reason else f"is unavailable: {reason}"
        return KeyProviderUnavailable(f"{where} {state} ({call.key_name})")
    if isinstance(exc, hvac_errors.RateLimitExceeded):
        return KeyProviderUnavailable(f"{where} is rate limiting requests ({call.key_name})")
    if isinstance(
        exc,
        (
            hvac_errors.InternalServerError,
            hvac_errors.BadGateway,
            hvac_errors.VaultNotInitialized,
            hvac_errors.PreconditionFailed,
            hvac_errors.UnexpectedError,
        ),
    ):
        return KeyProviderUnavailable(
            f"{where} failed: {type(exc).__name__}: {reason} ({call.key_name})"
        )
    return KeyProviderError(f"{where}: {what} failed: {type(exc).__name__}: {reason}")


def _unwrap_message(call: _Call, reason: str) -> str:
    if "disallowed by policy" in reason or "too old" in reason:
        return (
            f"a key was wrapped by a version of {call.key_name} at {call.address} that is "
            "below the key's min_decryption_version: lower min_decryption_version to read "
            "it, and rewrap wrapped keys (Keyring.rewrap_roots) before raising it"
        )
    return (
        f"a key wrapped by {call.key_name} at {call.address} did not decrypt ({reason}): "
        "the key store was altered, or the key was wrapped by another Transit key or Vault"
    )


def _reason(exc: Any) -> str:
    """Vault's own error text (never a request or response body), short and on one line."""
    errors = getattr(exc, "errors", None)
    if not errors:
        body = getattr(exc, "json", None)
        data = body.get("data") if isinstance(body, dict) else None
        results = data.get("batch_results") if isinstance(data, dict) else None
        if isinstance(results, list):
            errors = [r["error"] for r in results if isinstance(r, dict) and r.get("error")]
    if isinstance(errors, str):
        errors = [errors]
    if not isinstance(errors, list) or not errors:
        return "no reason given"
    text = " ".join("; ".join(str(e) for e in errors).split())
    return text if len(text) <= 200 else text[:197] + "..."


class _Answers:
    """The responses of one provider call's attempts, to close them if it is abandoned.

    A ``requests`` response hook gets each response once its headers have come, before
    hvac reads the body; `abandon` (from the caller's thread, at the deadline) shuts the
    connections down, and a response that comes later is shut down on arrival.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[requests.Response] = []
        self._abandoned = False

    def add(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._open.append(response)
            abandoned = self._abandoned
        if abandoned:
            _shut(response)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            responses = list(self._open)
        for response in responses:
            _shut(response)


def _shut(response: requests.Response) -> None:
    """Interrupt a read of *response* in another thread (urllib3's shutdown, else close)."""
    raw = getattr(response, "raw", None)
    shutdown = getattr(raw, "shutdown", None)
    try:
        if callable(shutdown):
            shutdown()
        else:
            response.close()
    except OSError:
        pass  # already closed


def _verify_of(adapter: Any) -> object:
    """Whether the adapter's requests check certificates (hvac passes its own per request)."""
    kwargs = getattr(adapter, "_kwargs", None)
    verify = kwargs.get("verify") if isinstance(kwargs, dict) else None
    if verify is None:
        verify = getattr(getattr(adapter, "session", None), "verify", True)
    return verify


# -- encoding -------------------------------------------------------------------------------


def _data(answer: Any, url: str) -> dict[str, Any]:
    """The ``data`` of a Transit answer: a dict (hvac's JSONAdapter) or a Response."""
    if isinstance(answer, dict):
        body: Any = answer
    else:
        status = getattr(answer, "status_code", None)
        try:
            body = answer.json() if getattr(answer, "content", b"") else {}
        except ValueError:
            body = None
        if isinstance(status, int) and status >= 400:  # an adapter with ignore_exceptions
            errors = body.get("errors") if isinstance(body, dict) else None
            raise _hvac_errors().VaultError.from_status(
                status, errors=errors or [f"HTTP {status}"], method="post", url=url
            )
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _UnexpectedAnswer("no 'data' object in the answer")
    return data


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise KeyProviderError(f"Vault's answer has no {name!r}")
    return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise KeyProviderError("Vault returned a plaintext that is not base64") from None


def _tag(material: bytes, context: dict[str, str]) -> bytes:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = derive(material, _LABEL_CONTEXT, 32)
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()


def _public_address(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
