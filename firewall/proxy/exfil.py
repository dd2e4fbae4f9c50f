"""Which vault secrets an outgoing request carries: the input of the engine's exfiltration step.

Looks at everything the agent controls — the method, the destination and every
other name for it (Host, SNI), the request target, every header name and value,
and the whole body as buffered: also unpacked as its Content-Encoding says (gzip,
deflate, br, zstd; every gzip member and zstd frame), and unpacked by its first
bytes whatever the headers say (gzip, zlib, zstd, bzip2, xz; packed inside packed,
`MAX_LAYERS` deep); pieces of a value spread over host labels, path segments, headers
(and, in `SecretIndex.find`, JSON and form fields) are put back together in order. The
engine decides what that means; this module only finds.
"""

from __future__ import annotations

from firewall.policy import Request
from firewall.proxy.bodies import IDENTITY, BodyDecodeError, decode, unpack_by_content
from firewall.redaction import SecretIndex
from firewall.redaction.fields import joined_headers, joined_labels

UNPACK_LIMIT = 64 * 1024 * 1024  # bytes of an encoded body that are unpacked and scanned


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def carried_secrets(index: SecretIndex, request: Request, body: bytes, content_encoding: str | None) -> tuple[str, ...]:
    """Names of the vault entries whose values appear in `request` or its whole `body`."""
    if not index.forms:
        return ()
    parts = [
        _bytes(request.method),
        _bytes(request.host),
        _bytes(request.target),
        *(_bytes(claim) for claim in request.claimed),
    ]
    parts.append(_bytes("\n".join(f"{name}: {value}" for name, value in request.headers)))
    # A value cut into pieces: across host labels (before any DNS lookup: the engine refuses
    # exfiltration before it asks for addresses), path segments, headers.
    parts.extend(joined_labels(name) for name in (request.host, *request.claimed))
    parts.append(_bytes(request.target.split("?", 1)[0].replace("/", "")))
    parts.extend(joined_headers(request.headers))
    parts.append(body)
    if content_encoding and content_encoding.strip().lower() not in IDENTITY:
        try:
            body = decode(body, content_encoding, UNPACK_LIMIT).data
            parts.append(body)
        except BodyDecodeError:
            pass  # not a known encoding: the raw bytes above are all there is to read
    parts.extend(unpack_by_content(body, UNPACK_LIMIT))
    return index.find(*parts)
