"""A whole `firewall run` as a real user sees it: real users are not root.

As root, the suite drives every command (init, secrets, policy apply, proxy start, run, audit,
proxy stop) as the user `fwiso`, through the real CLI. The project's interpreter and checkout may
sit where that user cannot read (here: the venv's Python lives under /root, 0700), so each command
runs in a private mount namespace where /root is an empty tmpfs and only the interpreter and the
checkout are bound back in at their own paths: the user sees those and nothing else of root's.

Inside the run, the agent has no way out but the proxy (the direct attempts fail at once, nothing
arrives outside); the control in the same run gets through the proxy, answered with the real key
injected, and audited.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.isolation.support import ESCAPE_TIME, SCRIPTS, Listeners, UnixServer, escape, setup_home
from tests.isolation.test_unprivileged import USER
from tests.support.fixtures import REAL_KEY, Firewall

CHECKOUT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="not root: the whole suite already runs unprivileged"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"),
]

# Run as root in a new mount namespace (argv: a JSON list of [path, staging] pairs, then the
# command): bind each of root's paths the user needs to its staging folder, cover /root with an
# empty tmpfs, bind each path back at its own place, then exec the command (which drops to the user).
UNCOVER = """
import json, os, subprocess, sys
pairs = json.loads(sys.argv[1])
mount = lambda *args: subprocess.run(["mount", *args], check=True)
for path, staging in pairs:
    mount("--bind", path, staging)
mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "firewall-test-root", "/root")
for path, staging in pairs:
    os.makedirs(path, exist_ok=True)
    mount("--bind", staging, path)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _needs_uncovering(path: Path) -> bool:
    return path == Path("/root") or Path("/root") in path.parents


@dataclass
class UserFirewall(Firewall):
    """The real CLI bound to one state folder, every command run as USER."""

    uncovered: list[tuple[str, str]] = field(default_factory=list)

    def run(self, *args, input=None, timeout=60, env=None, check=False):
        command = [sys.executable, "-m", "firewall", *args]
        environment = {**self.env, **(env or {})}
        as_user = [shutil.which("runuser") or "runuser", "-u", USER, "--", "env", "-i"]
        as_user += [f"{name}={value}" for name, value in environment.items()]
        wrapped = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", UNCOVER]
        result = subprocess.run(
            [*wrapped, json.dumps(self.uncovered), *as_user, *command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"firewall {' '.join(args)} as {USER} exited {result.returncode}:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def user_ids() -> int:
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd/runuser are not installed")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run([shutil.which("useradd"), "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    return pwd.getpwnam(USER).pw_uid


@pytest.fixture(scope="module")
def user_firewall(user_ids, module_upstream, upstream_ca_file):
    """An initialised state folder owned by USER, a proxy USER started (trusting the test CA), the
    policy of the isolation tests applied; all stopped and removed after."""
    base = Path(tempfile.mkdtemp(prefix="fwiso-run-"))
    staging = Path(tempfile.mkdtemp(prefix="fwiso-staging-"))
    uncovered = []
    for index, path in enumerate(sorted({Path(sys.base_prefix).resolve(), CHECKOUT})):
        if _needs_uncovering(path):
            (staging / str(index)).mkdir()
            uncovered.append((str(path), str(staging / str(index))))
    ca_file = base / "upstream-ca.pem"
    shutil.copyfile(upstream_ca_file, ca_file)
    user_home = base / "user-home"
    user_home.mkdir()
    for path in (base, user_home):
        os.chown(path, user_ids, user_ids)
    base.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
    env.update({"FIREWALL_HOME": str(base / "home"), "HOME": str(user_home), "TMPDIR": str(user_home)})
    fw = UserFirewall(base / "home", env, uncovered)
    fw.run("init", check=True)
    setup_home(fw, module_upstream)
    fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), check=True)
    try:
        yield fw
    finally:
        fw.run("proxy", "stop", timeout=30)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def test_the_state_folder_and_the_proxy_belong_to_the_user(user_firewall, user_ids):
    status = user_firewall.run("proxy", "status", "--json", check=True)
    assert '"running": true' in status.stdout
    for path in (user_firewall.home, user_firewall.home / "vault.json"):
        assert path.stat().st_uid == user_ids, path


def test_a_whole_isolated_run_as_an_unprivileged_user(user_firewall, module_upstream, user_ids):
    listeners = Listeners()
    out = Path(user_firewall.env["HOME"]) / "escape.json"
    try:
        before = len(module_upstream.seen)
        done, results = escape(user_firewall, listeners, module_upstream, out)
        assert done.returncode == 0, done.stderr
        for name in ("tcp_loopback", "tcp_other_address", "dns_system_resolver", "https_direct"):
            assert not results[name]["ok"], (name, results[name])
            assert results[name]["seconds"] < ESCAPE_TIME, (name, results[name])
        assert listeners.accepted == 0
        assert listeners.datagrams(listeners.udp) == [] and listeners.datagrams(listeners.dns) == []
        # The control in the same run: through the proxy, answered with the real key injected.
        assert results["https_through_proxy"]["detail"] == 200, results["https_through_proxy"]
        assert len(module_upstream.seen) == before + 1
        assert module_upstream.seen[before].headers["authorization"] == f"Bearer {REAL_KEY}"
        assert out.stat().st_uid == user_ids  # the agent ran as the user, not as root
        rows = user_firewall.audit_rows_once(lambda rows: any(r["path"] == "/v1/models" for r in rows))
        row = [r for r in rows if r["path"] == "/v1/models"][-1]
        assert row["decision"] == "allow" and REAL_KEY not in str(row)
    finally:
        listeners.close()


def test_the_agent_cannot_read_the_users_state_folder(user_firewall):
    """Same user, same files: the sandbox hides them, the --no-isolate control shows they are there."""
    vault = str(user_firewall.home / "vault.json")
    look = [sys.executable, "-c", f"import os; print(os.path.exists({vault!r}))"]
    isolated = user_firewall.run("run", "--", *look)
    assert isolated.returncode == 0 and isolated.stdout.strip() == "False", isolated.stderr
    control = user_firewall.run("run", "--no-isolate", "--", *look)
    assert control.returncode == 0 and control.stdout.strip() == "True", control.stderr


def test_an_unprivileged_agent_cannot_reach_a_unix_socket_the_user_can(user_firewall, module_upstream, tmp_path):
    """A socket the user may connect to (a stand-in for docker.sock, mode 0777, in the user's home):
    refused at once inside, nothing arrives; the benign controls and the proxy work in the same run;
    the --no-isolate control reaches it."""
    server = UnixServer(Path(user_firewall.env["HOME"]) / "run" / "docker.sock")
    out = Path(user_firewall.env["HOME"]) / "unix.json"
    script = [sys.executable, str(SCRIPTS / "unix_escape.py"), str(out), str(server.path), module_upstream.base_url]
    try:
        done = user_firewall.run("run", "--", *script)
        assert done.returncode == 0, done.stderr
        results = json.loads(out.read_text())
        for name in ("unix_stream", "unix_dgram", "unix_seqpacket", "io_uring"):
            assert not results[name]["ok"] and "EPERM" in results[name]["error"], (name, results[name])
            assert results[name]["seconds"] < ESCAPE_TIME, (name, results[name])
        assert server.accepted == 0
        for name in ("socketpair_stream", "pool_fork", "pool_spawn", "asyncio_subprocess"):
            assert results[name]["ok"], (name, results[name])
        assert results["https_through_proxy"]["detail"] == 200, results["https_through_proxy"]
        control = user_firewall.run("run", "--no-isolate", "--", *script)
        assert control.returncode == 0, control.stderr
        results = json.loads(out.read_text())
        assert results["unix_stream"]["ok"] and "ApiVersion" in results["unix_stream"]["detail"], results
        assert server.accepted >= 1
    finally:
        server.close()
