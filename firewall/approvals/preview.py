"""What a person sees of a held request: its URL with credentials masked, a short body preview,
and the fingerprint that binds an approval to exactly that request (headers included).

Everything here comes from the agent, so it is masked (the same rules as the
audit log's queries: `firewall.redaction`) and cut short before it is stored or shown.
`redact` is the vault index's: it masks every form of every vault secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from firewall.redaction import MASK, keep, looks_secret, mask_query

PREVIEW_LIMIT = 240  # characters of a preview
PARSE_LIMIT = 1024 * 1024  # bytes of a body that are parsed for a preview
_STRING_LIMIT = 40
_DEFAULT_PORTS = {"http": 80, "https": 443}
# JSON fields that say what a request will cost or do, shown first when present.
KEY_FIELDS = (
    "model",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "stream",
    "temperature",
    "training_file",
    "validation_file",
    "purpose",
    "input_file_id",
    "endpoint",
    "size",
    "quality",
)


def display_url(scheme: str, host: str, port: int, path: str, query: str, redact: Callable[[str], str] = keep) -> str:
    """`scheme://host[:port]/path[?query]`, credential-looking query values masked."""
    netloc = host if _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    masked = mask_query(query, redact)
    return redact(f"{scheme}://{netloc}{path}" + (f"?{masked}" if masked else ""))


# Headers an approval is not bound to: the agent's proxy credentials (they never go
# upstream; the agent is bound by name), Content-Length (the body is bound, and
# HTTP/2 may leave it out), and ids clients make anew for each attempt, so an
# identical retry after a timeout still fits (W3C trace context; the retry counter
# the OpenAI and Anthropic SDKs send). None of them changes what the upstream does.
UNBOUND_HEADERS = frozenset({"proxy-authorization", "content-length", "traceparent", "x-stainless-retry-count"})


@dataclass(frozen=True)
class BoundRequest:
    """A held request as it would go upstream: everything an approval is bound to (`fingerprint`)."""

    agent: str
    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


def fingerprint(request: BoundRequest) -> str:
    """sha256 over the agent, method, full (unmasked) URL, every header that goes upstream
    (in order, names lower-cased, UNBOUND_HEADERS left out) and the body's sha256: equal only for
    the same agent sending the same request with the same headers and body."""
    bound = [[name.lower(), value] for name, value in request.headers if name.lower() not in UNBOUND_HEADERS]
    parts = [
        request.agent,
        request.method.upper(),
        f"{request.scheme}://{request.host.lower()}:{request.port}{request.path}?{request.query}",
        json.dumps(bound, ensure_ascii=False),
        hashlib.sha256(request.body).hexdigest(),
    ]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def body_preview(body: bytes, content_type: str | None, redact: Callable[[str], str] = keep) -> str:
    """One line about the body: the fields that matter of a JSON object, the start of a text
    body, or the size and type of anything else."""
    size = len(body)
    if not size:
        return "(no body)"
    kind = (content_type or "").split(";")[0].strip().lower() or "no content-type"
    if size > PARSE_LIMIT:
        return f"{size} bytes of {kind} (too large to preview)"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"{size} bytes of {kind}"
    try:
        value = json.loads(text)
    except ValueError:
        return _cut(f"{size} bytes of {kind}: {json.dumps(redact(text)[:PREVIEW_LIMIT])}")
    if isinstance(value, dict):
        return _cut(_json_object(value, redact) + f" ({size} bytes)")
    return _cut(f"{_json_value('', value, redact)} ({size} bytes)")


def _json_object(value: dict, redact: Callable[[str], str]) -> str:
    names = [name for name in KEY_FIELDS if name in value]
    names += [name for name in value if name not in KEY_FIELDS]
    return "{" + ", ".join(f"{json.dumps(name)}: {_json_value(name, value[name], redact)}" for name in names) + "}"


def _json_value(name: str, value: object, redact: Callable[[str], str]) -> str:
    if isinstance(value, list):
        return f"[{len(value)} item{'' if len(value) == 1 else 's'}]"
    if isinstance(value, dict):
        return f"{{{len(value)} field{'' if len(value) == 1 else 's'}}}"
    if isinstance(value, str):
        if looks_secret(name or "value", value, redact):
            return json.dumps(MASK)
        text = value
        return json.dumps(text if len(text) <= _STRING_LIMIT else text[: _STRING_LIMIT - 1] + "…", ensure_ascii=False)
    return json.dumps(value)


def _cut(text: str) -> str:
    return text if len(text) <= PREVIEW_LIMIT else text[: PREVIEW_LIMIT - 1] + "…"
