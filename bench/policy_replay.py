"""Benchmark `policy replay`: a million recorded requests decided under a candidate and the policy in force.

    .venv/bin/python bench/policy_replay.py [--rows 1000000] [--blocks 100]

The audit table is made with `open_database` (the real schema) in a temporary folder and filled with
rows written directly (no hash chain: replay reads none of it), in a mix like an agent's traffic:
8 agents on `--blocks` hosts of bench/policy_engine.py's policy (7 in 10 exact names, 3 in 10
wildcards) and 1 in 10 on hosts no block names; model listings, item reads with ids from 100,000
(so most requests are distinct), chat completions (whose rules read the JSON body: unknown),
paged reads, deletes. The policy in force is bench/policy_engine.py's policy; the candidate blocks
single-model reads, adds a limit to embeddings and turns deletes into approvals, in `--changed` host
blocks, then in every host block (the worst case: no destination is decided alike). Timed: reading
the rows and replaying them (`firewall.audit.replay.replay_log`), the same code as the command,
after the two policies are compiled. Target: a million rows within a minute, for both candidates.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.policy_engine` importable
    sys.path.insert(0, str(ROOT))

from bench.policy_engine import host_pattern, policy_text
from firewall.audit.replay import replay_log
from firewall.policy import compile_source
from firewall.policy.replay import Change, Replay
from firewall.state.db import open_database

TARGET_SECONDS = 60.0
AGENTS = [f"agent-{i}" for i in range(8)]
INSERT = (
    "INSERT INTO audit (seq, time, time_iso, request_id, agent, method, scheme, host, port, path, query, decision, "
    "reason, rule, policy_sha256, credentials, duration_ms, bytes_out, bytes_in, scrubbed, prev_hash, hash) "
    "VALUES (?, ?, '', ?, ?, ?, 'https', ?, 443, ?, ?, 'allow', 'rule', NULL, '', '', 1.0, 0, 0, 0, '', '')"
)


def candidate_text(blocks: int, changed: int) -> str:
    """The policy with `changed` of its host blocks edited (one rule tighter, a limit more, deletes held)."""
    head, *hosts = policy_text(blocks).split("\nhost ")
    for i in range(changed):
        hosts[i] = (
            hosts[i]
            .replace("allow GET /v1/models, /v1/models/*", "block GET /v1/models/*\n    allow GET /v1/models")
            .replace("block DELETE", "approve DELETE")
            .replace(
                "limit 60 per minute per agent", "limit 60 per minute per agent\n    limit 10 per minute /v1/embeddings"
            )
        )
    return "\nhost ".join([head, *hosts])


def host(rng: random.Random, blocks: int) -> str:
    if rng.random() < 0.1:
        return f"unknown-{rng.randrange(50)}.example.org"
    i = rng.randrange(blocks)
    pattern = host_pattern(i)
    return pattern.replace("*", f"eu-{rng.randrange(3)}") if pattern.startswith("*") else pattern


def request(rng: random.Random) -> tuple[str, str, str]:
    """(method, path, query) in an agent's mix."""
    roll = rng.random()
    if roll < 0.25:
        return "GET", "/v1/models", ""
    if roll < 0.35:
        return "GET", f"/v1/models/gpt-{rng.randrange(200)}", ""
    if roll < 0.55:
        return "GET", f"/v1/items/{rng.randrange(100_000)}/gpt-4o", ""
    if roll < 0.75:
        return "POST", "/v1/chat/completions", ""
    if roll < 0.85:
        return "POST", "/v1/embeddings", ""
    if roll < 0.95:
        return "GET", "/v2/reports", f"page={rng.randrange(50)}"
    return "DELETE", f"/v1/items/{rng.randrange(1000)}", ""


def fill(db, rows: int, blocks: int, seed: int = 20261207) -> None:
    rng = random.Random(seed)
    now = time.time()
    chunk: list[tuple] = []
    with db.conn:
        for seq in range(1, rows + 1):
            method, path, query = request(rng)
            chunk.append(
                (seq, now - rows + seq, f"req-{seq}", rng.choice(AGENTS), method, host(rng, blocks), path, query)
            )
            if len(chunk) == 50_000:
                db.conn.executemany(INSERT, chunk)
                chunk.clear()
        db.conn.executemany(INSERT, chunk)
    # Into the database file, as the audit writer's checkpoints keep it: read through a WAL of a
    # million rows, the replay measures the WAL.
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--changed", type=int, default=5, help="host blocks the candidate edits")
    parser.add_argument("--worst-rows", type=int, default=0, help="rows replayed with every block edited (0: all)")
    args = parser.parse_args(argv)
    old = compile_source(policy_text(args.blocks), "bench.policy").policy
    new = compile_source(candidate_text(args.blocks, args.changed), "bench.policy").policy
    worst = compile_source(candidate_text(args.blocks, args.blocks), "bench.policy").policy
    with tempfile.TemporaryDirectory() as folder:
        db = open_database(Path(folder) / "firewall.db")
        started = time.perf_counter()
        fill(db, args.rows, args.blocks)
        print(f"made {args.rows} audit rows in {time.perf_counter() - started:.1f} s")
        distinct = db.execute("SELECT count(*) FROM (SELECT DISTINCT agent, method, host, path, query FROM audit)")
        print(f"distinct recorded requests: {distinct.fetchone()[0]}")
        seconds = timed(f"{args.changed} of {args.blocks} host blocks edited", old, new, db, None)
        worst_rows = args.worst_rows or args.rows
        since = time.time() - worst_rows if args.worst_rows else None  # the newest `worst_rows` rows: one a second
        worst_seconds = timed(f"every host block edited, {worst_rows} rows", old, worst, db, since)
        db.close()
    ok = True
    for what, took, rows in (
        (f"{args.changed} blocks edited", seconds, args.rows),
        ("every block", worst_seconds, worst_rows),
    ):
        million = took * 1_000_000 / max(rows, 1)
        within = million <= TARGET_SECONDS
        ok = ok and within
        print(
            f"target: 1,000,000 within {TARGET_SECONDS:.0f} s ({what}): {million:.0f} s a million, "
            + ("ok" if within else "MISSED")
        )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok else 1


def timed(what: str, old, new, db, since: float | None) -> float:
    started = time.perf_counter()
    replay = replay_log(Replay(old, new), db, since)
    seconds = time.perf_counter() - started
    rate = replay.total / seconds if seconds else 0.0
    print(f"{what}: replayed {replay.total} requests in {seconds:.1f} s, {rate:,.0f} requests/s")
    print("  " + ", ".join(f"{change.value} {replay.counts[change]}" for change in Change if replay.counts[change]))
    return seconds


if __name__ == "__main__":
    sys.exit(main())
