"""Answers `firewall doctor`'s probe: a reserved name the proxy answers itself.

`probe.firewall.invalid` (RFC 6761: `.invalid` never resolves) is answered here, after the
agent's proxy credentials were checked and (for HTTPS) after TLS was intercepted with the
firewall's CA, so an answer shows the client used the proxy and trusted the CA. The name is
never decided by the policy, never looked up and never forwarded: no upstream connection is
made (the connection strategy is lazy and the flow has its response before any). One audit
row says `probe`. No policy logic here.
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


class Probe:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return  # e.g. a 407 for missing credentials: the probe must not hide that
        if flow.request.host.lower().rstrip(".") != PROBE_HOST:
            return
        notes = notes_of(flow)
        notes.outcome, notes.reason = Outcome.PROBE, ProxyReason.DOCTOR_PROBE
        notes.detail = "answered by the proxy itself (firewall doctor)"
        flow.response = probe_answer(flow)
