"""The agents' proxy tokens (`agent_tokens`): read and written by firewall/state/agents.py."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("agents")


@MIGRATIONS()
def create_agent_tokens(db: sqlite_utils.Database) -> None:
    db["agent_tokens"].create({"token_hash": str, "agent": str, "created": float, "revoked": float}, pk="token_hash")


@MIGRATIONS()
def add_run_lease(db: sqlite_utils.Database) -> None:
    # run_pid/run_started: the run's lease (NULL: none, the token lives until revoked);
    # isolated: 0 for a `firewall run --no-isolate`, whose audit rows say so.
    table = db["agent_tokens"]
    table.add_column("run_pid", int)
    table.add_column("run_started", int)
    table.add_column("isolated", int)
