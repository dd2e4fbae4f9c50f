"""The state folder's SQLite database: one file, WAL, schema by registered migrations.

`connect` is the one way to open it (owner-only file, WAL, busy timeout); `database` wraps
a connection for sqlite_utils; `open_database` also applies every pending migration of
firewall/state/schema/.

`open_plain` is for the hot paths (`firewall run` is started per agent, per hook, per CI step):
a plain connection, with the migrations (and sqlite_utils, click, pluggy, dateutil through it:
the largest import `firewall run` had left) loaded only when one may be due. After the
migrations ran, `open_database` stamps the file (`PRAGMA user_version`) with a checksum of the
source of firewall/state/schema/; a file with the same stamp was brought up to date by this
very code, so there is nothing to apply.
"""

from __future__ import annotations

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


def connect(path: Path, *, autocommit: bool = False) -> sqlite3.Connection:
    """A connection with the settings every user of the database needs.

    `autocommit`: no implicit transactions (each is explicit: `transaction`), and usable from
    another thread than the one that opened it: the audit writers'. Otherwise sqlite3's default
    transaction handling, which sqlite_utils needs."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SECRET_FILE_MODE))
    _owner_only(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    if autocommit:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def database(path: Path) -> sqlite_utils.Database:
    """`connect(path)` for sqlite_utils, without bringing the schema up to date."""
    import sqlite_utils

    return sqlite_utils.Database(connect(path))


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
    from firewall.state.schema import MIGRATION_SETS  # not at the top: the audit child only connects

    db = database(path)
    for migrations in MIGRATION_SETS:
        migrations.apply(db)
    stamp = schema_stamp()
    if stamp is not None and db.execute("PRAGMA user_version").fetchone()[0] != stamp:
        db.execute(f"PRAGMA user_version = {stamp}")
    return db


SCHEMA_DIR = Path(__file__).resolve().parent / "schema"  # every migration is defined in a module here


def schema_stamp(folder: Path = SCHEMA_DIR) -> int | None:
    """A checksum of the source of the schema modules, read without importing them (None if one
    cannot be read: then every open runs the migrations)."""
    checksum = 0
    try:
        for source in sorted(folder.glob("*.py")):
            checksum = zlib.crc32(source.read_bytes(), checksum)
    except OSError:
        return None
    return checksum & 0x7FFFFFFF  # user_version is a signed 32-bit integer


def open_plain(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection (the settings of `connect`) to an up-to-date database; the
    migrations (and sqlite_utils) are loaded only when the file's stamp says one may be due."""
    conn = connect(path)
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0] == schema_stamp()
    except BaseException:
        conn.close()
        raise
    if not current:
        open_database(path).close()
    return conn


def plain_connection(db: sqlite_utils.Database | sqlite3.Connection) -> sqlite3.Connection:
    """The sqlite3 connection of `db`: one from `open_plain`, or the one sqlite_utils wraps."""
    return db if isinstance(db, sqlite3.Connection) else db.conn


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
