"""The probe addon answers only its reserved name, only flows nobody answered yet, and never
leaves the flow for an upstream."""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from firewall.proxy.addons.probe import PROBE_HOST, Probe
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
