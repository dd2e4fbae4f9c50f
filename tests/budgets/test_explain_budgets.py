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
