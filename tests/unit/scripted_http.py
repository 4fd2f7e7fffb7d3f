"""A real HTTP server on 127.0.0.1 whose answers a test scripts, for the health_gate tests."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Reply:
    """What the scripted server answers to one request."""

    status: int = 200
    body: Any = b""  # bytes, str, or anything else, which is sent as JSON
    delay: float = 0.0  # seconds before anything is sent
    byte_pause: float = 0.0  # seconds between bytes of the body, to trickle it

    def body_bytes(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


# The script gets the 0-based number of the request and the seconds since the server started.
Script = Callable[[int, float], Reply]


@dataclass
class RequestSeen:
    path: str
    headers: dict[str, str]


class _ScriptedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], script: Script) -> None:
        super().__init__(address, _ScriptedHandler)
        self.script = script
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[RequestSeen] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients give up on slow replies on purpose; a broken pipe here is expected.
        pass


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: _ScriptedHTTPServer

    def do_GET(self) -> None:
        with self.server.lock:
            number = len(self.server.requests)
            self.server.requests.append(RequestSeen(self.path, dict(self.headers.items())))
        reply = self.server.script(number, time.monotonic() - self.server.started)
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        body = reply.body_bytes()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not reply.byte_pause:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if self.server.stopping.wait(reply.byte_pause):
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering as its script says."""

    httpd: _ScriptedHTTPServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str = "/ready") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[RequestSeen]:
        with self.httpd.lock:
            return list(self.httpd.requests)

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    """Return a port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_scripted_server(script: Script, port: int = 0, tls: ssl.SSLContext | None = None) -> ScriptedServer:
    """Serve ``script`` on 127.0.0.1 (an ephemeral port unless ``port`` is given) until ``stop()``;
    over HTTPS when ``tls`` is a server context."""
    httpd = _ScriptedHTTPServer(("127.0.0.1", port), script)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return ScriptedServer(httpd, thread)


def self_signed_server_context(directory: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rollgate-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / "server.crt", directory / "server.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate_file, key_file)
    return context
