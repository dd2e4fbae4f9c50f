"""A write lock on the audit database held by another process (`sqlite3 firewall.db 'BEGIN
IMMEDIATE;'` left open): what waits in memory is bounded. The proxy serves on while a batch
waits up to 5 s, then refuses new requests with 503 audit_unavailable, so the rows a `kill -9`
could lose stay those of a few seconds; once the lock is released every row is written.
Control: the same load with no lock held."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import pytest

from tests.faults.support import LoadClient, hammer_for, print_figures, proxy_status, tag_of

pytestmark = pytest.mark.faults

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""
THREADS = 4
MAX_SECONDS = 5.0  # firewall/audit/batching.py


def check_rows(firewall, upstream, answers, name: str, bound: float, **extra) -> dict:
    """One row for each request answered (those refused before the decision have no query:
    counted by reason), one for each that reached the upstream; answered within `bound`."""
    tags = {a.tag for a in answers}
    rows = firewall.audit_rows()
    counted = Counter(tag_of(r["query"] or "") for r in rows)
    seen = Counter(tag_of(s.path.partition("?")[2]) for s in upstream.seen)
    refused = [a for a in answers if a.error == "audit_unavailable"]
    refused_rows = [r for r in rows if r["reason"] == "audit_unavailable"]
    forwarded = [a for a in answers if a.status == 200]
    lost = [a.tag for a in forwarded if counted[a.tag] != 1] + [t for t in seen if t in tags and counted[t] != 1]
    longest = max(a.seconds for a in answers)
    figures = {
        "requests": len(answers),
        "reached upstream": sum(1 for t in seen if t in tags),
        "rows": sum(counted[t] for t in tags) + len(refused_rows),
        "lost": len(lost) + max(0, len(refused) - len(refused_rows)),
        "refused 503 audit_unavailable": len(refused),
        "longest wait": f"{longest:.3f}s",
        **extra,
        "answers": dict(Counter(f"{a.status} {a.error or ''}".strip() for a in answers)),
    }
    print_figures(name, figures)
    assert figures["lost"] == 0 and len(refused_rows) == len(refused), figures
    assert longest < bound, f"a client waited {longest:.3f}s (bound {bound}s): {figures}"
    return figures


def test_a_held_write_lock_bounds_the_backlog_then_refuses(firewall, upstream, proxy):
    firewall.apply(POLICY.format(port=upstream.port))
    load = LoadClient(firewall, proxy.port, upstream)

    control = hammer_for(load, "/v1/models", THREADS, 2.0)
    firewall.audit_rows_once(lambda rows: len(rows) >= len(control), timeout=30)
    figures = check_rows(firewall, upstream, control, "locked database: control (no lock)", bound=5.0)
    assert figures["refused 503 audit_unavailable"] == 0

    locker = sqlite3.connect(firewall.home / "firewall.db", isolation_level=None, timeout=10)
    locker.execute("BEGIN IMMEDIATE")
    locked_at = time.monotonic()
    try:
        under_lock = hammer_for(load, "/v1/models", THREADS, MAX_SECONDS + 5)
        status = proxy_status(firewall)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    held = time.monotonic() - locked_at
    admitted = [a for a in under_lock if a.status == 200]
    refused = [a for a in under_lock if a.error == "audit_unavailable"]
    assert refused, "no request was refused while the lock was held"
    # The rows a kill -9 would have lost: those admitted while nothing could be written.
    firewall.audit_rows_once(lambda rows: len(rows) >= len(control) + len(under_lock), timeout=30)
    figures = check_rows(
        firewall,
        upstream,
        under_lock,
        "locked database: lock held",
        bound=5.0,
        **{"lock held": f"{held:.1f}s", "admitted while locked (kill -9 window)": len(admitted)},
    )
    assert any(
        p["what"] == "writing the audit log" and "503 audit_unavailable" in p["message"] for p in status["problems"]
    )
    assert firewall.run("audit", "verify").returncode == 0
    proxy.stop()
