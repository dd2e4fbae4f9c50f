"""`firewall policy explain` names the budgets a request would count against."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from firewall.cli.main import app

POLICY = Path(__file__).parents[2] / "policies" / "openai.policy"
URL = "https://api.openai.com/v1/chat/completions"


def test_explain_names_the_budgets():
    args = [
        "policy",
        "explain",
        "POST",
        URL,
        "--policy",
        str(POLICY),
        "--agent",
        "ci",
        "--data",
        '{"model": "gpt-4o-mini"}',
    ]
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "  budget    limit 2000000 tokens per day per agent" in text.output
    assert "  budget    limit $20 per day per agent" in text.output
    data = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert [(b["measure"], b["amount"], b["per"], b["per_agent"]) for b in data["budgets"]] == [
        ("tokens", 2_000_000, "day", True),
        ("usd", 20.0, "day", True),
    ]


def test_a_blocked_request_counts_against_no_budget():
    args = ["policy", "explain", "DELETE", "https://api.openai.com/v1/files/f", "--policy", str(POLICY), "--json"]
    data = json.loads(CliRunner().invoke(app, args).output)
    assert data["decision"] == "block" and data["budgets"] == []


def test_the_shipped_budgets_are_on_the_calls_that_generate():
    """policies/openai.policy narrows its budgets to the generating paths: the model list counts
    against none, the Responses WebSocket's upgrade (whose turns count) against both."""

    def budgets(*request: str) -> list[str]:
        args = ["policy", "explain", *request, "--policy", str(POLICY), "--agent", "ci", "--json"]
        data = json.loads(CliRunner().invoke(app, args).output)
        assert data["decision"] == "allow", data
        return [b["measure"] for b in data["budgets"]]

    assert budgets("GET", "https://api.openai.com/v1/models") == []
    assert budgets("POST", "https://api.openai.com/v1/responses/resp_1/cancel") == []
    upgrade = ["--header", "Connection: Upgrade", "--header", "Upgrade: websocket"]
    assert budgets("GET", "https://api.openai.com/v1/responses", *upgrade) == ["tokens", "usd"]
