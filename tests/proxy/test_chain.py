"""`Chain` calls its parts' hooks the way mitmproxy would call them as separate addons."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.addonmanager import traverse

from firewall.proxy.chain import Chain


class Recorder:
    def __init__(self, name: str, calls: list):
        self.name, self.calls = name, calls


class SyncRequest(Recorder):
    def request(self, flow):
        self.calls.append((self.name, "request", flow))


class AsyncRequest(Recorder):
    async def request(self, flow):
        await asyncio.sleep(0)
        self.calls.append((self.name, "request", flow))

    def response(self, flow):
        self.calls.append((self.name, "response", flow))


class Failing(Recorder):
    def request(self, flow):
        raise ValueError("boom")


class Halting(Recorder):
    def request(self, flow):
        raise exceptions.AddonHalt()


def test_has_exactly_the_hooks_of_its_parts():
    chain = Chain(SyncRequest("a", []), AsyncRequest("b", []))
    assert callable(chain.request) and callable(chain.response)
    assert not hasattr(chain, "requestheaders") and not hasattr(chain, "error")
    assert list(traverse([chain])) == [chain]  # mitmproxy sees one addon, never the parts


def test_calls_parts_in_order_awaiting_coroutines():
    calls: list = []
    chain = Chain(SyncRequest("a", calls), AsyncRequest("b", calls), SyncRequest("c", calls))
    asyncio.run(chain.request("flow"))
    asyncio.run(chain.response("flow"))
    assert calls == [
        ("a", "request", "flow"),
        ("b", "request", "flow"),
        ("c", "request", "flow"),
        ("b", "response", "flow"),
    ]


def test_an_error_is_logged_and_the_next_part_still_runs(caplog):
    calls: list = []
    chain = Chain(Failing("a", calls), SyncRequest("b", calls))
    with caplog.at_level(logging.ERROR, logger="mitmproxy.addonmanager"):
        asyncio.run(chain.request("flow"))
    assert calls == [("b", "request", "flow")]
    assert "Addon error: boom" in caplog.text


def test_addon_halt_stops_the_chain_as_in_mitmproxy():
    calls: list = []
    chain = Chain(Halting("a", calls), SyncRequest("b", calls))
    with pytest.raises(exceptions.AddonHalt):
        asyncio.run(chain.request("flow"))
    assert calls == []


class FailingHeaders(Recorder):
    def requestheaders(self, flow):
        raise RuntimeError("identity store unreadable")


class FailingResponseHeaders(Recorder):
    def responseheaders(self, flow):
        raise RuntimeError("scrubber broke")


class SeesResponse(Recorder):
    def requestheaders(self, flow):
        self.calls.append((self.name, flow.response.status_code if flow.response else None))


def test_an_error_before_upstream_refuses_the_request_and_later_parts_see_the_refusal():
    from mitmproxy.test import tflow

    calls: list = []
    flow = tflow.tflow()
    chain = Chain(FailingHeaders("a", calls), SeesResponse("b", calls))
    asyncio.run(chain.requestheaders(flow))
    assert flow.response is not None and flow.response.status_code == 500
    assert b'"firewall_error"' in flow.response.content
    assert calls == [("b", 500)]


def test_an_error_while_answering_kills_the_flow_instead_of_passing_the_answer_on():
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    chain = Chain(FailingResponseHeaders("a", []))
    asyncio.run(chain.responseheaders(flow))
    assert flow.error is not None and flow.error.msg == "Connection killed."
