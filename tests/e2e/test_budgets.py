"""Budgets end to end: a real proxy, stand-ins answering in each API's format (docs/budgets.md)."""

from __future__ import annotations

import json
import ssl

import httpx
import pytest

from tests.security.support import mint_token, proxy_ca
from tests.support import llm_answers as answers
from tests.support.fixtures import Firewall, running_proxy
from tests.support.llm_upstream import CHAT, serving_llm_upstream


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
