"""Responses flow to the agent as they arrive (SSE, chunked, large), never buffered whole.

mitmproxy buffers a response unless `stream` is set in `responseheaders`;
the per-chunk callable also counts the bytes for the audit row.

A small answer of announced length (Content-Length up to `WHOLE_UP_TO`, and not
an event stream) is relayed whole: streaming it gains the agent nothing, and
costs a write for the headers and one per chunk where one does, which was a
tenth of the proxy's throughput with many agents at once. The audit row then
counts its bytes from the body; the scrubber masks it whole.
"""

from __future__ import annotations

from mitmproxy import http

from firewall.proxy.notes import notes_of

WHOLE_UP_TO = 64 * 1024  # bytes


def relayed_whole(response: http.Response) -> bool:
    length = response.headers.get("content-length", "")
    return (
        length.isdigit()
        and int(length) <= WHOLE_UP_TO
        and "text/event-stream" not in response.headers.get("content-type", "").lower()
    )


class Streaming:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if relayed_whole(flow.response):
            return
        notes = notes_of(flow)

        def count(chunk: bytes) -> bytes:
            notes.bytes_in += len(chunk)
            return chunk

        flow.response.stream = count
