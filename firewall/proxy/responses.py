"""The answers the proxy gives itself: OpenAI-style JSON errors an agent can read."""

from __future__ import annotations

import json

from mitmproxy import http

PROXY_REALM = "agent-firewall"


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
    body = {
        "error": {
            "type": error_type,
            "code": error_type,
            "message": message,
            "param": None,
            "rule": rule,
            "request_id": request_id,
            **(extra or {}),
        }
    }
    all_headers = {"content-type": "application/json", "x-firewall-request-id": request_id}
    all_headers.update(headers or {})
    return http.Response.make(status, json.dumps(body).encode(), all_headers)


def proxy_auth_required(request_id: str, message: str) -> http.Response:
    return error_response(
        407,
        "proxy_auth_required",
        message,
        request_id,
        headers={"proxy-authenticate": f'Basic realm="{PROXY_REALM}"'},
    )
