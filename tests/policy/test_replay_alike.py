"""Requests replayed once for many (firewall/policy/replay_alike.py `TargetsAlike`, Replay.add_counted):
requests that differ only in a path or query both policies decide alike share one decision, and the
counts are exactly those of deciding every request on its own. Each way a target can matter has a
case where it is not shared: a condition on the path or the query, a path `canonicalize` would
change or refuse, a query holding `_method`, an escape or a fragment; controls of the same shape
that are shared."""

from __future__ import annotations

import itertools

import pytest

from firewall.policy import CompiledPolicy, Request
from firewall.policy.loader import compile_source
from firewall.policy.replay import Recorded, Replay
from firewall.policy.replay_alike import TargetsAlike

OLD = """\
host api.example.com {
    allow GET /v1/models, /v1/models/*
    allow GET /v1/items/*/gpt-*
    approve POST /v1/jobs/**
    block DELETE /**
    allow POST /v1/chat when header.x-mode == "fast"
    limit 10 per minute /v1/items/**
}

host paths.example.com {
    allow GET /** when path matches "^/v1/[a-z]+$"
}

host query.example.com {
    allow GET /v1/** when query.page < 10
}
"""
NEW = (
    OLD.replace("allow GET /v1/models, /v1/models/*", "block GET /v1/models/*\n    allow GET /v1/models")
    .replace("block DELETE /**", "approve DELETE /**")
    .replace("when path matches", 'when agent == "ci" and path matches')
    .replace("query.page < 10", "query.page < 5")
)


def _policy(source: str) -> CompiledPolicy:
    return compile_source(source, "alike.policy").policy


def _rows() -> list[tuple[str, str, str, str, str]]:
    """(agent, method, host, path, query): plain paths and queries, and each kind that must stand for itself."""
    paths = [
        "/v1/models",
        "/v1/models/gpt-1",
        "/v1/models/gpt-2",
        "/v1/items/1/gpt-4o",
        "/v1/items/2/gpt-4o",
        "/v1/items/2/other",
        "/v1/jobs/a",
        "/v1/abc",
        "/v1/abc1",
        "/v1/chat",
        "/v1/x/./y",  # not canonical: canonicalize changes it
        "/v1/a//b",
        "/v1/%41",
        "/v1/a;b",  # refused by canonicalize
        "/v1/../..",
        "/",
    ]
    queries = ["", "page=3", "page=7", "page=12", "_method=DELETE", "a=%41", "a=b#c", "x=1&y=2"]
    rows = []
    for agent, method, host, path, query in itertools.product(
        ["ci", "dev"],
        ["GET", "POST", "DELETE"],
        ["api.example.com", "paths.example.com", "query.example.com", "other.example.org"],
        paths,
        queries,
    ):
        rows.append((agent, method, host, path, query))
    return rows


def _recorded(agent: str, method: str, host: str, path: str, query: str) -> Recorded:
    target = f"{path}?{query}" if query else path
    return Recorded(Request(method, "https", host, 443, target, agent=agent), "rule")


def _summary(replay: Replay) -> tuple:
    return (
        replay.total,
        dict(replay.counts),
        {change: dict(counter) for change, counter in replay.by_rule.items()},
        {change: dict(counter) for change, counter in replay.by_agent.items()},
    )


def test_counted_requests_give_exactly_the_counts_of_deciding_each_one():
    old, new = _policy(OLD), _policy(NEW)
    one_by_one = Replay(old, new)
    counted = Replay(old, new)
    for n, row in enumerate(_rows()):
        times = 1 + n % 3  # some requests recorded more than once
        for _ in range(times):
            one_by_one.add(_recorded(*row))
        agent, method, host, path, query = row
        counted.add_counted(
            lambda row=row: _recorded(*row),
            times,
            agent=agent,
            method=method,
            host=host,
            port=443,
            path=path,
            query=query,
            rest=("https", "rule", None),
        )
    assert _summary(counted) == _summary(one_by_one)
    assert counted.changed > 0 and len(counted._cache) < len(_rows()) / 3  # shared, and something changed


@pytest.fixture
def alike() -> TargetsAlike:
    return TargetsAlike(_policy(OLD), _policy(NEW))


def test_paths_the_globs_match_alike_share_a_stand_in(alike):
    one = alike("api.example.com", 443, "GET", "/v1/items/1/gpt-4o", "")
    assert alike("api.example.com", 443, "GET", "/v1/items/2/gpt-4o", "") == one
    # Controls: a path one glob matches and the other does not.
    assert alike("api.example.com", 443, "GET", "/v1/items/2/other", "") != one
    assert alike("api.example.com", 443, "GET", "/v1/models/gpt-1", "") != one


@pytest.mark.parametrize("path", ["/v1/x/./y", "/v1/a//b", "/v1/%41", "/v1/a;b", "/v1/..", "/v1/a/.", "/v1/a\\b"])
def test_a_path_canonicalize_would_change_or_refuse_stands_for_itself(alike, path):
    assert alike("api.example.com", 443, "GET", path, "")[0] == path
    # Control: a plain path of the same length is replaced by its globs' answers.
    assert isinstance(alike("api.example.com", 443, "GET", "/v1/" + "x" * (len(path) - 4), "")[0], tuple)


def test_a_condition_on_the_path_or_the_query_keeps_it(alike):
    assert alike("paths.example.com", 443, "GET", "/v1/abc", "")[0] == "/v1/abc"
    assert alike("query.example.com", 443, "GET", "/v1/abc", "page=3")[1] == "page=3"
    # Controls: the same at a destination whose conditions read neither.
    assert (
        alike("api.example.com", 443, "GET", "/v1/abc", "page=3")[1]
        == alike("api.example.com", 443, "GET", "/v1/abc", "page=7")[1]
    )


@pytest.mark.parametrize("query", ["_method=DELETE", "a=%5Fmethod", "a=b#c", "a=\x01", "q=caf\u00e9"])
def test_a_query_the_engine_may_read_stands_for_itself(alike, query):
    assert alike("api.example.com", 443, "POST", "/v1/jobs/a", query)[1] == query
    # Control: a plain query is not.
    assert alike("api.example.com", 443, "POST", "/v1/jobs/a", "a=b")[1] != "a=b"
