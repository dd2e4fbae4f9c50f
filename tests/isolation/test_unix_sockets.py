"""Unix sockets in the filesystem are a way out of the network namespace (the Docker API is root on the
host; a database, a session bus, a key agent): inside an isolated run the agent cannot make a Unix
socket, so it cannot connect to one, whatever its path. The refusal is at once and nothing reaches the
socket's server. The benign controls in the same run work: socketpair, multiprocessing (fork and
spawn), a process pool, asyncio's subprocesses, and the request through the proxy (answered, key
injected, one audit row). Under `--no-isolate` the same agent reaches the socket (the control)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation.support import ESCAPE_TIME, SCRIPTS, UnixServer, setup_home
from tests.support.fixtures import REAL_KEY

REFUSED = ("unix_stream", "unix_dgram", "unix_seqpacket", "unix_high_bits", "io_uring")
BENIGN = {
    "socketpair_stream": "ping",
    "socketpair_dgram": "ping",
    "pool_fork": 285,
    "pool_spawn": 285,
    "process_pool_executor": 285,
    "asyncio_subprocess": "child",
    "https_through_proxy": 200,
}


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall, module_upstream


@pytest.fixture
def docker_sock(tmp_path):
    """A stand-in for /var/run/docker.sock in a folder the agent can see."""
    server = UnixServer(tmp_path / "run" / "docker.sock")
    yield server
    server.close()


def unix_escape(
    fw, server: UnixServer, upstream, out: Path, *run_args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    command = [sys.executable, str(SCRIPTS / "unix_escape.py"), str(out), str(server.path), upstream.base_url]
    done = fw.run("run", *run_args, "--", *command)
    assert out.exists(), f"the script wrote nothing (exit {done.returncode}):\n{done.stderr}"
    return done, json.loads(out.read_text())


def test_an_isolated_agent_cannot_reach_a_unix_socket(shared, docker_sock, tmp_path):
    fw, upstream = shared
    before = len(upstream.seen)
    done, results = unix_escape(fw, docker_sock, upstream, tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    for name in REFUSED:
        assert not results[name]["ok"], (name, results[name])
        assert "EPERM" in results[name]["error"], (name, results[name])
        assert results[name]["seconds"] < ESCAPE_TIME, (name, results[name])
    assert docker_sock.accepted == 0
    for name, expected in BENIGN.items():
        assert results[name]["ok"] and results[name]["detail"] == expected, (name, results[name])
    # The request through the proxy, in the same run: the real key injected upstream, audited.
    assert len(upstream.seen) == before + 1
    assert upstream.seen[before].headers["authorization"] == f"Bearer {REAL_KEY}"
    rows = fw.audit_rows_once(lambda rows: any(r["path"] == "/v1/models" for r in rows))
    assert [r for r in rows if r["path"] == "/v1/models"][-1]["decision"] == "allow"


def test_without_isolation_the_agent_reaches_the_socket(shared, docker_sock, tmp_path):
    """The control: the same script under --no-isolate talks to the stand-in's server."""
    fw, upstream = shared
    done, results = unix_escape(fw, docker_sock, upstream, tmp_path / "out.json", "--no-isolate")
    assert done.returncode == 0, done.stderr
    assert results["unix_stream"]["ok"] and "ApiVersion" in results["unix_stream"]["detail"], results
    assert docker_sock.accepted >= 1
    assert results["unix_high_bits"]["ok"], results
    if Path("/proc/sys/kernel/io_uring_disabled").read_text().strip() == "0":
        assert results["io_uring"]["ok"], results  # refused above by the filter, not by this kernel
    assert results["https_through_proxy"]["detail"] == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_cannot_reach_the_docker_api_inside(shared, docker_sock):
    """A real client of the Docker API's shape (`curl --unix-socket`): refused at once inside,
    answered under --no-isolate."""
    fw, _ = shared
    curl = ["curl", "-sS", "-m", "5", "--unix-socket", str(docker_sock.path), "http://docker/version"]
    inside = fw.run("run", "--", *curl)
    assert inside.returncode == 7, inside  # couldn't connect
    assert docker_sock.accepted == 0
    outside = fw.run("run", "--no-isolate", "--", *curl)
    assert outside.returncode == 0 and "ApiVersion" in outside.stdout, outside
    assert docker_sock.accepted == 1
