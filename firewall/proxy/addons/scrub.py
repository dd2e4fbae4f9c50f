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

The status line's reason phrase and the trailers are masked too. The audit row
says `scrubbed = 1` when anything was masked; on an open WebSocket, whose row
was written at the handshake, the first masked message writes one more row
that says so. Runs after the addons that may buffer or replace a response
(Reauthorize), before the audit.
"""

from __future__ import annotations

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.addons.audit import Auditor
from firewall.proxy.bodies import IDENTITY, BodyDecodeError, decode
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse
from firewall.proxy.runtime import Runtime
from firewall.redaction import Masker

UNPACK_LIMIT = 64 * 1024 * 1024  # a compressed answer that unpacks to more is refused


class Scrubber:
    def __init__(self, runtime: Runtime, auditor: Auditor):
        self.runtime = runtime
        self.auditor = auditor

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
        reason, in_reason = masker.mask(flow.response.data.reason)
        if _mask_fields(flow.response.headers, masker) or in_reason:
            flow.response.data.reason = reason
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
        masker = self._masker(flow) if response is not None else None
        if masker is None:
            return
        notes = notes_of(flow)
        if response.trailers is not None and _mask_fields(response.trailers, masker):
            notes.scrubbed = True  # trailers are sent after this hook, streamed body or not
        if response.stream or not response.raw_content:
            return  # streamed: masked on the way
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
                why = f"the {encoding} answer cannot be checked: {why}"
                refuse(flow, Outcome.ERROR, ProxyReason.UNSCRUBBABLE_RESPONSE, why)
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
            notes = notes_of(flow)
            if not notes.scrubbed:  # the handshake's row said 0: one row says it now
                notes.scrubbed = True
                self.auditor.record_event(
                    flow,
                    notes.outcome or Outcome.ALLOW,
                    ProxyReason.SCRUBBED,
                    "an injected credential was masked in a WebSocket message",
                )


def _mask_fields(fields, masker: Masker) -> int:
    """Mask every value of `fields` (headers or trailers) in place; how many forms were masked."""
    masked_fields, total = [], 0
    for name, value in fields.fields:
        masked, count = masker.mask(value)
        masked_fields.append((name, masked))
        total += count
    if total:
        fields.fields = tuple(masked_fields)
    return total


def _encoded(response: http.Response) -> bool:
    return response.headers.get("content-encoding", "").strip().lower() not in IDENTITY
