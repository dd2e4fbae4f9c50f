"""Answers `firewall doctor`'s probe: a reserved name the proxy answers itself.

`probe.firewall.invalid` (RFC 6761: `.invalid` never resolves) is answered here, after the
agent's proxy credentials were checked and (for HTTPS) after TLS was intercepted with the
firewall's CA, so an answer shows the client used the proxy and trusted the CA. The name is
never decided by the policy, never looked up and never forwarded: no upstream connection is
made (the connection strategy is lazy and the flow has its response before any). One audit
row says `probe`. No policy logic here.

A POST to a path ending in `/responses` (the Codex CLI's probe: a model provider on this name) is
answered as the Responses API streams a turn: one assistant message saying `firewall doctor probe:
ok`, then `response.completed`, so the client finishes its turn at once instead of retrying.
"""

from __future__ import annotations

import json

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import ProxyReason

PROBE_HOST = "probe.firewall.invalid"


def probe_answer(flow: http.HTTPFlow) -> http.Response:
    body = {
        "probe": "ok",
        "scheme": flow.request.scheme,
        "agent": notes_of(flow).agent,
        "http_version": flow.request.http_version,
    }
    return http.Response.make(200, json.dumps(body).encode(), {"content-type": "application/json"})


PROBE_TEXT = "firewall doctor probe: ok"


def responses_probe_answer(flow: http.HTTPFlow) -> http.Response:
    """A whole Responses API stream: created, one message, completed (with zero usage)."""
    usage = {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    message = {
        "type": "message",
        "id": "msg_firewall_probe",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": PROBE_TEXT, "annotations": []}],
    }
    response = {"id": "resp_firewall_probe", "object": "response", "model": "firewall-probe", "output": []}
    events = [
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {
            "type": "response.completed",
            "response": {**response, "status": "completed", "output": [message], "usage": usage},
        },
    ]
    body = b"".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events)
    return http.Response.make(200, body, {"content-type": "text/event-stream", "cache-control": "no-cache"})


def is_responses_call(flow: http.HTTPFlow) -> bool:
    return flow.request.method == "POST" and flow.request.path.split("?")[0].rstrip("/").endswith("/responses")


class Probe:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return  # e.g. a 407 for missing credentials: the probe must not hide that
        if flow.request.host.lower().rstrip(".") != PROBE_HOST:
            return
        notes = notes_of(flow)
        notes.outcome, notes.reason = Outcome.PROBE, ProxyReason.DOCTOR_PROBE
        notes.detail = "answered by the proxy itself (firewall doctor)"
        flow.response = responses_probe_answer(flow) if is_responses_call(flow) else probe_answer(flow)
