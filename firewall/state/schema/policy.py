"""The policy versions' tables: every applied version (`policy_versions`) and which is in force
(`policy_active`). Read and written by firewall/state/policy_store.py."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("policy")


@MIGRATIONS()
def create_policy_tables(db: sqlite_utils.Database) -> None:
    db["policy_versions"].create(
        {
            "version": int,
            "sha256": str,
            "applied_at": float,
            "applied_by": str,
            "note": str,
            "sources": str,  # JSON: [{"path": ..., "text": ...}]
            "compiled": str,  # canonical JSON of the compiled policy
        },
        pk="version",
    )
    db["policy_active"].create({"id": int, "version": int}, pk="id")


@MIGRATIONS()
def add_tests_column(db: sqlite_utils.Database) -> None:
    """What `apply` learnt of the policy's tests: "5 passed", "skipped: 2 of 7 failing", "none"."""
    db["policy_versions"].add_column("tests", str, not_null_default="")
