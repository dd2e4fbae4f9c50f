"""Responses flow to the agent as they arrive (SSE, chunked), never buffered whole.

mitmproxy buffers a response unless `stream` is set in `responseheaders`;
the per-chunk callable also counts the bytes for the audit row.
"""

from __future__ import annotations

from mitmproxy import http

from firewall.proxy.notes import notes_of


class Streaming:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)

        def count(chunk: bytes) -> bytes:
            notes.bytes_in += len(chunk)
            return chunk

        flow.response.stream = count
