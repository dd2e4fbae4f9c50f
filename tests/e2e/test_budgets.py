"""Budgets end to end: a real proxy, stand-ins answering in each API's format (docs/budgets.md)."""

from __future__ import annotations

import gzip
import json
import ssl

import httpx
import pytest

from tests.security.support import mint_token, proxy_ca
from tests.support import llm_answers as answers
from tests.support.fixtures import Firewall, running_proxy
from tests.support.llm_upstream import CHAT, EMBEDDINGS, serving_llm_upstream


@pytest.fixture
def llm(test_ca, tmp_path):
    with serving_llm_upstream(test_ca, tmp_path) as upstream:
        yield upstream


def _client(fw: Firewall, port: int, agent: str) -> httpx.Client:
    token = mint_token(fw, agent)
    return httpx.Client(
        proxy=f"http://{agent}:{token}@127.0.0.1:{port}",
        verify=ssl.create_default_context(cafile=str(proxy_ca(fw))),
        timeout=15,
    )


def _post(client: httpx.Client, url: str, payload: dict) -> tuple[int, dict, bytes]:
    with client.stream("POST", url, json=payload) as response:
        body = b"".join(response.iter_raw())
        return response.status_code, dict(response.headers), body


def test_a_token_budget_stops_an_agent_mid_run_and_not_another(firewall, llm, upstream_ca_file):
    firewall.apply(f"host localhost:{llm.port} {{\n    limit 300 tokens per day per agent\n    allow POST\n}}\n")
    url = f"{llm.base_url}/v1/chat/completions"
    used = CHAT[0] + CHAT[1]  # 120 tokens an answer
    with running_proxy(firewall, upstream_ca_file) as proxy:
        worker, other = _client(firewall, proxy.port, "worker"), _client(firewall, proxy.port, "other")
        codes = [_post(worker, url, {"model": "gpt-4o-mini"})[0] for _ in range(3)]  # 0, 120, 240 used before
        assert codes == [200, 200, 200]
        status, headers, body = _post(worker, url, {"model": "gpt-4o-mini"})
        assert status == 429
        error = json.loads(body)["error"]
        assert error["type"] == error["code"] == "budget_exhausted"
        assert error["budget"]["used"] == 3 * used and error["budget"]["limit"] == 300
        assert error["budget"]["measure"] == "tokens" and error["budget"]["agent"] == "worker"
        assert error["budget"]["resets_at"].endswith("T00:00:00Z")
        assert 0 < int(headers["retry-after"]) <= 86400
        assert error["request_id"] and error["rule"].endswith(":2")
        assert _post(other, url, {"model": "gpt-4o-mini"})[0] == 200  # control: a budget per agent
    assert len(llm.seen) == 4  # the refused request never went upstream


@pytest.mark.parametrize("asked", [False, True])
def test_a_streamed_chat_reaches_the_agent_exactly_as_it_asked(firewall, llm, upstream_ca_file, asked):
    firewall.apply(f"host localhost:{llm.port} {{\n    limit 1000000 tokens per day\n    allow POST\n}}\n")
    payload: dict = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if asked:
        payload["stream_options"] = {"include_usage": True}
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        status, _, body = _post(client, f"{llm.base_url}/v1/chat/completions", payload)
    assert status == 200
    assert body == answers.chat_stream(*CHAT, with_usage=asked, words=4)
    sent = json.loads(llm.seen[0].body)
    assert sent["stream_options"] == {"include_usage": True}  # the proxy asked on the agent's behalf
    assert {k: v for k, v in sent.items() if k != "stream_options"} == {
        k: v for k, v in payload.items() if k != "stream_options"
    }


FORMATS = [
    # path, request, (input, output, cached) as the audit row must say, model
    ("/v1/chat/completions", {"model": "gpt-4o-mini"}, (100, 20, 40), "gpt-4o-mini"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True}, (100, 20, 40), "gpt-4o-mini"),
    ("/v1/responses", {"model": "gpt-4o-mini"}, (50, 10, 0), "gpt-4o-mini"),
    ("/v1/responses", {"model": "gpt-4o-mini", "stream": True}, (50, 10, 0), "gpt-4o-mini"),
    ("/backend-api/codex/responses", {"model": "gpt-5-codex", "stream": True}, (400, 30, 300), "gpt-5-codex"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, (30, 0, 0), "text-embedding-3-small"),
    ("/v1/messages", {"model": "claude-sonnet-4-5"}, (15, 20, 5), "claude-sonnet-4-5"),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "stream": True}, (15, 20, 5), "claude-sonnet-4-5"),
]


def test_usage_is_counted_exactly_in_every_format(firewall, llm, upstream_ca_file):
    from firewall.budgets.prices import SHIPPED, cost_micros
    from firewall.budgets.usage import Usage

    firewall.apply(f"host localhost:{llm.port} {{\n    limit $100 per day per agent\n    allow POST\n}}\n")
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        for path, payload, _, _ in FORMATS:
            status, _, body = _post(client, f"{llm.base_url}{path}", payload)
            assert status == 200, body
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= len(FORMATS))
    rows.sort(key=lambda row: row["seq"])
    for row, (path, _, (inputs, outputs, cached), model) in zip(rows, FORMATS):
        assert (row["path"], row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (
            path,
            inputs,
            outputs,
            cached,
        )
        assert row["model"] == model
        assert row["cost_usd"] == cost_micros(Usage(inputs, outputs, cached), SHIPPED[model]) / 1_000_000


def test_an_answer_without_usage_counts_max_tokens_or_spends_the_budget(firewall, llm, upstream_ca_file):
    firewall.apply(
        f"host localhost:{llm.port} {{\n    limit 1000 tokens per day per agent\n    allow POST\n}}\n"
        f"host 127.0.0.1:{llm.port} {{\n    limit 1000 tokens per day per agent\n    usage unreadable refuse\n"
        "    allow POST\n}\n"
    )
    path = "/v1/no-usage/chat/completions"
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        # max_tokens (the default): counted as 600 output tokens each; the second leaves 1200 >= 1000
        codes = [_post(client, f"{llm.base_url}{path}", {"max_tokens": 600})[0] for _ in range(3)]
        assert codes == [200, 200, 429]
        # refuse: the first unreadable answer spends the budget
        url = f"https://127.0.0.1:{llm.port}{path}"
        assert [_post(client, url, {"max_tokens": 1})[0] for _ in range(2)] == [200, 429]
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 5)
    details = [row["detail"] for row in sorted(rows, key=lambda row: row["seq"])]
    assert "usage unreadable: counted max_tokens 600" in details[0]
    assert "usage unreadable: the budget is spent until it resets" in details[3]


WHOLE_SENT_STREAMING = [
    ("/sent-chunked/v1/embeddings", (EMBEDDINGS, 0, 0)),
    ("/sent-chunked/v1/chat/completions", CHAT),
    ("/sent-large/v1/embeddings", (EMBEDDINGS, 0, 0)),
    ("/sent-gzip-chunked/v1/chat/completions", CHAT),
    ("/v1/embeddings", (EMBEDDINGS, 0, 0)),  # control: the same answer sent whole, with its length
]


def test_a_json_answer_that_streams_by_is_counted_exactly(firewall, llm, upstream_ca_file):
    """A whole JSON answer sent chunked, past the size relayed whole (a large embeddings batch) or
    gzipped and chunked is streamed through the proxy: it used to be read as an event stream, found
    unreadable and counted as the whole budget (`usage unreadable refuse` here, so the next request
    was refused). Each is read whole at its end and counted exactly; the agent gets every byte."""
    firewall.apply(
        f"host localhost:{llm.port} {{\n    limit 1000 tokens per day per agent\n    usage unreadable refuse\n"
        "    allow POST\n}\n"
    )
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        for path, _ in WHOLE_SENT_STREAMING:
            status, _, body = _post(client, f"{llm.base_url}{path}", {"model": "gpt-4o-mini"})
            assert status == 200, (path, body[:200])
            assert json.loads(gzip.decompress(body) if path.startswith("/sent-gzip") else body)["usage"]
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= len(WHOLE_SENT_STREAMING))
    by_path = {row["path"]: row for row in rows}
    for path, (inputs, outputs, cached) in WHOLE_SENT_STREAMING:
        row = by_path[path]
        assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (inputs, outputs, cached), path
        assert "unreadable" not in (row["detail"] or ""), path
    assert by_path["/sent-large/v1/embeddings"]["bytes_in"] > 64 * 1024  # it did stream by


def test_an_upstream_error_is_not_counted(firewall, llm, upstream_ca_file):
    firewall.apply(f"host localhost:{llm.port} {{\n    limit 1 tokens per day per agent\n    allow POST\n}}\n")
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        assert [_post(client, f"{llm.base_url}/v1/error/chat/completions", {})[0] for _ in range(2)] == [500, 500]
        assert _post(client, f"{llm.base_url}/v1/chat/completions", {})[0] == 200  # control: this one counts
        assert _post(client, f"{llm.base_url}/v1/chat/completions", {})[0] == 429


def test_reads_and_free_calls_count_nothing_and_any_other_post_counts_as_unreadable(firewall, llm, upstream_ca_file):
    """A budget on a whole host block: the model list (GET) and Anthropic's free token count answer
    no usage by design and count nothing (they used to spend the budget as unreadable, which
    stopped Codex at its first model list). A POST on a path of no known shape still counts as
    unreadable (fail closed): the control that the budget is enforced at all."""
    firewall.apply(f"host localhost:{llm.port} {{\n    limit 1000 tokens per day per agent\n    allow GET, POST\n}}\n")
    base = llm.base_url
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        assert [client.get(f"{base}/v1/models").status_code for _ in range(3)] == [200] * 3
        assert _post(client, f"{base}/v1/messages/count_tokens", {"model": "claude-sonnet-4-5"})[0] == 200
        assert _post(client, f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"})[0] == 200  # not spent
        assert _post(client, f"{base}/v1/responses/resp_1/cancel", {})[0] == 200  # no usage: spends it
        assert _post(client, f"{base}/v1/chat/completions", {"model": "gpt-4o-mini"})[0] == 429
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 7)
    details = {row["path"]: row["detail"] for row in rows}
    assert details["/v1/models"] is None and details["/v1/messages/count_tokens"] is None
    assert "usage unreadable: the budget is spent until it resets" in details["/v1/responses/resp_1/cancel"]


def test_two_proxies_on_one_redis_share_a_budget(tmp_path, llm, upstream_ca_file, redis_url):
    from tests.support.fixtures import make_firewall

    policy = f"host localhost:{llm.port} {{\n    limit 300 tokens per day per agent\n    allow POST\n}}\n"
    proxies = [make_firewall(tmp_path / "a" / "home"), make_firewall(tmp_path / "b" / "home")]
    ports = []
    try:
        for fw in proxies:
            fw.apply(policy)
            fw.run(
                "proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file),
                "--limits-storage", redis_url, check=True,
            )  # fmt: skip
            ports.append(json.loads(fw.run("proxy", "status", "--json", check=True).stdout)["port"])
        a, b = (_client(fw, port, "worker") for fw, port in zip(proxies, ports))
        url = f"{llm.base_url}/v1/chat/completions"
        codes = [_post(client, url, {"model": "gpt-4o-mini"})[0] for client in (a, b, a, b, a)]
        assert codes == [200, 200, 200, 429, 429]  # 120 tokens each: 360 >= 300 after three, on either proxy
    finally:
        for fw in proxies:
            fw.run("proxy", "stop", timeout=30)
