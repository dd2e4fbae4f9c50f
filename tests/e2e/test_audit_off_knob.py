"""`firewall proxy start --audit off`, the benchmark knob of bench/audit_log.py: requests pass,
no row is written, and the proxy says so in its log. (Every other test runs with the default, on.)"""

from __future__ import annotations

from tests.e2e.helpers import run_client

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""


def test_audit_off_writes_no_row_and_says_so(firewall, upstream, upstream_ca_file, tmp_path):
    firewall.apply(POLICY.format(port=upstream.port))
    firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), "--audit", "off", check=True)
    try:
        client = run_client(
            firewall, "httpx", upstream.base_url, "get:/v1/models", agent="bench", out=tmp_path / "out.json"
        )
        assert client.results[0]["status"] == 200
    finally:
        firewall.run("proxy", "stop", timeout=30, check=True)
    assert firewall.audit_rows() == []
    log = (firewall.home / "run" / "proxy.log").read_text()
    assert "audit log OFF" in log and "1 records counted, none written" in log


def test_audit_accepts_only_on_or_off(firewall):
    result = firewall.run("proxy", "start", "--foreground", "--port", "0", "--audit", "no")
    assert result.returncode != 0
    assert "--audit is `on` or `off`" in result.stderr
