"""Where the sandbox cannot be made, `firewall run` fails closed: one line naming the fix and
`--no-isolate`, the command never started, no token minted. The control: the same run with
`--no-isolate` starts the command."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation.support import setup_home

REFUSING_BWRAP = """#!/bin/sh
echo "bwrap: setting up uid map: Permission denied" >&2
exit 1
"""


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall


def _tools(directory: Path, fake_bwrap: str | None) -> str:
    """A PATH of `env`, `true` and `touch` (and a fake bwrap if given): no real bwrap on it."""
    directory.mkdir()
    for tool in ("env", "true", "touch"):
        (directory / tool).symlink_to(shutil.which(tool))
    if fake_bwrap is not None:
        (directory / "bwrap").write_text(fake_bwrap)
        (directory / "bwrap").chmod(0o755)
    return str(directory)


def _tokens(fw) -> int:
    with sqlite3.connect(fw.home / "firewall.db") as db:
        return db.execute("SELECT COUNT(*) FROM agent_tokens").fetchone()[0]


@pytest.mark.parametrize("fake_bwrap", [None, REFUSING_BWRAP], ids=["no-bwrap", "userns-refused"])
def test_run_fails_closed_without_a_sandbox(shared, tmp_path, fake_bwrap):
    fw = shared
    path = _tools(tmp_path / "bin", fake_bwrap)
    started = tmp_path / "started"
    before = _tokens(fw)
    done = fw.run("run", "--", "touch", str(started), env={"PATH": path})
    assert done.returncode == 1
    lines = done.stderr.splitlines()  # bwrap's own words are inside ours, not on a line of their own
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "--no-isolate" in lines[0]
    if fake_bwrap is None:
        assert "install it (`apt-get install bubblewrap`" in lines[0]
        assert _tokens(fw) == before  # refused before anything was stored
    else:
        assert "kernel.unprivileged_userns_clone" in lines[0] and "apparmor_restrict_unprivileged_userns" in lines[0]
    assert not started.exists()
    control = fw.run("run", "--no-isolate", "--", "touch", str(started), env={"PATH": path})
    assert control.returncode == 0, control.stderr
    assert started.exists()


# Run as root: a user namespace of its own (root mapped to root) whose limit of user namespaces
# inside it is LIMIT (user.max_user_namespaces is kept per user namespace), then the command. With 0
# the kernel refuses bwrap's user namespace (ENOSPC), as where a host sets the limit for a container.
LIMITED = 'echo "$0" > /proc/sys/user/max_user_namespaces && exec "$@"'


def _in_limited_namespace(fw, limit: int, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "firewall", *args]
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--", "sh", "-c", LIMITED, str(limit), *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=fw.env,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="sets a user namespace limit in a namespace of its own, as root")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")
def test_run_fails_closed_in_one_line_when_the_kernel_refuses_user_namespaces(shared, tmp_path):
    """The real refusal (no stand-in bwrap): bwrap's own words end up inside our one line, never on a
    line of their own before it. The controls in the same kind of namespace: with the limit left at
    10, the isolated run starts; with 0, `--no-isolate` starts the command."""
    fw = shared
    started = tmp_path / "started"
    refused = _in_limited_namespace(fw, 0, "run", "--", "touch", str(started))
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
    assert "refuses the user namespaces" in lines[0] and "ENOSPC" in lines[0], lines[0]
    assert "user.max_user_namespaces" in lines[0] and "--no-isolate" in lines[0], lines[0]
    assert not started.exists()
    isolated = _in_limited_namespace(fw, 10, "run", "--", "touch", str(started))
    assert isolated.returncode == 0 and started.exists(), isolated.stderr
    started.unlink()
    plain = _in_limited_namespace(fw, 0, "run", "--no-isolate", "--", "touch", str(started))
    assert plain.returncode == 0 and started.exists(), plain.stderr
