"""Finding many fixed strings of 15 bytes or more in a large text in one pass.

A string of 15 bytes or more, wherever it is in a text, holds a whole 8-byte block of the
text that starts at a multiple of 8. So the text is read as 8-byte integers
(`memoryview.cast`, no Python loop) and intersected with the set of every 8-byte piece of
every string (`set.intersection`, in C); only where a piece was seen is a string compared.
One pass instead of one `in` per string and form: for 100 vault values in their 9 forms,
over a 1 MiB body, the difference between about 20 ms and 200 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

ANCHOR = 8
MIN_ANCHORED = 2 * ANCHOR - 1  # shorter strings may hold no aligned block: search them with `in`
_BYTEORDER = sys.byteorder


@dataclass(frozen=True)
class Anchored:
    """Strings of MIN_ANCHORED bytes or more, each with the names it stands for."""

    # piece (as an integer) -> (where it is in the string, the string, its names)
    pieces: dict[int, tuple[tuple[int, bytes, tuple[str, ...]], ...]] = field(default_factory=dict)
    _anchors: frozenset[int] = frozenset()

    @classmethod
    def build(cls, strings: Iterable[tuple[bytes, tuple[str, ...]]]) -> Anchored:
        pieces: dict[int, list[tuple[int, bytes, tuple[str, ...]]]] = {}
        for string, names in strings:
            if len(string) < MIN_ANCHORED:
                raise ValueError(f"{len(string)}-byte string: anchoring needs {MIN_ANCHORED} or more")
            for offset in range(len(string) - ANCHOR + 1):
                key = int.from_bytes(string[offset : offset + ANCHOR], _BYTEORDER)
                pieces.setdefault(key, []).append((offset, string, names))
        frozen = {key: tuple(entries) for key, entries in pieces.items()}
        return cls(frozen, frozenset(frozen))

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def hits(self, text: bytes) -> frozenset[int]:
        """The pieces `text` holds at a multiple of 8: where to look (`find`)."""
        whole = len(text) - len(text) % ANCHOR
        if not whole or not self.pieces:
            return frozenset()
        return self._anchors.intersection(memoryview(text)[:whole].cast("Q"))

    def find(self, text: bytes, hits: frozenset[int] | None = None) -> set[str]:
        """The names of the strings `text` holds (`hits`: `self.hits(text)`, when known)."""
        found: set[str] = set()
        for hit in self.hits(text) if hits is None else hits:
            entries = self.pieces[hit]
            piece = hit.to_bytes(ANCHOR, _BYTEORDER)
            at = text.find(piece)
            while at != -1:  # every place the piece is, aligned or not: few
                for offset, string, names in entries:
                    if at >= offset and text.startswith(string, at - offset):
                        found.update(names)
                at = text.find(piece, at + 1)
        return found
