"""The agent lives no longer than its run, and neither does its token: `kill -9` of `firewall run`
leaves no agent process (nor one it started in the background) and the proxy refuses the token
within a second, because the token's lease (the run's pid and start time) ended with it."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from firewall.state import agents
from firewall.state.db import open_database
from firewall.state.pids import Lease, held, own_lease
from tests.e2e.helpers import SCRIPTS as E2E_SCRIPTS
from tests.e2e.helpers import wait_until
from tests.isolation.support import setup_home


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall, module_upstream


def _status(proxy_url: str, bundle: Path, url: str) -> int | str:
    context = ssl.create_default_context(cafile=str(bundle))
    try:
        with httpx.Client(proxy=proxy_url, verify=context, trust_env=False, timeout=10) as client:
            return client.get(url).status_code
    except httpx.ProxyError as exc:
        return str(exc)


def _with_marker(marker: str) -> list[int]:
    """Pids of processes whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("run_args", [(), ("--no-isolate",)], ids=["isolated", "not-isolated"])
def test_kill_9_of_the_run_ends_the_agent_and_its_token(shared, tmp_path, run_args):
    fw, upstream = shared
    tag = uuid.uuid4().hex
    marker = f"agent-{tag}"
    ready, go = tmp_path / "ready.json", tmp_path / "go"
    # The agent leaves a process behind in the background, then waits (hold.py) for the test. The
    # markers are put together by the shell, so only the agent's processes hold them, not the run's.
    script = (
        f"P=agent-; R={tmp_path}/ready; "
        f"{sys.executable} -c 'import time; time.sleep(120)' ${{P}}{tag} & "
        f"exec {sys.executable} {E2E_SCRIPTS / 'hold.py'} $R.json {go} 120"
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "firewall", "run", *run_args, "--", "sh", "-c", script],
        env=fw.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent_processes = lambda: _with_marker(marker) + _with_marker(str(ready))
    try:
        assert wait_until(lambda: ready.exists() or run.poll() is not None, timeout=30) and ready.exists()
        proxy_url = json.loads(ready.read_text())["HTTPS_PROXY"]
        bundle, url = fw.home / "run" / "ca-bundle.pem", f"{upstream.base_url}/v1/models"
        assert _status(proxy_url, bundle, url) == 200  # the control: the token works while the run lives
        # the held agent and its background process (which may still be starting)
        assert wait_until(lambda: len(agent_processes()) == 2, timeout=5), agent_processes()
        os.kill(run.pid, signal.SIGKILL)
        killed = time.monotonic()
        run.wait(timeout=5)
        refused = wait_until(lambda: "407" in str(_status(proxy_url, bundle, url)), timeout=1.0, interval=0.05)
        assert refused, f"token still accepted {time.monotonic() - killed:.2f} s after kill -9"
        if not run_args:
            assert wait_until(lambda: not agent_processes(), timeout=2.0), f"left: {agent_processes()}"
        else:  # no sandbox: the direct child dies with the run, a background process it started does not
            assert wait_until(lambda: not _with_marker(str(ready)), timeout=2.0)
            assert len(_with_marker(marker)) == 1
    finally:
        go.touch()
        if run.poll() is None:
            run.kill()
        for pid in agent_processes():
            os.kill(pid, signal.SIGKILL)


def test_a_token_lives_as_long_as_its_lease(tmp_path):
    """Across a proxy restart too: the proxy's load and its refresh read tokens with this one function."""
    db = open_database(tmp_path / "state.db")
    try:
        ended = subprocess.Popen(["true"])
        ended_lease = Lease(ended.pid, None)
        ended.wait()
        cases = {
            "live": own_lease(),
            "ended": Lease(ended.pid, own_lease().started),
            "pid_reused": Lease(os.getpid(), own_lease().started - 1),  # the same pid, another process
            "no_proc_ended": ended_lease,
        }
        tokens = {name: agents.mint_token(db, "a", lease=lease) for name, lease in cases.items()}
        legacy = agents.mint_token(db, "a")  # no lease: lives until revoked, as before
        live = agents.live_tokens(db)
        assert {name for name, token in tokens.items() if agents.token_hash(token) in live} == {"live"}
        assert agents.token_hash(legacy) in live
        assert agents.agent_for_token(db, tokens["live"]) == "a"
        assert agents.agent_for_token(db, tokens["pid_reused"]) is None
        assert held(own_lease()) and not held(cases["ended"])
    finally:
        db.close()


@pytest.mark.parametrize("run_args", [(), ("--no-isolate",)], ids=["isolated", "not-isolated"])
def test_ctrl_c_reaches_the_agent_and_does_not_kill_the_sandbox(shared, tmp_path, run_args):
    """A terminal's Ctrl-C signals its whole foreground process group: the agent's own handler runs
    (bwrap ignores the signal instead of dying and taking the agent down with SIGKILL)."""
    fw, _ = shared
    ready = tmp_path / "ready"
    script = f'trap "echo interrupted; exit 7" INT; touch {ready}; while :; do sleep 0.05; done'
    run = subprocess.Popen(
        [sys.executable, "-m", "firewall", "run", *run_args, "--", "sh", "-c", script],
        env=fw.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: ready.exists() or run.poll() is not None, timeout=30) and ready.exists()
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=10)
        assert run.returncode == 7, (run.returncode, err)
        assert "interrupted" in out
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=5)
