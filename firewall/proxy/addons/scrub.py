"""Masking injected secrets in what comes back: response headers, bodies, WebSocket messages.

An upstream may echo the credential the proxy added (an echo endpoint, an
error quoting the Authorization header, TRACE-like debugging). On every flow
that carried an injected secret, each of its forms is replaced with `*` of the
same length before the agent sees it, so Content-Length stays exact:

- streamed bodies chunk by chunk, holding back a tail so a secret split
  across two chunks is still masked;
- the proxy asks upstream for `Accept-Encoding: identity`; a compressed
  answer anyway is buffered, unpacked (bounded), masked and sent unpacked;
  one that cannot be unpacked is refused (502), never passed on unchecked.

The audit row says `scrubbed = 1` when anything was masked. Runs after the
addons that may buffer or replace a response (Reauthorize), before the audit.
"""

from __future__ import annotations

from mitmproxy import http

from firewall.proxy.bodies import IDENTITY, BodyDecodeError, decode
from firewall.proxy.notes import notes_of
from firewall.proxy.responses import error_response
from firewall.proxy.runtime import Runtime
from firewall.secrets_scan import Masker

UNPACK_LIMIT = 64 * 1024 * 1024  # a compressed answer that unpacks to more is refused


class Scrubber:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def _masker(self, flow: http.HTTPFlow) -> Masker | None:
        notes = notes_of(flow)
        if not notes.credentials or notes.decision is None:
            return None
        names = {i.secret for i in notes.decision.inject if i.credential in notes.credentials}
        masker = self.runtime.secret_index.masker(names)
        return masker if masker.forms else None

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is None and notes_of(flow).credentials:
            flow.request.headers["accept-encoding"] = "identity"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        masker = self._masker(flow)
        if masker is None:
            return
        notes = notes_of(flow)
        fields, masked_any = [], 0
        for name, value in flow.response.headers.fields:
            masked, count = masker.mask(value)
            fields.append((name, masked))
            masked_any += count
        if masked_any:
            flow.response.headers.fields = tuple(fields)
            notes.scrubbed = True
        if not callable(flow.response.stream) or _encoded(flow.response):
            flow.response.stream = False  # read whole and masked in `response`
            return
        inner, stream = flow.response.stream, masker.stream()

        def scrub(chunk: bytes) -> bytes | list[bytes]:
            out = stream.feed(chunk)
            if stream.count:
                notes.scrubbed = True
            # Nothing to send yet (all held back): an empty chunk would end a chunked body.
            return inner(out) if out else []

        flow.response.stream = scrub

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.stream:
            return  # streamed: masked on the way
        masker = self._masker(flow)
        if masker is None or not response.raw_content:
            return
        notes = notes_of(flow)
        body = response.raw_content
        encoding = response.headers.get("content-encoding", "")
        if _encoded(response):
            try:
                unpacked = decode(body, encoding, UNPACK_LIMIT)
            except BodyDecodeError as exc:
                unpacked = None
                why = str(exc)
            else:
                why = f"it unpacks to more than {UNPACK_LIMIT} bytes"
            if unpacked is None or not unpacked.complete:
                notes.refuse("error", "unscrubbable_response", f"the {encoding} answer cannot be checked: {why}")
                flow.response = error_response(
                    502, "upstream_unscrubbable",
                    "the upstream's compressed answer could not be checked for the credential the firewall "
                    "added, so it was not passed on", notes.request_id, rule=notes.rule,
                )
                return
            body = unpacked.data
            del response.headers["content-encoding"]
        masked, count = masker.mask(body)
        if count:
            notes.scrubbed = True
        if count or body is not response.raw_content:
            response.content = masked  # sets Content-Length to the body sent, unless chunked

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        message = flow.websocket.messages[-1]
        if message.from_client:
            return
        masker = self._masker(flow)
        if masker is None:
            return
        masked, count = masker.mask(message.content)
        if count:
            message.content = masked
            notes_of(flow).scrubbed = True


def _encoded(response: http.Response) -> bool:
    return response.headers.get("content-encoding", "").strip().lower() not in IDENTITY
