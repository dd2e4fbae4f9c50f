"""Fixtures for the audit tests: a migrated database and a way to write records into it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from firewall.audit.record import AuditRecord
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database
from tests.audit.support import Write


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "firewall.db"
    open_database(path).conn.close()
    return path


@pytest.fixture
def write(db_path: Path) -> Write:
    """Write records through a real AuditWriter, closed before returning."""

    def write_records(records: Iterable[AuditRecord]) -> None:
        with AuditWriter(db_path) as writer:
            for record in records:
                writer.submit(record)

    return write_records
