"""The Go probe: a net/http GET of one URL, built once and cached, run by the probe agent.

Compiling net/http takes seconds with a warm Go build cache and up to a minute with a cold one,
too slow for every `firewall doctor` (and `go run` would compile each time). So the binary is
built once, outside the sandbox, into the state folder's cache, keyed by the Go version and the
hash of the source below: a new Go or a changed probe builds a new one. The build needs no
network (standard library only, GOPROXY=off). The run copies the binary out of the state folder,
which the sandbox hides, next to its scratch files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BUILD_TIMEOUT = 180  # seconds: a cold build cache compiles net/http and crypto/tls

# http.Client with no Transport uses http.DefaultTransport: ProxyFromEnvironment, and on Linux
# the system roots, or SSL_CERT_FILE / SSL_CERT_DIR when set, as any Go program would.
SOURCE = """package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	client := &http.Client{Timeout: 15 * time.Second}
	response, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	fmt.Println(string(body))
}
"""


class GoProbeError(Exception):
    """The probe could not be built (the message says why)."""


def cache_key(go_version: str) -> str:
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    return f"{go_version}-{digest}"


def go_version(go: str) -> str:
    done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=30, check=False)
    version = done.stdout.strip()
    if done.returncode != 0 or not version:
        raise GoProbeError(f"`go env GOVERSION` failed: {(done.stderr.strip() or 'no output')[:200]}")
    return version


def binary(cache_dir: Path) -> Path | None:
    """The built probe, from the cache or built now; None when Go is not on PATH."""
    go = shutil.which("go")
    if go is None:
        return None
    try:
        out = cache_dir / "go-probe" / cache_key(go_version(go)) / "probe"
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GoProbeError(f"`go env GOVERSION` failed: {exc}") from exc
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="firewall-go-probe-") as work:
        (Path(work) / "main.go").write_text(SOURCE)
        env = {**os.environ, "CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "", "GO111MODULE": "off"}
        built = out.parent / f".probe-{os.getpid()}"  # same folder: the rename below is atomic
        try:
            done = subprocess.run(
                [go, "build", "-trimpath", "-o", str(built), "main.go"],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GoProbeError(f"`go build` of the probe took over {BUILD_TIMEOUT} s") from exc
        if done.returncode != 0:
            raise GoProbeError(f"`go build` of the probe failed: {done.stderr.strip()[-200:]}")
        os.replace(built, out)  # whole or not at all, for a doctor run at the same time
    return out
