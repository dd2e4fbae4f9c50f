"""Budgets in the language: parsed, compiled, named by the engine (docs/budgets.md)."""

from __future__ import annotations

import pytest

from firewall.policy import Request, compile_source, decide
from firewall.policy.compiled import CompiledPolicy
from firewall.policy.errors import CompileError, PolicySyntaxError
from firewall.policy.formatter import format_policy
from firewall.policy.parser import parse_policy

POLICY = """
price "gpt-4o" input $2.50 cached $1.25 output $10
price "my-model" input $1 output $2

host api.openai.com {
    limit 60 per minute per agent
    limit 2000000 tokens per day per agent
    limit 500000 output tokens per week POST /v1/chat/completions
    limit 100000 cached tokens per hour
    limit 9000 input tokens per month
    limit $20 per day per agent reserve max_tokens when json.model == "gpt-4o"
    limit $0.50 per hour
    usage unreadable refuse
    block DELETE
    allow
}

host api.anthropic.com {
    limit 1000 tokens per day
    allow
}
"""


def _policy(source: str = POLICY) -> CompiledPolicy:
    result = compile_source(source, "budgets.policy")
    assert [w.render() for w in result.warnings] == []
    return result.policy


def _budgets(policy, method, url, agent="ci", json=None):
    request = (
        Request.with_json(method, url, json, agent=agent)
        if json is not None
        else Request.from_url(method, url, agent=agent)
    )
    return decide(policy, request, 0.0).budgets


def test_each_measure_and_period_compiles():
    policy = _policy()
    budgets = policy.blocks[0].budgets
    assert [(b.measure, b.amount, b.period, b.per_agent, b.reserve) for b in budgets] == [
        ("tokens", 2_000_000, "day", True, False),
        ("output_tokens", 500_000, "week", False, False),
        ("cached_tokens", 100_000, "hour", False, False),
        ("input_tokens", 9000, "month", False, False),
        ("usd", 20_000_000, "day", True, True),  # dollars in millionths
        ("usd", 500_000, "hour", False, False),
    ]
    assert policy.blocks[0].unreadable_usage == "refuse"
    assert policy.blocks[1].unreadable_usage == "max_tokens"  # the default
    assert [(p.model, p.input, p.cached, p.output) for p in policy.prices] == [
        ("gpt-4o", 2.5, 1.25, 10.0),
        ("my-model", 1.0, 1.0, 2.0),  # cached defaults to input
    ]


def test_the_engine_names_the_budgets_that_match():
    policy = _policy()
    chat = _budgets(policy, "POST", "https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o"})
    assert [b.source.line for b in chat] == [7, 8, 9, 10, 11, 12]
    assert {b.agent for b in chat if b.measure == "tokens"} == {"ci"}
    assert {b.agent for b in chat if b.measure == "cached_tokens"} == {None}  # shared by every agent
    assert all(b.unreadable == "refuse" for b in chat)
    # Narrowed like rules: another path, another model.
    models = _budgets(policy, "GET", "https://api.openai.com/v1/models")
    # (a GET has no JSON body: the `when json.model` budget cannot be read and counts, fail closed)
    assert [b.source.line for b in models] == [7, 9, 10, 11, 12]
    mini = _budgets(policy, "POST", "https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert [b.source.line for b in mini] == [7, 8, 9, 10, 12]
    # A blocked request counts against nothing (control: the allowed GET above counts).
    assert _budgets(policy, "DELETE", "https://api.openai.com/v1/files/f") == ()
    # Another block's budgets.
    assert [b.amount for b in _budgets(policy, "POST", "https://api.anthropic.com/v1/messages")] == [1000]


def test_an_unreadable_body_counts_the_request_fail_closed():
    policy = _policy()
    request = Request.from_url("POST", "https://api.openai.com/v1/chat/completions", agent="ci", body=b"not json")
    assert 11 in [b.source.line for b in decide(policy, request, 0.0).budgets]  # the `when` budget counts


def test_per_agent_budgets_without_an_agent_share_one_count():
    assert {b.agent for b in _budgets(_policy(), "GET", "https://api.openai.com/v1/models", agent=None)} == {"-", None}


def test_the_compiled_policy_round_trips_and_old_policies_keep_their_hash():
    policy = _policy()
    assert CompiledPolicy.from_json(policy.to_json()) == policy
    plain = _policy("host api.openai.com {\n    limit 60 per minute\n    allow\n}\n")
    text = plain.to_json()
    assert not any(f'"{name}":' in text for name in ("budgets", "prices", "unreadable_usage"))


def test_the_counter_key_survives_a_new_amount_but_not_a_new_scope():
    def key(line: str) -> str:
        return _policy(f"host api.openai.com {{\n    {line}\n    allow\n}}\n").blocks[0].budgets[0].key

    assert key("limit 100 tokens per day per agent") == key("limit 200 tokens per day per agent")
    assert key("limit $1 per day") == key("limit $5 per day")
    assert key("limit 100 tokens per day per agent") != key("limit 100 tokens per day")
    assert key("limit 100 tokens per day") != key("limit 100 output tokens per day")
    assert key("limit 100 tokens per day") != key("limit 100 tokens per week")
    assert key("limit 100 tokens per day") != key("limit 100 tokens per day POST")


def format_source(source: str, path: str) -> str:
    return format_policy(parse_policy(source, path))


def test_policy_fmt_keeps_budgets_as_written():
    formatted = format_source(POLICY.lstrip(), "budgets.policy")
    assert '    limit $20 per day per agent reserve max_tokens when json.model == "gpt-4o"\n' in formatted
    assert "    limit 500000 output tokens per week POST /v1/chat/completions\n" in formatted
    assert 'price "gpt-4o" input $2.50 cached $1.25 output $10\n' in formatted
    assert format_source(formatted, "budgets.policy") == formatted


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("limit 20 dollars per day", 'unexpected "dollars"'),
        ("limit $20 tokens per day", 'unexpected "tokens"'),
        ("limit 10 outputs tokens per day", '"outputs" is not a word of the language'),
        ("limit $-1 per day", 'unexpected "$-1"'),
        ("usage unreadable ignore", 'unexpected "ignore"'),
    ],
)
def test_syntax_errors_point_at_the_word(line, message):
    with pytest.raises(PolicySyntaxError) as error:
        compile_source(f"host a.com {{\n    {line}\n    allow\n}}\n", "x.policy")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("limit 1.5 tokens per day", "whole number of tokens"),
        ("limit $0.0000001 per day", "positive amount of dollars"),  # less than a millionth
        ("limit 100 tokens per second", "per hour, day, week or month"),
        ("limit 100 per month", "per second, minute, hour or day"),
        ("limit 10 cached tokens per day reserve max_tokens", "cannot reserve"),
    ],
)
def test_meaning_errors(line, message):
    with pytest.raises(CompileError) as error:
        compile_source(f"host a.com {{\n    {line}\n    allow\n}}\n", "x.policy")
    assert message in str(error.value)
