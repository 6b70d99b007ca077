"""Transport checks shared by the remote providers: https only, certificates checked.

A provider sends key material (and its client a token) to its server, so plain HTTP and
a client that does not check certificates are refused at construction, unless the
application asks for them by name (``insecure_http=True``, ``insecure_skip_verify=True``:
tests against a local server, a Vault agent on the loopback). A certificate that cannot
be verified at call time is a `KeyProviderTLSError`, never retried: it is a
configuration to fix, not an outage to wait out.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from securecustomer.exceptions import ConfigurationError

__all__ = ["check_address", "check_verify", "tls_failure"]

_VERIFY_FAILED = re.compile(r"certificate verify failed:?\s*([^()'\"\]]*)", re.IGNORECASE)
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def check_address(service: str, address: str, *, insecure_http: bool) -> None:
    """Refuse an address that is not ``https://`` (``http://`` only with *insecure_http*)."""
    scheme = urlsplit(address).scheme.lower()
    if scheme == "https":
        return
    if scheme == "http":
        if insecure_http:
            return
        raise ConfigurationError(
            f"{service} at {address} is a plain http:// address: key material and "
            "credentials would cross the network unencrypted. Use https://, or pass "
            "insecure_http=True where that is intended (a test server, a local agent)"
        )
    raise ConfigurationError(f"{service} address {address!r} is not an https:// address")


def check_verify(service: str, address: str, verify: object, *, insecure_skip_verify: bool) -> None:
    """Refuse a client whose certificate check is off, unless *insecure_skip_verify*."""
    if verify is False and not insecure_skip_verify and urlsplit(address).scheme != "http":
        raise ConfigurationError(
            f"the client of {service} at {address} does not check the server's certificate "
            "(verify=False): anyone on the path could read key material and credentials. "
            "Give the client the CA bundle that signed it (verify='/path/to/ca.pem'), or "
            "pass insecure_skip_verify=True where that is intended"
        )


def tls_failure(service: str, address: str, error: BaseException, hint: str) -> str:
    """The message for a failed TLS handshake: a certificate that could not be verified,
    or another reason (protocol versions, a plain-HTTP server on the port)."""
    text = str(error)
    verify = _VERIFY_FAILED.search(text)
    if verify is not None:
        reason = verify.group(1).strip() or "no reason given"
        return (
            f"the TLS certificate of {service} at {address} could not be verified "
            f"({reason}): {hint}; not retried"
        )
    found = _SSL_REASON.search(text)
    reason = found.group(1) if found else type(error).__name__
    return f"TLS with {service} at {address} failed ({reason}): {hint}; not retried"
