"""Reading the log: filters, newest-N, stats, the time forms people type, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall.audit import render
from firewall.audit.query import AuditFilter, Group, between, last_seq, newest, stats
from firewall.audit.times import TimeSpecError, parse_time
from firewall.state.db import open_database
from firewall.text import parse_duration
from tests.audit.support import BASE_TIME, Write, make_record

# (request_id, agent, host, decision, rule), one second apart from BASE_TIME
ROWS = [
    ("r0", "coder", "api.example.com", "allow", "p.fw:3"),
    ("r1", "coder", "evil.example.net", "block", "p.fw:9"),
    ("r2", "review", "api.example.com", "allow", "p.fw:3"),
    ("r3", None, "api.example.com", "approve", None),
    ("r4", "review", "evil.example.net", "block", None),
    ("r5", "coder", "api.example.com", "would_block", "p.fw:3"),
]


@pytest.fixture
def db(db_path: Path, write: Write):
    write(
        make_record(i, request_id=rid, agent=agent, host=host, decision=decision, rule=rule)
        for i, (rid, agent, host, decision, rule) in enumerate(ROWS)
    )
    database = open_database(db_path)
    yield database
    database.conn.close()


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        (AuditFilter(), ["r0", "r1", "r2", "r3", "r4", "r5"]),
        (AuditFilter(agent="coder"), ["r0", "r1", "r5"]),
        (AuditFilter(host="evil.example.net"), ["r1", "r4"]),
        (AuditFilter(decision="block"), ["r1", "r4"]),
        (AuditFilter(rule="p.fw:3"), ["r0", "r2", "r5"]),
        (AuditFilter(since=BASE_TIME + 2), ["r2", "r3", "r4", "r5"]),
        (AuditFilter(until=BASE_TIME + 2), ["r0", "r1"]),
        (AuditFilter(since=BASE_TIME + 1, until=BASE_TIME + 4, decision="allow"), ["r2"]),
        (AuditFilter(agent="coder", host="evil.example.net"), ["r1"]),
        (AuditFilter(agent="nobody"), []),
    ],
)
def test_filters(db, where: AuditFilter, ids: list[str]) -> None:
    assert [row["request_id"] for row in newest(db, where, None)] == ids


def test_newest_limit_keeps_the_newest_oldest_first(db) -> None:
    assert [row["request_id"] for row in newest(db, AuditFilter(), 2)] == ["r4", "r5"]


def test_between_reads_only_the_new_matching_rows(db) -> None:
    assert last_seq(db) == 6
    rows = between(db, AuditFilter(decision="allow"), after=1, upto=5)
    assert [row["seq"] for row in rows] == [3]


def test_stats_by_decision(db) -> None:
    assert stats(db, AuditFilter()) == [
        Group("allow", 2, (("allow", 2),)),
        Group("block", 2, (("block", 2),)),
        Group("approve", 1, (("approve", 1),)),
        Group("would_block", 1, (("would_block", 1),)),
    ]


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("agent", [("coder", 3), ("review", 2), (None, 1)]),
        ("host", [("api.example.com", 4), ("evil.example.net", 2)]),
        ("rule", [("p.fw:3", 3), (None, 2), ("p.fw:9", 1)]),
    ],
)
def test_stats_groups(db, by: str, expected: list[tuple]) -> None:
    assert [(group.value, group.total) for group in stats(db, AuditFilter(), by)] == expected


def test_stats_per_group_counts_each_decision(db) -> None:
    coder = stats(db, AuditFilter(), "agent")[0]
    assert coder == Group("coder", 3, (("allow", 1), ("block", 1), ("would_block", 1)))


def test_stats_respects_the_filter(db) -> None:
    assert stats(db, AuditFilter(since=BASE_TIME + 3), "host") == [
        Group("api.example.com", 2, (("approve", 1), ("would_block", 1))),
        Group("evil.example.net", 1, (("block", 1),)),
    ]


def test_stats_refuses_an_unknown_grouping(db) -> None:
    with pytest.raises(ValueError, match="cannot group by 'path'; choose one of decision, agent, host, rule"):
        stats(db, AuditFilter(), "path")


NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - 30),
        ("15m", NOW - 900),
        ("1h", NOW - 3600),
        ("7d", NOW - 7 * 86400),
        (" 2h ", NOW - 7200),
        ("0s", NOW),
        ("2025-01-31", 1738281600.0),
        ("2025-01-31T12:00:00", 1738324800.0),
        ("2025-01-31 12:00", 1738324800.0),
        ("2025-01-31T12:00:00Z", 1738324800.0),
        ("2025-01-31T14:00:00+02:00", 1738324800.0),
        ("1900-01-01", 0.0),
        ("99999999d", 0.0),
        ("1w", NOW - 604800),
        ("1.5h", NOW - 5400),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1y", "1H", "-1h", "1.5.h", "h", "2025-13-01", "1h30m"])
def test_parse_time_refuses_other_forms_and_says_which_are_accepted(text: str) -> None:
    with pytest.raises(TimeSpecError) as caught:
        parse_time(text, NOW)
    message = str(caught.value)
    assert message.startswith("expected a duration like 250ms, 30s, 15m, 1.5h, 7d or 2w or an ISO date/time")
    assert message.endswith(f"got {text!r}")


def test_parse_duration_is_none_for_a_date() -> None:
    assert parse_duration("2025-01-31") is None
    assert parse_duration("2d") == 172800


@pytest.mark.parametrize(
    ("value", "shown"),
    [("plain", "plain"), (None, "-"), (443, "443"), ("a\nb", "a\\nb"), ("\x1b[31mred", "\\x1b[31mred")],
)
def test_printable_escapes_control_characters(value: object, shown: str) -> None:
    assert render.printable(value) == shown


@pytest.mark.parametrize(
    ("scheme", "port", "query", "url"),
    [
        ("https", 443, "", "https://h.example/p"),
        ("https", 8443, "", "https://h.example:8443/p"),
        ("http", 80, "a=1", "http://h.example/p?a=1"),
        ("http", 443, "", "http://h.example:443/p"),
    ],
)
def test_url(scheme: str, port: int, query: str, url: str) -> None:
    assert render.url({"scheme": scheme, "host": "h.example", "port": port, "path": "/p", "query": query}) == url


def test_table_is_aligned_and_truncates_long_urls(db) -> None:
    rows = newest(db, AuditFilter(), None)
    rows[0]["path"] = "/" + "x" * 200
    lines = render.table(rows)
    assert lines[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert len({line.index(" 2025-06-15 ") for line in lines[1:]}) == 1
    decision_column = lines[0].index("DECISION")
    assert [line[decision_column:].split()[0] for line in lines[1:]] == [r[3] for r in ROWS]
    url_cell = render.table_cells(rows[0])[5]
    assert len(url_cell) == render.URL_WIDTH
    assert url_cell.endswith("x…")
    assert url_cell in lines[1]
