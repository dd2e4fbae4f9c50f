"""Runtime probes: every runtime found, under one `firewall run`, against the proxy's probe name.

With a proxy running and a policy applied, the probes go through that proxy (the setup the
user has); otherwise `firewall run --policy` with a policy of `default block` starts a proxy
of its own for them (the probe name is answered before any policy, so none is needed).
Isolated when isolation works, as `firewall run` would be; otherwise --no-isolate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from firewall.doctor import codex_probe, go_probe
from firewall.doctor.line import Line, Status

RUNTIME = "runtime"
RUN_TIMEOUT = 300
CERTIFICATE = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "SSL certificate problem",
    "unable to get local issuer",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "SELF_SIGNED_CERT",
    "self-signed certificate",
    "self signed certificate",
    "server certificate verification failed",
    "Cannot verify",
    "certificate signed by unknown authority",  # Go
    "invalid peer certificate",  # uv (rustls)
)
NOT_PROXIED = (
    "Connection refused",
    "ECONNREFUSED",
    "Name or service not known",
    "Could not resolve",
    "ENOTFOUND",
    "getaddrinfo",
    "Temporary failure in name resolution",
    "unable to resolve host",
    "Network is unreachable",
    "Cannot connect to host",
    "network is unreachable",  # Go, when it looks the name up itself
    "no such host",
    "dns error",  # uv
)
# What the agent can do about each runtime, when it does not use the proxy or distrust the CA.
PROXY_FIX = {
    "node": "run Node under `firewall run` unchanged (its NODE_OPTIONS preload gives fetch and https the proxy); "
    "keep NODE_OPTIONS when you set your own",
    "python aiohttp": "create the session with aiohttp.ClientSession(trust_env=True)",
    "uv": "keep HTTPS_PROXY as `firewall run` sets it (uv reads it; check UV_* and uv.toml for a proxy of their own)",
    "go": "keep HTTPS_PROXY as `firewall run` sets it; a custom http.Transport needs Proxy: http.ProxyFromEnvironment",
    "codex": "keep HTTPS_PROXY and ALL_PROXY as `firewall run` sets them (Codex reads them)",
}
TRUST_FIX = {
    "python certifi": "a program that passes certifi.where() itself trusts only certifi's roots: let it use "
    "SSL_CERT_FILE (ssl.create_default_context()) or the truststore package",
    "wget": "keep WGETRC as `firewall run` sets it (it names the firewall's bundle)",
    "uv": "keep SSL_CERT_FILE as `firewall run` sets it (uv adds it to its roots); --native-tls is not needed",
    "go": "keep SSL_CERT_FILE as `firewall run` sets it (Go reads it on Linux); a custom tls.Config needs RootCAs "
    "from it",
    "codex": "keep CODEX_CA_CERTIFICATE and SSL_CERT_FILE as `firewall run` sets them (Codex trusts either)",
}


GO_BUILD_FIX = "check that `go build` works for a standard-library program (docs/doctor.md)"


def probe_policy(directory: Path) -> Path:
    path = directory / "doctor.policy"
    path.write_text(
        "# firewall doctor: the probe name is answered by the proxy itself; all else is refused\ndefault block\n"
    )
    return path


def run_probes(
    use_running: bool, isolate: bool, env: dict[str, str] | None = None, cache_dir: Path | None = None
) -> list[Line]:
    """Every runtime's line, from one `firewall run` of the probe agent."""
    env = dict(os.environ if env is None else env)
    go_line, go_binary = _go_probe(cache_dir)
    with tempfile.TemporaryDirectory(prefix="firewall-doctor-") as scratch:
        args = [sys.executable, "-m", "firewall", "run", "--agent", "doctor"]
        if not use_running:
            args += ["--policy", str(probe_policy(Path(scratch)))]
        if not isolate:
            args.append("--no-isolate")
        args += ["--", sys.executable, "-m", "firewall.doctor.probe_agent"]
        if go_binary is not None:  # the state folder is hidden in the sandbox: a copy beside the scratch
            args += ["--go", shutil.copy2(go_binary, Path(scratch) / "go-probe")]
        try:
            done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT, cwd=scratch)
        except subprocess.TimeoutExpired:
            return [Line(RUNTIME, "probes", Status.FAIL, f"`firewall run` gave no answer in {RUN_TIMEOUT} s", "")]
    try:
        results = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        said = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return [Line(RUNTIME, "probes", Status.FAIL, f"`firewall run` failed: {said[0]}", "fix the setup lines above")]
    lines = [classify(result) for result in results]
    return [go_line if go_line is not None and line.name == "go" else line for line in lines]


def _go_probe(cache_dir: Path | None) -> tuple[Line | None, Path | None]:
    """(a line to show instead of the probe's when the probe cannot be built, the probe binary)."""
    if cache_dir is None:
        return None, None
    try:
        return None, go_probe.binary(cache_dir)
    except (go_probe.GoProbeError, OSError) as exc:
        return Line(RUNTIME, "go", Status.WARN, f"found, but its probe was not built: {exc}", GO_BUILD_FIX), None


def classify(result: dict) -> Line:
    name, output = result["name"], result.get("output", "")
    family = "node" if name.startswith("node") else name
    if result["result"] == "missing":
        return Line(RUNTIME, name, Status.SKIP, output)
    if name == "codex":
        return classify_codex(result)
    if "ModuleNotFoundError" in output or "No module named" in output:
        return Line(RUNTIME, name, Status.SKIP, "module not installed for python3")
    if result["result"] == "timeout":
        return Line(RUNTIME, name, Status.FAIL, output, PROXY_FIX.get(family, "see docs/proxy.md"))
    answered = (
        '"probe": "ok"' in output
        or (
            name == "git" and (result.get("code") == 0 or "not valid" in output)  # the proxy's answer: no refs
        )
        or (name == "pip" and "No matching distribution" in output and "SSLError" not in output)
        # uv refuses the probe's JSON as a project page: it reached the proxy and read its answer
        or (name == "uv" and "Unsupported `Content-Type`" in output and "probe.firewall.invalid" in output)
    )
    if answered and not any(word in output for word in CERTIFICATE):
        return Line(RUNTIME, name, Status.OK, "through the proxy, trusts the firewall's CA")
    if any(word in output for word in CERTIFICATE):
        status = Status.WARN if name == "python certifi" else Status.FAIL
        return Line(
            RUNTIME,
            name,
            status,
            "through the proxy, but does not trust the firewall's CA",
            TRUST_FIX.get(name, "point its CA setting at the bundle in SSL_CERT_FILE (docs/proxy.md)"),
        )
    if any(word in output for word in NOT_PROXIED):
        return Line(
            RUNTIME,
            name,
            Status.FAIL,
            "does not use the proxy (its direct connection was refused)",
            PROXY_FIX.get(family, "make it read HTTPS_PROXY (docs/proxy.md lists clients)"),
        )
    last = output.strip().splitlines()[-1] if output.strip() else f"exit {result.get('code')}"
    return Line(RUNTIME, name, Status.FAIL, last[:200], "see docs/doctor.md")


def classify_codex(result: dict) -> Line:
    """Codex's line from codex_probe.run's result: answered, or which of the three to fix."""
    name, output = "codex", result.get("output", "")
    if result["result"] == "missing":
        return Line(RUNTIME, name, Status.SKIP, output)
    if codex_probe.PROBE_TEXT in output:
        return Line(RUNTIME, name, Status.OK, "through the proxy, trusts the firewall's CA")
    if codex_probe.REQUEST_FAILED in output:
        if codex_probe.SERVER_CERT in output:
            return Line(
                RUNTIME, name, Status.FAIL, "through the proxy, but does not trust the firewall's CA", TRUST_FIX[name]
            )
        if codex_probe.PROXIED in output:
            return Line(RUNTIME, name, Status.FAIL, "its proxy did not answer: not the firewall's", PROXY_FIX[name])
        return Line(
            RUNTIME, name, Status.FAIL, "does not use the proxy (its direct connection was refused)", PROXY_FIX[name]
        )
    if result["result"] == "timeout":
        return Line(RUNTIME, name, Status.FAIL, output.splitlines()[0], "see docs/doctor.md")
    last = output.strip().splitlines()[-1] if output.strip() else f"exit {result.get('code')}"
    return Line(RUNTIME, name, Status.FAIL, last[:200], "see docs/doctor.md")
