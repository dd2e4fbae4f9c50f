"""Clients of the matrix that need more than a program on PATH: a Go binary built once from
scripts/go_client (standard library only, offline), and openai-node from the npm registry in
.cache/openai-node (scripts/test.sh installs it; so does `npm install --prefix .cache/openai-node openai`)."""

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


class OpenAINode:
    def package(self) -> Path:
        return CACHE / "openai-node" / "node_modules" / "openai"

    def missing(self) -> str | None:
        if not (self.package() / "package.json").exists():
            return "openai-node is not installed (npm install --prefix .cache/openai-node openai)"
        return None


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


go_client = GoClient()
uv_client = Uv()
openai_node = OpenAINode()
