"""Agents' proxy credentials: one random token per `firewall run`, stored hashed.

The agent presents `name:token` as proxy credentials. Only the token's
sha256 is stored, so the database never holds a usable token; a token is
revoked when its run ends. A token minted with a lease (the run's pid and start
time) is also dead once that process is gone, even if the run was killed before it
could revoke it: `live_tokens` leaves it out.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.state.pids import Lease, held

if TYPE_CHECKING:  # sqlite_utils only for its types: `firewall run` never loads it (state/db.py)
    import sqlite_utils

AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _sql(db: sqlite_utils.Database | sqlite3.Connection) -> sqlite3.Connection:
    """The sqlite3 connection under `db`: callers pass either (`state.db.open_plain` gives the latter)."""
    return db if isinstance(db, sqlite3.Connection) else db.conn


@dataclass(frozen=True)
class LiveToken:
    agent: str
    isolated: bool


class AgentError(ValueError):
    pass


def check_agent_name(name: str) -> str:
    if not AGENT_NAME.fullmatch(name):
        raise AgentError(
            f"agent name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token(
    db: sqlite_utils.Database | sqlite3.Connection,
    agent: str,
    now: float | None = None,
    lease: Lease | None = None,
    isolated: bool = True,
) -> str:
    """A new token for `agent`, dead with `lease`'s process if given; only its hash is stored."""
    check_agent_name(agent)
    token = secrets.token_urlsafe(24)
    conn = _sql(db)
    conn.execute(
        "INSERT INTO agent_tokens (token_hash, agent, created, revoked, run_pid, run_started, isolated)"
        " VALUES (?, ?, ?, NULL, ?, ?, ?)",
        [
            token_hash(token),
            agent,
            now or time.time(),
            lease.pid if lease else None,
            lease.started if lease else None,
            int(isolated),
        ],
    )
    conn.commit()
    return token


def revoke_token(db: sqlite_utils.Database | sqlite3.Connection, token: str, now: float | None = None) -> None:
    conn = _sql(db)
    conn.execute("UPDATE agent_tokens SET revoked = ? WHERE token_hash = ?", [now or time.time(), token_hash(token)])
    conn.commit()


_LIVE = "SELECT token_hash, agent, run_pid, run_started, isolated FROM agent_tokens WHERE revoked IS NULL"


def _alive(row) -> bool:
    return row[2] is None or held(Lease(row[2], row[3]))


def agent_for_token(db: sqlite_utils.Database, token: str) -> str | None:
    """The agent a live token belongs to, or None."""
    row = db.execute(_LIVE + " AND token_hash = ?", [token_hash(token)]).fetchone()
    return row[1] if row and _alive(row) else None


def live_token_details(db: sqlite_utils.Database) -> dict[str, LiveToken]:
    """{token hash: its agent and whether its run is isolated} of every live token."""
    return {row[0]: LiveToken(row[1], row[4] != 0) for row in db.execute(_LIVE).fetchall() if _alive(row)}


def live_tokens(db: sqlite_utils.Database) -> dict[str, str]:
    """{token hash: agent} of every live token."""
    return {digest: live.agent for digest, live in live_token_details(db).items()}
