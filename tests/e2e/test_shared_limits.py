"""Limits counted in Redis are shared by every proxy that uses the same Redis."""

import json
import os
from pathlib import Path

from tests.support.fixtures import Firewall


def _home(tmp_path: Path, name: str) -> Firewall:
    home = tmp_path / name / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
    env["FIREWALL_HOME"] = str(home)
    fw = Firewall(home, env)
    fw.run("init", check=True)
    return fw


def _status(fw: Firewall, url: str) -> str:
    result = fw.run("run", "--agent", "worker", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
    return result.stdout


def test_two_proxies_on_one_redis_share_a_limit(tmp_path, upstream, upstream_ca_file, redis_url):
    policy = f"host localhost:{upstream.port} {{\n    limit 3 per minute per agent\n    allow GET\n}}\n"
    proxies = [_home(tmp_path, "a"), _home(tmp_path, "b")]
    try:
        for fw in proxies:
            fw.apply(policy)
            fw.run(
                "proxy",
                "start",
                "--port",
                "0",
                "--upstream-ca",
                str(upstream_ca_file),
                "--limits-storage",
                redis_url,
                check=True,
            )
        a, b = proxies
        url = f"{upstream.base_url}/v1/models"
        codes = [_status(a, url), _status(b, url), _status(a, url), _status(b, url), _status(a, url)]
        assert codes == ["200", "200", "200", "429", "429"]
    finally:
        for fw in proxies:
            fw.run("proxy", "stop", timeout=30)


def test_memory_limits_are_per_proxy(tmp_path, upstream, upstream_ca_file):
    policy = f"host localhost:{upstream.port} {{\n    limit 1 per minute\n    allow GET\n}}\n"
    proxies = [_home(tmp_path, "a"), _home(tmp_path, "b")]
    try:
        for fw in proxies:
            fw.apply(policy)
            fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), check=True)
        url = f"{upstream.base_url}/v1/models"
        assert [_status(proxies[0], url), _status(proxies[1], url), _status(proxies[0], url)] == ["200", "200", "429"]
    finally:
        for fw in proxies:
            fw.run("proxy", "stop", timeout=30)


def test_unreachable_redis_stops_the_proxy_at_start_with_a_clear_error(firewall, upstream_ca_file):
    result = firewall.run("proxy", "start", "--port", "0", "--limits-storage", "redis://127.0.0.1:1")
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr or "redis://127.0.0.1:1" in result.stderr
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False


def test_unsupported_limits_storage_is_refused(firewall):
    result = firewall.run("proxy", "start", "--port", "0", "--limits-storage", "mongodb://x")
    assert result.returncode == 1
    assert "use memory:// or redis://" in result.stderr
