"""The audit tables, as a migration set applied by `firewall.state.db.open_database`.

Plain SQLite tables: docs/audit.md describes them column by column for
people who query them with other tools.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("audit")


@MIGRATIONS()
def create_audit_tables(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            time_iso TEXT NOT NULL,
            request_id TEXT NOT NULL,
            agent TEXT,
            method TEXT NOT NULL,
            scheme TEXT NOT NULL,
            host TEXT NOT NULL,
            port INTEGER NOT NULL,
            path TEXT NOT NULL,
            query TEXT NOT NULL,
            decision TEXT NOT NULL,
            reason TEXT NOT NULL,
            rule TEXT,
            policy_sha256 TEXT NOT NULL,
            credentials TEXT NOT NULL,
            upstream_status INTEGER,
            duration_ms REAL NOT NULL,
            bytes_out INTEGER NOT NULL,
            bytes_in INTEGER NOT NULL,
            approval_id TEXT,
            scrubbed INTEGER NOT NULL,
            detail TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """
    )
    for column in ("time", "agent", "host", "decision"):
        db.execute(f"CREATE INDEX audit_{column} ON audit ({column})")
    db.execute(
        """
        CREATE TABLE audit_anchor (
            seq INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            time REAL NOT NULL,
            time_iso TEXT NOT NULL,
            cutoff REAL NOT NULL,
            count INTEGER NOT NULL
        )
        """
    )


@MIGRATIONS()
def add_usage_columns(db: sqlite_utils.Database) -> None:
    """What each answer used, for budgets (docs/budgets.md): NULL in the rows written before."""
    for column, kind in (
        ("input_tokens", "INTEGER"),
        ("output_tokens", "INTEGER"),
        ("cached_tokens", "INTEGER"),
        ("cost_usd", "REAL"),
        ("model", "TEXT"),
    ):
        db.execute(f"ALTER TABLE audit ADD COLUMN {column} {kind}")
    db.execute("CREATE INDEX audit_model ON audit (model)")


@MIGRATIONS()
def add_fields_column(db: sqlite_utils.Database) -> None:
    """The request fields a condition read, for `policy replay` (docs/audit.md): NULL in the rows before."""
    db.execute("ALTER TABLE audit ADD COLUMN fields TEXT")
