"""Where the sandbox cannot be made, `firewall run` fails closed: one line naming the fix and
`--no-isolate`, the command never started, no token minted. The control: the same run with
`--no-isolate` starts the command."""

from __future__ import annotations

import shutil
import sqlite3
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
    lines = [line for line in done.stderr.splitlines() if not line.startswith("bwrap:")]
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
