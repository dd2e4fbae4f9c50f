"""Which responses the proxy streams: all but small ones of announced length."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from firewall.proxy.addons.streaming import WHOLE_UP_TO, Streaming


def flow_with(headers: dict[str, str]) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.response.headers = http.Headers(**headers) if headers else http.Headers()
    flow.response.stream = False
    return flow


@pytest.mark.parametrize(
    "headers,streamed",
    [
        ({"content-length": "2"}, False),
        ({"content-length": str(WHOLE_UP_TO)}, False),
        ({"content-length": str(WHOLE_UP_TO + 1)}, True),
        ({}, True),  # chunked or until close: length unknown
        ({"transfer_encoding": "chunked"}, True),
        ({"content-length": "100", "content_type": "text/event-stream"}, True),
        ({"content-length": "100", "content_type": "Text/Event-Stream; charset=utf-8"}, True),
        ({"content-length": "x12"}, True),
    ],
)
def test_streams_all_but_small_answers_of_known_length(headers, streamed):
    flow = flow_with(headers)
    Streaming().responseheaders(flow)
    assert callable(flow.response.stream) is streamed


def test_a_streamed_answer_counts_its_bytes():
    from firewall.proxy.notes import notes_of

    flow = flow_with({})
    Streaming().responseheaders(flow)
    assert flow.response.stream(b"abc") == b"abc"
    assert flow.response.stream(b"de") == b"de"
    assert notes_of(flow).bytes_in == 5
