"""The counts a proxy of several workers shares: one count service, in its supervisor.

Every worker (firewall/proxy/supervisor.py) counts its requests' limits and budgets
here instead of in its own memory, so a limit of 60 a minute admits 60 across all
workers, not 60 each. The service runs the very code a single proxy runs under
`memory://` (MemoryWindows, MemoryBudgets) on one event loop, one request at a time:
a check and its hit (or a budget's check and its reservation) are one step, as exact as
in one process.

Why a service of our own, not SQLite or Redis: a single machine must not need Redis; a
SQLite counter store would put a write transaction (and its lock) on every limited
request, and a moving window's hits in a table; here a count costs one round trip on a
Unix socket (about 50 us) and nothing touches the disk. The counts live as long as the
supervisor, as they live as long as the proxy under `memory://`.

Fail closed: a worker whose connection broke, or that has no answer within COUNTS_TIMEOUT
(or `--limits-timeout` if longer), raises LimitsUnavailable (limiter.py): the request is
refused with 503 limits_unavailable. The bound is longer than Redis's 250 ms because nothing
between a worker and the service can hang but the CPU: on a machine loaded nine deep, a
250 ms bound refused one request in 160 that the service then counted (tests/e2e/test_workers.py),
while a dead supervisor is seen at once (the connection closes), and its workers stop with it.

The protocol: one JSON array per line each way, answered in order on each connection, so
a worker sends its requests without waiting for the previous answers. The socket is in
the state folder's run directory (owner-only), or, when that path is too long for a Unix
socket, in a private (0700) temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path
from typing import NamedTuple

from firewall.proxy.budget_store import MemoryBudgets
from firewall.proxy.limiter import MemoryWindows

log = logging.getLogger("firewall.proxy")
MAX_SOCKET_PATH = 100  # bytes; a Unix socket's path holds at most 107
LINE_LIMIT = 1 << 20  # bytes in one request line
COUNTS_TIMEOUT = 2.0  # seconds a worker waits for an answer before it refuses the request


class CountServiceError(Exception):
    """The count service answered with an error, or its connection is gone."""


class _Limit(NamedTuple):  # what MemoryWindows reads of a LimitRef
    key: str
    agent: str | None
    amount: int
    period: str


class _Budget(NamedTuple):  # what MemoryBudgets reads of a BudgetRef
    key: str
    agent: str | None
    period: str
    amount: int


def socket_path(run_dir: Path) -> tuple[Path, Path | None]:
    """Where the service listens, and a private directory made for it (to remove at the end), if any."""
    path = run_dir / f"counts-{os.getpid()}.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path, None
    private = Path(tempfile.mkdtemp(prefix="firewall-counts-"))  # mode 0700
    return private / "counts.sock", private


class CountService:
    """Serves the shared counts on a Unix socket, on the supervisor's event loop."""

    def __init__(self, run_dir: Path) -> None:
        self.path, self._private = socket_path(run_dir)
        self.windows = MemoryWindows()
        self.budgets = MemoryBudgets()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # owner-only from the first moment
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=LINE_LIMIT)
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):  # the workers see it gone at once (they are stopped by now)
            writer.close()
        self.path.unlink(missing_ok=True)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while line := await reader.readline():
                writer.write(self.answer(line))
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
        except (ConnectionError, ValueError):  # a worker that went away, or a line past the limit
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def answer(self, line: bytes) -> bytes:
        try:
            result = self._run(json.loads(line))
        except Exception as exc:  # a malformed request: say so to its sender, keep serving the others
            log.error("count service: a request it cannot answer: %s: %s", type(exc).__name__, exc)
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n"
        return json.dumps({"ok": result}).encode() + b"\n"

    def _run(self, request: list) -> object:
        kind = request[0]
        if kind == "limit":
            _, now, raw = request
            limits = tuple(_Limit(str(k), a, int(n), str(p)) for k, a, n, p in raw)
            outcome = self.windows.check(limits, float(now))  # type: ignore[arg-type]
            over = next((i for i, limit in enumerate(limits) if limit is outcome.over), None)
            return [over, outcome.retry_after]
        if kind == "bcounters":
            return [[list(key), used, end] for key, used, end in self.budgets.counters(float(request[1]))]
        _, now, raw, windows = request[:4]
        budgets = tuple(_Budget(str(k), a, str(p), int(n)) for k, a, p, n in raw)
        windows = tuple(str(w) for w in windows)
        if kind == "bread":
            return list(self.budgets.read(budgets, windows))
        amounts = tuple(int(n) for n in request[4])
        if any(n < 0 for n in amounts):
            raise ValueError("a budget amount below 0")
        if kind == "bcheck":
            spent = self.budgets.check(budgets, windows, amounts, float(now))
            return None if spent is None else list(spent)
        if kind == "badd":
            self.budgets.add(budgets, windows, amounts, float(now))
            return None
        raise ValueError(f"unknown request {kind!r}")


class CountClient:
    """A worker's connection to the count service; requests are sent without waiting for
    earlier answers, and each call is bounded by its caller (the limiter's timeout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: deque[asyncio.Future] = deque()
        self._connecting = asyncio.Lock()
        self._reader_task: asyncio.Task | None = None

    async def connect(self) -> None:
        async with self._connecting:
            if self._writer is not None:
                return
            reader, writer = await asyncio.open_unix_connection(str(self.path), limit=LINE_LIMIT)
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader, writer))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gone: Exception = CountServiceError("the count service closed the connection")
        try:
            while line := await reader.readline():
                future = self._waiting.popleft()
                if future.done():  # its caller timed out
                    continue
                answer = json.loads(line)
                if "error" in answer:
                    future.set_exception(CountServiceError(answer["error"]))
                else:
                    future.set_result(answer["ok"])
        except (ConnectionError, ValueError, IndexError) as exc:
            gone = CountServiceError(f"the connection to the count service broke: {exc}")
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            while self._waiting:
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(gone)

    async def _call(self, request: list) -> object:
        if self._writer is None:
            await self.connect()
        writer = self._writer
        assert writer is not None
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        writer.write(json.dumps(request).encode() + b"\n")
        return await future

    async def limit_check(self, limits, now: float) -> tuple[int | None, int]:
        """(index of the first limit the request is over, or None; its retry-after), the hits made."""
        raw = [[limit.key, limit.agent, limit.amount, limit.period] for limit in limits]
        over, retry_after = await self._call(["limit", now, raw])  # type: ignore[misc]
        return over, int(retry_after)

    async def budget_check(self, budgets, windows, reserve, now: float) -> tuple[int, int] | None:
        spent = await self._call(["bcheck", now, _budgets(budgets), list(windows), list(reserve)])
        return None if spent is None else (int(spent[0]), int(spent[1]))  # type: ignore[index]

    async def budget_read(self, budgets, windows) -> tuple[int, ...]:
        used = await self._call(["bread", 0, _budgets(budgets), list(windows)])
        return tuple(int(n) for n in used)  # type: ignore[union-attr]

    async def budget_add(self, budgets, windows, amounts, now: float) -> None:
        await self._call(["badd", now, _budgets(budgets), list(windows), list(amounts)])

    async def budget_counters(self, now: float) -> list[tuple[tuple[str, str, str], int, float]]:
        rows = await self._call(["bcounters", now])
        return [((k, a, w), int(used), float(end)) for (k, a, w), used, end in rows]  # type: ignore[union-attr]


def _budgets(budgets) -> list[list]:
    return [[b.key, b.agent, b.period, b.amount] for b in budgets]
