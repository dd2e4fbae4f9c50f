"""Where a proxy process listens, when it is not mitmproxy's own bind of 127.0.0.1:port.

- `listen_on_inherited`: on a socket the starting process bound and passed down
  (`firewall run`, so the agent can start before the proxy is up);
- `listen_sharing_port`: on a socket of its own bound with SO_REUSEPORT, one per worker of
  a proxy of several (supervisor.py): the kernel spreads new connections over the workers
  by a hash of each connection's addresses, so no worker takes all the connections that
  queued while it was busy, as it would from one shared socket (asyncio accepts up to its
  backlog at each wake-up).

mitmproxy has no option for either, so its regular-mode listener is told to take the
socket instead of binding one.
"""

from __future__ import annotations

import asyncio
import errno
import socket


def listen_on_inherited(fd: int) -> int:
    """Serve on a listening socket bound by the process that started this one; return its port."""
    sock = socket.socket(fileno=fd)
    _serve_on(sock)
    return sock.getsockname()[1]


def reuse_port_socket(port: int, listen: bool) -> socket.socket:
    """A socket on 127.0.0.1:`port` (0: any free port) that shares its port (SO_REUSEPORT).

    The supervisor holds one bound but not listening: it keeps the port while workers come
    and go, and gets no connections (only listening sockets do)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if listen:  # not the holder: a bound, not listening socket with SO_REUSEADDR would keep others off
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        if listen:
            sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def port_in_use(port: int) -> bool:
    """Does another socket hold 127.0.0.1:`port` (a proxy of another state folder, say)? A socket
    with SO_REUSEPORT alone would share it with one of the same user, so look first without."""
    if port == 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def listen_sharing_port(port: int) -> None:
    """Serve on a socket of this process's own on `port`, shared with the other workers."""
    _serve_on(reuse_port_socket(port, listen=True))


def _serve_on(sock: socket.socket) -> None:
    from mitmproxy.proxy import mode_servers

    port = sock.getsockname()[1]
    bind = mode_servers.RegularInstance.listen

    async def listen(instance, host, listen_port):
        if sock.fileno() >= 0 and (host, listen_port) == ("127.0.0.1", port):
            return [await asyncio.start_server(instance.handle_stream, sock=sock)]
        return await bind(instance, host, listen_port)

    mode_servers.RegularInstance.listen = listen
