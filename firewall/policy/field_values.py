"""The request fields a host block's conditions read that the audit log's other columns do not hold
(headers, JSON body fields, `body.size`), as recorded for `policy replay`, and read back.

The proxy records, per request, the value of each such field its host block reads (rules, limits,
budgets, inject lines): `values` below, then masked by the audit addon (a credential-looking or
vault value becomes MASK). Replay rebuilds from them a request whose headers and body give those
fields the same values (`rebuild`), so a condition on a recorded field is decided exactly; a field
not recorded, masked or cut stays unknown. An entry is

- a header: the list of its values, in order (empty: the request had none);
- a JSON field: its value when it is a number, true, false, null or a string of at most MAX_TEXT
  characters; {"absent": 1} when the body has no such field; {"object": 1} / {"array": 1} for a
  container (every operator treats all containers alike); {"unreadable": 1} when the body is not
  JSON (empty, too large, compressed); {"unknown": 1} when it was not kept (a longer string, a
  repeated key);
- `body.size`: the number of bytes.
"""

from __future__ import annotations

import json
from typing import Any

from firewall.policy.compiled import CompiledBlock, FieldRef, fields_in
from firewall.policy.conditions import MISSING, UNREADABLE, AmbiguousBody, RequestView
from firewall.policy.decision import Request

KINDS = frozenset({"header", "json", "body.size"})  # what the audit log's columns do not hold
MAX_TEXT = 256  # longer strings are not kept: replay counts a condition on them as unknown
MASK = "****"  # firewall.redaction's mask (this layer does not import it)
ABSENT, OBJECT, ARRAY, UNREADABLE_BODY, NOT_KEPT = (
    {"absent": 1},
    {"object": 1},
    {"array": 1},
    {"unreadable": 1},
    {"unknown": 1},
)

_READ: dict[int, tuple[CompiledBlock, tuple[FieldRef, ...]]] = {}  # by id: hashing a block hashes all it holds


def fields_read(block: CompiledBlock) -> tuple[FieldRef, ...]:
    """The header, JSON and body.size fields any condition of `block` reads, in name order."""
    found = _READ.get(id(block))
    if found is not None and found[0] is block:
        return found[1]
    out = {field.text: field for cond in block.conditions() for field in fields_in(cond) if field.kind in KINDS}
    fields = tuple(out[name] for name in sorted(out))
    if len(_READ) > 4096:
        _READ.clear()
    _READ[id(block)] = (block, fields)  # the block kept alive, so its id is not reused
    return fields


def values(block: CompiledBlock | None, request: Request, host: str, path: str, query: str) -> dict[str, Any] | None:
    """What the request holds in each field `block` reads (None when it reads none)."""
    fields = fields_read(block) if block is not None else ()
    if not fields:
        return None
    view = RequestView(request, host, path, query)
    out: dict[str, Any] = {}
    for field in fields:
        if field.kind == "body.size":
            out[field.text] = request.body_size
        elif field.kind == "header":
            out[field.text] = list(view.headers.get(field.key[0], ()))
        else:
            out[field.text] = _json_entry(view, field)
    return out


def _json_entry(view: RequestView, field: FieldRef) -> object:
    try:
        value = view.value(field)
    except AmbiguousBody:
        return NOT_KEPT
    if value is UNREADABLE:
        return UNREADABLE_BODY
    if value is MISSING:
        return ABSENT
    if isinstance(value, dict):
        return OBJECT
    if isinstance(value, list):
        return ARRAY
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return NOT_KEPT
    return value


def rebuild(text: str | None) -> tuple[tuple[tuple[str, str], ...], bytes | None, int | None, frozenset[str]]:
    """From a recorded entry (the audit column's JSON): headers, a body (None: none recorded), the
    body size (None: not recorded) and the names of the fields recorded exactly (not masked or cut).
    The body holds each JSON field at its path (objects all the way: the engine reads `json.a.0`
    from {"a": {"0": …}} as from {"a": […]}), or is not JSON when the body was not."""
    if not text:
        return (), None, None, frozenset()
    try:
        entries = json.loads(text)
    except ValueError:
        return (), None, None, frozenset()
    if not isinstance(entries, dict):
        return (), None, None, frozenset()
    headers: list[tuple[str, str]] = []
    document: dict[str, Any] = {}
    unreadable = has_json = False
    size = None
    known: set[str] = set()
    for name, entry in entries.items():
        kind, _, key = name.partition(".")
        if name == "body.size":
            if isinstance(entry, int) and not isinstance(entry, bool):
                size = entry
                known.add(name)
        elif kind == "header" and isinstance(entry, list) and all(isinstance(v, str) for v in entry):
            headers += [(key, value) for value in entry]
            if not any(MASK in value for value in entry):
                known.add(name)
        elif kind == "json":
            if entry == UNREADABLE_BODY:
                unreadable = True
                known.add(name)
            else:
                has_json = True
                if _place(document, key.split("."), entry):
                    known.add(name)
    if unreadable:
        return tuple(headers), b"\x00not json", size, frozenset(known)
    body = json.dumps(document).encode() if has_json else None
    return tuple(headers), body, size, frozenset(known)


def _place(document: dict[str, Any], keys: list[str], entry: object) -> bool:
    """Put `entry` at `keys` in `document`; False when it is not an exact value (masked, cut)."""
    if entry == NOT_KEPT or (isinstance(entry, str) and MASK in entry):
        return False
    if entry == ABSENT:  # nothing to put: no other recorded field makes a node on this path
        return True
    node = document
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    if entry == OBJECT or entry == ARRAY:
        node.setdefault(keys[-1], {} if entry == OBJECT else [])
        return True
    if isinstance(entry, dict):
        return False  # a marker this version does not know
    node[keys[-1]] = entry
    return True
