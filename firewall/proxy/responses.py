"""The answers the proxy gives itself: OpenAI-style JSON errors an agent can read."""

from __future__ import annotations

import json

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import refusal

PROXY_REALM = "agent-firewall"


def refuse(
    flow: http.HTTPFlow,
    outcome: Outcome,
    reason: str,
    detail: str,
    *,
    say: str | None = None,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> None:
    """Answer `flow` with the refusal for (outcome, reason) and note it for the audit row.

    `detail` goes to the audit row; the agent's message is the table's, filled with `say` (what to
    tell the agent, when it differs from the row's detail) or `detail`. `status` replaces the
    table's where the request's shape asks for another (426 to a refused WebSocket upgrade).
    """
    notes = notes_of(flow)
    notes.refuse(outcome, reason, detail, rule)
    answer = refusal(outcome, reason)
    if answer.status == 407:
        headers = {"proxy-authenticate": f'Basic realm="{PROXY_REALM}"', **(headers or {})}
    flow.response = error_response(
        status or answer.status,
        answer.error_type,
        answer.message.format(detail=detail if say is None else say),
        notes.request_id,
        rule=notes.rule,
        headers=headers,
    )


def error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    *,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> http.Response:
    """`{"error": {"type", "code", "message", "rule", "request_id", **extra}}` with `status`."""
    body = {"error": error_object(error_type, message, request_id, rule=rule, extra=extra)}
    all_headers = {"content-type": "application/json", "x-firewall-request-id": request_id}
    all_headers.update(headers or {})
    return http.Response.make(status, json.dumps(body).encode(), all_headers)


def error_object(
    error_type: str,
    message: str,
    request_id: str,
    *,
    rule: str | None = None,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """The `error` member of every answer the proxy gives itself."""
    return {
        "type": error_type,
        "code": error_type,
        "message": message,
        "param": None,
        "rule": rule,
        "request_id": request_id,
        **(extra or {}),
    }


def websocket_error(status: int, error: dict[str, object], headers: dict[str, str] | None = None) -> bytes:
    """A refusal inside a Responses API WebSocket, in place of the response a message asked for: the
    `error` event OpenAI sends there, `{"type": "error", "status", "error", "headers"}`. `status` and
    `headers` are those the HTTP answer would have; codex-rs reads the event as that HTTP error, by
    its status and `error.type`."""
    event = {
        "type": "error",
        "status": status,
        "error": error,
        "headers": {"x-request-id": str(error.get("request_id")), **(headers or {})},
    }
    return json.dumps(event).encode()
