"""`firewall run`'s side of the sandbox's only way out: each connection accepted on the
listener made inside the sandbox is joined to a new connection to the proxy.

Two threads per connection, each copying one direction and passing a half-close on,
so a client that shuts down its sending side still reads the whole answer.
"""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger("firewall.run")
CHUNK = 256 * 1024


class Relay:
    def __init__(self, listener: socket.socket, proxy: tuple[str, int]):
        self.listener = listener
        self.proxy = proxy
        self._thread = threading.Thread(target=self._accept, name="firewall-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed: the run is over
            threading.Thread(target=self._join, args=(client,), daemon=True).start()

    def _join(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.proxy, timeout=10)
        except OSError as exc:
            log.warning("cannot reach the proxy at %s:%s: %s", *self.proxy, exc)
            client.close()
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        back.start()
        _copy(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        # One side reset: reset both, so neither end waits for bytes that will not come.
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
