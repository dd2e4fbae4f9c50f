"""`firewall budgets` end to end: a real proxy, a stand-in LLM upstream, the real CLI (docs/budgets.md)."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime

import pytest

from tests.e2e.test_budgets import _client, _post
from tests.support.fixtures import Firewall, make_firewall, poll, running_proxy
from tests.support.llm_upstream import CHAT, serving_llm_upstream

ANSWER = CHAT[0] + CHAT[1]  # 120 tokens a chat completion uses


@pytest.fixture
def llm(test_ca, tmp_path):
    with serving_llm_upstream(test_ca, tmp_path) as upstream:
        yield upstream


def _policy(port: int) -> str:
    return (
        f"host localhost:{port} {{\n"
        "    limit 1000 tokens per day per agent\n"
        "    limit $5 per month\n"
        "    allow POST\n"
        "}\n"
    )


def _budgets(fw: Firewall, *args: str) -> dict:
    return json.loads(fw.run("budgets", "--json", *args, check=True).stdout)


def _used_by(report: dict, index: int) -> dict:
    return {use["agent"]: use["used"] for use in report["budgets"][index]["use"]}


def _end(period: str) -> str:
    from firewall.budgets.windows import window

    return datetime.fromtimestamp(window(period, time.time())[1], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chat_cost() -> float:
    from firewall.budgets.prices import SHIPPED, cost_micros
    from firewall.budgets.usage import Usage

    return cost_micros(Usage(*CHAT), SHIPPED["gpt-4o-mini"])


def test_budgets_shows_the_proxys_exact_use_and_the_reset(firewall, llm, upstream_ca_file):
    firewall.apply(_policy(llm.port))
    url = f"{llm.base_url}/v1/chat/completions"
    with running_proxy(firewall, upstream_ca_file) as proxy:
        worker = _client(firewall, proxy.port, "worker")
        assert [_post(worker, url, {"model": "gpt-4o-mini"})[0] for _ in range(2)] == [200, 200]
        report = poll(
            lambda: [_budgets(firewall)], lambda r: _used_by(r[0], 0).get("worker") == 2 * ANSWER, 10, "budgets"
        )[0]
        tokens, dollars = report["budgets"]
        assert {k: tokens[k] for k in ("rule", "measure", "period", "per_agent", "limit")} == {
            "rule": "limit 1000 tokens per day per agent",
            "measure": "tokens",
            "period": "day",
            "per_agent": True,
            "limit": 1000,
        }
        assert tokens["id"] == tokens["location"] and tokens["location"].endswith("test.policy:2")
        assert tokens["use"] == [
            {"agent": "worker", "used": 240, "limit": 1000, "percent": 24.0, "resets_at": _end("day")}
        ]
        assert dollars["measure"] == "usd" and dollars["per_agent"] is False and dollars["limit"] == 5
        assert dollars["use"] == [
            {
                "agent": None,
                "used": 2 * _chat_cost() / 1_000_000,
                "limit": 5,
                "percent": round(100 * 2 * _chat_cost() / 5_000_000, 1),
                "resets_at": _end("month"),
            }
        ]
        assert report["running"] is True and report["policy_version"] == 1

        text = firewall.run("budgets", check=True).stdout
        assert "limit 1000 tokens per day per agent" in text
        assert f"worker           240 tokens of 1,000 tokens   24.0%  resets {_end('day')}" in text
        assert "(all agents)" in text

        snapshot = firewall.home / "run" / "proxy.budgets.json"
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600  # owner-only: agents do not read who spent what

        # The control: an agent that used nothing is not listed, and asked for, it used 0.
        assert set(_used_by(report, 0)) == {"worker"}
        idle = _budgets(firewall, "--agent", "idle")
        assert idle["budgets"][0]["use"] == [
            {"agent": "idle", "used": 0, "limit": 1000, "percent": 0.0, "resets_at": _end("day")}
        ]
        assert idle["budgets"][1]["use"] == dollars["use"]  # the shared budget counts every agent
        assert _budgets(firewall, "--agent", "worker")["budgets"][0]["use"] == tokens["use"]

        # A new policy version: its budgets are listed; raising a limit keeps what was used.
        firewall.apply(_policy(llm.port).replace("limit 1000 tokens", "limit 2000 tokens"))
        raised = poll(lambda: [_budgets(firewall)], lambda r: r[0]["policy_version"] == 2, 10, "budgets")[0]
        assert raised["budgets"][0]["rule"] == "limit 2000 tokens per day per agent"
        assert raised["budgets"][0]["use"] == [
            {"agent": "worker", "used": 240, "limit": 2000, "percent": 12.0, "resets_at": _end("day")}
        ]
    assert not snapshot.exists()  # removed when the proxy stops


def test_budgets_with_no_proxy_running_says_so_in_one_line(firewall, llm):
    firewall.apply(_policy(llm.port))
    result = firewall.run("budgets")
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        "no proxy is running, so no budget counts; start one with `firewall proxy start`"
    ]
    assert result.stderr == ""
    result = firewall.run("budgets", "--json")
    assert result.returncode == 1 and json.loads(result.stdout) == {"running": False, "budgets": []}


def test_budgets_of_a_policy_without_budgets(firewall, llm, upstream_ca_file):
    firewall.apply(f"host localhost:{llm.port} {{\n    allow POST\n}}\n")
    with running_proxy(firewall, upstream_ca_file):
        assert _budgets(firewall)["budgets"] == []
        assert "the policy in force has no budgets" in firewall.run("budgets", check=True).stdout


def test_budgets_reads_a_shared_redis_store_exactly(tmp_path, llm, upstream_ca_file, redis_url):
    proxies = [make_firewall(tmp_path / "a" / "home"), make_firewall(tmp_path / "b" / "home")]
    ports = []
    try:
        for fw in proxies:
            fw.apply(_policy(llm.port))
            fw.run(
                "proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file),
                "--limits-storage", redis_url, check=True,
            )  # fmt: skip
            ports.append(json.loads(fw.run("proxy", "status", "--json", check=True).stdout)["port"])
        a, b = (_client(fw, port, "worker") for fw, port in zip(proxies, ports))
        url = f"{llm.base_url}/v1/chat/completions"
        assert [_post(client, url, {"model": "gpt-4o-mini"})[0] for client in (a, b, b)] == [200, 200, 200]
        assert _post(_client(proxies[0], ports[0], "other"), url, {"model": "gpt-4o-mini"})[0] == 200
        for fw in proxies:  # either proxy's state folder reads the same counts: the store's
            report = _budgets(fw)
            assert _used_by(report, 0) == {"worker": 3 * ANSWER, "other": ANSWER}
            assert report["budgets"][0]["use"][1]["resets_at"] == _end("day")
            assert _used_by(report, 1) == {None: 4 * _chat_cost() / 1_000_000}
            assert _budgets(fw, "--agent", "idle")["budgets"][0]["use"][0]["used"] == 0
    finally:
        for fw in proxies:
            fw.run("proxy", "stop", timeout=30)


def test_a_shared_store_that_does_not_answer_is_one_line_and_exit_1(firewall, llm, upstream_ca_file, redis_server):
    import signal

    firewall.apply(_policy(llm.port))
    firewall.run(
        "proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file),
        "--limits-storage", redis_server.url, check=True,
    )  # fmt: skip
    try:
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            result = firewall.run("budgets", timeout=30)
            assert time.monotonic() - started < 15
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith(
            f"error: cannot read the budget counts from the limits store {redis_server.url} ("
        )
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert _budgets(firewall)["budgets"][0]["use"] == []  # the control: the store answers again, nothing used
    finally:
        firewall.run("proxy", "stop", timeout=30)
