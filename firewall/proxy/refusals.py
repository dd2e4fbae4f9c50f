"""Every refusal the proxy answers with, in one table: (outcome, reason) -> status, error type, message.

The audit row's `reason` is the engine's `Reason` when the policy decided, or a `ProxyReason` when
the proxy refused for a cause of its own. No mitmproxy here: responses.py turns a `Refusal` into an
answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firewall.policy.outcomes import Outcome


class ProxyReason(StrEnum):
    NOT_DECIDED = "not_decided"  # mitmproxy refused or lost the flow before the firewall's hooks ran
    INTERNAL_ERROR = "internal_error"  # a hook failed: refused, fail closed
    PROXY_AUTH_REQUIRED = "proxy_auth_required"  # no valid agent credentials
    REQUEST_TRAILERS = "request_trailers"  # a request with trailers, which no rule or scan reads (framing.py)
    UNRESOLVABLE = "unresolvable"  # the destination's name does not resolve
    UPSTREAM_UNREACHABLE = "upstream_unreachable"  # the upstream could not be reached
    UPSTREAM_TLS_ERROR = "upstream_tls_error"  # the upstream's TLS failed (its certificate not trusted, ...)
    UPSTREAM_ERROR = "upstream_error"  # the upstream failed otherwise (reset, ...)
    RATE_LIMITED = "rate_limited"
    BUDGET_EXHAUSTED = "budget_exhausted"  # a token or dollar budget of the request is spent (budget_gate.py)
    # A WebSocket under a budget whose turns the proxy cannot count (not the Responses API's): refused
    BUDGET_UNCOUNTABLE = "budget_uncountable"
    LIMITS_UNAVAILABLE = "limits_unavailable"  # the limits store did not answer in time
    CREDENTIAL_UNAVAILABLE = "credential_unavailable"  # the vault has no value for an injected credential
    CREDENTIAL_NEEDS_LOGIN = "credential_needs_login"  # an OAuth login must be made again
    CREDENTIAL_REFRESH_FAILED = "credential_refresh_failed"  # an OAuth refresh failed for now
    UNSCRUBBABLE_RESPONSE = "unscrubbable_response"  # an answer that cannot be checked for the injected secret
    AUDIT_UNAVAILABLE = "audit_unavailable"  # the audit log cannot be written now (full disk, locked)
    PROXY_STOPPING = "proxy_stopping"  # a new request on an open connection while the proxy drains
    DOCTOR_PROBE = "doctor_probe"  # (not a refusal) `firewall doctor`'s probe, answered by the proxy
    SCRUBBED = "scrubbed"  # (an event row) an injected credential was masked in a WebSocket message


ANY = "*"  # any reason of that outcome


@dataclass(frozen=True)
class Refusal:
    status: int
    error_type: str
    message: str  # `{detail}` is replaced by what the refusing code says of this request


_CREDENTIAL = Refusal(503, "{reason}", "{detail}")

REFUSALS: dict[tuple[Outcome, str], Refusal] = {
    (Outcome.BLOCK, ANY): Refusal(403, "policy_blocked", "blocked by the firewall policy: {detail}"),
    (Outcome.BLOCK, ProxyReason.REQUEST_TRAILERS): Refusal(400, "malformed_request", "{detail}"),
    (Outcome.BLOCK, ProxyReason.PROXY_AUTH_REQUIRED): Refusal(407, "proxy_auth_required", "{detail}"),
    (Outcome.EXFILTRATION, ANY): Refusal(403, "exfiltration_blocked", "blocked by the firewall policy: {detail}"),
    (Outcome.LIMIT, ProxyReason.RATE_LIMITED): Refusal(429, "rate_limited", "rate limit reached: {detail}"),
    (Outcome.LIMIT, ProxyReason.BUDGET_EXHAUSTED): Refusal(429, "budget_exhausted", "budget spent: {detail}"),
    (Outcome.BLOCK, ProxyReason.BUDGET_UNCOUNTABLE): Refusal(
        403, "budget_uncountable", "blocked by the firewall policy: {detail}"
    ),
    (Outcome.ERROR, ProxyReason.INTERNAL_ERROR): Refusal(
        500, "firewall_error", "the firewall could not decide this request, so it was refused"
    ),
    (Outcome.ERROR, ProxyReason.UNRESOLVABLE): Refusal(502, "upstream_unreachable", "{detail}"),
    (Outcome.ERROR, ProxyReason.UPSTREAM_UNREACHABLE): Refusal(502, "upstream_unreachable", "{detail}"),
    # Written by mitmproxy's error page, which upstream_errors.py makes JSON: the same status and type.
    (Outcome.ERROR, ProxyReason.UPSTREAM_TLS_ERROR): Refusal(
        502, "upstream_tls_error", "the upstream failed: {detail}"
    ),
    (Outcome.ERROR, ProxyReason.UPSTREAM_ERROR): Refusal(502, "upstream_error", "the upstream failed: {detail}"),
    (Outcome.ERROR, ProxyReason.LIMITS_UNAVAILABLE): Refusal(
        503,
        "limits_unavailable",
        "the firewall cannot count this request against its limits, so it was refused: {detail}; retry later",
    ),
    (Outcome.ERROR, ANY): Refusal(503, "{reason}", "{detail}"),
    (Outcome.LIMIT, ANY): Refusal(429, "{reason}", "{detail}"),
    (Outcome.ERROR, ProxyReason.CREDENTIAL_UNAVAILABLE): _CREDENTIAL,
    (Outcome.ERROR, ProxyReason.CREDENTIAL_NEEDS_LOGIN): _CREDENTIAL,
    (Outcome.ERROR, ProxyReason.CREDENTIAL_REFRESH_FAILED): _CREDENTIAL,
    (Outcome.ERROR, ProxyReason.UNSCRUBBABLE_RESPONSE): Refusal(
        502,
        "upstream_unscrubbable",
        "the upstream's compressed answer could not be checked for the credential the firewall added, "
        "so it was not passed on",
    ),
    (Outcome.ERROR, ProxyReason.AUDIT_UNAVAILABLE): Refusal(
        503,
        "audit_unavailable",
        "the firewall cannot write its audit log now (a full disk, or the database locked), so it "
        "refuses new requests until it can; try again later",
    ),
    (Outcome.ERROR, ProxyReason.PROXY_STOPPING): Refusal(
        503, "proxy_stopping", "the firewall proxy is stopping; try again once it runs"
    ),
    (Outcome.APPROVAL_DENIED, ANY): Refusal(403, "approval_denied", "a person refused this request ({detail})"),
    (Outcome.APPROVAL_EXPIRED, ANY): Refusal(
        403,
        "approval_expired",
        "nobody approved this request within the approval timeout; it was refused ({detail})",
    ),
    (Outcome.APPROVAL_CANCELLED, ANY): Refusal(
        503,
        "approval_cancelled",
        "the firewall proxy stopped while this request waited for approval; retry it ({detail})",
    ),
    (Outcome.APPROVAL_USED, ANY): Refusal(
        403, "approval_used", "the approval of this request was already used by an identical request ({detail})"
    ),
    (Outcome.APPROVAL_ABANDONED, ANY): Refusal(
        499, "approval_abandoned", "the agent disconnected while its request waited for approval ({detail})"
    ),
}


def refusal(outcome: Outcome, reason: str) -> Refusal:
    """The answer for a request refused with (outcome, reason): the pair's own row, else its outcome's."""
    found = REFUSALS.get((outcome, reason)) or REFUSALS[(outcome, ANY)]
    return Refusal(found.status, found.error_type.format(reason=reason), found.message)
