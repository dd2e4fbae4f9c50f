"""A proxy that stops signs the audit chain's head once every row is written (docs/audit.md)."""

from __future__ import annotations

import json

from tests.e2e.helpers import run_client

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""


def test_a_clean_stop_writes_a_checkpoint_of_the_last_row(firewall, upstream, proxy, tmp_path):
    firewall.apply(POLICY.format(port=upstream.port))
    result = run_client(firewall, "httpx", upstream.base_url, "get:/v1/models", agent="a", out=tmp_path / "1.json")
    assert result.results[0]["status"] == 200
    rows = firewall.audit_rows_once(lambda rows: rows)
    proxy.stop()
    lines = (firewall.home / "audit-checkpoints.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["kind"] == "head" and last["seq"] == max(row["seq"] for row in rows)
    verified = firewall.run("audit", "verify")
    assert verified.returncode == 0 and "agree with the log" in verified.stdout
