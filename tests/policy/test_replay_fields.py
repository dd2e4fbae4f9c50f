"""The request fields the audit log records for conditions (firewall/policy/field_values.py), and
replay deciding a condition on a recorded field exactly: each case with a control that stays unknown
(a field not recorded, a masked value, a string too long to keep)."""

from __future__ import annotations

import json

import pytest

from firewall.audit.replay import _recorded as recorded_row
from firewall.policy import CompiledPolicy, Request
from firewall.policy.field_values import MAX_TEXT, rebuild, values
from firewall.policy.loader import compile_source
from firewall.policy.replay import Change, replay_one

OLD = """\
host api.example.com {
    approve POST /v1/chat when json.max_tokens > 4000
    allow POST /v1/chat when json.model == "gpt-4o-mini" and header.x-team in ["red", "blue"]
    allow POST /v1/embed when body.size < 1000
    allow GET /v1/list when json.messages.0.role == "system"
}
"""
URL = "https://api.example.com"


def _policy(text: str = OLD) -> CompiledPolicy:
    return compile_source(text, "fields.policy").policy


def _fields(method: str, path: str, body: object = None, headers: tuple = (), policy: CompiledPolicy | None = None):
    """What the proxy records for this request under `policy`'s block (JSON text, as the column holds)."""
    policy = policy or _policy()
    request = (
        Request.with_json(method, URL + path, body, headers=headers)
        if body is not None
        else Request.from_url(method, URL + path, headers=headers)
    )
    block = policy.block_for("api.example.com", 443)
    found = values(block, request, "api.example.com", path, "")
    return json.dumps(found) if found is not None else None


def _row(method: str, path: str, fields: str | None):
    return recorded_row("ci", method, "https", "api.example.com", 443, path, "", "rule", fields)


def test_the_fields_a_block_reads_are_recorded_and_nothing_else():
    body = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user"}], "other": "x"}
    text = _fields("POST", "/v1/chat", body, (("X-Team", "red"), ("X-Other", "y")))
    assert json.loads(text) == {
        "body.size": len(json.dumps(body)),
        "header.x-team": ["red"],
        "json.max_tokens": 10,
        "json.messages.0.role": "user",
        "json.model": "gpt-4o-mini",
    }
    # Control: a block that reads no such field records nothing.
    assert _fields("POST", "/v1/chat", {"model": "x"}, policy=_policy("host api.example.com {\n    allow\n}\n")) is None


def test_containers_absent_fields_an_unreadable_body_and_long_strings_are_markers():
    text = _fields("POST", "/v1/chat", {"model": ["a"], "messages": "m" * (MAX_TEXT + 1)})
    entries = json.loads(text)
    assert entries["json.model"] == {"array": 1} and entries["json.max_tokens"] == {"absent": 1}
    assert entries["json.messages.0.role"] == {"absent": 1}
    not_json = json.loads(_fields("POST", "/v1/chat"))
    assert not_json["json.model"] == {"unreadable": 1} and not_json["header.x-team"] == []
    long = json.loads(_fields("POST", "/v1/chat", {"model": "m" * (MAX_TEXT + 1)}))
    assert long["json.model"] == {"unknown": 1}
    _, _, _, known = rebuild(json.dumps(long))
    assert "json.model" not in known and "json.max_tokens" in known


@pytest.mark.parametrize(
    ("new_line", "body", "headers", "change"),
    [
        # the candidate narrows the model: a recorded gpt-4o-mini chat is now blocked, exactly
        ('json.model == "gpt-4o-mini"', {"model": "gpt-4o-mini"}, (("X-Team", "red"),), Change.UNCHANGED),
        ('json.model == "o3"', {"model": "gpt-4o-mini"}, (("X-Team", "red"),), Change.ALLOW_TO_BLOCK),
        ('json.model == "o3"', {"model": "o3"}, (("X-Team", "red"),), Change.BLOCK_TO_ALLOW),
        # a recorded header decides too
        (
            'json.model == "gpt-4o-mini" and header.x-team == "red"',
            {"model": "gpt-4o-mini"},
            (("X-Team", "blue"),),
            Change.ALLOW_TO_BLOCK,
        ),
    ],
)
def test_a_condition_on_a_recorded_field_replays_exactly(new_line, body, headers, change):
    old_line = 'json.model == "gpt-4o-mini" and header.x-team in ["red", "blue"]'
    new = _policy(OLD.replace(old_line, new_line))
    row = _row("POST", "/v1/chat", _fields("POST", "/v1/chat", body, headers))
    assert replay_one(_policy(), new, row).change is change
    # Control: the same row as written before the column existed is unknown, never guessed.
    if change is not Change.UNCHANGED:
        assert replay_one(_policy(), new, _row("POST", "/v1/chat", None)).change is Change.UNKNOWN


def test_a_condition_on_a_field_that_was_not_recorded_stays_unknown():
    row = _row("POST", "/v1/chat", _fields("POST", "/v1/chat", {"model": "gpt-4o-mini"}, (("X-Team", "red"),)))
    reads_new = _policy(OLD.replace('header.x-team in ["red", "blue"]', 'header.x-region == "eu"'))
    result = replay_one(_policy(), reads_new, row)
    assert result.change is Change.UNKNOWN and result.unknown_rule == "fields.policy:3"


def test_a_masked_value_stays_unknown():
    text = _fields("POST", "/v1/chat", {"model": "gpt-4o-mini"}, (("X-Team", "red"),))
    masked = text.replace('"gpt-4o-mini"', '"****"')
    new = _policy(OLD.replace('json.model == "gpt-4o-mini"', 'json.model == "o3"'))
    assert replay_one(_policy(), new, _row("POST", "/v1/chat", masked)).change is Change.UNKNOWN
    assert replay_one(_policy(), new, _row("POST", "/v1/chat", text)).change is Change.ALLOW_TO_BLOCK  # control


def test_a_recorded_value_the_operator_cannot_read_is_decided_as_the_engine_did():
    """`"5000" > 4000` is unknown in the engine itself (it holds the request): replay says so exactly,
    it is not a gap in the log."""
    text = _fields("POST", "/v1/chat", {"max_tokens": "5000", "model": "gpt-4o-mini"}, (("X-Team", "red"),))
    new = _policy(OLD.replace("approve POST /v1/chat when", "block POST /v1/chat when"))
    assert replay_one(_policy(), new, _row("POST", "/v1/chat", text)).change is Change.APPROVAL_TO_BLOCK


def test_body_size_and_an_array_index_replay_exactly():
    small = _fields("POST", "/v1/embed", {"input": "x"})
    new = _policy(OLD.replace("body.size < 1000", "body.size < 5"))
    assert replay_one(_policy(), new, _row("POST", "/v1/embed", small)).change is Change.ALLOW_TO_BLOCK
    listing = _fields("GET", "/v1/list", {"messages": [{"role": "system"}]})
    new = _policy(OLD.replace('json.messages.0.role == "system"', 'json.messages.0.role == "user"'))
    assert replay_one(_policy(), new, _row("GET", "/v1/list", listing)).change is Change.ALLOW_TO_BLOCK
