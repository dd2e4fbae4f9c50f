"""What the adversarial corpus needs: agent credentials, raw clients, and a hostile upstream.

Every attack goes through the real proxy (started by the real CLI) to local
servers on 127.0.0.1; nothing here reaches the internet. Raw clients speak
exactly the bytes a case gives them, so a malformed request reaches the
proxy as malformed as it was written.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from firewall.state import agents
from firewall.state.db import open_database
from tests.support.fixtures import Firewall
from tests.support.upstream import QuietHandler, Seen, Upstream, https_server, serve, ws_accept, ws_frame

TIMEOUT = 10.0


def mint_token(fw: Firewall, agent: str) -> str:
    """A live proxy token for `agent`, made the way `firewall run` makes one."""
    db = open_database(fw.home / "firewall.db")
    try:
        return agents.mint_token(db, agent)
    finally:
        db.close()


def basic(agent: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{agent}:{token}".encode()).decode()


def proxy_ca(fw: Firewall) -> Path:
    """The proxy's public CA certificate, as agents get it."""
    return fw.home / "run" / "ca-cert.pem"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> dict:
        return json.loads(self.body)["error"]


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """`n` bytes from `sock`; fails, never spins, when the other side closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def read_head(sock: socket.socket, limit: int = 65536) -> bytes:
    """An HTTP response head, through the blank line that ends it."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        assert len(head) < limit, f"no end of the head in {limit} bytes"
        head += recv_exactly(sock, 1)
    return head


def read_reply(sock: socket.socket, method: str = "GET") -> Reply:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def read_connect_reply(sock: socket.socket) -> Reply:
    """The proxy's answer to CONNECT: headers byte by byte (the tunnel starts right after them)."""
    head = read_head(sock)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = recv_exactly(sock, int(headers.get("content-length", 0)))
    return Reply(int(status_line.split()[1]), headers, body)


@dataclass
class Agent:
    """One agent's way into the proxy: its credentials and raw-socket clients."""

    proxy_port: int
    name: str
    token: str
    ca: Path

    @property
    def auth(self) -> str:
        return basic(self.name, self.token)

    def connect(self, target: str, *, auth: str | None = "default") -> tuple[socket.socket, Reply | None]:
        """A CONNECT tunnel to `target`; the proxy's answer if it was not 200."""
        sock = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=TIMEOUT)
        auth = self.auth if auth == "default" else auth
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if auth:
            head += f"Proxy-Authorization: {auth}\r\n"
        sock.sendall((head + "\r\n").encode("utf-8", "surrogateescape"))
        reply = read_connect_reply(sock)
        if reply.status != 200:
            sock.close()
            return sock, reply
        return sock, None

    def tls(
        self, target: str, *, sni: str | None = None, alpn: list[str] | None = None, auth: str | None = "default"
    ) -> ssl.SSLSocket:
        """A TLS connection through a CONNECT tunnel, trusting only the proxy's CA."""
        sock, refused = self.connect(target, auth=auth)
        assert refused is None, f"CONNECT {target} was refused: {refused}"
        context = ssl.create_default_context(cafile=str(self.ca))
        context.check_hostname = False  # some cases send an SNI on purpose that names no real host
        if alpn:
            context.set_alpn_protocols(alpn)
        return context.wrap_socket(sock, server_hostname=sni or target.rsplit(":", 1)[0].strip("[]"))

    def https(self, target: str, raw_request: bytes, *, sni: str | None = None, method: str = "GET") -> Reply:
        """Send `raw_request` byte for byte inside a TLS tunnel to `target`; read one reply."""
        with self.tls(target, sni=sni) as conn:
            conn.sendall(raw_request)
            return read_reply(conn, method)

    def plain(self, raw_request: bytes, *, method: str = "GET") -> Reply:
        """Send `raw_request` (absolute-form, plain HTTP) straight to the proxy."""
        with socket.create_connection(("127.0.0.1", self.proxy_port), timeout=TIMEOUT) as sock:
            sock.sendall(raw_request)
            return read_reply(sock, method)


def request_bytes(
    method: str,
    target: str,
    host: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    auth: str | None = None,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


# ---- a hostile upstream: echoes what it got in ways that leak, compresses, redirects ----


class HostileUpstream(Upstream):
    """HTTPS on 127.0.0.1. Endpoints (all record what they got in `seen`):

    /echo              the request's headers and body as JSON (Authorization included)
    /error             401 whose body and `WWW-Authenticate` quote the Authorization header
    /basic             the Authorization value base64-encoded, at offsets 0, 1, 2
    /gzip              /echo, gzip-compressed whatever Accept-Encoding said
    /brotli-lie        claims `Content-Encoding: br` but sends bytes that are not brotli
    /split?at=N        the Authorization value in a chunked body, cut after N of its bytes,
                       the two chunks sent 0.2 s apart
    /sse               server-sent events echoing the Authorization value in the 2nd event
    /redirect?to=URL   302 to URL
    /ws                a WebSocket whose first message quotes the Authorization header
    /reason            401 whose status line's reason phrase quotes the Authorization header
    /trailer           a chunked body with a trailer quoting the Authorization header
    /quoted            the Authorization value as `quote()` writes it, and with JSON \\u00XX escapes
    anything else      200 {"ok": true}
    """


def _hostile_handler(ref: list[HostileUpstream]):
    class Handler(QuietHandler):
        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _chunks(self, chunks: list[bytes], gap: float, content_type: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(gap)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _handle(self) -> None:
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            ref[0].seen.append(Seen(self.command, self.path, headers, body))
            path, _, query = self.path.partition("?")
            auth = headers.get("authorization", "").encode()
            echo = json.dumps(
                {"method": self.command, "path": self.path, "headers": headers, "body": body.decode(errors="replace")}
            ).encode()
            if path == "/echo":
                self._send(200, echo, {"content-type": "application/json", "x-echo-auth": auth.decode()})
            elif path == "/error":
                self._send(
                    401,
                    b"invalid credentials: " + auth + b" was rejected",
                    {"www-authenticate": f'Bearer error="invalid_token", got="{auth.decode()}"'},
                )
            elif path == "/basic":
                self._send(200, b"\n".join(base64.b64encode(b"x" * n + auth) for n in range(3)))
            elif path == "/gzip":
                self._send(200, gzip.compress(echo), {"content-encoding": "gzip", "content-type": "application/json"})
            elif path == "/brotli-lie":
                self._send(200, b"not brotli at all: " + auth, {"content-encoding": "br"})
            elif path == "/split":
                at = int(query.partition("=")[2] or 10)
                self._chunks([b"before " + auth[:at], auth[at:] + b" after"], 0.2)
            elif path == "/sse":
                self._chunks(
                    [b"data: one\n\n", b"data: " + auth + b"\n\n", b"data: [DONE]\n\n"], 0.1, "text/event-stream"
                )
            elif path == "/reason":
                self.send_response(401, "rejected " + auth.decode())
                self.send_header("content-length", "0")
                self.end_headers()
            elif path == "/trailer":
                self.send_response(200)
                self.send_header("transfer-encoding", "chunked")
                self.send_header("trailer", "x-echo-auth")
                self.end_headers()
                self.wfile.write(b"2\r\nok\r\n0\r\nx-echo-auth: " + auth + b"\r\n\r\n")
            elif path == "/quoted":
                escaped = "".join(f"\\u{ord(c):04x}" if c in "sk-" else c for c in auth.decode())
                self._send(200, quote(auth.decode()).encode() + b"\n" + escaped.encode())
            elif path == "/redirect":
                self._send(302, b"", {"location": query.partition("=")[2]})
            elif path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
                self.send_response(101)
                self.send_header("upgrade", "websocket")
                self.send_header("connection", "Upgrade")
                self.send_header("sec-websocket-accept", ws_accept(headers["sec-websocket-key"]))
                self.end_headers()
                self.wfile.write(ws_frame(0x1, b"you sent " + auth))
                self.wfile.write(ws_frame(0x8, b"\x03\xe8"))
                self.wfile.flush()
                self.close_connection = True
            else:
                self._send(200, b'{"ok": true}', {"content-type": "application/json"})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    return Handler


@contextmanager
def hostile_upstream(ca, directory: Path):
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = directory / "hostile.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    ref: list[HostileUpstream] = []
    server = https_server(_hostile_handler(ref), str(pem))
    upstream = HostileUpstream(server.server_address[1], server)
    ref.append(upstream)
    serve(server)
    try:
        yield upstream
    finally:
        upstream.stop()


@contextmanager
def tcp_sink():
    """A plain TCP server that records every byte it receives (for tunnels that must carry nothing)."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.5)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                try:
                    while data := conn.recv(4096):
                        received.append(data)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def h2_exchange(
    conn: ssl.SSLSocket,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    validate: bool = True,
    trailers: list[tuple[str, str]] | None = None,
    received_trailers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int | None, bytes]:
    """One HTTP/2 request on `conn` (ALPN h2 already agreed): (status or None if the proxy reset
    or closed instead of answering, body). `validate=False` sends headers the h2 library would refuse;
    `trailers` end the request after the body; the answer's trailers go to `received_trailers`."""
    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=validate, normalize_outbound_headers=validate
    )
    h2conn = h2.connection.H2Connection(config)
    h2conn.initiate_connection()
    h2conn.send_headers(1, headers, end_stream=not body and not trailers)
    for start in range(0, len(body), 16384):  # the peer's default largest frame
        h2conn.send_data(1, body[start : start + 16384], end_stream=start + 16384 >= len(body) and not trailers)
    if trailers:
        h2conn.send_headers(1, trailers, end_stream=True)
    conn.sendall(h2conn.data_to_send())
    status, data = None, b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return status, data
        for event in h2conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                data += event.data
                h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived) and received_trailers is not None:
                received_trailers.extend(event.headers)
                return status, data  # trailers end the stream
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                return status, data
        conn.sendall(h2conn.data_to_send())
