"""The doctor's uv, Go and Codex lines: real probes under `firewall run` to the probe name.

Healthy: each runtime found is answered by the proxy. Broken: the same probe under `firewall run`
with one thing broken inside the run (the CA variables pointed at a bundle of another CA, the
proxy variables removed, or, for Codex, HTTPS_PROXY at an address that is not the proxy) fails
with the fix; the control is the same probe in the same run shape with nothing broken. The Codex
probe (the real CLI, .cache/codex) ends within its deadline whichever way it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import trustme

from firewall.doctor import codex_probe, go_probe
from firewall.doctor.line import Status
from firewall.doctor.probe_agent import uv_program
from firewall.doctor.probes import PROXY_FIX, TRUST_FIX, classify

REPO = Path(__file__).resolve().parents[2]
CODEX_BIN = REPO / ".cache" / "codex" / "node_modules" / ".bin"
NO_PROXY_VARS = ("env", *(f"-u{name}" for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")))
FOUND = {
    "uv": uv_program() is not None,
    "go": shutil.which("go") is not None,
    "codex": CODEX_BIN.is_dir() or shutil.which("codex") is not None,
}
WITH_CODEX = ("env", f"PATH={CODEX_BIN}{os.pathsep}{os.environ['PATH']}")
# Codex trusts the roots of either variable: both point at the other CA.
WRONG_CA = {"uv": ("SSL_CERT_FILE",), "go": ("SSL_CERT_FILE",), "codex": ("SSL_CERT_FILE", "CODEX_CA_CERTIFICATE")}


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
    done = fw.run("run", "--agent", "doctor", "--", *WITH_CODEX, *prefix, *agent, timeout=120)
    assert done.returncode == 0, done.stderr
    return {result["name"]: result for result in json.loads(done.stdout.strip().splitlines()[-1])}


def test_doctor_probes_uv_go_and_codex_building_the_go_probe_once(healthy):
    if not any(FOUND.values()):
        pytest.skip("neither uv nor go is installed")
    env = {"PATH": f"{CODEX_BIN}{os.pathsep}{os.environ['PATH']}"} if CODEX_BIN.is_dir() else None
    done = healthy.run("doctor", "--json", env=env, timeout=300)
    lines = {line["name"]: line for line in json.loads(done.stdout)["lines"]}
    assert done.returncode == 0, lines
    for name, found in FOUND.items():
        expected = "ok" if found else "skip"
        assert lines[name]["status"] == expected, lines[name]
    if FOUND["go"]:
        built = list((healthy.home / "cache" / "go-probe").glob("*/probe"))
        assert len(built) == 1, built
        first = built[0].stat().st_mtime_ns
        again = healthy.run("doctor", "--json", timeout=300)
        assert json.loads(again.stdout)["ok"], again.stdout
        assert list((healthy.home / "cache" / "go-probe").glob("*/probe")) == built
        assert built[0].stat().st_mtime_ns == first  # taken from the cache, not built again
    expected = {"go": "/doctor/go", "codex": "/doctor/codex/responses"}
    rows = healthy.audit_rows_once(
        lambda rows: all(any(r["path"] == path for r in rows) for name, path in expected.items() if FOUND[name])
    )
    paths = {r["path"] for r in rows if r["decision"] == "probe"}
    if FOUND["uv"]:
        assert "/doctor/uv/simple/fwprobe/" in paths
    if FOUND["codex"]:  # one turn, nothing else of Codex's (no plugin sync, no update check)
        assert [(r["method"], r["path"]) for r in rows if r["host"] != "probe.firewall.invalid"] == []
        assert "/doctor/codex/responses" in paths
    if FOUND["go"]:
        assert "/doctor/go" in paths


@pytest.mark.parametrize("runtime", ["uv", "go", "codex"])
def test_runtime_that_distrusts_the_ca_fails_with_the_fix(healthy, go_binary, runtime, tmp_path):
    need(runtime)
    control = probe_in_run(healthy, go_binary, [runtime])[runtime]
    assert classify(control).status is Status.OK, control
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    variables = [f"{name}={wrong}" for name in WRONG_CA[runtime]]
    result = probe_in_run(healthy, go_binary, [runtime], "env", *variables)[runtime]
    line = classify(result)
    assert line.status is Status.FAIL, result
    assert line.detail == "through the proxy, but does not trust the firewall's CA"
    assert line.fix == TRUST_FIX[runtime] and all(name in line.fix for name in WRONG_CA[runtime])
    within_deadline(runtime, result)


@pytest.mark.parametrize("runtime", ["uv", "go", "codex"])
def test_runtime_without_the_proxy_variables_fails_with_the_fix(healthy, go_binary, runtime):
    need(runtime)
    result = probe_in_run(healthy, go_binary, [runtime], *NO_PROXY_VARS)[runtime]
    line = classify(result)
    assert line.status is Status.FAIL, result
    assert line.detail == "does not use the proxy (its direct connection was refused)"
    assert line.fix == PROXY_FIX[runtime] and "HTTPS_PROXY" in line.fix
    within_deadline(runtime, result)


def test_codex_with_a_proxy_that_is_not_the_firewalls_fails_with_the_fix(healthy):
    need("codex")
    elsewhere = [f"{name}=http://127.0.0.1:9" for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")]
    result = probe_in_run(healthy, None, ["codex"], "env", *elsewhere)["codex"]
    line = classify(result)
    assert line.status is Status.FAIL, result
    assert line.detail == "its proxy did not answer: not the firewall's"
    assert line.fix == PROXY_FIX["codex"] and "HTTPS_PROXY" in line.fix
    within_deadline("codex", result)


def within_deadline(runtime: str, result: dict) -> None:
    """Codex's probe stops at its first telling line: well before its deadline, never past it."""
    if runtime == "codex":
        assert result["seconds"] < codex_probe.DEADLINE, result


def gone_within(pid: int, seconds: float) -> bool:
    """The process has exited (or is a zombie) within `seconds` (a killed one takes a moment to go)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_codex_probe_that_hangs_is_killed_at_its_deadline(tmp_path):
    """A Codex that says nothing (as one waiting on the network) is stopped with its process group
    at the deadline, and the line says so; the control, a Codex that answers, is not waited for."""
    hangs = tmp_path / "codex-hangs"
    pid_file = tmp_path / "sleeper.pid"
    hangs.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {pid_file}\nwait\n")
    hangs.chmod(0o755)
    started = time.monotonic()
    result = codex_probe.run(str(hangs), "https://probe.firewall.invalid/doctor", deadline=2)
    assert time.monotonic() - started < 6, result
    assert result["result"] == "timeout" and "no answer within 2 s" in result["output"], result
    line = classify(result)
    assert line.status is Status.FAIL and line.detail.startswith("no answer within 2 s"), line
    sleeper = int(pid_file.read_text())
    assert gone_within(sleeper, 5.0), "the probe left Codex's children running"
    answers = tmp_path / "codex-answers"
    answers.write_text(
        f'#!/bin/sh\necho \'{{"type":"item.completed","text":"{codex_probe.PROBE_TEXT}"}}\'\nsleep 600\n'
    )
    answers.chmod(0o755)
    started = time.monotonic()
    result = codex_probe.run(str(answers), "https://probe.firewall.invalid/doctor", deadline=20)
    assert time.monotonic() - started < 6, result
    assert classify(result).status is Status.OK, result


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
        (
            "codex",
            '{"type":"item.completed","item":{"type":"agent_message","text":"firewall doctor probe: ok"}}',
            None,
            "ok",
        ),
        (
            "codex",
            "Server cert is [...]\nRequest failed method=POST url=https://probe.firewall.invalid/x is_connect=true",
            None,
            "fail",
        ),
    ],
)
def test_runtime_outputs_are_classified(name, output, code, status):
    line = classify({"name": name, "result": "exit", "code": code, "output": output})
    assert line.status.value == status, line
