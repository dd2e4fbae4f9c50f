"""The sandbox as a real user sees it: real users are not root. As root, the suite creates a user
(`fwiso`) and runs the sandbox's core as that user: through the proxy's address it reaches the
stand-in proxy (the control), a loopback listener outside is refused, the hidden state folder is
empty but for the bound CA file, and no process shows the parent's environment.

The core (firewall/run: sandbox, netns, relay, supervise) is standard library only, so this runs
with any python3 the user can execute; the project's own interpreter may sit where that user
cannot read (here: under /root)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.isolation.support import SCRIPTS

USER = "fwiso"
WORKTREE = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="not root: the whole suite already runs unprivileged")


def _as_user(*command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("runuser") or "runuser", "-u", USER, "--", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"},
    )


@pytest.fixture(scope="module")
def user_python() -> str:
    """A python3 (3.8+) the test user can run: the suite's own if it can, else the system's."""
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd/runuser are not installed")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run([shutil.which("useradd"), "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    for candidate in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if candidate and _as_user(candidate, "-c", "import sys; assert sys.version_info >= (3, 8)").returncode == 0:
            return candidate
    pytest.skip(f"no python3 that user {USER} can run")


def test_sandbox_core_as_an_unprivileged_user(user_python):
    state = Path(tempfile.mkdtemp(prefix="fwiso-state-"))
    outside = socket.create_server(("127.0.0.1", 0))
    try:
        (state / "vault.json").write_text("secret")
        (state / "ca.pem").write_text("ca")
        uid = pwd.getpwnam(USER).pw_uid
        for path in (state, state / "vault.json", state / "ca.pem"):
            os.chown(path, uid, uid)
        state.chmod(0o700)
        done = _as_user(
            user_python, str(SCRIPTS / "sandbox_core.py"), str(WORKTREE), str(state), str(outside.getsockname()[1])
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["uid"] == uid  # the same user inside, not root
        assert report["proxy"] == "proxy-ok"  # the control: the relay reaches the stand-in proxy
        assert report["outside"] == "ConnectionRefusedError"
        assert report["state"] == ["ca.pem"]
        assert report["parent_env"] == []
    finally:
        outside.close()
        shutil.rmtree(state, ignore_errors=True)
