"""The hash chain over audit rows: hashing, the chain's head, and verification.

Each row's `hash` is sha256(prev_hash || canonical JSON of the row's COLUMNS),
where `prev_hash` is the previous row's hash and the first row's is GENESIS.
Editing, deleting or inserting a row without recomputing every later hash
breaks the chain at that row. After a prune, the chain restarts from an
anchor: the seq and hash of the last row pruned.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

from firewall.audit.record import ADDED_COLUMNS, COLUMNS
from firewall.state.db import transaction

if TYPE_CHECKING:  # annotations only: the audit writer's child process never loads sqlite_utils
    import sqlite_utils

# The same digest either way. OpenSSL's SHA-256 (hashlib) is about three times as fast as CPython's
# own (_sha2, HACL*), but loading OpenSSL's libcrypto costs a process 3.6 MiB: the audit writer's
# child, which loads nothing else that needs it, hashes with CPython's; a process that has hashlib
# already (the proxy, the CLI: `audit verify` hashes every row) keeps the faster one.
if "hashlib" in sys.modules:
    from hashlib import sha256
else:
    try:
        from _sha2 import sha256
    except ImportError:  # another Python
        from hashlib import sha256

GENESIS = "0" * 64

SELECT_CHAIN = f"SELECT {', '.join(COLUMNS)}, prev_hash, hash FROM audit"


def canonical_json(values: Sequence[object]) -> bytes:
    """The bytes a row's hash covers: its COLUMNS as a JSON object, keys sorted, no spaces."""
    if len(values) != len(COLUMNS):
        raise ValueError(f"a row has {len(COLUMNS)} hashed columns, got {len(values)} values")
    # Keys go into the dict already sorted, so the encoder need not sort them: same bytes as
    # sort_keys=True, with less work per row.
    row = dict(zip(_SORTED_COLUMNS, _in_sorted_order(values)))
    for name in ADDED_COLUMNS:  # unset: left out, as in the rows written before the column existed
        if row[name] is None:
            del row[name]
    return _ENCODER.encode(row).encode("utf-8")


def _blob(value: object) -> object:
    # Only a hand-edited row holds a BLOB; encode it so that it can never equal a text value.
    if isinstance(value, bytes):
        return {"blob": value.hex()}
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_blob)
_SORTED_INDEXES = sorted(range(len(COLUMNS)), key=COLUMNS.__getitem__)
_SORTED_COLUMNS = tuple(COLUMNS[i] for i in _SORTED_INDEXES)
_in_sorted_order = itemgetter(*_SORTED_INDEXES)


def row_hash(prev_hash: str, values: Sequence[object]) -> str:
    return sha256(prev_hash.encode("utf-8") + canonical_json(values)).hexdigest()


@dataclass(frozen=True)
class Link:
    """A point in the chain: a row's seq and hash (seq 0 with GENESIS before any row)."""

    seq: int
    hash: str


START = Link(0, GENESIS)


@dataclass(frozen=True)
class Anchor:
    """A prune: rows up to `seq` were deleted; `hash` was the hash of row `seq`."""

    seq: int
    hash: str
    time: float  # when the prune ran
    cutoff: float  # the rows it deleted were older than this epoch time
    count: int  # how many rows it deleted

    @property
    def link(self) -> Link:
        return Link(self.seq, self.hash)


def latest_anchor(conn: sqlite3.Connection) -> Anchor | None:
    row = conn.execute("SELECT seq, hash, time, cutoff, count FROM audit_anchor ORDER BY seq DESC LIMIT 1").fetchone()
    return Anchor(*row) if row else None


def head(conn: sqlite3.Connection) -> Link:
    """Where the next row links to: the last row, else the last anchor, else the start."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if row:
        # str(): a hand-edited hash of another type must not stop the writer; verify reports it.
        return Link(row[0], str(row[1]))
    anchor = latest_anchor(conn)
    return anchor.link if anchor else START


@dataclass(frozen=True)
class Tamper:
    """The first break in the chain: row `seq` was changed, deleted, or is out of order."""

    seq: int
    kind: str  # "changed" | "deleted" | "out of order"


@dataclass(frozen=True)
class ChainReport:
    rows: int  # rows checked and found intact
    last: Link  # the last intact row (the anchor or START when there is none)
    anchor: Anchor | None
    tamper: Tamper | None

    @property
    def intact(self) -> bool:
        return self.tamper is None

    def describe(self) -> str:
        if self.tamper:
            return f"audit log tampered at row {self.tamper.seq}: {self.tamper.kind}"
        text = f"audit log intact: {self.rows} rows"
        if self.anchor:
            text += f" after row {self.anchor.seq} (rows up to it were pruned)"
        if self.rows:
            text += f"; last row {self.last.seq} has hash {self.last.hash}"
        return text


def walk(rows: Iterable[Sequence[object]], start: Link) -> tuple[int, Link, Tamper | None]:
    """Check rows (SELECT_CHAIN order by seq) as the continuation of `start`.

    Returns how many rows are intact, the last intact link, and the first break.
    """
    width = len(COLUMNS)
    expected, last, count = start.seq + 1, start, 0
    for row in rows:
        seq, values, prev_hash, stored_hash = row[0], row[:width], row[width], row[width + 1]
        if seq < expected:
            return count, last, Tamper(seq, "out of order")
        if seq > expected:
            return count, last, Tamper(expected, "deleted")
        if not (isinstance(prev_hash, str) and isinstance(stored_hash, str)):
            return count, last, Tamper(seq, "changed")
        if row_hash(prev_hash, values) != stored_hash:
            return count, last, Tamper(seq, "changed")
        if prev_hash != last.hash:
            return count, last, Tamper(seq, "out of order")
        expected, last, count = seq + 1, Link(seq, stored_hash), count + 1
    return count, last, None


def verify(db: sqlite_utils.Database) -> ChainReport:
    """Walk the whole chain, from the latest anchor (or the start) to the last row."""
    with transaction(db.conn):  # one snapshot: a concurrent prune cannot move the anchor mid-walk
        anchor = latest_anchor(db.conn)
        start = anchor.link if anchor else START
        count, last, tamper = walk(db.conn.execute(f"{SELECT_CHAIN} ORDER BY seq"), start)
    return ChainReport(rows=count, last=last, anchor=anchor, tamper=tamper)
