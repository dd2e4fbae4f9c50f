"""Sending a request upstream once more, from the proxy itself (the retry after a token refresh).

The request goes to the same host and port the flow went to, through the
pinned addresses (the proxy's client resolves through the resolver's pins),
with the same method, path, headers and body. The answer is read whole, up
to the proxy's body limit, and becomes the flow's response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitmproxy import http

if TYPE_CHECKING:  # loaded by the first retry: a proxy that never retries never loads httpx
    import httpx

MAX_BODY = 64 * 1024 * 1024  # the proxy's body_size_limit
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class ReplayFailed(Exception):
    pass


def _end_to_end(fields) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in fields if name.decode("latin-1").lower() not in HOP_BY_HOP]


async def resend(client: httpx.AsyncClient, request: http.Request) -> http.Response:
    import httpx

    url = httpx.URL(scheme=request.scheme, host=request.host, port=request.port, raw_path=request.data.path)
    outgoing = client.build_request(
        request.method, url, headers=_end_to_end(request.headers.fields), content=request.raw_content or b""
    )
    try:
        answer = await client.send(outgoing, stream=True)
    except (httpx.HTTPError, OSError) as exc:
        raise ReplayFailed(f"{request.host}:{request.port} could not be reached again ({type(exc).__name__})") from None
    try:
        body = bytearray()
        async for chunk in answer.aiter_raw():
            body += chunk
            if len(body) > MAX_BODY:
                raise ReplayFailed(f"the answer to the retried request is larger than {MAX_BODY} bytes")
    except httpx.HTTPError as exc:
        raise ReplayFailed(f"reading the answer to the retried request failed ({type(exc).__name__})") from None
    finally:
        await answer.aclose()
    response = http.Response.make(answer.status_code, b"", _end_to_end(answer.headers.raw))
    response.raw_content = bytes(body)
    response.headers["content-length"] = str(len(body))
    return response
