"""The state folder's SQLite database: one file, WAL, schema by registered migrations.

Each module that owns tables declares its own `sqlite_utils.migrations.Migrations`
set and lists it in MIGRATION_SETS; `open_database` applies every pending one.

`open_plain` is for the hot paths (`firewall run` is started per agent, per hook, per CI step):
a plain sqlite3 connection, with sqlite_utils (and click, pluggy, dateutil through it: the
largest import `firewall run` had left) loaded only when a migration may be due. After the
migrations ran, `open_database` stamps the file (`PRAGMA user_version`) with a checksum of the
source of the modules that define them; a file with the same stamp was brought up to date by
this very code, so there is nothing to apply.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from firewall.state.home import SECRET_FILE_MODE

if TYPE_CHECKING:  # sqlite_utils is imported where it is used: the audit child never loads it
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

# "module:attribute" of every Migrations set, applied in this order.
MIGRATION_SETS: tuple[str, ...] = (
    "firewall.audit.schema:MIGRATIONS",
    "firewall.policy_store:MIGRATIONS",
    "firewall.agents:MIGRATIONS",
    "firewall.approvals.schema:MIGRATIONS",
)


def _migration_sets() -> list[Migrations]:
    sets = []
    for ref in MIGRATION_SETS:
        module_name, attribute = ref.split(":")
        sets.append(getattr(importlib.import_module(module_name), attribute))
    return sets


def connect(path: Path) -> sqlite_utils.Database:
    """A connection with the settings every user of the database needs."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SECRET_FILE_MODE))
    import sqlite_utils

    _owner_only(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _owner_only(*paths: Path) -> None:
    """Tighten a database file someone made readable to others (the audit log names every destination)."""
    for path in paths:
        try:
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                os.chmod(path, SECRET_FILE_MODE)
        except FileNotFoundError:
            pass


def open_database(path: Path) -> sqlite_utils.Database:
    """Connect and bring the schema up to date."""
    db = connect(path)
    for migrations in _migration_sets():
        migrations.apply(db)
    stamp = schema_stamp()
    if stamp is not None and db.execute("PRAGMA user_version").fetchone()[0] != stamp:
        db.execute(f"PRAGMA user_version = {stamp}")
    return db


def schema_stamp() -> int | None:
    """A checksum of the source of every module in MIGRATION_SETS, read without importing them
    (None if one cannot be read: then every open runs the migrations, as before)."""
    root = Path(__file__).resolve().parent.parent.parent  # the folder holding the `firewall` package
    checksum = 0
    for ref in MIGRATION_SETS:
        base = root.joinpath(*ref.split(":")[0].split("."))
        for source in (base.with_suffix(".py"), base / "__init__.py"):
            try:
                checksum = zlib.crc32(source.read_bytes(), checksum)
                break
            except OSError:
                continue
        else:
            return None
    return checksum & 0x7FFFFFFF  # user_version is a signed 32-bit integer


def open_plain(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection (the settings of `connect`) to an up-to-date database; the
    migrations (and sqlite_utils) are loaded only when the file's stamp says one may be due."""
    conn = _plain_connect(path)
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0] == schema_stamp()
    except BaseException:
        conn.close()
        raise
    if not current:
        open_database(path).close()
    return conn


def _plain_connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SECRET_FILE_MODE))
    _owner_only(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    conn = sqlite3.connect(str(path))  # as sqlite_utils opens it: same transactions
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """BEGIN (IMMEDIATE: take the write lock now) ... COMMIT, or ROLLBACK on error.

    A deferred transaction gives a consistent snapshot for reads that span
    several statements; an immediate one keeps other processes from writing
    between what is read and what is written.
    """
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
