"""Listeners outside the sandbox that count what reaches them, and the policy the isolation tests apply."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.fixtures import REAL_KEY

SCRIPTS = Path(__file__).parent / "scripts"
ESCAPE_TIME = 2.0  # a refused way out fails at once; a timeout would mean packets went somewhere

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    allow GET /v1/models
}}
"""


def setup_home(fw, upstream) -> None:
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(POLICY.format(port=upstream.port))


class Listeners:
    """A TCP listener (v4 and v6 on one port), and two UDP sockets (a peer, a DNS resolver) on loopback."""

    def __init__(self):
        self.tcp = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        self.tcp_port = self.tcp.getsockname()[1]
        self.accepted = 0
        self.udp = self._udp()
        self.dns = self._udp()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @staticmethod
    def _udp() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    @property
    def dns_port(self) -> int:
        return self.dns.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    @staticmethod
    def datagrams(sock: socket.socket) -> list[bytes]:
        received = []
        while True:
            try:
                received.append(sock.recv(4096))
            except BlockingIOError:
                return received

    def close(self) -> None:
        for sock in (self.tcp, self.udp, self.dns):
            sock.close()


class UnixServer:
    """A Unix stream socket answering like the Docker API (`GET /version`), counting connections.
    Open to every user (0777 socket in a 0755 folder), like a socket a user is allowed to reach."""

    ANSWER = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"ApiVersion":"1.43"}\n'

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        self.path = path
        self.accepted = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        path.chmod(0o777)
        self.sock.listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(4096)
                    conn.sendall(self.ANSWER)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.sock.close()


def escape(
    fw, listeners: Listeners, upstream, out: Path, *run_args: str, python: str = sys.executable
) -> tuple[subprocess.CompletedProcess, dict]:
    """scripts/escape.py under `firewall run RUN_ARGS`: (the run, the script's results)."""
    command = [
        python,
        str(SCRIPTS / "escape.py"),
        str(out),
        str(listeners.tcp_port),
        str(listeners.udp_port),
        str(listeners.dns_port),
        upstream.base_url,
    ]
    done = fw.run("run", *run_args, "--", *command)
    assert out.exists(), f"the script wrote nothing (exit {done.returncode}):\n{done.stderr}"
    return done, json.loads(out.read_text())


def node() -> str | None:
    return shutil.which("node")
