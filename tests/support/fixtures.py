"""Fixtures for end-to-end tests: a state folder, a local HTTPS upstream, the real CLI, a real proxy.

Registered for every test by tests/conftest.py. Nothing here touches the
internet: the upstream is a thread on 127.0.0.1 with a trustme certificate.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.upstream import Upstream, start_upstream

REAL_KEY = "sk-proj-REALKEY0123456789abcdefghijklmnopqrstuv"
APPLIED = re.compile(r"^applied: version (\d+) ", re.MULTILINE)


@dataclass
class Firewall:
    """The real `firewall` CLI bound to one state folder."""

    home: Path
    env: dict[str, str]

    def run(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60,
        env: dict | None = None,
        check: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "firewall", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"firewall {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def add_secret(self, name: str, value: str, provider: str = "generic") -> None:
        self.run("secrets", "add", name, "--provider", provider, "--stdin", input=value + "\n", check=True)

    def write_policy(self, name: str, text: str) -> Path:
        path = self.home.parent / name
        path.write_text(text)
        return path

    def apply(self, text: str, name: str = "test.policy") -> subprocess.CompletedProcess:
        """Apply a policy; if the shared proxy runs, return once its log says the new version is in force
        (its watcher polls every 200 ms, which a loaded machine can stretch)."""
        result = self.run("policy", "apply", str(self.write_policy(name, text)), check=True)
        applied = APPLIED.search(result.stdout)
        if applied and self.shared_proxy_runs():
            workers = self.shared_proxy_workers()  # each worker of the proxy loads it (proxy start --workers)
            self.wait_for_proxy_log(
                lambda lines: sum(f"policy version {applied[1]} (" in line for line in lines) >= workers
            )
        return result

    def shared_proxy_workers(self) -> int:
        try:
            return len(json.loads((self.home / "run" / "proxy.json").read_text()).get("workers", ())) or 1
        except (OSError, ValueError):
            return 1

    def shared_proxy_runs(self) -> bool:
        try:
            os.kill(int(json.loads((self.home / "run" / "proxy.json").read_text())["pid"]), 0)
        except (OSError, ValueError, KeyError):
            return False
        return True

    def proxy_log(self) -> list[str]:
        """The shared proxy's log (every proxy this state folder started in the background), line by line."""
        path = self.home / "run" / "proxy.log"
        return path.read_text().splitlines() if path.exists() else []

    def wait_for_proxy_log(self, ready: Callable[[list[str]], object], timeout: float = 10.0) -> None:
        poll(self.proxy_log, ready, timeout, "the proxy log")

    def audit_rows(self) -> list[dict]:
        result = self.run("audit", "--json", "--limit", "1000000", check=True)
        return json.loads(result.stdout)

    def audit_rows_once(self, ready: Callable[[list[dict]], object], timeout: float = 10.0) -> list[dict]:
        """The audit rows, once `ready(rows)` holds: a running proxy writes them in batches."""
        return poll(self.audit_rows, ready, timeout, "audit rows")


def poll(read: Callable[[], list], ready: Callable[[list], object], timeout: float, what: str) -> list:
    """`read()` again every 0.1 s until `ready` holds for what it returns; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready(items := read()):
        assert time.monotonic() < deadline, f"{what} not as expected within {timeout} s; last: {items[-3:]}"
        time.sleep(0.1)
    return items


def make_firewall(home: Path) -> Firewall:
    """A fresh, initialised state folder at `home`, driven through the real CLI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
    env["FIREWALL_HOME"] = str(home)
    # One proxy process unless a test asks for more (`--workers`, tests/e2e/test_workers.py): many
    # tests count log lines a proxy says once, or kill the proxy's audit child by its parent's pid.
    env["FIREWALL_PROXY_WORKERS"] = "1"
    fw = Firewall(home, env)
    fw.run("init", check=True)
    return fw


@pytest.fixture
def firewall(tmp_path: Path) -> Firewall:
    return make_firewall(tmp_path / "home")


@pytest.fixture(scope="module")
def module_firewall(tmp_path_factory) -> Firewall:
    """One state folder for a whole test module (with `module_upstream` and `module_proxy`)."""
    return make_firewall(tmp_path_factory.mktemp("module") / "home")


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def upstream_ca_file(test_ca: trustme.CA, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("upstream-ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@contextmanager
def serving_upstream(ca: trustme.CA, directory: Path) -> Iterator[Upstream]:
    """A local HTTPS upstream for localhost/127.0.0.1 with a certificate issued by `ca`."""
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = directory / f"upstream-{id(ca)}.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = start_upstream(str(pem), str(pem))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream(test_ca: trustme.CA, tmp_path: Path) -> Upstream:
    with serving_upstream(test_ca, tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def module_upstream(test_ca: trustme.CA, tmp_path_factory) -> Upstream:
    with serving_upstream(test_ca, tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def untrusted_upstream(tmp_path_factory) -> Upstream:
    """An upstream whose certificate comes from a CA the proxy was never told about."""
    with serving_upstream(trustme.CA(), tmp_path_factory.mktemp("untrusted")) as server:
        yield server


@dataclass
class RunningProxy:
    port: int
    firewall: Firewall

    def stop(self) -> None:
        self.firewall.run("proxy", "stop", timeout=30)


@contextmanager
def running_proxy(firewall: Firewall, upstream_ca_file: Path) -> Iterator[RunningProxy]:
    """The shared proxy, started in the background with the test CA trusted upstream; stopped after."""
    firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), check=True)
    status = json.loads(firewall.run("proxy", "status", "--json", check=True).stdout)
    running = RunningProxy(status["port"], firewall)
    try:
        yield running
    finally:
        if json.loads(firewall.run("proxy", "status", "--json").stdout)["running"]:
            running.stop()
        _kill_if_alive(status["pid"])


def _kill_if_alive(pid: int) -> None:
    """A proxy a test started never outlives the test, whatever happened to `proxy stop`."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session", autouse=True)
def no_leftover_proxies(tmp_path_factory):
    """After the session, kill every proxy whose state file lives in this session's temp folders
    (one a test started and lost track of, e.g. after a timeout)."""
    yield
    for state_file in tmp_path_factory.getbasetemp().glob("**/run/proxy*.json"):
        try:
            _kill_if_alive(int(json.loads(state_file.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass


@pytest.fixture
def proxy(firewall: Firewall, upstream_ca_file: Path) -> RunningProxy:
    with running_proxy(firewall, upstream_ca_file) as running:
        yield running


@pytest.fixture(scope="module")
def module_proxy(module_firewall: Firewall, upstream_ca_file: Path) -> RunningProxy:
    """One shared proxy for a whole test module: keeps the number of proxy starts low."""
    with running_proxy(module_firewall, upstream_ca_file) as running:
        yield running
