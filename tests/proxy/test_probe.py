"""The probe addon answers only its reserved name, only flows nobody answered yet, and never
leaves the flow for an upstream."""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from firewall.proxy.addons.probe import PROBE_HOST, PROBE_TEXT, Probe
from firewall.proxy.notes import notes_of


def flow_to(host: str) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.scheme = "https"
    flow.request.port = 443
    return flow


@pytest.mark.parametrize("host", [PROBE_HOST, PROBE_HOST.upper(), PROBE_HOST + "."])
def test_probe_name_is_answered_here(host):
    flow = flow_to(host)
    Probe().request(flow)
    assert flow.response is not None and flow.response.status_code == 200
    assert json.loads(flow.response.content)["probe"] == "ok"
    assert notes_of(flow).outcome == "probe"


@pytest.mark.parametrize("host", ["api.openai.com", "probe.firewall.invalid.example.com", "firewall.invalid"])
def test_other_names_are_left_to_the_policy(host):
    """The benign control: any other name, a suffix trick included, passes through untouched."""
    flow = flow_to(host)
    Probe().request(flow)
    assert flow.response is None
    assert notes_of(flow).outcome is None


def test_a_flow_already_answered_keeps_its_answer():
    """A 407 for missing proxy credentials stays a 407: the probe never hides it."""
    flow = flow_to(PROBE_HOST)
    flow.response = http.Response.make(407, b"")
    Probe().request(flow)
    assert flow.response.status_code == 407


@pytest.mark.parametrize("path", ["/doctor/codex/responses", "/v1/responses?x=1", "/doctor/codex/responses/"])
def test_a_responses_call_on_the_probe_name_gets_a_whole_responses_stream(path):
    """Codex's probe: a POST to .../responses is answered as the Responses API streams a turn, so
    Codex ends its turn at once; the control, a GET of the same path, gets the JSON answer."""
    flow = flow_to(PROBE_HOST)
    flow.request.method, flow.request.path = "POST", path
    Probe().request(flow)
    assert flow.response.headers["content-type"] == "text/event-stream"
    events = [json.loads(line[6:]) for line in flow.response.text.splitlines() if line.startswith("data: ")]
    assert [event["type"] for event in events] == [
        "response.created",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[1]["item"]["content"][0]["text"] == PROBE_TEXT
    assert notes_of(flow).outcome == "probe"
    control = flow_to(PROBE_HOST)
    control.request.method, control.request.path = "GET", path
    Probe().request(control)
    assert json.loads(control.response.content)["probe"] == "ok"


def test_the_doctor_looks_for_the_text_the_proxy_sends():
    from firewall.doctor import codex_probe

    assert codex_probe.PROBE_TEXT == PROBE_TEXT
