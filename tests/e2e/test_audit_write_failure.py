"""The audit log cannot be written: the proxy keeps serving, says so in its log, and still stops
cleanly, naming how many rows were lost."""

from __future__ import annotations

import json
import sqlite3
import time

from tests.e2e.helpers import run_client

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""


def test_a_proxy_whose_audit_table_is_gone_serves_logs_and_stops_cleanly(firewall, upstream, proxy, tmp_path):
    firewall.apply(POLICY.format(port=upstream.port))
    first = run_client(firewall, "httpx", upstream.base_url, "get:/v1/models", agent="ok", out=tmp_path / "1.json")
    assert first.results[0]["status"] == 200
    firewall.audit_rows_once(lambda rows: rows)  # the first row is in
    with sqlite3.connect(firewall.home / "firewall.db") as db:
        db.execute("DROP TABLE audit")
        db.execute("DROP TABLE audit_anchor")

    second = run_client(firewall, "httpx", upstream.base_url, "get:/v1/models", agent="lost", out=tmp_path / "2.json")
    assert second.results[0]["status"] == 200  # the proxy serves on
    log_file = firewall.home / "run" / "proxy.log"
    deadline = time.monotonic() + 10
    while "audit rows not written yet" not in log_file.read_text():
        assert time.monotonic() < deadline, "the proxy log never said the audit rows could not be written"
        time.sleep(0.1)
    assert "no such table: audit" in log_file.read_text()

    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 12
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False
    log = log_file.read_text()
    assert "1 audit records not written" in log
    assert "Traceback" not in log  # a loss at shutdown is reported, not a crash that skips the rest of it
