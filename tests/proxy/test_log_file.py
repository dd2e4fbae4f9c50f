"""The proxy log: rotated by size, owner-only, and shared by processes without writing into a
file another one rotated away."""

from __future__ import annotations

import logging
from pathlib import Path

from firewall.proxy.log_file import ProxyLogHandler


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.log_file.{name}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_the_log_rotates_by_size_keeps_three_old_files_and_stays_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "proxy.log"
    handler = ProxyLogHandler(path, max_bytes=10_000, backups=3)
    logger = _logger("rotate", handler)
    for i in range(2_000):  # ~100 kB: ten times the size
        logger.info("line %05d %s", i, "x" * 40)
    handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["proxy.log", "proxy.log.1", "proxy.log.2", "proxy.log.3"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 10_000 + 100
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert path.read_text().splitlines()[-1].startswith("line 01999")


def test_below_the_size_nothing_rotates(tmp_path: Path) -> None:  # control
    handler = ProxyLogHandler(tmp_path / "proxy.log", max_bytes=10_000, backups=3)
    logger = _logger("small", handler)
    for i in range(10):
        logger.info("line %d", i)
    handler.close()
    assert [p.name for p in tmp_path.iterdir()] == ["proxy.log"]


def test_a_process_whose_file_another_rotated_writes_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "proxy.log"
    first, second = ProxyLogHandler(path, max_bytes=2_000), ProxyLogHandler(path, max_bytes=2_000)
    a, b = _logger("a", first), _logger("b", second)
    b.info("b before")
    for i in range(60):
        a.info("a %02d %s", i, "y" * 40)  # `first` rotates the file away under `second`
    b.info("b after")
    first.close()
    second.close()
    assert "b after" in path.read_text()
    assert all("b after" not in p.read_text() for p in tmp_path.glob("proxy.log.*"))
