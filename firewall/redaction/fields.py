"""A value cut into pieces across fields, put back together: the views the fragment scan adds.

An agent may send a key as `{"a": "sk-proj-Ab", "b": "cDeF…", "c": "…"}`, `?a=…&b=…`, in
several headers or as the labels of a host name. Each piece may be shorter than a window
(fragments.py); joined in the order they were sent they hold the value again. Pure text work,
no parsing: JSON that is not well formed, or JSON inside a form, is read the same way.

Left to the docs (threat-model.md): pieces sent in another order than the value's, or with
other fields between them that are not themselves pieces.
"""

from __future__ import annotations

import re

# A window within one field is found in the part itself: the joined text needs only what a
# window crossing from one field into the next can hold of each, its ends. 128 bytes hold 16
# characters written as JSON \u escapes, or percent-encoded twice, or base64, or hex.
_EDGE = 128
_CUT = b"\x00"  # where the middle of a long field was left out: no window goes across it

# A JSON string, and the colon after it when it is an object's key.
_JSON_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?')
# name=value in a query, a form or a Cookie header: the value.
_FORM_VALUE = re.compile(rb"(?:^|(?<=[?&;\s]))[^=&;?#\s]*=([^&;#\s]*)")


def joined_fields(data: bytes) -> tuple[bytes, ...]:
    """The JSON string values of `data`, joined in order, and its form values, joined in order
    (each only when there are two or more; of a long value, only its two ends)."""
    joined = []
    if b'"' in data:
        values = [value for value, colon in _JSON_STRING.findall(data) if not colon]
        if len(values) > 1:
            joined.append(_join(values))
    if b"=" in data:
        values = _FORM_VALUE.findall(data)
        if len(values) > 1:
            joined.append(_join(values))
    return tuple(joined)


def _join(values: list[bytes]) -> bytes:
    return b"".join(v if len(v) <= 2 * _EDGE else v[:_EDGE] + _CUT + v[-_EDGE:] for v in values)


def joined_labels(host: str) -> bytes:
    """A host name's labels joined (`abcd.efgh.attacker.example` → `abcdefghattackerexample`)."""
    return host.replace(".", "").encode("utf-8", "surrogateescape")


def joined_headers(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, bytes]:
    """Every header's value joined in order, and every header's name joined in order."""
    return (
        "".join(value for _, value in headers).encode("utf-8", "surrogateescape"),
        "".join(name for name, _ in headers).encode("utf-8", "surrogateescape"),
    )
