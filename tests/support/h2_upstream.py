"""A local HTTP/2 upstream (TLS, ALPN h2 only), for end-to-end tests of what the proxy does with
HTTP/2 answers.

Built on the `h2` library (mitmproxy's own HTTP/2 stack). Runs in a thread on 127.0.0.1 with a
certificate from the test CA (trustme); one thread per connection, every socket with a timeout.
Every request is recorded (its headers, as the upstream got them) in `seen`, and answered with
200, a short body and trailers:

  x-echo-auth   the request's Authorization header, as is (a leaky upstream)
  x-ok          "fine"
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import trustme

TIMEOUT = 10.0


class H2Upstream:
    def __init__(self, ca: trustme.CA, directory: Path):
        cert = ca.issue_cert("localhost", "127.0.0.1")
        chain = directory / "h2-upstream.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(chain))
        self.context.set_alpn_protocols(["h2"])
        self.seen: list[dict[str, str]] = []
        self.protocols: list[str | None] = []  # the ALPN each connection agreed on
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> H2Upstream:
        thread = threading.Thread(target=self._accept, name="h2-upstream", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=TIMEOUT)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), name="h2-upstream-conn", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        try:
            with self.context.wrap_socket(sock, server_side=True) as conn:
                self.protocols.append(conn.selected_alpn_protocol())
                self._exchange(conn)
        except (OSError, ssl.SSLError):
            pass  # the proxy closed or the test ended: nothing to answer

    def _exchange(self, conn: ssl.SSLSocket) -> None:
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        requests: dict[int, dict[str, str]] = {}
        while not self._stop.is_set():
            data = conn.recv(65536)
            if not data:
                return
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self._answer(h2conn, event.stream_id, requests.pop(event.stream_id, {}))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    conn.sendall(h2conn.data_to_send())
                    return
            conn.sendall(h2conn.data_to_send())

    def _answer(self, h2conn: h2.connection.H2Connection, stream_id: int, headers: dict[str, str]) -> None:
        self.seen.append(headers)
        h2conn.send_headers(stream_id, [(":status", "200"), ("content-type", "text/plain")])
        h2conn.send_data(stream_id, b"ok\n")
        trailers = [("x-echo-auth", headers.get("authorization", "none")), ("x-ok", "fine")]
        h2conn.send_headers(stream_id, trailers, end_stream=True)
