"""Keeping key material and tokens out of tracebacks and client logs (remote providers).

Two places outside the library's own messages used to carry secrets:

- **Traceback frames.** Crash reporters (Sentry and the like) record the local variables
  of every frame of an error and of the errors chained to it. A provider's frames hold
  the key material being wrapped or just unwrapped, and the client's frames below them
  (hvac's, requests', botocore's) hold the request: the body with the key, the headers
  with the Vault token or the AWS session token. `scrubbed` clears the locals of every
  frame of an escaping error's traceback (and of its causes) once those frames have
  finished, before the error leaves the provider. The file names, functions and line
  numbers stay; the values are gone. The caller's own frames (the keyring's, the
  application's) are not touched.
- **botocore's DEBUG log.** With ``logging.getLogger("botocore")`` at DEBUG, botocore logs
  every request body (``Plaintext``, base64), every answer (``Plaintext`` of ``Decrypt``
  and ``GenerateDataKey``) and the signed headers (``X-Amz-Security-Token``). `redact_botocore_logs`
  puts a filter on botocore's loggers that replaces those values with ``<redacted>``
  before any handler sees the record. requests, urllib3 and hvac log neither bodies nor
  headers.
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["redact_botocore_logs", "scrubbed"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

# botocore's loggers that log requests, answers and signatures; created here if botocore
# has not imported them yet, so that they already carry the filter when it does.
_BOTOCORE_LOGGERS = (
    "botocore",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.client",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.parsers",
    "botocore.retryhandler",
    "botocore.retries.standard",
)
_SECRET_FIELDS = re.compile(
    r"""(["'](?:Plaintext|CiphertextBlob|SessionToken|SecretAccessKey)["']\s*:\s*b?["'])"""
    r"""[^"']*""",
    re.IGNORECASE,
)
_TOKEN_HEADER = re.compile(
    r"""(x-amz-security-token["']?\s*[:=]\s*(?:b?["'])?)[^"'\s,&}]+""", re.IGNORECASE
)
_REDACTED = r"\1<redacted>"


def scrubbed(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """*method*, whose escaping errors carry tracebacks without local variables.

    The wrapper's own arguments (the key material passed to ``wrap``) are dropped too,
    so that the only frame left with locals is the caller's.
    """

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except BaseException as exc:
            del args, kwargs
            clear_tracebacks(exc)
            raise

    return call


def clear_tracebacks(error: BaseException) -> None:
    """Clear the locals of the finished frames of *error* and of every error chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)  # skips frames still running
        pending += [exc.__cause__, exc.__context__]


class _Redact(logging.Filter):
    """Replaces key material and session tokens in a record's message with ``<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        redacted = _TOKEN_HEADER.sub(_REDACTED, _SECRET_FIELDS.sub(_REDACTED, message))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _Redact("securecustomer")


def redact_botocore_logs() -> None:
    """Put the redacting filter on botocore's loggers (once; safe to call again)."""
    names = set(_BOTOCORE_LOGGERS)
    names.update(
        name
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(("botocore.", "boto3."))
    )
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
