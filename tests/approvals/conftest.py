"""Fixtures for the approvals tests: a migrated state database."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall.state.db import open_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "firewall.db"
    open_database(path).conn.close()
    return path


@pytest.fixture
def db(db_path: Path):
    connection = open_database(db_path)
    yield connection
    connection.close()
