"""Local HTTPS stand-ins for a git host and a Python package index, for real git and pip.

    GET  /git/NAME.git/info/refs?service=git-upload-pack  } git's smart HTTP protocol, answered
    POST /git/NAME.git/git-upload-pack                    } by `git http-backend` (CGI)
    GET  /simple/NAME/                                      -> a PEP 503 page linking the wheel
    GET  /packages/FILE.whl                                 -> the wheel
    HEAD /packages/FILE.whl                                 -> its headers (uv asks before a range read)
    anything else                                           -> 404

Every request is recorded as tests/support/upstream.py's `Seen`, so a test sees what reached it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.upstream import QuietHandler, Seen, https_server, serve, stop_server

PACKAGE = "fwprobe"
VERSION = "1.0"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"


@dataclass
class StandIn:
    port: int
    server: ThreadingHTTPServer
    root: Path
    seen: list[Seen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def repo_url(self) -> str:
        return f"{self.base_url}/git/probe.git"

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/simple/"

    def stop(self) -> None:
        stop_server(self.server)


def make_repo(root: Path) -> str:
    """A bare repository `root/git/probe.git` with one commit; its commit id."""
    work, bare = root / "work", root / "git" / "probe.git"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True, env=env)
    (work / "README").write_text("probe\n")
    subprocess.run([*git, "-C", str(work), "add", "README"], check=True, env=env)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "probe"], check=True, env=env)
    subprocess.run([*git, "clone", "-q", "--bare", str(work), str(bare)], check=True, env=env)
    head = subprocess.run(["git", "-C", str(bare), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return head.stdout.strip()


def make_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel of PACKAGE (one module, METADATA, WHEEL, RECORD)."""
    path = directory / WHEEL
    info = f"{PACKAGE}-{VERSION}.dist-info"
    files = {
        f"{PACKAGE}.py": b"VALUE = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _handler(ref: list[StandIn]):
    class Handler(QuietHandler):
        def _handle(self) -> None:
            body = self._read_body()
            stand_in = ref[0]
            stand_in.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            parts = urlsplit(self.path)
            if parts.path.startswith("/git/"):
                self._git(stand_in.root, parts.path[len("/git") :], parts.query, body)
            elif parts.path == f"/simple/{PACKAGE}/":
                wheel = (stand_in.root / WHEEL).read_bytes()
                link = f'<a href="/packages/{WHEEL}#sha256={hashlib.sha256(wheel).hexdigest()}">{WHEEL}</a>'
                self._send(200, "text/html", f"<!DOCTYPE html><html><body>{link}</body></html>".encode())
            elif parts.path == f"/packages/{WHEEL}":
                self._send(200, "application/octet-stream", (stand_in.root / WHEEL).read_bytes())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _git(self, root: Path, path_info: str, query: str, body: bytes) -> None:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root / "git"),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path_info,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("content-type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("content-encoding", ""),
                "GIT_PROTOCOL": self.headers.get("git-protocol", ""),
                "REMOTE_ADDR": "127.0.0.1",
            }
            done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, timeout=30)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode(errors="replace").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = _handle

    return Handler


def start_stand_in(cert_pem: str, root: Path) -> StandIn:
    """The git host and package index, with a repository and a wheel made under `root`."""
    make_repo(root)
    make_wheel(root)
    ref: list[StandIn] = []
    server = https_server(_handler(ref), cert_pem)
    stand_in = StandIn(server.server_address[1], server, root)
    ref.append(stand_in)
    serve(server)
    return stand_in
