"""One outcome vocabulary and one refusal table: every refusal the proxy makes names an Outcome and a
typed reason, and the table answers each (outcome, reason) pair with its own status and error type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from firewall.approvals.broker import ABANDONED, CANCELLED, DENIED, EXPIRED, USED
from firewall.policy import Decision, Mode, Reason, Verdict
from firewall.policy.outcomes import FORWARDED, Outcome, approval_outcome, forwarded_outcome
from firewall.proxy.refusals import ANY, REFUSALS, ProxyReason, refusal

PROXY = Path(__file__).resolve().parents[2] / "firewall" / "proxy"


def _refusing_calls() -> list[tuple[str, ast.Call]]:
    """Every `refuse(flow, OUTCOME, REASON, ...)` and `notes.refuse(OUTCOME, REASON, ...)` in the proxy."""
    calls = []
    for path in sorted(PROXY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in ("refuse", "record_event"):
                    calls.append((f"{path.relative_to(PROXY)}:{node.lineno}", node))
    return calls


def _arguments(call: ast.Call) -> list[ast.expr]:
    arguments = list(call.args)
    is_notes = isinstance(call.func, ast.Attribute) and call.func.attr == "refuse"
    return arguments if is_notes else arguments[1:]  # refuse(flow, ...) and record_event(flow, ...)


def test_the_proxy_refuses_in_many_places():
    assert len(_refusing_calls()) >= 15  # the scan below is not vacuous


@pytest.mark.parametrize(("where", "call"), _refusing_calls(), ids=lambda item: item if isinstance(item, str) else "")
def test_every_refusal_names_an_outcome_and_a_typed_reason(where, call):
    outcome, reason = _arguments(call)[:2]
    for argument in (outcome, reason):
        assert not isinstance(argument, ast.Constant), f"{where}: a bare string; use Outcome / Reason / ProxyReason"
    enums = {"Reason": Reason, "ProxyReason": ProxyReason}
    if isinstance(reason, ast.Attribute) and isinstance(reason.value, ast.Name) and reason.value.id in enums:
        typed = getattr(enums[reason.value.id], reason.attr)
        if isinstance(outcome, ast.Attribute) and isinstance(outcome.value, ast.Name) and outcome.value.id == "Outcome":
            refusal(Outcome[outcome.attr], typed)  # answered by the table


@pytest.mark.parametrize("outcome", [o for o in Outcome if o not in FORWARDED and o is not Outcome.PROBE])
def test_every_refusing_outcome_has_an_answer(outcome):
    answer = refusal(outcome, "some_reason_of_its_own")
    assert 400 <= answer.status < 600 and answer.error_type


@pytest.mark.parametrize(
    ("outcome", "reason", "status", "error_type"),
    [
        (Outcome.BLOCK, Reason.RULE, 403, "policy_blocked"),
        (Outcome.BLOCK, Reason.MALFORMED_REQUEST, 403, "policy_blocked"),
        (Outcome.BLOCK, ProxyReason.REQUEST_TRAILERS, 400, "malformed_request"),
        (Outcome.BLOCK, ProxyReason.PROXY_AUTH_REQUIRED, 407, "proxy_auth_required"),
        (Outcome.EXFILTRATION, Reason.EXFILTRATION, 403, "exfiltration_blocked"),
        (Outcome.LIMIT, ProxyReason.RATE_LIMITED, 429, "rate_limited"),
        (Outcome.ERROR, ProxyReason.LIMITS_UNAVAILABLE, 503, "limits_unavailable"),
        (Outcome.ERROR, ProxyReason.INTERNAL_ERROR, 500, "firewall_error"),
        (Outcome.ERROR, ProxyReason.UNRESOLVABLE, 502, "upstream_unreachable"),
        (Outcome.ERROR, ProxyReason.CREDENTIAL_NEEDS_LOGIN, 503, "credential_needs_login"),
        (Outcome.ERROR, ProxyReason.UNSCRUBBABLE_RESPONSE, 502, "upstream_unscrubbable"),
        (Outcome.APPROVAL_ABANDONED, Reason.RULE, 499, "approval_abandoned"),
    ],
)
def test_the_table_answers_each_pair(outcome, reason, status, error_type):
    answer = refusal(outcome, reason)
    assert (answer.status, answer.error_type) == (status, error_type)


def test_a_pair_without_its_own_row_gets_its_outcomes_row():
    assert (Outcome.BLOCK, Reason.DESTINATION_MISMATCH) not in REFUSALS
    assert refusal(Outcome.BLOCK, Reason.DESTINATION_MISMATCH) == REFUSALS[(Outcome.BLOCK, ANY)]


@pytest.mark.parametrize("state", [DENIED, EXPIRED, CANCELLED, USED, ABANDONED])
def test_every_way_a_hold_ends_without_approval_is_an_outcome_with_an_answer(state):
    outcome = approval_outcome(state)
    assert not outcome.forwarded and refusal(outcome, Reason.RULE).error_type == outcome.value


def _decision(mode=Mode.ENFORCE, would=None):
    return Decision(Verdict.ALLOW, Reason.RULE, mode=mode, would=would)


@pytest.mark.parametrize(
    ("decision", "approved", "over_limit", "expected"),
    [
        (_decision(), False, False, Outcome.ALLOW),
        (_decision(), True, False, Outcome.APPROVE),
        (_decision(), False, True, Outcome.LIMIT),
        (_decision(), True, True, Outcome.LIMIT),
        (_decision(Mode.REPORT), False, False, Outcome.ALLOW),
        (_decision(Mode.REPORT, Verdict.BLOCK), False, False, Outcome.WOULD_BLOCK),
        (_decision(Mode.REPORT, Verdict.APPROVE), False, False, Outcome.WOULD_APPROVE),
        (_decision(Mode.REPORT, Verdict.BLOCK), False, True, Outcome.WOULD_LIMIT),
        (_decision(Mode.REPORT), False, True, Outcome.WOULD_LIMIT),
    ],
)
def test_what_a_let_through_request_becomes(decision, approved, over_limit, expected):
    outcome = forwarded_outcome(decision, approved=approved, over_limit=over_limit)
    assert outcome is expected
    assert outcome.forwarded == (expected is not Outcome.LIMIT)


def test_a_policy_block_says_so_once():
    from firewall.proxy.addons.enforce import _blocked_message

    decision = Decision(Verdict.BLOCK, Reason.RULE, message="block by the rule at p:3", rule_reason="no")
    said = refusal(Outcome.BLOCK, Reason.RULE).message.format(detail=_blocked_message(decision))
    assert said == "blocked by the firewall policy: block by the rule at p:3 (no)"
