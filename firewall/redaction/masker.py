"""Masking injected secrets in what comes back to an agent, keeping every length.

`Masker` replaces secret forms (raw, percent, JSON-escaped, base64, hex) with
`*` of equal length, so a body's length never changes; `StreamMasker` keeps a
tail between chunks so a value split across two chunks is masked. A value
spelled with any mix of literal characters, `%XX` and JSON `\\u00XX` escapes
(`quote(value)` leaves some characters as they are) is masked too: the masker
decodes those escapes into a view that remembers where each character came
from, and masks the escapes a value was spelled with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# One character spelled as an escape: %XX, JSON \u00XX (ASCII only) or JSON \/.
_CHAR_ESCAPE = re.compile(rb"%([0-9a-fA-F]{2})|\\u00([0-7][0-9a-fA-F])|\\(/)")
_LONGEST_ESCAPE = 6  # \u00XX
# The end of a chunk that may be the start of an escape the next chunk completes.
_OPEN_ESCAPE = re.compile(rb"(?:%[0-9a-fA-F]?|\\(?:u(?:0(?:0[0-7]?)?)?)?)\Z")


def _decode_escapes(data: bytes) -> tuple[bytes, list[int]]:
    """`data` with every character escape decoded, and where each decoded byte starts in `data`
    (one more entry at the end: `len(data)`), so a span of the view maps back to `data`."""
    view = bytearray()
    starts: list[int] = []
    pos = 0
    for match in _CHAR_ESCAPE.finditer(data):
        view += data[pos : match.start()]
        starts.extend(range(pos, match.start()))
        view.append(ord("/") if match.group(3) else int(match.group(1) or match.group(2), 16))
        starts.append(match.start())
        pos = match.end()
    view += data[pos:]
    starts.extend(range(pos, len(data) + 1))
    return bytes(view), starts


@dataclass(frozen=True)
class Masker:
    """Replaces secret forms with `*` of the same length; `forms` longest first. `raws`: the
    secrets themselves, also masked when spelled with character escapes."""

    forms: tuple[bytes, ...]
    raws: tuple[bytes, ...] = ()
    _pattern: re.Pattern[bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _prefixes: frozenset[bytes] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.forms:
            object.__setattr__(self, "_pattern", re.compile(b"|".join(re.escape(f) for f in self.forms)))
            object.__setattr__(self, "_prefixes", frozenset(f[:n] for f in self.forms for n in range(1, len(f))))

    @property
    def keep(self) -> int:
        """The most bytes ever held back between chunks: a form cut at a chunk boundary is then seen whole."""
        return max((len(f) for f in self.forms), default=1) - 1

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of `data` could begin a form: the longest such suffix."""
        escaped = self._held_back_escaped(data)
        for start in range(max(0, len(data) - self.keep), len(data) - escaped):
            if data[start:] in self._prefixes:
                return len(data) - start
        return escaped

    def _held_back_escaped(self, data: bytes) -> int:
        """The longest suffix of `data` that could begin a secret spelled with escapes."""
        longest = max((len(r) for r in self.raws), default=0) * _LONGEST_ESCAPE
        tail = data[-longest:] if longest else b""
        if b"%" not in tail and b"\\" not in tail:
            return 0  # then a literal prefix is one of `forms`' prefixes
        for start in range(len(data) - len(tail), len(data)):
            rest = data[start:]
            open_escape = _OPEN_ESCAPE.search(rest)
            view, _ = _decode_escapes(rest[: open_escape.start()] if open_escape else rest)
            if any(raw.startswith(view) and (view or open_escape) for raw in self.raws):
                return len(data) - start
        return 0

    def mask(self, data: bytes) -> tuple[bytes, int]:
        """(`data` with every form masked, how many were)."""
        if self._pattern is None or not data:
            return data, 0
        masked, count = self._pattern.subn(lambda m: b"*" * len(m.group()), data)
        if self.raws and (b"%" in masked or b"\\" in masked):
            masked, escaped = self._mask_escaped(masked)
            count += escaped
        return masked, count

    def _mask_escaped(self, data: bytes) -> tuple[bytes, int]:
        view, starts = _decode_escapes(data)
        out, count = bytearray(data), 0
        for raw in self.raws:
            at = view.find(raw)
            while at != -1:
                begin, end = starts[at], starts[at + len(raw)]
                out[begin:end] = b"*" * (end - begin)
                count += 1
                at = view.find(raw, at + len(raw))
        return bytes(out), count

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


class StreamMasker:
    """Masks a body that arrives in chunks; `feed(b"")` ends it and returns the held tail.

    Only bytes that could begin a form are held back, so a stream (server-sent events)
    reaches the agent as it arrives. Mutable by design: it holds that tail.
    """

    def __init__(self, masker: Masker):
        self.masker = masker
        self.tail = b""
        self.count = 0

    def feed(self, chunk: bytes) -> bytes:
        data = self.tail + chunk
        if not chunk:  # the end
            self.tail = b""
            masked, n = self.masker.mask(data)
            self.count += n
            return masked
        masked, n = self.masker.mask(data)
        self.count += n
        # Masking keeps lengths: the held bytes are kept as they are now (masked bytes stay
        # masked), and the next chunk may complete the form they begin.
        cut = len(masked) - self.masker.held_back(masked)
        self.tail = masked[cut:]
        return masked[:cut]
