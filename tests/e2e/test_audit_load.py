"""The audit log after concurrent load: one row per request, an intact chain, no secret in the file."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from tests.e2e.helpers import SCRIPTS, database_bytes, run_client
from tests.support.fixtures import REAL_KEY

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    limit 60 per hour GET /limited
    block /v1/files
    allow GET /v1/models, /limited
}}
"""
THREADS, REQUESTS = 16, 30
OUTCOME = {200: "allow", 403: "block", 429: "limit"}
LOOKS_LIKE_A_KEY = "sk-live0123456789abcdefghij"


@pytest.fixture(scope="module")
def loaded(module_firewall, module_upstream, module_proxy, tmp_path_factory):
    """16 httpx clients × 30 requests (allowed, blocked, over the limit), a request with key-looking
    query values, then a clean `proxy stop`; returns what the clients saw and the audit rows."""
    fw, upstream = module_firewall, module_upstream
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(POLICY.format(port=upstream.port))
    out = tmp_path_factory.mktemp("load") / "load.json"
    done = fw.run(
        "run",
        "--agent",
        "load",
        "--",
        sys.executable,
        str(SCRIPTS / "load.py"),
        upstream.base_url,
        str(out),
        str(THREADS),
        "/v1/models,/v1/files,/limited",
        "--requests",
        str(REQUESTS),
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    query = run_client(
        fw,
        "httpx",
        upstream.base_url,
        f"get:/v1/models?api_key={LOOKS_LIKE_A_KEY}&note={LOOKS_LIKE_A_KEY}&q=hello",
        agent="query",
        out=out.with_name("query.json"),
    )
    assert query.results[0]["status"] == 200
    stopped = fw.run("proxy", "stop", timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    return fw, upstream, records, fw.audit_rows()


def test_exactly_one_audit_row_per_request(loaded):
    _, _, records, rows = loaded
    assert len(records) == THREADS * REQUESTS
    assert [r for r in records if r[5] is not None or r[3] not in OUTCOME] == []
    seen = Counter((r[0], OUTCOME[r[3]]) for r in records)
    load_rows = [r for r in rows if r["agent"] == "load"]
    assert Counter((r["path"], r["decision"]) for r in load_rows) == seen
    assert seen[("/limited", "allow")] == 60 and seen[("/limited", "limit")] == 100  # the mix really was mixed
    refused_ids = sorted(r[6] for r in records if r[3] != 200)
    assert refused_ids == sorted(r["request_id"] for r in load_rows if r["decision"] != "allow")
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert {r["agent"] for r in rows} == {"load", "query"}


def test_audit_chain_verifies_intact(loaded):
    fw, _, _, _ = loaded
    result = fw.run("audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout


def test_no_secret_value_in_the_database_or_the_proxy_log(loaded):
    fw, upstream, _, _ = loaded
    assert all(
        seen.headers.get("authorization") == f"Bearer {REAL_KEY}"
        for seen in upstream.seen
        if seen.path.startswith(("/v1/models", "/limited"))
    )
    stored = database_bytes(fw.home)
    assert len(stored) > 100_000  # the rows are in there
    assert REAL_KEY.encode() not in stored
    assert LOOKS_LIKE_A_KEY.encode() not in stored
    log = (fw.home / "run" / "proxy.log").read_bytes()
    assert REAL_KEY.encode() not in log and LOOKS_LIKE_A_KEY.encode() not in log


def test_key_looking_query_values_are_stored_masked(loaded):
    _, upstream, _, rows = loaded
    [row] = [r for r in rows if r["agent"] == "query"]
    assert row["query"] == "api_key=****&note=****&q=hello"
    assert row["path"] == "/v1/models"
    assert upstream.seen[-1].path == f"/v1/models?api_key={LOOKS_LIKE_A_KEY}&note={LOOKS_LIKE_A_KEY}&q=hello"
