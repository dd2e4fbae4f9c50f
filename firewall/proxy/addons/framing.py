"""Every request leaves the proxy framed, so an upstream reads exactly the request that was decided.

An HTTP/2 request ends where its stream ends; an HTTP/1.1 request where its Content-Length (or
chunking) says. mitmproxy sends an HTTP/2 request to an HTTP/1.1 upstream with the headers the
agent sent, so one without `content-length` went out with no framing at all and its body was
read upstream as a second request nobody decided. The body is whole here (requests are never
streamed), so its length is known: it is set on every HTTP/2 and HTTP/3 request that has a
body or whose method defines one (an empty GET goes out with no length, as RFC 9110 asks).

Request trailers are refused: a Content-Length request cannot carry them to an HTTP/1.1
upstream, and they are fields that no rule and no exfiltration scan reads.
"""

from __future__ import annotations

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse

_BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})


class Framing:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        request = flow.request
        if request.trailers:
            refuse(
                flow,
                Outcome.BLOCK,
                ProxyReason.REQUEST_TRAILERS,
                "the request has trailers",
                say="request trailers are not supported by the firewall; send those fields as headers",
            )
            return
        if request.is_http2 or request.is_http3:
            body = request.raw_content or b""
            if body or request.method not in _BODILESS_METHODS:
                request.headers["content-length"] = str(len(body))
            else:
                # RFC 9110 §8.6: no Content-Length on a request that carries no body and whose
                # method defines none; any such header the agent sent would misframe it.
                request.headers.pop("content-length", None)
