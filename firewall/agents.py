"""Agents' proxy credentials: one random token per `firewall run`, stored hashed.

The agent presents `name:token` as proxy credentials. Only the token's
sha256 is stored, so the database never holds a usable token; a token is
revoked when its run ends.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("agents")
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@MIGRATIONS()
def create_agent_tokens(db: sqlite_utils.Database) -> None:
    db["agent_tokens"].create(
        {"token_hash": str, "agent": str, "created": float, "revoked": float}, pk="token_hash"
    )


class AgentError(ValueError):
    pass


def check_agent_name(name: str) -> str:
    if not AGENT_NAME.fullmatch(name):
        raise AgentError(
            f"agent name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token(db: sqlite_utils.Database, agent: str, now: float | None = None) -> str:
    """A new token for `agent`; only its hash is stored."""
    check_agent_name(agent)
    token = secrets.token_urlsafe(24)
    db["agent_tokens"].insert(
        {"token_hash": token_hash(token), "agent": agent, "created": now or time.time(), "revoked": None}
    )
    return token


def revoke_token(db: sqlite_utils.Database, token: str, now: float | None = None) -> None:
    db.execute(
        "UPDATE agent_tokens SET revoked = ? WHERE token_hash = ?", [now or time.time(), token_hash(token)]
    )
    db.conn.commit()


def agent_for_token(db: sqlite_utils.Database, token: str) -> str | None:
    """The agent a live token belongs to, or None."""
    row = db.execute(
        "SELECT agent FROM agent_tokens WHERE token_hash = ? AND revoked IS NULL", [token_hash(token)]
    ).fetchone()
    return row[0] if row else None


def live_tokens(db: sqlite_utils.Database) -> dict[str, str]:
    """{token hash: agent} of every live token."""
    return dict(db.execute("SELECT token_hash, agent FROM agent_tokens WHERE revoked IS NULL").fetchall())

