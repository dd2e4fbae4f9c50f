"""Opening the state folder and its database from a command, with errors turned into exits."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from firewall.cli.errors import fail
from firewall.state.db import open_database, open_plain
from firewall.state.failures import describe_database_error, describe_os_error
from firewall.state.home import Home, StateError, open_home

if TYPE_CHECKING:
    import sqlite_utils

    from firewall.policy import CompiledPolicy


def home_or_exit() -> Home:
    try:
        return open_home()
    except StateError as exc:
        fail(str(exc))


def database_or_exit(home: Home) -> sqlite_utils.Database:
    try:
        return open_database(home.database)
    except sqlite3.Error as exc:  # a damaged, locked or unwritable file: say which, and the fix
        fail(describe_database_error(exc, home.database))
    except OSError as exc:
        fail(describe_os_error(exc))


def plain_database_or_exit(home: Home) -> sqlite3.Connection:
    """The database as a plain sqlite3 connection: sqlite_utils only if a migration is due (state/db.py)."""
    try:
        return open_plain(home.database)
    except sqlite3.Error as exc:
        fail(describe_database_error(exc, home.database))
    except OSError as exc:
        fail(describe_os_error(exc))


def applied_policy_or_exit() -> CompiledPolicy:
    from firewall.state import policy_store

    home = home_or_exit()
    db = plain_database_or_exit(home)
    try:
        return policy_store.policy_in_force(db)
    except policy_store.PolicyStoreError as exc:
        fail(str(exc))
    finally:
        db.close()
