"""Reading usage out of an event stream as it passes, and (for a chat completion whose usage
the proxy asked for) taking that usage back out, so the agent gets the stream it asked for.

Fed the chunks as they arrive, in any sizes; `feed(b"")` ends the stream. Only `data:`
lines that mention "usage" are parsed, so counting costs a substring search per chunk.
Each data line must hold one JSON object (as every API here sends); a line longer
than `MAX_LINE` is skipped, and a usage that was on it is then unreadable.

Taking the usage back out (`strip=True`, chat only): `stream_options.include_usage`
adds `"usage":null` to every chunk and one more chunk, with empty `choices`, that
carries the usage. The stripping drops that chunk (its line and the blank line that
ends its event) and the `"usage":null` member from each of the others. To do so it
holds back a partial line until its end arrives; without stripping, chunks pass on
as they came, untouched.
"""

from __future__ import annotations

import json
import re

from firewall.budgets.usage import Usage, anthropic_usage, usage_of_object

MAX_LINE = 16 * 1024 * 1024
_MARK = b'"usage"'
_NULL = b'"usage":null'  # in every chunk of a chat stream that asked for its usage: nothing to read
_NULL_MEMBER = b',"usage":null'
_NULL_SPACED = re.compile(rb'"usage"\s*:\s*null')
_NULL_USAGE = re.compile(rb'\s*,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*')
_RESPONSE_DONE = ("response.completed", "response.incomplete", "response.failed")


class StreamCounter:
    def __init__(self, api: str, *, strip: bool = False) -> None:
        self.api = api
        self.strip = strip and api == "chat"
        self._tail: list[bytes] = []  # the partial last line, in pieces
        self._tail_size = 0
        self._skipping = False  # inside a line over MAX_LINE
        self._drop_blank = False
        self._found: Usage | None = None
        self._start: dict[str, object] | None = None  # anthropic: message_start's usage
        self._model: str | None = None
        self._delta: dict[str, object] | None = None  # anthropic: the last message_delta's usage
        self.unreadable = False  # a usage line could not be read

    def feed(self, chunk: bytes) -> bytes:
        """Take in the next chunk (b"" at the end); return what to send on in its place."""
        if not chunk:
            rest = b"".join(self._tail)
            self._tail, self._tail_size = [], 0
            out = self._lines([rest]) if rest else b""
            return out if self.strip else b""
        if self._skipping:  # inside an overlong line: it passes on as it is
            newline = chunk.find(b"\n")
            if newline < 0:
                return chunk
            self._skipping = False
            out = self._feed(chunk[newline + 1 :])
            return chunk[: newline + 1] + out if self.strip else chunk
        if not self._tail:
            if not self.strip and not _carries_usage(chunk):
                cut = chunk.rfind(b"\n")  # the usual chunk: whole lines, nothing to read
                if cut != len(chunk) - 1:
                    self._hold(chunk[cut + 1 :])
                return chunk
            if self.strip and not self._drop_blank:
                stripped = _without_null_members(chunk)  # the usual stripped chunk, in a few C calls
                if stripped is not None:
                    return stripped
        out = self._feed(chunk)
        return out if self.strip else chunk

    def _feed(self, chunk: bytes) -> bytes:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            return self._hold(chunk)
        head = chunk[: cut + 1]
        if self._tail:
            head = b"".join(self._tail) + head
            self._tail, self._tail_size = [], 0
        if self._drop_blank or (_carries_usage(head) if not self.strip else _MARK in head):
            head = self._lines(head.split(b"\n")[:-1], terminated=True)
        return head + self._hold(chunk[cut + 1 :]) if cut + 1 < len(chunk) else head

    def usage(self) -> Usage | None:
        """What the stream reported; None when it reported nothing readable."""
        if self.api == "anthropic" and self._start is not None and self._delta is not None:
            return anthropic_usage({**self._start, **self._delta}, self._model)
        return self._found

    def _hold(self, piece: bytes) -> bytes:
        """Keep a partial line until its end arrives; one over MAX_LINE is given back (to pass on
        unread) and the rest of it skipped."""
        self._tail.append(piece)
        self._tail_size += len(piece)
        if self._tail_size <= MAX_LINE:
            return b""
        held = b"".join(self._tail)
        self._tail, self._tail_size, self._skipping = [], 0, True
        return held

    def _lines(self, lines: list[bytes], *, terminated: bool = False) -> bytes:
        kept: list[bytes] = []
        for line in lines:
            if self._drop_blank and not line.strip():
                self._drop_blank = False
                continue
            self._drop_blank = False
            if _MARK in line and line.startswith(b"data:"):
                if self._read(line[5:]) and self.strip:
                    self._drop_blank = True
                    continue
                if self.strip:
                    line = line.replace(_NULL_MEMBER, b"") if _NULL_MEMBER in line else _NULL_USAGE.sub(b"", line)
            kept.append(line)
        if not self.strip:
            return b""
        return b"".join(line + b"\n" for line in kept) if terminated else b"\n".join(kept)

    def _read(self, payload: bytes) -> bool:
        """Read one data line; True when it is the chat chunk that only carries the usage."""
        if payload.count(_MARK) == 1 and (_NULL in payload or _NULL_SPACED.search(payload)):
            return False
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            self.unreadable = True
            return False
        if not isinstance(data, dict):
            return False
        if self.api == "chat":
            usage = usage_of_object("chat", data)
            if usage is None:
                return False
            self._found = usage
            return data.get("choices") == []
        if self.api == "responses" and data.get("type") in _RESPONSE_DONE:
            self._found = usage_of_object("responses", data.get("response"))
        elif self.api == "anthropic":
            self._anthropic(data)
        return False

    def _anthropic(self, data: dict[str, object]) -> None:
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
            assert isinstance(message, dict)
            usage = message.get("usage")
            self._start = usage if isinstance(usage, dict) else None
            model = message.get("model")
            self._model = model if isinstance(model, str) else None
        elif kind == "message_delta" and isinstance(data.get("usage"), dict):
            usage = data["usage"]
            assert isinstance(usage, dict)
            self._delta = {key: value for key, value in usage.items() if value is not None}


def _without_null_members(chunk: bytes) -> bytes | None:
    """The chunk without its `,"usage":null` members (what `include_usage` adds to each chunk), when
    that is all the line-by-line stripping would do to it: whole lines, no comment line, no other
    `"usage"`. None otherwise (a chunk with a comment line, or any other usage, goes line by line).

    `find` rather than `in`: on bytes, `in` costs several times as much here."""
    if chunk.startswith(b"data:") and chunk.endswith(b"\n\n") and chunk.count(b"\n") == 2:
        pass  # one data line and the blank line that ends its event: no comment line (the usual chunk)
    elif not chunk.endswith(b"\n") or chunk[:1] == b":" or chunk.find(b"\n:") >= 0:
        return None
    stripped = chunk.replace(_NULL_MEMBER, b"")
    return stripped if stripped.find(_MARK) < 0 else None


def _carries_usage(data: bytes) -> bool:
    """Whether `data` mentions a usage other than `"usage":null` (two C-level counts)."""
    return data.count(_MARK) > data.count(_NULL)
