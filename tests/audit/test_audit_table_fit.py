"""The human audit table: APPROVAL and DETAIL columns, standing grants marked apart from requests a
person was asked about, and a table that fits the terminal (COLUMNS) with long URLs shortened in the
middle; piped tables, --json and --csv keep every character."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firewall.audit.fit import fit, shorten
from firewall.audit.writer import AuditWriter
from tests.audit.support import make_record

FIREWALL = str(Path(sys.executable).parent / "firewall")
LONG_PATH = "/v1/organizations/org-0123456789/projects/proj-abcdef/fine_tuning/jobs/ftjob-XYZ/checkpoints"


def firewall(home: Path, *args: str, columns: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["FIREWALL_HOME"] = str(home)
    if columns:
        env["COLUMNS"] = columns
    return subprocess.run([FIREWALL, "audit", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        writer.submit(make_record(0))
        writer.submit(make_record(1, decision="allow", approval_id="apr_4026630df27ca7f8", rule="p.fw:7"))
        writer.submit(make_record(2, decision="allow", approval_id="grt_9a8b7c6d5e4f3a2b", rule="p.fw:7"))
        writer.submit(
            make_record(3, decision="upstream_tls_error", upstream_status=None, detail="certificate verify failed")
        )
        writer.submit(make_record(4, path=LONG_PATH, query=""))
    return home


def test_the_table_shows_approval_and_detail_and_marks_grants_apart(logged):
    lines = firewall(logged).stdout.splitlines()
    assert lines[0].split()[-2:] == ["APPROVAL", "DETAIL"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]  # one line per row
    assert "asked apr_4026630df27ca7f8" in lines[2]
    assert "grant grt_9a8b7c6d5e4f3a2b" in lines[3] and "asked" not in lines[3]
    assert lines[4].endswith("certificate verify failed")
    assert ("https://api.example.com" + LONG_PATH)[:79] + "…" in lines[5]  # piped: cut at 80, as always


def test_a_table_without_approvals_or_details_keeps_its_columns(tmp_path):
    """The control: rows with neither have the table they always had."""
    home = tmp_path / "home"
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        writer.submit(make_record(0))
    header = firewall(home).stdout.splitlines()[0]
    assert header.split()[-1] == "REASON"


@pytest.mark.parametrize("columns", ["80", "120", "200"])
def test_the_table_fits_the_terminal_width(logged, columns):
    lines = firewall(logged, columns=columns).stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns), "\n".join(lines)
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]
    long_row = lines[5]
    url = next(cell for cell in long_row.split() if cell.startswith("https://"))
    assert url.endswith("points")  # both ends of the URL: the host's start and the path's end
    assert "…" in long_row or int(columns) >= 200
    assert " grant " in lines[3] or "APPROVAL" not in lines[0]
    assert "DETAIL" in lines[0] and "certifi" in lines[4]


def test_exports_are_never_shortened_or_marked(logged):
    rows = json.loads(firewall(logged, "--json", columns="80").stdout)
    assert [r["approval_id"] for r in rows][1:3] == ["apr_4026630df27ca7f8", "grt_9a8b7c6d5e4f3a2b"]
    assert rows[4]["path"] == LONG_PATH
    exported = list(csv.DictReader(io.StringIO(firewall(logged, "--csv", columns="80").stdout)))
    assert exported[2]["approval_id"] == "grt_9a8b7c6d5e4f3a2b" and exported[4]["path"] == LONG_PATH


def test_shorten_keeps_both_ends_of_a_url():
    url = "https://api.example.com" + LONG_PATH
    short = shorten(url, 40, middle=True)
    assert len(short) == 40 and short.startswith("https://api.example.com") and short.endswith("checkpoints")
    assert shorten("short", 40, middle=True) == "short"


def test_fit_leaves_a_table_that_fits_alone():
    lines = [("SEQ", "URL"), ("1", "https://a.example/x")]
    assert fit(lines, 80) == [list(line) for line in lines]
