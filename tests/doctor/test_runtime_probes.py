"""The doctor's uv, Go and Codex lines: real probes under `firewall run` to the probe name.

Healthy: each runtime found is answered by the proxy (uv, Go) or named with its version (Codex).
Broken: the same probe under `firewall run` with one thing broken inside the run (the CA variable
pointed at a bundle of another CA, or the proxy variables removed) fails with the fix; the
control is the same probe in the same run shape with nothing broken.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import trustme

from firewall.doctor import go_probe
from firewall.doctor.line import Status
from firewall.doctor.probe_agent import uv_program
from firewall.doctor.probes import PROXY_FIX, TRUST_FIX, classify

REPO = Path(__file__).resolve().parents[2]
CODEX_BIN = REPO / ".cache" / "codex" / "node_modules" / ".bin"
NO_PROXY_VARS = ("env", *(f"-u{name}" for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")))
FOUND = {"uv": uv_program() is not None, "go": shutil.which("go") is not None}


def need(runtime: str) -> None:
    if not FOUND[runtime]:
        pytest.skip(f"{runtime} is not installed")


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory) -> str | None:
    """The probe, built once for the module (the doctor's own cache is tested below)."""
    if not FOUND["go"]:
        return None
    return str(go_probe.binary(tmp_path_factory.mktemp("go-cache")))


@pytest.fixture
def healthy(firewall, proxy):
    firewall.apply("default block\n")
    return firewall


def probe_in_run(fw, go_binary: str | None, names: list[str], *prefix: str) -> dict[str, dict]:
    """The probe agent's results for `names`, run under `firewall run` with `prefix` before it."""
    go = ["--go", go_binary] if go_binary else []
    agent = [sys.executable, "-m", "firewall.doctor.probe_agent", *go, "--only", *names]
    done = fw.run("run", "--agent", "doctor", "--", *prefix, *agent, timeout=120)
    assert done.returncode == 0, done.stderr
    return {result["name"]: result for result in json.loads(done.stdout.strip().splitlines()[-1])}


def test_doctor_probes_uv_and_go_and_names_codex_building_the_go_probe_once(healthy):
    if not any(FOUND.values()):
        pytest.skip("neither uv nor go is installed")
    env = {"PATH": f"{CODEX_BIN}{os.pathsep}{os.environ['PATH']}"} if CODEX_BIN.is_dir() else None
    done = healthy.run("doctor", "--json", env=env, timeout=300)
    lines = {line["name"]: line for line in json.loads(done.stdout)["lines"]}
    assert done.returncode == 0, lines
    for name, found in FOUND.items():
        expected = "ok" if found else "skip"
        assert lines[name]["status"] == expected, lines[name]
    if CODEX_BIN.is_dir() or shutil.which("codex"):
        assert lines["codex"]["status"] == "skip", lines["codex"]
        assert lines["codex"]["detail"].startswith("found, codex-cli "), lines["codex"]
    if FOUND["go"]:
        built = list((healthy.home / "cache" / "go-probe").glob("*/probe"))
        assert len(built) == 1, built
        first = built[0].stat().st_mtime_ns
        again = healthy.run("doctor", "--json", timeout=300)
        assert json.loads(again.stdout)["ok"], again.stdout
        assert list((healthy.home / "cache" / "go-probe").glob("*/probe")) == built
        assert built[0].stat().st_mtime_ns == first  # taken from the cache, not built again
    rows = healthy.audit_rows_once(lambda rows: any(r["path"] == "/doctor/go" for r in rows) or not FOUND["go"])
    paths = {r["path"] for r in rows if r["decision"] == "probe"}
    if FOUND["uv"]:
        assert "/doctor/uv/simple/fwprobe/" in paths
    if FOUND["go"]:
        assert "/doctor/go" in paths


@pytest.mark.parametrize("runtime", ["uv", "go"])
def test_runtime_that_distrusts_the_ca_fails_with_the_fix(healthy, go_binary, runtime, tmp_path):
    need(runtime)
    control = probe_in_run(healthy, go_binary, [runtime])[runtime]
    assert classify(control).status is Status.OK, control
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    result = probe_in_run(healthy, go_binary, [runtime], "env", f"SSL_CERT_FILE={wrong}")[runtime]
    line = classify(result)
    assert line.status is Status.FAIL, result
    assert line.detail == "through the proxy, but does not trust the firewall's CA"
    assert line.fix == TRUST_FIX[runtime] and "SSL_CERT_FILE" in line.fix


@pytest.mark.parametrize("runtime", ["uv", "go"])
def test_runtime_without_the_proxy_variables_fails_with_the_fix(healthy, go_binary, runtime):
    need(runtime)
    result = probe_in_run(healthy, go_binary, [runtime], *NO_PROXY_VARS)[runtime]
    line = classify(result)
    assert line.status is Status.FAIL, result
    assert line.detail == "does not use the proxy (its direct connection was refused)"
    assert line.fix == PROXY_FIX[runtime] and "HTTPS_PROXY" in line.fix


def test_go_probe_that_does_not_build_is_a_warning_with_the_fix(tmp_path, monkeypatch):
    from firewall.doctor.probes import _go_probe

    need("go")
    fake = tmp_path / "bin" / "go"  # a Go that answers its version but cannot build
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = env ] && { echo go0.0-doctor; exit 0; }\necho "cannot build" >&2; exit 1\n')
    fake.chmod(0o755)
    real_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{real_path}")
    line, binary = _go_probe(tmp_path / "cache")
    assert binary is None and line is not None
    assert line.status is Status.WARN and line.name == "go", line
    assert "cannot build" in line.detail and "go build" in line.fix
    assert not list((tmp_path / "cache").glob("go-probe/*/probe"))  # nothing half-built left as the probe
    monkeypatch.setenv("PATH", real_path)  # the control: the real Go
    line, binary = _go_probe(tmp_path / "cache")
    assert line is None and binary is not None and binary.is_file()


@pytest.mark.parametrize(
    ("name", "output", "code", "status"),
    [
        ("uv", 'error: Unsupported `Content-Type` "application/json" for `https://probe.firewall.invalid/x/`', 1, "ok"),
        ("uv", "cause: invalid peer certificate: UnknownIssuer", 2, "fail"),
        (
            "go",
            'Get "https://probe.firewall.invalid/doctor/go": x509: certificate signed by unknown authority',
            1,
            "fail",
        ),
        ("codex", "codex-cli 0.169.0", 0, "skip"),
    ],
)
def test_runtime_outputs_are_classified(name, output, code, status):
    line = classify({"name": name, "result": "exit", "code": code, "output": output})
    assert line.status.value == status, line
