"""`firewall doctor` on a healthy setup, and on each broken one it claims to catch.

Each broken setup is the healthy one with one thing broken: the line for that thing fails with
its fix, the exit code is 1, and nothing in the state folder was changed by looking.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from firewall.doctor.line import Status
from firewall.doctor.probes import classify

POLICY = "default block\n"


def doctor(fw, *args: str, env: dict | None = None) -> tuple[int, dict]:
    done = fw.run("doctor", "--json", *args, env=env, timeout=300)
    return done.returncode, {line["name"]: line for line in json.loads(done.stdout)["lines"]}


@pytest.fixture
def healthy(firewall, proxy):
    firewall.add_secret("openai", "sk-proj-doctor0123456789abcdefghijkl", provider="openai")
    firewall.apply(POLICY)
    return firewall


def test_healthy_setup_passes_with_every_runtime_probed_through_the_proxy(healthy):
    code, lines = doctor(healthy)
    assert code == 0, lines
    for name in ("state folder", "vault", "policy", "proxy", "isolation", "limits store"):
        assert lines[name]["status"] == "ok", lines[name]
    found = [
        name
        for name, program in (
            ("curl", "curl"),
            ("wget", "wget"),
            ("git", "git"),
            ("node fetch", "node"),
            ("node https", "node"),
            ("python urllib", "python3"),
        )
        if shutil.which(program)
    ]
    assert found, "no runtime to probe on this machine"
    for name in found:
        assert lines[name]["status"] == "ok", lines[name]
    # The probe name was answered by the proxy itself: audited as `probe`, nothing sent upstream.
    rows = healthy.audit_rows_once(lambda rows: any(r["decision"] == "probe" for r in rows))
    probes = [r for r in rows if r["host"] == "probe.firewall.invalid"]
    assert any(r["decision"] == "probe" for r in probes)
    assert all(r["upstream_status"] is None for r in probes)
    # git (libcurl's proxy "anyauth") first sends its CONNECT without credentials: a 407, then again with them
    assert all(r["decision"] == "probe" or r["reason"] == "proxy_auth_required" for r in probes)
    assert {r["agent"] for r in probes if r["decision"] == "probe"} == {"doctor"}


def test_loose_state_folder_permissions_fail_and_are_left_as_found(healthy):
    os.chmod(healthy.home, 0o755)
    code, lines = doctor(healthy, "--no-probes")
    assert code == 1
    assert lines["state folder"]["status"] == "fail"
    assert lines["state folder"]["fix"] == f"chmod 700 {healthy.home}"
    assert stat.S_IMODE(healthy.home.stat().st_mode) == 0o755  # looking changed nothing


def test_unreadable_vault_fails(healthy):
    vault = healthy.home / "vault.json"
    vault.write_text("{ damaged")
    code, lines = doctor(healthy, "--no-probes")
    assert code == 1
    assert lines["vault"]["status"] == "fail" and "restore-backup" in lines["vault"]["fix"]
    assert vault.read_text() == "{ damaged"


def test_no_policy_fails(firewall, proxy):
    code, lines = doctor(firewall, "--no-probes")
    assert code == 1
    assert lines["policy"]["status"] == "fail"
    assert lines["policy"]["fix"] == "firewall policy apply PATH"
    assert lines["proxy"]["status"] == "ok"  # the control inside the same report


def test_proxy_not_running_fails(healthy, proxy):
    proxy.stop()
    code, lines = doctor(healthy, "--no-probes")
    assert code == 1
    assert lines["proxy"]["status"] == "fail" and lines["proxy"]["fix"] == "firewall proxy start"
    assert lines["policy"]["status"] == "ok"


def test_bwrap_missing_fails(healthy, tmp_path):
    # PATH without bwrap (the CLI itself runs by its absolute path)
    code, lines = doctor(healthy, "--no-probes", env={"PATH": str(tmp_path)})
    assert code == 1
    assert lines["isolation"]["status"] == "fail"
    assert "install" in lines["isolation"]["fix"] and "--no-isolate" in lines["isolation"]["fix"]
    code, lines = doctor(healthy, "--no-probes")  # the control: with bwrap on PATH
    assert code == 0 and lines["isolation"]["status"] == "ok", lines


def test_table_names_the_fix_of_each_failing_line(firewall):
    done = firewall.run("doctor", "--no-probes")
    assert done.returncode == 1
    assert "FAIL  policy" in done.stdout and "fix: firewall policy apply PATH" in done.stdout
    assert "FAIL  proxy" in done.stdout and "fix: firewall proxy start" in done.stdout


@pytest.mark.parametrize(
    ("name", "output", "code", "status"),
    [
        ("curl", '{"probe": "ok", "scheme": "https"}', 0, Status.OK),
        ("curl", "curl: (60) SSL certificate problem: unable to get local issuer certificate", 60, Status.FAIL),
        ("node fetch", "Error: connect ECONNREFUSED 10.0.0.1:443", 1, Status.FAIL),
        ("python certifi", "certificate verify failed: unable to get local issuer certificate", 1, Status.WARN),
        ("python httpx", "ModuleNotFoundError: No module named 'httpx'", 1, Status.SKIP),
        ("pip", "ERROR: No matching distribution found for fwprobe", 1, Status.OK),
        ("pip", "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]", 1, Status.FAIL),
        ("git", "", 0, Status.OK),
    ],
)
def test_probe_outputs_are_classified(name, output, code, status):
    line = classify({"name": name, "result": "exit", "code": code, "output": output})
    assert line.status is status, line
    assert (line.fix != "") == (status in (Status.FAIL, Status.WARN))
