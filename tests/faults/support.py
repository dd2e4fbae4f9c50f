"""What every fault test needs: load through the real proxy, and the two promises checked on it.

*Nothing lost*: every request that reached the upstream has exactly one audit row, and
so has every request the proxy answered itself. *Nothing stuck*: every client is
answered within a bound. Each request carries a unique tag in its query (`?tag=...`),
which the upstream records and the audit row keeps, so the three can be matched one to
one. Every test prints its figures: requests, rows, lost, longest wait.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import count

import httpx

from tests.security.support import mint_token, proxy_ca
from tests.support.fixtures import Firewall
from tests.support.upstream import Upstream

_tags = count()


@dataclass(frozen=True)
class Answer:
    tag: str
    path: str
    status: int  # 0: no answer (a transport error, in `error`)
    error: str | None  # the proxy's error type for its own answers, or the transport error
    seconds: float


class LoadClient:
    """An agent with a live token, sending requests through the proxy to the local upstream."""

    def __init__(self, fw: Firewall, proxy_port: int, upstream: Upstream, agent: str = "load") -> None:
        self.token = mint_token(fw, agent)
        self.agent = agent
        self.proxy = f"http://{agent}:{self.token}@127.0.0.1:{proxy_port}"
        self.base = upstream.base_url
        self.context = ssl.create_default_context(cafile=str(proxy_ca(fw)))

    def client(self) -> httpx.Client:
        return httpx.Client(proxy=self.proxy, verify=self.context, timeout=30)

    def get(self, client: httpx.Client, path: str) -> Answer:
        tag = f"{self.agent}-{next(_tags)}"
        started = time.monotonic()
        try:
            response = client.get(f"{self.base}{path}", params={"tag": tag})
        except httpx.HTTPError as exc:
            return Answer(tag, path, 0, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        seconds = time.monotonic() - started
        error = response.json()["error"]["type"] if response.headers.get("x-firewall-request-id") else None
        return Answer(tag, path, response.status_code, error, seconds)


def hammer(load: LoadClient, paths: list[str], threads: int, per_thread: int) -> list[Answer]:
    """`threads` clients, each sending `per_thread` requests, cycling through `paths`."""
    answers: list[Answer] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        with load.client() as client:
            for n in range(per_thread):
                answer = load.get(client, paths[(offset + n) % len(paths)])
                with lock:
                    answers.append(answer)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in workers), "a load thread was still waiting after 120 s"
    return answers


def hammer_for(load: LoadClient, path: str, threads: int, seconds: float, pause: float = 0.02) -> list[Answer]:
    """`threads` clients sending requests one after another for `seconds` seconds."""
    answers: list[Answer] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with load.client() as client:
            while time.monotonic() < deadline:
                answer = load.get(client, path)
                with lock:
                    answers.append(answer)
                time.sleep(pause)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=seconds + 60)
    assert not any(thread.is_alive() for thread in workers), "a load thread was still waiting"
    return answers


def tag_of(query: str) -> str | None:
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "tag":
            return value
    return None


def rows_by_tag(fw: Firewall) -> Counter:
    return Counter(tag_of(row["query"] or "") for row in fw.audit_rows())


def check_nothing_lost(fw: Firewall, upstream: Upstream, answers: list[Answer], name: str, bound: float) -> dict:
    """Every request has exactly one row, every request the upstream saw was one of them, every
    client was answered within `bound` seconds. Prints and returns the figures."""
    tags = [a.tag for a in answers]
    rows = fw.audit_rows_once(
        lambda rows: sum(tag_of(r["query"] or "") in set(tags) for r in rows) >= len(tags), timeout=30
    )
    counted = Counter(tag_of(r["query"] or "") for r in rows)
    seen = Counter(tag_of(s.path.partition("?")[2]) for s in upstream.seen)
    lost = [t for t in tags if counted[t] == 0]
    doubled = [t for t in tags if counted[t] > 1]
    reached_without_row = [t for t in seen if t in set(tags) and counted[t] != 1]
    longest = max(a.seconds for a in answers)
    figures = {
        "requests": len(answers),
        "rows": sum(counted[t] for t in tags),
        "lost": len(lost),
        "doubled": len(doubled),
        "reached upstream": sum(seen[t] for t in tags),
        "longest wait": f"{longest:.3f}s",
        "answers": dict(Counter(f"{a.status} {a.error or ''}".strip() for a in answers)),
    }
    print_figures(name, figures)
    assert lost == [] and doubled == [] and reached_without_row == [], figures
    assert longest < bound, f"a client waited {longest:.3f}s (bound {bound}s): {figures}"
    return figures


def print_figures(name: str, figures: dict) -> None:
    print(f"\n[fault figures] {name}: {json.dumps(figures)}")


def proxy_status(fw: Firewall) -> dict:
    return json.loads(fw.run("proxy", "status", "--json", check=True).stdout)


def log_lines(fw: Firewall, fragment: str) -> list[str]:
    return [line for line in fw.proxy_log() if fragment in line]
