"""A real AWS KMS API for the tests: moto's server over HTTP, started and stopped by the tests.

    server = KmsServer.start(log_dir)    # moto on 127.0.0.1:<free port>, own process group
    kms = server.client()                # a boto3 KMS client: dummy credentials, endpoint_url
    arn = server.create_key()            # a fresh symmetric KMS key
    server.pause(); server.resume()      # SIGSTOP / SIGCONT: calls time out; keys are kept
    server.stop(); server.start_again()  # connection refused; moto forgets every key
    server.close()                       # at the end (also at interpreter exit)

`KmsServerUnavailableError` says what is missing when the server cannot be started (moto or
flask not installed, the server exiting, no answer in time), with the end of its log.

moto does not model key states in cryptographic calls: with moto alone, a disabled key or
one pending deletion still encrypts and decrypts. AWS KMS refuses them (``DisabledException``,
``KMSInvalidStateException``, HTTP 400). This file, run as a script, is the server: it
starts moto with those two refusals added (`_refuse_unusable_keys`), so that the provider
meets them over HTTP as it would in AWS. Everything else is moto as released.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"  # dummy credentials: moto accepts any unless IAM auth is on
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
START_WAIT = 20.0


class KmsServerUnavailableError(RuntimeError):
    """moto's KMS server can be neither found nor started."""


class KmsServer:
    """One moto server process on 127.0.0.1, with helpers to break it and mend it."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @classmethod
    def start(cls, log_dir: Path) -> KmsServer:
        """Start a server on a free port; raise `KmsServerUnavailableError` if it won't run."""
        missing = [m for m in ("moto.server", "flask", "boto3") if not _importable(m)]
        if missing:
            raise KmsServerUnavailableError(
                f"cannot start moto's KMS server: {', '.join(missing)} not importable by "
                f"{sys.executable}; install the test dependencies "
                f"(pip install 'moto[server]' boto3 — nox installs them)"
            )
        for attempt in range(3):
            server = cls(free_port(), log_dir / f"moto-kms-{attempt}.log")
            try:
                server.start_again()
                break
            except KmsServerUnavailableError as exc:  # the free port was taken meanwhile?
                if attempt == 2 or "in use" not in str(exc):
                    raise
        atexit.register(server.close)
        return server

    # -- life cycle -----------------------------------------------------------------------

    def start_again(self) -> None:
        """Start the server (again, after `stop`) on the same port and wait until it answers."""
        if self.running:
            return
        command = [sys.executable, __file__, "-H", "127.0.0.1", "-p", str(self.port)]
        env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(  # its own process group: stop() ends all of it
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._paused = False
        deadline = time.monotonic() + START_WAIT
        while (why := self._not_ready()) is not None:
            if self._process.poll() is not None:
                why = f"it exited with status {self._process.returncode}"
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise KmsServerUnavailableError(
                    f"moto's KMS server did not start at {self.url} ({why})\n"
                    f"  command: {' '.join(command)}\n  log {self.log}:{self._log_tail()}"
                )
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Kill the server (its whole process group). moto keeps no state: keys are gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
            if self._paused:
                os.killpg(process.pid, signal.SIGCONT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        self._paused = False

    close = stop

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open, no answer comes; keys are kept."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)
        self._paused = False

    def _not_ready(self) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as answer:  # noqa: S310
                return None if answer.status == 200 else f"HTTP {answer.status}"
        except (OSError, urllib.error.URLError) as exc:
            return str(exc)

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return " (no log)"
        return "".join(f"\n    {line}" for line in lines) or " (empty)"

    # -- clients --------------------------------------------------------------------------

    def session(self, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        """A boto3 session with these (by default dummy) credentials, in `REGION`."""
        import boto3

        return boto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION
        )

    def client(
        self,
        service: str = "kms",
        *,
        timeout: float = 5.0,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
    ) -> Any:
        """A boto3 client of this server: no botocore retries, *timeout* to connect and read."""
        from botocore.config import Config

        config = Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
        )
        session = self.session(access_key=access_key, secret_key=secret_key)
        return session.client(service, endpoint_url=self.url, config=config)

    def create_key(self, **params: Any) -> str:
        """A new symmetric encryption key; returns its ARN."""
        arn: str = self.client().create_key(**params)["KeyMetadata"]["Arn"]
        return arn

    def create_alias(self, key_arn: str) -> str:
        """A new alias (``alias/test-<random>``) of the key *key_arn*; returns its name."""
        name = f"alias/test-{secrets.token_hex(4)}"
        self.client().create_alias(AliasName=name, TargetKeyId=key_arn.rsplit("/", 1)[1])
        return name

    # -- moto's control API ---------------------------------------------------------------

    def set_iam_auth(self, enabled: bool) -> None:
        """Make moto check signatures and IAM policies of every call (or stop checking)."""
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")

    def reset(self) -> None:
        """Forget every resource (keys, IAM users) without restarting."""
        self._post("/moto-api/reset", b"")

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            json.loads(answer.read())


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _refuse_unusable_keys() -> None:
    """Make moto refuse a disabled key or one pending deletion, as AWS KMS does.

    AWS: Encrypt, Decrypt, GenerateDataKey and ReEncrypt with a key whose state is
    ``Disabled`` fail with ``DisabledException``; with ``PendingDeletion`` (and the other
    unusable states) with ``KMSInvalidStateException``. moto's GenerateDataKey and
    ReEncrypt go through its ``encrypt`` and ``decrypt``, so patching those two covers all.
    """
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend

    def check(backend: Any, key_id: str) -> None:
        key = backend.keys.get(backend.any_id_to_key_id(key_id))
        if key is None or key.key_state == "Enabled":
            return
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        state = "pending deletion" if key.key_state == "PendingDeletion" else key.key_state
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {state}.")

    encrypt, decrypt = KmsBackend.encrypt, KmsBackend.decrypt

    def checked_encrypt(self: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
        check(self, key_id)
        return encrypt(self, key_id, *args, **kwargs)

    def checked_decrypt(self: Any, *args: Any, **kwargs: Any) -> Any:
        plaintext, arn = decrypt(self, *args, **kwargs)
        check(self, arn)
        return plaintext, arn

    KmsBackend.encrypt = checked_encrypt  # type: ignore[method-assign]
    KmsBackend.decrypt = checked_decrypt  # type: ignore[method-assign]


if __name__ == "__main__":  # the server process: moto's own main(), after the patch
    _refuse_unusable_keys()
    from moto.server import main

    main(sys.argv[1:])
