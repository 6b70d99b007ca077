"""Small HTTP(S) servers on 127.0.0.1 that misbehave on purpose, for the providers' tests.

`SlowServer` accepts every connection, reads the request, then sends one canned answer
*one byte every interval*: a socket read timeout never fires (a byte always comes in
time), so only an overall deadline stops a client that waits for the whole answer::

    with SlowServer(http_answer(b'{"data": {}}'), interval=0.5) as server:
        ...  # server.url, server.connections, server.dropped

With ``tls=`` (an ``ssl.SSLContext``, see `self_signed`) it speaks HTTPS; a client that
does not trust the certificate fails the handshake, and `connections` counts how many
times it tried. `close` ends every connection, so that a client thread still reading
from it stops too.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def http_answer(body: bytes, *, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 200 answer carrying *body* (`head_length` finds where it starts)."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def head_length(answer: bytes) -> int:
    """The length of the status line and headers of *answer*: the body comes after."""
    return answer.index(b"\r\n\r\n") + 4


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a new self-signed certificate for 127.0.0.1, and its PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


class SlowServer:
    """Answers every request with *answer*, one byte per *interval* seconds (0: at once)."""

    def __init__(
        self,
        answer: bytes,
        *,
        interval: float = 0.5,
        at_once: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self.interval = interval
        self.at_once = at_once  # bytes sent at once before the trickle (e.g. the headers)
        self.connections = 0
        self.dropped = threading.Event()  # a client closed its connection mid-answer
        self._tls = tls
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, name="slow-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> SlowServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, and end every open connection (clients reading get EOF)."""
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    # -- internals ------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._open.append(conn)
            _read_request(conn)
            if self.interval == 0:
                conn.sendall(self.answer)
                return
            conn.sendall(self.answer[: self.at_once])
            for byte in self.answer[self.at_once :]:
                if self._stop.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
        except OSError:  # includes ssl.SSLError: a client that refused the certificate
            if not self._stop.is_set():
                self.dropped.set()
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionResetError("the client closed before sending its request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionResetError("the client closed in the middle of its request")
        body += chunk
