"""A proxy's settings have one spelling on its command line: what the starting process writes
(`to_argv`) the proxy process reads back (`from_argv`), and `python -m firewall.proxy` boots
without the command line's Typer app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firewall.proxy.settings import ProxySettings, SettingsError
from firewall.state.home import Home
from tests.cli.test_lean_imports import imported

HOME = Home(Path("/tmp/firewall-home"))


@pytest.mark.parametrize(
    "settings",
    [
        ProxySettings(HOME, 0, Path("/tmp/s.json")),
        ProxySettings(
            HOME,
            8877,
            Path("/tmp/s.json"),
            log_file=Path("/tmp/proxy.log"),
            upstream_ca=Path("/tmp/ca.pem"),
            limits_storage="redis://127.0.0.1:6379",
            limits_timeout=0.5,
            pinned_policy=Path("/tmp/p.json"),
            listen_fd=7,
            audit=False,
            audit_full_action="allow",
        ),
    ],
    ids=["defaults", "every setting"],
)
def test_settings_survive_the_command_line(settings):
    assert ProxySettings.from_argv(settings.to_argv(), HOME) == settings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--state-file", "/tmp/s.json"], "--port"),
        (["--port", "x", "--state-file", "/tmp/s.json"], "invalid int value"),
        (["--port", "70000", "--state-file", "/tmp/s.json"], "--port must be 0 to 65535"),
        (["--port", "0", "--state-file", "/tmp/s.json", "--audit-full-action", "ignore"], "refuse` or `allow"),
        (["--port", "0", "--state-file", "/tmp/s.json", "--limits-timeout", "0"], "more than 0 seconds"),
        (["--port", "0", "--state-file", "/tmp/s.json", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_command_line_no_proxy_runs_with_is_refused_in_one_line(argv, message):
    with pytest.raises(SettingsError) as refused:
        ProxySettings.from_argv(argv, HOME)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_proxy_process_boots_without_the_command_line(tmp_path):
    env = {"FIREWALL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    argv = ["-m", "firewall.proxy", "--port", "0", "--state-file", str(tmp_path / "s.json"), "--bogus"]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: python -m firewall.proxy: unrecognized arguments: --bogus"]
    loaded = imported(argv, env=env)
    assert "firewall" in loaded and loaded.isdisjoint({"typer", "click", "rich"}), sorted(loaded)
