"""A webhook receiver over a real socket on loopback (DESIGN §11's tests): records every
request (method, path, headers, exact body bytes) and answers as told: a status, a redirect,
a delay, a long body; optionally over TLS with a self-signed certificate for ``localhost``
(``self_signed``), so delivery's SNI and certificate check run for real."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.budgets.signing import verify


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    sni: str | None

    def signed_by(self, secret: str) -> bool:
        return verify(self.body, secret, self.headers.get("x-apex-signature", ""))


@dataclass
class Behaviour:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Bytes of response body to send (in 64 KiB writes); how many went out is recorded.
    body_bytes: int = 0


class Receiver:
    def __init__(self, server: ThreadingHTTPServer, scheme: str) -> None:
        self._server = server
        self.scheme = scheme
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.body_sent: list[int] = []  # per request: response body bytes written
        self.lock = threading.Lock()
        self.sni: str | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self.lock:
            return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(
                        "POST",
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        receiver.sni,
                    )
                )
            behaviour = receiver.behaviour
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)
            self.send_response(behaviour.status)
            for name, value in behaviour.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(behaviour.body_bytes))
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < behaviour.body_bytes:
                    piece = chunk[: behaviour.body_bytes - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            except OSError:
                pass  # the client stopped reading: what the test looks for
            with receiver.lock:
                receiver.body_sent.append(sent)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (an OS port), over TLS if ``tls`` is given."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    made = Receiver(server, "https" if tls is not None else "http")
    server.RequestHandlerClass = _handler(made)
    if tls is not None:

        def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            made.sni = name

        tls.sni_callback = remember_sni
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class SelfSigned:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only (the hostname still checked)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def self_signed(directory: Path, name: str = "localhost") -> SelfSigned:
    """A certificate for ``name`` (and 127.0.0.1), signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSigned(cert_file, key_file)
