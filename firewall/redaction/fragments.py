"""Finding a piece of a vault value: any 16-character window of a value of 32 characters or more.

An agent that sends half a key, or a key cut into pieces, still sends the key. So every
16-byte window of every long secret is evidence of exfiltration, raw or in the forms the
views of `index.py` do not undo themselves: base64 (any alignment, either alphabet; a window
of 20 characters, what 16 bytes always fix) and hex (32 characters, any case).

Not every window is evidence. Left out, when the index is built:

- windows inside a value's fixed, shared part: a well-known prefix (`sk-proj-`, `ghp_`,
  `github_pat_`, ...; generally, the leading run of short words joined by `-` or `_`), and
  for a JWT everything but its signature (header and claims repeat from token to token);
- windows that two different values share (neither value is then told by it);
- ordinary windows, which text an agent writes anyway can hold: fewer than 8 distinct
  characters (`AAAA…`, `abababab…`), mostly runs along an alphabet (`ABCDEFGHIJ…`,
  `0123456789abcdef`), a row of a keyboard, or whitespace.

Scanning is one pass over a view per kind (text, lower-cased for hex): a window of 16 or more
bytes always holds a whole 8-byte block that starts at a multiple of 8, so the view is read as
8-byte integers (`memoryview.cast`, no Python loop) and checked against the set of every
8-byte piece of every kept window (`set.intersection`, in C). Only a hit is looked at
closely: the windows around each place that piece is are looked up in the window tables.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

WINDOW = 16  # bytes of a value that are evidence
MIN_FRAGMENTED_CHARS = 32  # a value shorter than this is only found whole (index.py)
BASE64_WINDOW = 20  # base64 characters that 16 bytes fix, at the worst alignment
HEX_WINDOW = 2 * WINDOW
_ANCHOR = 8  # bytes per block read from a view; WINDOW >= 2 * _ANCHOR - 1, and so are the others
_MIN_DISTINCT = 8
_MAX_STEPS = 7  # of a window's 15 steps from one character to the next, at most this many by 0 or 1

KNOWN_PREFIXES = (
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-ant-api03-",
    "sk-ant-admin01-",
    "sk-ant-",
    "sk-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "https://",
    "http://",
    "Bearer ",
    "Basic ",
)
# Short words joined by - or _ at a value's start: a kind's tag (`tok_live_`, `rk-test-`).
_TAGGED = re.compile(r"(?:[A-Za-z0-9]{1,12}[-_])+")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.([\w-]+)\Z")
_BENIGN_RUNS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"0123456789abcdefABCDEF",
    b"qwertyuiopasdfghjklzxcvbnm",
    b"QWERTYUIOPASDFGHJKLZXCVBNM",
    b"1234567890",
)
_BENIGN_GRAMS = frozenset(run[i : i + _ANCHOR] for run in _BENIGN_RUNS for i in range(len(run) - _ANCHOR + 1))
_BYTEORDER = sys.byteorder
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def fragment_span(value: str) -> int:
    """Where in `value` the characters that tell it from other values of its kind begin."""
    if (jwt := _JWT.match(value)) is not None:
        return jwt.start(1)
    start = max((len(p) for p in KNOWN_PREFIXES if value.startswith(p)), default=0)
    tagged = _TAGGED.match(value)
    if tagged is not None:
        start = max(start, min(tagged.end(), WINDOW))
    return start


def ordinary(window: bytes) -> bool:
    """Whether text an agent writes anyway may hold `window` (so it is not evidence)."""
    steps = sum(1 for a, b in zip(window, window[1:], strict=False) if abs(a - b) <= 1)
    return _ordinary(window, steps)


def _ordinary(window: bytes, steps: int) -> bool:
    if steps > _MAX_STEPS or len(set(window)) < _MIN_DISTINCT:
        return True
    if any(c in window for c in b" \t\r\n"):
        return True
    return any(window[i : i + _ANCHOR] in _BENIGN_GRAMS for i in range(len(window) - _ANCHOR + 1))


def _raw_windows(raw: bytes, start: int) -> dict[int, bytes]:
    """The kept 16-byte windows of one value, by where they start."""
    small = [0]  # small[i]: how many of the first i steps are by 0 or 1
    for a, b in zip(raw, raw[1:], strict=False):
        small.append(small[-1] + (abs(a - b) <= 1))
    kept = {}
    for s in range(start, len(raw) - WINDOW + 1):
        window = raw[s : s + WINDOW]
        if not _ordinary(window, small[s + WINDOW - 1] - small[s]):
            kept[s] = window
    return kept


def _base64_windows(raw: bytes, kept: Mapping[int, bytes]) -> set[bytes]:
    """20-character windows of the value's base64 at each alignment, both alphabets, each
    touching the 16 bytes of one kept raw window."""
    windows: set[bytes] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw)
        first = -(-8 * offset // 6)  # the first character no prefix bit reaches
        last = 8 * (offset + len(raw)) // 6  # characters from here on mix in padding bits
        for e in range(first, last - BASE64_WINDOW + 1):
            lo = (6 * e - 8 * offset) // 8  # the first and the last byte it has bits of
            hi = (6 * (e + BASE64_WINDOW) - 1 - 8 * offset) // 8
            if hi - lo + 1 == WINDOW and lo in kept:  # 15 bytes fix 20 characters too: not those
                window = encoded[e : e + BASE64_WINDOW]
                windows.update((window, window.translate(_URLSAFE)))
    return windows


@dataclass(frozen=True)
class FragmentIndex:
    """Every kept window of every long secret, by length, to the entries holding that secret."""

    text: Mapping[int, Mapping[bytes, tuple[str, ...]]] = field(default_factory=dict)  # raw and base64
    hex: Mapping[int, Mapping[bytes, tuple[str, ...]]] = field(default_factory=dict)  # lower case
    _text_anchors: frozenset[int] = frozenset()
    _hex_anchors: frozenset[int] = frozenset()

    @classmethod
    def build(cls, secrets: Iterable[tuple[str, str]]) -> FragmentIndex:
        """From (entry name, secret string) pairs; strings shorter than 32 characters are skipped."""
        names: dict[str, set[str]] = {}
        for name, value in secrets:
            if len(value) >= MIN_FRAGMENTED_CHARS:
                names.setdefault(value, set()).add(name)
        everywhere: dict[bytes, set[str]] = {}  # every 16 bytes of every value, kept or not
        for value in names:
            raw = value.encode("utf-8")
            for s in range(len(raw) - WINDOW + 1):
                everywhere.setdefault(raw[s : s + WINDOW], set()).add(value)
        owners: dict[bytes, set[str]] = {}  # window -> the values holding it
        kinds: dict[bytes, str] = {}
        for value in names:
            raw = value.encode("utf-8")
            start = len(value[: fragment_span(value)].encode("utf-8"))
            kept = {s: w for s, w in _raw_windows(raw, start).items() if len(everywhere[w]) == 1}
            for window in kept.values():
                owners.setdefault(window, set()).add(value)
                kinds[window] = "text"
            for window in _base64_windows(raw, kept):
                owners.setdefault(window, set()).add(value)
                kinds[window] = "text"
            for window in kept.values():
                owners.setdefault(window.hex().encode(), set()).add(value)
                kinds[window.hex().encode()] = "hex"
        text: dict[int, dict[bytes, tuple[str, ...]]] = {}
        hexes: dict[int, dict[bytes, tuple[str, ...]]] = {}
        for window, values in owners.items():
            if len(values) > 1:
                continue  # two different values share it: it tells neither
            (value,) = values
            table = text if kinds[window] == "text" else hexes
            table.setdefault(len(window), {})[window] = tuple(sorted(names[value]))
        return cls(text, hexes, _anchors(text), _anchors(hexes))

    def __bool__(self) -> bool:
        return bool(self.text)

    def find(
        self,
        view: bytes,
        lowered: bytes | None = None,
        hits: tuple[frozenset[int], frozenset[int]] | None = None,
    ) -> set[str]:
        """The entries a window of which `view` holds, raw or base64, or hex in any case.
        `lowered`: `view.lower()`; `hits`: the 8-byte pieces at multiples of 8 that `view` and
        `lowered` hold of a superset of the windows (the whole forms: `SecretIndex.find`),
        when the caller has them; the scan is then only a look at those places."""
        if not self.text:
            return set()
        lowered = view.lower() if lowered is None and self.hex else lowered
        if hits is None:
            found = _scan(view, self.text, _hits(view, self._text_anchors))
            if self.hex and lowered is not None:
                found |= _scan(lowered, self.hex, _hits(lowered, self._hex_anchors))
            return found
        found = _scan(view, self.text, hits[0] & self._text_anchors)
        if self.hex and lowered is not None:
            found |= _scan(lowered, self.hex, hits[1] & self._hex_anchors)
        return found

    def mask(self, text: str, mask: str) -> str:
        """`text` with every raw or base64 window it holds replaced by `mask` (overlapping and
        adjacent windows as one): what a refused request carried must not reach the audit log."""
        if not self.text or not text:
            return text
        view = text.encode("utf-8", "surrogateescape")
        spans = _spans(view, self.text, _hits(view, self._text_anchors))
        if not spans:
            return text
        out, end = bytearray(), 0
        for start, stop in spans:
            out += view[end:start] + mask.encode()
            end = stop
        out += view[end:]
        return out.decode("utf-8", "surrogateescape")


def _spans(
    view: bytes, tables: Mapping[int, Mapping[bytes, tuple[str, ...]]], hits: frozenset[int]
) -> list[tuple[int, int]]:
    """Where `view` holds a window of `tables`, as merged (start, stop) byte ranges in order."""
    found: list[tuple[int, int]] = []
    for hit in hits:
        piece = hit.to_bytes(_ANCHOR, _BYTEORDER)
        p = view.find(piece)
        while p != -1:
            for length, table in tables.items():
                for s in range(max(0, p + _ANCHOR - length), min(p, len(view) - length) + 1):
                    if view[s : s + length] in table:
                        found.append((s, s + length))
            p = view.find(piece, p + 1)
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _anchors(tables: Mapping[int, Mapping[bytes, tuple[str, ...]]]) -> frozenset[int]:
    """Every 8-byte piece of every window, as the integers a view's blocks are read as."""
    grams = {w[i : i + _ANCHOR] for table in tables.values() for w in table for i in range(len(w) - _ANCHOR + 1)}
    return frozenset(int.from_bytes(g, _BYTEORDER) for g in grams)


def _hits(view: bytes, anchors: frozenset[int]) -> frozenset[int]:
    whole = len(view) - len(view) % _ANCHOR
    return anchors.intersection(memoryview(view)[:whole].cast("Q")) if whole else frozenset()


def _scan(view: bytes, tables: Mapping[int, Mapping[bytes, tuple[str, ...]]], hits: frozenset[int]) -> set[str]:
    found: set[str] = set()
    for hit in hits:  # rare: look at every place the piece is, aligned or not
        piece = hit.to_bytes(_ANCHOR, _BYTEORDER)
        p = view.find(piece)
        while p != -1:
            for length, table in tables.items():
                for s in range(max(0, p + _ANCHOR - length), min(p, len(view) - length) + 1):
                    owners = table.get(view[s : s + length])
                    if owners:
                        found.update(owners)
            p = view.find(piece, p + 1)
    return found
