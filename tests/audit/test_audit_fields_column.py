"""The `fields` column (the request fields a host block's conditions read) is added by a migration
that leaves the rows written before it verifying, and a row that holds it is hashed with it."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from firewall.audit import verify
from firewall.audit.chain import canonical_json
from firewall.state.db import open_database
from tests.audit.support import Write, make_record

FIELDS = '{"header.x-team":["red"],"json.model":"gpt-4o-mini"}'


def test_rows_written_before_the_column_existed_still_verify_after_the_migration(db_path: Path, write: Write):
    write([make_record(i) for i in range(3)])
    old = sqlite_utils.Database(db_path)  # the database as the version before the column left it
    old.execute("ALTER TABLE audit DROP COLUMN fields")
    old.execute("DELETE FROM _sqlite_migrations WHERE name = 'add_fields_column'")
    old.conn.commit()
    old.conn.close()
    db = open_database(db_path)  # migrates again: the column comes back, empty
    try:
        assert "fields" in db["audit"].columns_dict
        assert verify(db).intact and verify(db).rows == 3
    finally:
        db.conn.close()
    write([make_record(3, fields=FIELDS), make_record(4)])
    db = open_database(db_path)
    try:
        report = verify(db)
        assert report.intact and report.rows == 5
        assert [r["fields"] for r in db.query("SELECT fields FROM audit ORDER BY seq")] == [None] * 3 + [FIELDS, None]
        db.execute("UPDATE audit SET fields = ? WHERE seq = 4", [FIELDS.replace("red", "blue")])
        assert verify(db).tamper.seq == 4  # the control: the column is covered by the hash
    finally:
        db.conn.close()


def test_an_unset_fields_column_is_left_out_of_the_hashed_json():
    assert b'"fields"' not in canonical_json(make_record().values(1))
    assert b'"fields":' in canonical_json(make_record(fields=FIELDS).values(1))
