"""The one canonical form of a request path, and the path globs matched against it.

Rules match and the audit log records the same `canonicalize` output, so what
is logged is what was matched. `canonicalize` applies these rules in order:

1. The target must be origin-form: it starts with "/". It splits at the first
   "?" into path and query; the query is kept as sent. A "#" anywhere in the
   target is a fragment, which a client never sends: ambiguous.
2. A raw control character anywhere in the target is ambiguous (and would
   forge log lines). In the path, a backslash is ambiguous (some servers read
   it as "/"), and so is ";" (servers such as Tomcat strip ";parameters",
   which would let a request slip past a rule).
3. Percent-escapes are decoded in a single pass. An escape must be "%" and two
   hex digits. An escape of "/", "\\", NUL or another control character is
   ambiguous, and so is "%25" followed by two hex digits, written or escaped
   (double encoding, "%252F"). Escapes of unreserved characters
   (A-Z a-z 0-9 - . _ ~) are decoded; every other escape stays, in upper-case
   hex. Raw characters that may not appear in a path (non-ASCII, space, ...)
   are percent-encoded as UTF-8. The bytes the path stands for must then be
   valid UTF-8 (no overlong forms such as "%C0%AF").
4. Repeated slashes collapse, "." segments go, ".." removes the segment
   before it; a ".." with nothing to remove is ambiguous. A trailing slash is
   kept; the root is "/".
5. The result is the canonical path and the raw query.

Encoded slashes are rejected in rule 3, so the segments of the raw path are
the segments of the decoded path: each segment is decoded on its own, and
errors carry the offset in the target where they were found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Characters that stand for themselves in a path segment: unreserved, the
# sub-delimiters except ";" (rejected in rule 2), ":" and "@".
_SEGMENT_CHARS = r"A-Za-z0-9\-._~!$&'()*+,=:@"
_PLAIN_SEGMENT = re.compile(rf"[{_SEGMENT_CHARS}]*")
_CHAR_TO_ENCODE = re.compile(rf"[^{_SEGMENT_CHARS}%]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")

# "%25" followed by two hex digits, each written or itself escaped.
_HEX_DIGIT_WRITTEN_OR_ESCAPED = r"(?:[0-9A-Fa-f]|%(?:3[0-9]|4[1-6]|6[1-6]))"
_DOUBLE_ENCODING = re.compile(rf"%25{_HEX_DIGIT_WRITTEN_OR_ESCAPED}{{2}}")

_AMBIGUOUS_BYTES = {0x2F: "encoded slash", 0x5C: "encoded backslash", 0x00: "encoded nul"}


@dataclass(frozen=True)
class CanonicalPath:
    path: str  # canonical, starts with "/", e.g. "/v1/files"
    query: str  # raw query string without "?", "" if none (kept as sent)


class AmbiguousPath(ValueError):
    """A request target with no single meaning; `reason` is a short fixed phrase."""

    def __init__(self, reason: str, target: str, offset: int = 0):
        super().__init__(f"{reason} in path {target!r}")
        self.reason = reason
        self.target = target
        self.offset = offset  # index in `target` where the problem was found


def canonicalize(target: str) -> CanonicalPath:
    """The canonical path and raw query of a request target ("/path?query")."""
    path, query = _split_origin_form(target)
    _reject_ambiguous_characters(path, target)
    segments = _decode_segments(path, target)
    return CanonicalPath(_resolve_dot_segments(segments, target), query)


def _split_origin_form(target: str) -> tuple[str, str]:
    if not target.startswith("/"):
        raise AmbiguousPath("not origin-form", target)
    if (at := target.find("#")) >= 0:
        raise AmbiguousPath("fragment", target, at)
    path, _, query = target.partition("?")
    return path, query


def _reject_ambiguous_characters(path: str, target: str) -> None:
    if control := _CONTROL_CHAR.search(target):
        raise AmbiguousPath("control character", target, control.start())
    if (at := path.find("\\")) >= 0:
        raise AmbiguousPath("backslash", target, at)
    if (at := path.find(";")) >= 0:
        raise AmbiguousPath("semicolon parameter", target, at)


def _decode_segments(path: str, target: str) -> list[tuple[str, int]]:
    """Each segment after the leading "/", decoded, with its offset in the target."""
    segments = []
    offset = 1
    for raw in path[1:].split("/"):
        decoded = raw if _PLAIN_SEGMENT.fullmatch(raw) else _decode_segment(raw, target, offset)
        segments.append((decoded, offset))
        offset += len(raw) + 1
    return segments


def _decode_segment(segment: str, target: str, offset: int) -> str:
    for escape in _ESCAPE.finditer(segment):
        at = offset + escape.start()
        if escape.group(1) is None:
            raise AmbiguousPath("invalid percent-encoding", target, at)
        byte = int(escape.group(1), 16)
        if byte in _AMBIGUOUS_BYTES:
            raise AmbiguousPath(_AMBIGUOUS_BYTES[byte], target, at)
        if byte < 0x20 or byte == 0x7F:
            raise AmbiguousPath("control character", target, at)
    if double := _DOUBLE_ENCODING.search(segment):
        raise AmbiguousPath("double encoding", target, offset + double.start())
    escaped = _percent_encode_raw_characters(segment, target, offset)
    try:
        unquote_to_bytes(escaped).decode("utf-8")
    except UnicodeDecodeError:
        raise AmbiguousPath("invalid utf-8", target, offset) from None
    return _ESCAPE.sub(_decode_escape, escaped)


def _percent_encode_raw_characters(segment: str, target: str, offset: int) -> str:
    parts = []
    end = 0
    for char in _CHAR_TO_ENCODE.finditer(segment):
        try:
            encoded = char.group().encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            raise AmbiguousPath("invalid utf-8", target, offset + char.start()) from None
        parts.append(segment[end : char.start()])
        parts.append("".join(f"%{byte:02X}" for byte in encoded))
        end = char.end()
    parts.append(segment[end:])
    return "".join(parts)


def _decode_escape(escape: re.Match[str]) -> str:
    char = chr(int(escape.group(1), 16))
    return char if char in _UNRESERVED else escape.group().upper()


def _resolve_dot_segments(segments: list[tuple[str, int]], target: str) -> str:
    kept: list[str] = []
    for segment, offset in segments:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                raise AmbiguousPath("dot-dot above root", target, offset)
            kept.pop()
        else:
            kept.append(segment)
    if not kept:
        return "/"
    # "/a/b/" and "/a/b/." and "/a/b/c/.." all name the directory "/a/b/".
    trailing_slash = "/" if segments[-1][0] in ("", ".", "..") else ""
    return "/" + "/".join(kept) + trailing_slash


class GlobError(ValueError):
    """A path glob that cannot be compiled; `offset` is the index in the glob text."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


_NO_QUERY = "a path glob has no query; match the query with `when query.NAME ...`"
_ANY_SEGMENTS = r"(?:/[^/]+)*"


@dataclass(frozen=True)
class PathGlob:
    """A glob over canonical paths: "*" is one segment, "**" any number of them,
    and "*" inside a segment ("gpt-*") any run of characters within it.

    One trailing slash on the request path is ignored, so it never escapes a rule.
    """

    text: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", _glob_regex(self.text))

    def matches(self, canonical_path: str) -> bool:
        subject = canonical_path[:-1] if canonical_path.endswith("/") else canonical_path
        return self._regex.fullmatch(subject) is not None


def compile_glob(text: str) -> PathGlob:
    return PathGlob(text)


def _glob_regex(text: str) -> re.Pattern[str]:
    _check_glob_is_canonical(text)
    body = text[:-1] if text.endswith("/") else text  # "/" becomes "", with no segments
    segments = body[1:].split("/") if body else []
    pieces: list[str] = []
    offset = 1
    for segment in segments:
        if segment == "**":
            if not pieces or pieces[-1] != _ANY_SEGMENTS:  # "**/**" is "**"
                pieces.append(_ANY_SEGMENTS)
        elif "**" in segment:
            raise GlobError('"**" must be a whole segment, as in "/v1/**"', offset)
        elif segment == "*":
            pieces.append("/[^/]+")
        else:
            pieces.append("/" + "[^/]*".join(re.escape(literal) for literal in segment.split("*")))
        offset += len(segment) + 1
    return re.compile("".join(pieces))


def _check_glob_is_canonical(text: str) -> None:
    if not text.startswith("/"):
        raise GlobError('a path glob starts with "/"', 0)
    for char in "?#":
        if (at := text.find(char)) >= 0:
            raise GlobError(_NO_QUERY, at)
    try:
        canonical = canonicalize(text).path
    except AmbiguousPath as error:
        raise GlobError(f"glob is not a valid path: {error.reason}", error.offset) from None
    if canonical != text:
        first_difference = next(
            (i for i, (a, b) in enumerate(zip(text, canonical)) if a != b), min(len(text), len(canonical))
        )
        raise GlobError(f"glob is not canonical; write {canonical}", first_difference)
