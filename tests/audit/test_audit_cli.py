"""`firewall audit` run as a user runs it: a subprocess with FIREWALL_HOME set."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firewall.audit.writer import AuditWriter
from tests.audit.support import make_record, sqlite3_cli

FIREWALL = str(Path(sys.executable).parent / "firewall")
HOUR = 3600.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def firewall(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIREWALL_HOME": str(home)}
    return subprocess.run([FIREWALL, "audit", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def logged(home: Path) -> Path:
    """Six rows: three from 3 days ago, three from the last minutes; two agents; one block."""
    now = time.time()
    times = [now - 72 * HOUR, now - 72 * HOUR + 1, now - 72 * HOUR + 2, now - 120, now - 60, now - 1]
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        for i, moment in enumerate(times):
            writer.submit(
                make_record(
                    i,
                    time=moment,
                    agent="coder" if i % 2 == 0 else "review",
                    decision="block" if i == 4 else "allow",
                    rule="p.fw:9" if i == 4 else "p.fw:3",
                )
            )
    return home


def test_table_lists_newest_last(logged: Path) -> None:
    result = firewall(logged)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["SEQ", "TIME", "(UTC)", "AGENT"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert "https://api.example.com/v1/items?page=2" in lines[1]


def test_filters_and_limit(logged: Path) -> None:
    result = firewall(logged, "--since", "1h", "--agent", "review", "--limit", "1")
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["6"]


def test_json_is_an_array_of_row_objects(logged: Path) -> None:
    result = firewall(logged, "--json", "--decision", "block")
    rows = json.loads(result.stdout)
    assert [(row["seq"], row["agent"], row["rule"]) for row in rows] == [(5, "coder", "p.fw:9")]
    assert set(rows[0]) >= {"time", "time_iso", "request_id", "host", "path", "hash", "prev_hash"}


def test_csv_has_a_header_and_every_column(logged: Path) -> None:
    result = firewall(logged, "--csv", "--rule", "p.fw:3", "--until", "1h")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["seq"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["host"] == "api.example.com"


def test_no_match_says_so_on_stderr(logged: Path) -> None:
    result = firewall(logged, "--agent", "nobody")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no audit rows match\n")


def test_bad_since_is_one_line_exit_2_and_creates_nothing(home: Path) -> None:
    result = firewall(home, "--since", "yesterday")
    assert result.returncode == 2
    assert result.stderr == (
        "error: --since: expected a duration like 250ms, 30s, 15m, 1.5h, 7d or 2w or an ISO date/time like 2025-01-31"
        " or 2025-01-31T12:00:00Z, got 'yesterday'\n"
    )
    assert not home.exists()


def test_stats_by_agent_and_as_json(logged: Path) -> None:
    table = firewall(logged, "stats", "--by", "agent").stdout.splitlines()
    assert table[0].split() == ["AGENT", "TOTAL", "allow", "block"]
    assert table[1].split() == ["coder", "3", "2", "1"]
    assert table[2].split() == ["review", "3", "3", "0"]
    by_decision = json.loads(firewall(logged, "stats", "--since", "1h", "--json").stdout)
    nothing_used = {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}
    assert by_decision == [
        {"decision": "allow", "total": 2, "decisions": {"allow": 2}, **nothing_used},
        {"decision": "block", "total": 1, "decisions": {"block": 1}, **nothing_used},
    ]


def test_stats_by_model_adds_up_what_the_answers_used(home: Path) -> None:
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        writer.submit(
            make_record(0, model="gpt-4o", input_tokens=100, output_tokens=20, cached_tokens=40, cost_usd=0.0004)
        )
        writer.submit(make_record(1, model="gpt-4o", input_tokens=1, output_tokens=2, cached_tokens=0, cost_usd=0.0001))
        writer.submit(make_record(2, model="claude-sonnet-4-5", input_tokens=7, output_tokens=3, cached_tokens=0))
        writer.submit(make_record(3))  # control: a row with no usage adds nothing
    rows = json.loads(firewall(home, "stats", "--by", "model", "--json").stdout)
    assert [
        (r["model"], r["total"], r["input_tokens"], r["output_tokens"], r["cached_tokens"], r["cost_usd"]) for r in rows
    ] == [
        ("gpt-4o", 2, 101, 22, 40, 0.0005),
        ("claude-sonnet-4-5", 1, 7, 3, 0, 0.0),
        (None, 1, 0, 0, 0, 0.0),
    ]
    table = firewall(home, "stats", "--by", "model").stdout.splitlines()
    assert table[0].split()[-8:] == ["INPUT", "TOKENS", "OUTPUT", "TOKENS", "CACHED", "TOKENS", "COST", "USD"]


def test_stats_refuses_an_unknown_grouping(logged: Path) -> None:
    result = firewall(logged, "stats", "--by", "path")
    assert (result.returncode, result.stderr) == (
        2,
        "error: --by: expected one of decision, agent, host, rule, model, got 'path'\n",
    )


def test_prune_then_verify(logged: Path) -> None:
    result = firewall(logged, "prune", "--older-than", "1d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted 3 rows older than 1d (")
    verified = firewall(logged, "verify")
    assert verified.returncode == 0
    assert verified.stdout.startswith("audit log intact: 3 rows after row 3 (rows up to it were pruned)")
    assert [line.split()[0] for line in firewall(logged).stdout.splitlines()[1:]] == ["4", "5", "6"]


def test_prune_with_a_bad_age_changes_nothing(logged: Path) -> None:
    result = firewall(logged, "prune", "--older-than", "a month")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --older-than: expected a duration like 250ms, 30s")
    assert firewall(logged, "verify").stdout.startswith("audit log intact: 6 rows;")


def test_verify_exit_codes(logged: Path) -> None:
    intact = firewall(logged, "verify")
    assert (intact.returncode, intact.stdout.split(";")[0]) == (0, "audit log intact: 6 rows")
    sqlite3_cli(logged / "firewall.db", "UPDATE audit SET upstream_status = 500 WHERE seq = 4")
    tampered = firewall(logged, "verify")
    assert (tampered.returncode, tampered.stdout) == (1, "audit log tampered at row 4: changed\n")


def test_tail_follows_new_rows_and_stops_after_count(logged: Path) -> None:
    env = {**os.environ, "FIREWALL_HOME": str(logged)}
    tail = subprocess.Popen(
        [FIREWALL, "audit", "tail", "--decision", "block", "--count", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        header = tail.stdout.readline()  # printed once tail knows where the log ends
        assert header.split()[:2] == ["SEQ", "TIME"]
        with AuditWriter(logged / "firewall.db") as writer:
            for i, decision in enumerate(["allow", "block", "allow", "block", "block"]):
                writer.submit(make_record(10 + i, time=time.time(), decision=decision))
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["8", "10"]


def test_tail_json_prints_one_object_per_line(logged: Path) -> None:
    env = {**os.environ, "FIREWALL_HOME": str(logged)}
    tail = subprocess.Popen(
        [FIREWALL, "audit", "tail", "--json", "--count", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # No header in JSON mode: keep writing until tail, started at some point, sees a row.
        with AuditWriter(logged / "firewall.db") as writer:
            deadline = time.monotonic() + 30
            while tail.poll() is None and time.monotonic() < deadline:
                writer.submit(make_record(99, time=time.time()))
                writer.flush()
                time.sleep(0.1)
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    (line,) = out.splitlines()
    assert json.loads(line)["request_id"] == "req-99"


def test_tail_exits_cleanly_on_ctrl_c(logged: Path) -> None:
    env = {**os.environ, "FIREWALL_HOME": str(logged)}
    tail = subprocess.Popen(
        [FIREWALL, "audit", "tail"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        tail.stdout.readline()
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert (tail.returncode, err) == (0, "")


def test_json_and_csv_together_are_refused(logged: Path) -> None:
    result = firewall(logged, "--json", "--csv")
    assert (result.returncode, result.stderr) == (2, "error: --json and --csv: choose one output format\n")


@pytest.mark.parametrize("command", [[], ["stats"]], ids=["list", "stats"])
def test_a_decision_that_does_not_exist_is_an_error_listing_the_valid_ones(logged: Path, command: list[str]) -> None:
    control = firewall(logged, *command, "--decision", "block")
    assert control.returncode == 0 and control.stdout, control.stderr
    result = firewall(logged, *command, "--decision", "blocked")
    assert result.returncode == 2 and result.stdout == ""
    assert "'blocked' is not a decision" in result.stderr
    assert "block" in result.stderr and "would_block" in result.stderr and "approval_denied" in result.stderr


def test_since_after_until_is_an_error(logged: Path) -> None:
    assert firewall(logged, "--since", "1h", "--until", "1m").returncode == 0  # the control: in order
    result = firewall(logged, "--since", "1m", "--until", "1h")
    assert result.returncode == 2 and "is not before --until" in result.stderr and "swap" in result.stderr


def test_limit_says_how_many_more_rows_and_exports_take_everything(logged: Path) -> None:
    table = firewall(logged, "--limit", "2")
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["5", "6"]
    assert "4 more rows match" in table.stderr
    everything = firewall(logged, "--limit", "6")
    assert "more rows" not in everything.stderr  # the control: nothing left out, nothing said
    assert len(json.loads(firewall(logged, "--json").stdout)) == 6
    assert len(json.loads(firewall(logged, "--json", "--limit", "2").stdout)) == 2
    assert len(list(csv.DictReader(io.StringIO(firewall(logged, "--csv").stdout)))) == 6


def test_exports_are_not_cut_at_the_default_limit(home: Path) -> None:
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        for i in range(60):
            writer.submit(make_record(i, time=time.time() - 100 + i))
    assert len(json.loads(firewall(home, "--json").stdout)) == 60
    assert len(list(csv.DictReader(io.StringIO(firewall(home, "--csv").stdout)))) == 60
    table = firewall(home)
    assert len(table.stdout.splitlines()) == 51 and "10 more rows match" in table.stderr
