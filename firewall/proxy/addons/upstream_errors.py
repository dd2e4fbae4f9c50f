"""An upstream that fails (TLS, connect, reset) is answered with the JSON error of every refusal.

When a request the policy let through cannot reach its upstream, mitmproxy writes its own
HTML "502 Bad Gateway" page to the client: an agent reading `{"error": {...}}` bodies cannot
tell what happened, and the audit row said `allow` with no status. mitmproxy has no hook to
answer such a flow, so two parts work together:

- `UpstreamErrors.error` (a hook, before the audit addon) names the failure in the flow's notes
  (`error`, reason `upstream_tls_error` / `upstream_unreachable` / `upstream_error`) and leaves
  the JSON answer for the connection in a context variable;
- `install()` replaces mitmproxy's HTTP/1 (and HTTP/2) error page with that answer. mitmproxy writes the
  page in the same task, right after the error hook returns; an error page without a pending
  answer (a client's malformed request) gets the same JSON shape, typed from the message.
"""

from __future__ import annotations

import contextvars
import json

from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1, _http2

from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import ProxyReason

_TLS_WORDS = ("certificate", "tls", "ssl", "handshake")

_pending: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("upstream_error", default=None)


def upstream_error_type(message: str) -> ProxyReason:
    """`upstream_tls_error`, `upstream_unreachable` or `upstream_error`, from mitmproxy's message."""
    lowered = message.lower()
    if any(word in lowered for word in _TLS_WORDS):
        return ProxyReason.UPSTREAM_TLS_ERROR
    if "connect" in lowered or "refused" in lowered or "unreachable" in lowered or "resolve" in lowered:
        return ProxyReason.UPSTREAM_UNREACHABLE
    return ProxyReason.UPSTREAM_ERROR


def json_error_body(status: int, message: str = "") -> bytes:
    """The refusals' JSON body in place of mitmproxy's HTML error page; takes the pending answer."""
    pending = _pending.get()
    _pending.set(None)
    request_id, error_type = pending if pending else (None, _client_error_type(status, message))
    text = f"the upstream failed: {message}" if error_type.startswith("upstream") else message
    body = {"error": {"type": error_type, "code": error_type, "message": text, "param": None, "rule": None}}
    body["error"]["request_id"] = request_id
    return json.dumps(body).encode()


def json_error_page(status: int, message: str = "") -> bytes:
    """An HTTP/1 answer carrying `json_error_body`, on a closing connection."""
    pending = _pending.get()
    headers = {"content-type": "application/json", "connection": "close"}
    if pending:
        headers["x-firewall-request-id"] = pending[0]
    return http1.assemble_response(http.Response.make(status, json_error_body(status, message), headers))


def _client_error_type(status: int, message: str) -> str:
    return upstream_error_type(message) if status in (502, 504) else "bad_request" if status == 400 else "proxy_error"


def install() -> None:
    """Put the JSON page in place of mitmproxy's HTML one (idempotent). Over HTTP/2 the body is
    JSON but mitmproxy still labels it text/html (the header is written inline there)."""
    _http1.make_error_response = json_error_page
    _http2.format_error = json_error_body


class UpstreamErrors:
    def error(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if flow.response is not None or flow.error is None or notes.outcome is None or not notes.outcome.forwarded:
            return  # refused before going upstream (it has its answer), or the client went away
        error_type = upstream_error_type(flow.error.msg)
        notes.refuse(Outcome.ERROR, error_type, flow.error.msg)
        _pending.set((notes.request_id, error_type))
