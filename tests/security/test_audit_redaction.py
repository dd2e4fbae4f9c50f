"""Every field of every audit row goes through redaction: an agent chooses its request's method,
host, path and query, and may write a vault value into any of them. Each case has a control: the
same request with an ordinary word in that place is recorded as sent."""

from __future__ import annotations

import http.client

import pytest

from tests.security.conftest import SECRET, all_audit_rows
from tests.security.support import request_bytes


def _no_secret_in(row: dict) -> bool:
    return all(SECRET not in str(value) for value in row.values())


@pytest.mark.parametrize("label", [SECRET, "ordinary"], ids=["a vault value", "control"])
def test_a_host_name_is_redacted_in_the_row(corpus, label):
    host = f"{label}.example"
    reply = corpus.agent.plain(request_bytes("GET", f"http://{host}/v1/models", host, auth=corpus.agent.auth))
    assert reply.status == 403
    row = corpus.row(reply)
    assert _no_secret_in(row)
    assert (row["host"] == host) == (label == "ordinary")


@pytest.mark.parametrize("method", [SECRET, "PROPFIND"], ids=["a vault value", "control"])
def test_a_method_is_redacted_in_the_row(corpus, method):
    try:
        reply = corpus.agent.https(corpus.api, request_bytes(method, "/v1/models", corpus.api))
    except http.client.RemoteDisconnected:  # mitmproxy may drop a request line it cannot read
        assert method == SECRET
        assert all(_no_secret_in(row) for row in all_audit_rows(corpus.firewall.home))
        return
    assert reply.status == 403
    row = corpus.row(reply)
    assert _no_secret_in(row)
    assert (row["method"] == method) == (method == "PROPFIND")


@pytest.mark.parametrize("where", ["path", "query"])
def test_a_path_or_query_is_redacted_in_the_row(corpus, where):
    target = f"/v1/{SECRET}" if where == "path" else f"/v1/models?q={SECRET}"
    reply = corpus.agent.https(corpus.api, request_bytes("GET", target, corpus.api))
    row = corpus.row(reply)
    assert _no_secret_in(row) and row["path"].startswith("/v1/")
