"""Deleting old audit rows while keeping the rest of the chain verifiable."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.audit.chain import SELECT_CHAIN, START, Link, latest_anchor, walk
from firewall.state.db import transaction
from firewall.text import iso_utc

if TYPE_CHECKING:  # annotations only: the audit writer's child process never loads sqlite_utils
    import sqlite_utils


class PruneError(Exception):
    """The rows to prune fail verification; pruning them would hide the tampering."""


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    cutoff: float
    last_seq: int | None  # the last row deleted, None when nothing was
    anchor: Link | None = None  # the anchor written: that row's seq and hash


def prune(db: sqlite_utils.Database, cutoff: float, now: float | None = None) -> PruneResult:
    """Delete rows older than `cutoff` (epoch seconds) and anchor the chain after them.

    Only an unbroken run of rows from the start of the table is deleted: a row
    older than `cutoff` that follows a newer one (two proxies' clocks, say)
    stays until every row before it goes. The rows are verified first, and
    nothing is deleted when they have been tampered with.
    """
    now = time.time() if now is None else now
    conn = db.conn
    with transaction(conn, immediate=True):
        anchor = latest_anchor(conn)
        start = anchor.link if anchor else START
        first_kept = conn.execute("SELECT min(seq) FROM audit WHERE time >= ?", [cutoff]).fetchone()[0]
        if first_kept is None:
            last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
        else:
            last = first_kept - 1
        if last is None or last <= start.seq:
            return PruneResult(deleted=0, cutoff=cutoff, last_seq=None)
        _, link, tamper = walk(conn.execute(f"{SELECT_CHAIN} WHERE seq <= ? ORDER BY seq", [last]), start)
        if tamper:
            raise PruneError(f"refusing to prune: audit log tampered at row {tamper.seq}: {tamper.kind}")
        if link.seq != last:  # the rows just before the first kept one are missing
            raise PruneError(f"refusing to prune: audit log tampered at row {link.seq + 1}: deleted")
        deleted = conn.execute("DELETE FROM audit WHERE seq <= ?", [last]).rowcount
        conn.execute(
            "INSERT INTO audit_anchor (seq, hash, time, time_iso, cutoff, count) VALUES (?, ?, ?, ?, ?, ?)",
            [link.seq, link.hash, now, iso_utc(now), cutoff, deleted],
        )
    return PruneResult(deleted=deleted, cutoff=cutoff, last_seq=last, anchor=link)
