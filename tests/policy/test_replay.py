"""The replay classifier (firewall/policy/replay.py): each change class with a control that stays
unchanged, and the requests whose outcome depends on what the audit log does not record."""

from __future__ import annotations

import pytest

from firewall.policy import CompiledPolicy, Request
from firewall.policy.loader import compile_source
from firewall.policy.replay import Change, Recorded, Replay, replay_one

OLD = """\
host api.example.com {
    allow GET /v1/models
    approve POST /v1/jobs
    block DELETE /**
    allow POST /v1/chat when agent == "ci" and header.x-mode == "fast"
    allow POST /v1/search when json.q != ""
    allow GET /v1/files/** when query.page < 10
}
"""


def _policy(source: str) -> CompiledPolicy:
    return compile_source(source, "replay.policy").policy


def _new(old_line: str, new_line: str) -> CompiledPolicy:
    assert old_line in OLD
    return _policy(OLD.replace(old_line, new_line))


def _recorded(method: str, url: str, agent: str | None = "ci", reason: str = "rule", masked=()) -> Recorded:
    return Recorded(Request.from_url(method, url, agent=agent), reason, frozenset(masked))


URL = "https://api.example.com"


@pytest.mark.parametrize(
    ("old_line", "new_line", "method", "path", "change", "control_method", "control_path"),
    [
        (
            "allow GET /v1/models",
            "block GET /v1/models",
            "GET",
            "/v1/models",
            Change.ALLOW_TO_BLOCK,
            "POST",
            "/v1/jobs",
        ),
        ("block DELETE /**", "allow DELETE /**", "DELETE", "/v1/x", Change.BLOCK_TO_ALLOW, "GET", "/v1/models"),
        ("allow GET /v1/models", "approve GET /v1/models", "GET", "/v1/models", Change.NEWLY_HELD, "DELETE", "/v1/x"),
        ("block DELETE /**", "approve DELETE /**", "DELETE", "/v1/x", Change.NEWLY_HELD, "GET", "/v1/models"),
        (
            "approve POST /v1/jobs",
            "allow POST /v1/jobs",
            "POST",
            "/v1/jobs",
            Change.APPROVAL_TO_ALLOW,
            "GET",
            "/v1/models",
        ),
        (
            "approve POST /v1/jobs",
            "block POST /v1/jobs",
            "POST",
            "/v1/jobs",
            Change.APPROVAL_TO_BLOCK,
            "GET",
            "/v1/models",
        ),
        (
            "allow GET /v1/models",
            "allow GET /v1/models\n    limit 10 per minute GET /v1/models",
            "GET",
            "/v1/models",
            Change.NEWLY_LIMITED,
            "POST",
            "/v1/jobs",
        ),
    ],
)
def test_each_change_with_a_control(old_line, new_line, method, path, change, control_method, control_path):
    old, new = _policy(OLD), _new(old_line, new_line)
    assert replay_one(old, new, _recorded(method, URL + path)).change is change
    assert replay_one(old, new, _recorded(control_method, URL + control_path)).change is Change.UNCHANGED


def test_a_limit_both_have_is_not_new():
    limited = OLD.replace("allow GET /v1/models", "allow GET /v1/models\n    limit 10 per minute GET /v1/models")
    old, new = _policy(limited), _policy(limited.replace("approve POST /v1/jobs", "block POST /v1/jobs"))
    assert replay_one(old, new, _recorded("GET", URL + "/v1/models")).change is Change.UNCHANGED


def test_a_rule_reading_a_header_the_log_does_not_record_is_unknown():
    old, new = _policy(OLD), _new("block DELETE /**", "block DELETE /v1/x")  # a change elsewhere
    result = replay_one(old, new, _recorded("POST", URL + "/v1/chat", agent="ci"))
    assert result.change is Change.UNKNOWN
    assert "replay.policy:5" in (result.why or "") and result.unknown_rule == "replay.policy:5"
    replay = Replay(old, _new("block DELETE /**", "block DELETE /v1/x"))
    replay.add(_recorded("POST", URL + "/v1/chat", agent="ci"))
    assert replay.by_rule[Change.UNKNOWN] == {"replay.policy:5": 1}  # the rule that reads the header
    # Control: another agent is ruled out by what was recorded (agent != "ci"): known, unchanged.
    assert replay_one(old, new, _recorded("POST", URL + "/v1/chat", agent="dev")).change is Change.UNCHANGED


def test_a_rule_reading_the_body_is_unknown_but_an_earlier_deciding_rule_is_not():
    old, new = _policy(OLD), _new("block DELETE /**", "block DELETE /v1/x")
    assert replay_one(old, new, _recorded("POST", URL + "/v1/search")).change is Change.UNKNOWN
    # Control: a request decided by a rule before any condition is known.
    assert replay_one(old, new, _recorded("POST", URL + "/v1/jobs")).change is Change.UNCHANGED


def test_a_masked_query_value_is_unknown_and_a_recorded_one_is_read():
    old, new = _policy(OLD), _new("block DELETE /**", "block DELETE /v1/x")
    masked = _recorded("GET", URL + "/v1/files/a?page=****", masked=("page",))
    assert replay_one(old, new, masked).change is Change.UNKNOWN
    # Control: the recorded value is read, and a change it decides is seen.
    old, new = (
        _policy(OLD),
        _new("allow GET /v1/files/** when query.page < 10", "allow GET /v1/files/** when query.page < 3"),
    )
    assert replay_one(old, new, _recorded("GET", URL + "/v1/files/a?page=5")).change is Change.ALLOW_TO_BLOCK
    assert replay_one(old, new, _recorded("GET", URL + "/v1/files/a?page=1")).change is Change.UNCHANGED


def test_policy_independent_refusals_stay_refused():
    old, new = _policy(OLD), _policy(OLD.replace("block DELETE /**", "allow DELETE /**"))
    for reason in ("ambiguous_path", "destination_mismatch", "method_override", "unsafe_method"):
        assert replay_one(old, new, _recorded("GET", URL + "/v1/models", reason=reason)).change is Change.UNCHANGED
    # Control: the same request, decided by a rule, does change under a policy that allows all.
    assert replay_one(old, new, _recorded("DELETE", URL + "/v1/x")).change is Change.BLOCK_TO_ALLOW


def test_exfiltration_and_private_address_rows():
    old, new = _policy(OLD), _new("block DELETE /**", "block DELETE /v1/x")
    # Neither policy injects a credential: a request that carried a secret is blocked by both.
    assert replay_one(old, new, _recorded("GET", URL + "/v1/models", reason="exfiltration")).change is Change.UNCHANGED
    injecting = 'credential k {\n    secret "k"\n    header Authorization = "Bearer {secret}"\n}\n'
    new = _policy(injecting + OLD.replace("host api.example.com {", "host api.example.com {\n    inject k"))
    result = replay_one(old, new, _recorded("GET", URL + "/v1/models", reason="exfiltration"))
    assert result.change is Change.UNKNOWN
    # Private address: no block names the host exactly in either policy -> blocked by both.
    wild = _policy(OLD.replace("host api.example.com", "host *.example.com"))
    wild_new = _policy(
        OLD.replace("host api.example.com", "host *.example.com").replace("block DELETE", "allow DELETE")
    )
    rec = _recorded("DELETE", URL + "/v1/x", reason="private_address")
    assert replay_one(wild, wild_new, rec).change is Change.UNCHANGED
    assert replay_one(old, new, rec).change is Change.UNKNOWN  # named exactly: the address decides


def test_a_host_named_exactly_then_only_by_a_default_that_allows_is_unknown():
    """A name let through under a block that names it exactly may have resolved to a private address,
    which a candidate that lets it through by a default or a wildcard refuses."""
    old = _policy(OLD)
    allow_all, block_all = _policy("default allow\n"), _policy("default block\n")
    assert replay_one(old, allow_all, _recorded("GET", URL + "/v1/models")).change is Change.UNKNOWN
    # Control: the candidate refuses it anyway, so the address does not matter.
    assert replay_one(old, block_all, _recorded("GET", URL + "/v1/models")).change is Change.ALLOW_TO_BLOCK


def test_replay_counts_by_rule_and_agent_with_examples_and_caches_repeats():
    old, new = _policy(OLD), _new("allow GET /v1/models", "block GET /v1/models")
    replay = Replay(old, new, examples_per_change=2)
    for agent in ("ci", "ci", "dev", "ci"):
        replay.add(_recorded("GET", URL + "/v1/models", agent=agent))
    replay.add(_recorded("POST", URL + "/v1/jobs"))
    replay.skip()
    assert replay.total == 5 and replay.skipped == 1 and replay.changed == 4
    assert replay.counts[Change.ALLOW_TO_BLOCK] == 4 and replay.counts[Change.UNCHANGED] == 1
    assert replay.by_rule[Change.ALLOW_TO_BLOCK] == {"replay.policy:2": 4}
    assert replay.by_agent[Change.ALLOW_TO_BLOCK] == {"ci": 3, "dev": 1}
    examples = replay.examples[Change.ALLOW_TO_BLOCK]
    assert len(examples) == 2 and examples[0].url == URL + "/v1/models"
    assert examples[0].old.verdict == "allow" and examples[0].new.verdict == "block"


def test_the_same_policy_changes_nothing_and_knows_everything():
    old = _policy(OLD)
    for method, path in (("POST", "/v1/chat"), ("POST", "/v1/search"), ("GET", "/v1/models")):
        assert replay_one(old, _policy(OLD), _recorded(method, URL + path)).change is Change.UNCHANGED


def test_a_raw_tcp_tunnel_is_replayed():
    old = _policy("host db.example.com:5432 {\n    allow tcp\n}\n")
    new = _policy("host db.example.com:5432 {\n    block tcp\n}\n")
    tunnel = Recorded(Request("TCP", "tcp", "db.example.com", 5432, "", agent="ci"), "rule")
    assert replay_one(old, new, tunnel).change is Change.ALLOW_TO_BLOCK
    assert replay_one(old, old, tunnel).change is Change.UNCHANGED


def test_a_destination_both_policies_decide_alike_is_unchanged_without_deciding():
    """Lines moved by an edit elsewhere (another host block added above) change no decision of this
    block, even one that depends on an unrecorded header; a block that changes is still decided."""
    old = _policy(OLD)
    moved = _policy("host other.example.com {\n    allow\n}\n\n" + OLD)
    replay = Replay(old, moved)
    header_rule = _recorded("POST", URL + "/v1/chat")

    def never() -> Recorded:
        raise AssertionError("a destination decided alike was decided")

    assert replay.add_keyed("k1", never, host="api.example.com", port=443) is None
    assert replay.counts[Change.UNCHANGED] == 1
    # Control: the same request replayed one by one is unknown (its rule reads a header) ...
    assert replay_one(old, _new("block DELETE /**", "block DELETE /v1/x"), header_rule).change is Change.UNKNOWN
    # ... and a block that changes is decided, not skipped.
    changed = Replay(old, _new("allow GET /v1/models", "block GET /v1/models"))
    result = changed.add_keyed("k2", lambda: _recorded("GET", URL + "/v1/models"), host="api.example.com", port=443)
    assert result is not None and result.change is Change.ALLOW_TO_BLOCK


def test_a_changed_mode_or_default_is_not_decided_alike():
    old = _policy(OLD)
    report = _policy("mode report\n" + OLD)
    replay = Replay(old, report)
    result = replay.add_keyed("k", lambda: _recorded("DELETE", URL + "/v1/x"), host="api.example.com", port=443)
    assert result is not None and result.change is Change.BLOCK_TO_ALLOW and result.new.would == "block"
    nowhere = Replay(old, _policy("default allow\n" + OLD))
    result = nowhere.add_keyed(
        "n", lambda: _recorded("GET", "https://other.example.org/"), host="other.example.org", port=443
    )
    assert result is not None and result.change is Change.BLOCK_TO_ALLOW
