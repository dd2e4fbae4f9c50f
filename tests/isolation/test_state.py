"""Inside an isolated run the firewall's state is out of reach: the state folder is an empty tmpfs
(with only the CA files the agent trusts), /proc holds only the sandbox's processes, a root agent
cannot unmount what hides the state, the `firewall` command cannot answer the agent's own approval,
and a nested `firewall run` refuses to start. Each with its control (`--no-isolate`, or outside)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from firewall.approvals import store
from firewall.state.db import open_database
from tests.isolation.support import SCRIPTS, setup_home


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall, module_upstream


def _peek(fw, out, *run_args):
    done = fw.run("run", *run_args, "--", sys.executable, str(SCRIPTS / "peek.py"), str(out), str(fw.home))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_state_folder_and_parents_environment_are_out_of_reach(shared, tmp_path):
    fw, _ = shared
    seen = _peek(fw, tmp_path / "isolated.json")
    assert seen["listing"] == ["run"]  # the tmpfs, with the CA files bound in
    assert sorted(os.listdir(fw.home / "run")) != ["ca-bundle.pem", "ca-cert.pem"]  # outside: more
    assert all(not isinstance(size, int) for size in seen["read"].values()), seen["read"]
    assert seen["environ_with_home"] == []
    assert len(seen["pids"]) <= 4, seen["pids"]  # bwrap's init, the agent: the sandbox's own /proc
    control = _peek(fw, tmp_path / "control.json", "--no-isolate")
    assert {"firewall.db", "vault.json", "ca"} <= set(control["listing"])
    assert isinstance(control["read"]["vault.json"], int)
    assert control["environ_with_home"], "under --no-isolate the parent's environment is readable"


def test_state_files_the_agent_needs_are_read_only(shared):
    fw, _ = shared
    bundle = fw.home / "run" / "ca-bundle.pem"
    done = fw.run("run", "--", "sh", "-c", f"head -c 27 {bundle}; echo x >> {bundle}")
    assert done.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "Read-only file system" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the unmount attempt matters for a caller that is root")
def test_a_root_agent_cannot_unmount_what_hides_the_state(shared):
    fw, _ = shared
    done = fw.run("run", "--", "sh", "-c", f"umount -l {fw.home}; ls -A {fw.home}; grep CapEff /proc/self/status")
    assert done.stdout.split()[0] == "run", done.stdout
    assert "CapEff:\t0000000000000000" in done.stdout
    assert "must be superuser" in done.stderr or "Operation not permitted" in done.stderr


def _pending_approval(fw) -> str:
    held = store.HeldRequest(
        request_id="req_isolation",
        agent="default",
        method="GET",
        url="https://localhost/held",
        rule="t:1",
        rule_text="ask GET /held",
        reason=None,
        preview="",
        body_size=0,
        fingerprint="f" * 64,
        policy_sha256="0" * 64,
        timeout=300.0,
    )
    db = open_database(fw.home / "firewall.db")
    try:
        return store.record_pending(db, held, time.time(), os.getpid()).id
    finally:
        db.close()


def _state(fw, approval_id: str) -> str:
    db = open_database(fw.home / "firewall.db")
    try:
        return store.get(db, approval_id).state
    finally:
        db.close()


def test_the_agent_cannot_answer_its_own_approval(shared):
    fw, _ = shared
    approval_id = _pending_approval(fw)
    approve = [sys.executable, "-m", "firewall", "approvals", "approve", approval_id]
    inside = fw.run("run", "--", "env", f"FIREWALL_HOME={fw.home}", *approve)
    assert inside.returncode != 0
    assert _state(fw, approval_id) == "pending"
    outside = fw.run("approvals", "approve", approval_id)  # the control: the same command, by the user
    assert outside.returncode == 0, outside.stderr
    assert _state(fw, approval_id) == "approved"


def test_a_nested_run_gets_no_new_identity(shared):
    fw, upstream = shared
    nested = [
        sys.executable,
        "-m",
        "firewall",
        "run",
        "--agent",
        "other",
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        f"{upstream.base_url}/v1/models",
    ]
    done = fw.run("run", "--", *nested)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: `firewall run` cannot start inside a `firewall run`: the sandbox holds no firewall state to run "
        "with; start the other agent from outside, next to this one"
    ]
    # Without the marker (an agent can unset it) there is still nothing to run with: it fails closed.
    bare = fw.run("run", "--", "env", "-u", "AGENT_FIREWALL_SANDBOX", f"FIREWALL_HOME={fw.home}", *nested)
    assert bare.returncode != 0 and "error:" in bare.stderr
    tokens = open_database(fw.home / "firewall.db")
    try:
        assert tokens.execute("SELECT COUNT(*) FROM agent_tokens WHERE agent = 'other'").fetchone()[0] == 0
    finally:
        tokens.close()


def test_blocked_unix_sockets_refuse_connections(tmp_path):
    """A Unix socket file `Mounts.blocked` names (the Docker API, the system bus) is /dev/null inside:
    connecting is refused. The control: the same socket, not blocked, answers from inside. This is the
    layer under the system call filter (which refuses every new Unix socket: test_unix_sockets.py), so
    both runs here leave the filter out."""
    import socket

    from firewall.run import sandbox, supervise

    path = tmp_path / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    server.settimeout(10)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    connect = [sys.executable, "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"]
    try:
        env = {"PATH": os.environ["PATH"]}
        blocked = sandbox.Mounts((), (), (), (path,))
        assert supervise.run_in(blocked, port, connect, env, syscall_filter=False) == 1
        assert supervise.run_in(sandbox.Mounts((), ()), port, connect, env, syscall_filter=False) == 0  # the control
        server.accept()[0].close()
    finally:
        server.close()
        probe.close()


def test_the_runtime_folder_hidden_is_a_private_one(tmp_path, monkeypatch):
    """$XDG_RUNTIME_DIR is hidden when it is the user's own 0700 folder; a shared one (/tmp) never."""
    from firewall.run import isolation

    private = tmp_path / "runtime"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(private))
    assert private.resolve() in isolation.runtime_dirs()
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp")
    assert Path("/tmp").resolve() not in isolation.runtime_dirs()


def test_a_key_agents_socket_is_refused_inside(shared, tmp_path):
    """An ssh-agent socket named by SSH_AUTH_SOCK would let the agent sign with the user's keys:
    connecting to it from inside is refused (the system call filter refuses the socket itself; under
    it, the socket file is /dev/null). The control: the same connection under --no-isolate."""
    import socket

    fw, _ = shared
    path = tmp_path / "ssh-agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    server.settimeout(10)
    connect = [
        sys.executable,
        "-c",
        "import os, socket; socket.socket(socket.AF_UNIX).connect(os.environ['SSH_AUTH_SOCK'])",
    ]
    try:
        isolated = fw.run("run", "--", *connect, env={"SSH_AUTH_SOCK": str(path)})
        assert isolated.returncode == 1 and "PermissionError" in isolated.stderr, isolated.stderr
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing arrived
        server.settimeout(10)
        control = fw.run("run", "--no-isolate", "--", *connect, env={"SSH_AUTH_SOCK": str(path)})
        assert control.returncode == 0, control.stderr
        server.accept()[0].close()
    finally:
        server.close()


def test_agent_sockets_are_found_from_the_environment(tmp_path):
    import socket

    from firewall.run import isolation

    path = tmp_path / "S.gpg-agent"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        env = {"SSH_AUTH_SOCK": str(path), "GPG_AGENT_INFO": f"{path}:123:1"}
        assert isolation.agent_sockets(env) == (path.resolve(),)
        plain_file = tmp_path / "not-a-socket"
        plain_file.write_text("")
        assert isolation.agent_sockets({"SSH_AUTH_SOCK": str(plain_file)}) == ()  # the control
        assert isolation.agent_sockets({"SSH_AUTH_SOCK": str(tmp_path / "gone")}) == ()
    finally:
        server.close()
