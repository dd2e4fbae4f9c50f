"""Runtime probes: every runtime found, under one `firewall run`, against the proxy's probe name.

With a proxy running and a policy applied, the probes go through that proxy (the setup the
user has); otherwise `firewall run --policy` with a policy of `default block` starts a proxy
of its own for them (the probe name is answered before any policy, so none is needed).
Isolated when isolation works, as `firewall run` would be; otherwise --no-isolate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

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
)
# What the agent can do about each runtime, when it does not use the proxy or distrust the CA.
PROXY_FIX = {
    "node": "run Node under `firewall run` unchanged (its NODE_OPTIONS preload gives fetch and https the proxy); "
    "keep NODE_OPTIONS when you set your own",
    "python aiohttp": "create the session with aiohttp.ClientSession(trust_env=True)",
}
TRUST_FIX = {
    "python certifi": "a program that passes certifi.where() itself trusts only certifi's roots: let it use "
    "SSL_CERT_FILE (ssl.create_default_context()) or the truststore package",
    "wget": "keep WGETRC as `firewall run` sets it (it names the firewall's bundle)",
}


def probe_policy(directory: Path) -> Path:
    path = directory / "doctor.policy"
    path.write_text(
        "# firewall doctor: the probe name is answered by the proxy itself; all else is refused\ndefault block\n"
    )
    return path


def run_probes(use_running: bool, isolate: bool, env: dict[str, str] | None = None) -> list[Line]:
    """Every runtime's line, from one `firewall run` of the probe agent."""
    env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="firewall-doctor-") as scratch:
        args = [sys.executable, "-m", "firewall", "run", "--agent", "doctor"]
        if not use_running:
            args += ["--policy", str(probe_policy(Path(scratch)))]
        if not isolate:
            args.append("--no-isolate")
        args += ["--", sys.executable, "-m", "firewall.doctor.probe_agent"]
        try:
            done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT, cwd=scratch)
        except subprocess.TimeoutExpired:
            return [Line(RUNTIME, "probes", Status.FAIL, f"`firewall run` gave no answer in {RUN_TIMEOUT} s", "")]
    try:
        results = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        said = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return [Line(RUNTIME, "probes", Status.FAIL, f"`firewall run` failed: {said[0]}", "fix the setup lines above")]
    return [classify(result) for result in results]


def classify(result: dict) -> Line:
    name, output = result["name"], result.get("output", "")
    family = "node" if name.startswith("node") else name
    if result["result"] == "missing":
        return Line(RUNTIME, name, Status.SKIP, output)
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
