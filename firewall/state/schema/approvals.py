"""The approvals' tables: held requests (`approvals`) and standing grants (`approval_grants`)."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("approvals")


@MIGRATIONS()
def create_approval_tables(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            timeout REAL NOT NULL,
            state TEXT NOT NULL,
            agent TEXT NOT NULL,
            method TEXT NOT NULL,
            url TEXT NOT NULL,
            rule TEXT NOT NULL,
            rule_text TEXT NOT NULL,
            reason TEXT,
            preview TEXT NOT NULL,
            body_size INTEGER NOT NULL,
            fingerprint TEXT NOT NULL,
            policy_sha256 TEXT NOT NULL,
            proxy_pid INTEGER NOT NULL,
            held INTEGER NOT NULL,
            decided_at REAL,
            decided_by TEXT,
            detail TEXT,
            grant_id TEXT,
            used_at REAL,
            used_by_request TEXT
        )
        """
    )
    db.execute("CREATE INDEX approvals_state ON approvals (state)")
    db.execute("CREATE INDEX approvals_fingerprint ON approvals (fingerprint)")
    db.execute(
        """
        CREATE TABLE approval_grants (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            rule TEXT NOT NULL,
            rule_text TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            created_by TEXT NOT NULL,
            approval_id TEXT,
            revoked REAL,
            revoked_by TEXT
        )
        """
    )
    db.execute("CREATE INDEX approval_grants_match ON approval_grants (agent, rule)")


@MIGRATIONS()
def record_where_an_answer_came_from(db: sqlite_utils.Database) -> None:
    """`decided_via`: the prompt (and its terminal) or the CLI, beside `decided_by`, the person."""
    db.execute("ALTER TABLE approvals ADD COLUMN decided_via TEXT")
