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
Unix socket (on the 2-core test VM about 0.1 ms of CPU at each end when checks come one at a
time, a quarter of that when many share a write: bench/count_service.py) and nothing touches
the disk. The counts live as long as the
supervisor, as they live as long as the proxy under `memory://`.

Fail closed: a worker whose connection broke, or that has no answer within COUNTS_TIMEOUT
(or `--limits-timeout` if longer), raises LimitsUnavailable (limiter.py): the request is
refused with 503 limits_unavailable. The bound is longer than Redis's 250 ms because nothing
between a worker and the service can hang but the CPU: on a machine loaded nine deep, a
250 ms bound refused one request in 160 that the service then counted (tests/e2e/test_workers.py),
while a dead supervisor is seen at once (the connection closes), and its workers stop with it.

The protocol: one JSON array per line each way, answered in order on each connection, so
a worker sends its requests without waiting for the previous answers. Both ends are asyncio
protocols (no StreamReader, no task per connection), a worker writes the requests of one
event-loop turn at once and the service answers the lines of one read at once: under load
several requests share one write and one wake-up of each end (docs/performance.md,
"Workers: both cores"). The socket is in
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
READ_SIZE = 1 << 16  # bytes read at once
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
        self._clients: set[asyncio.Transport] = set()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # owner-only from the first moment
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_unix_server(lambda: _Serving(self), path=str(self.path))
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._clients):  # the workers see it gone at once (they are stopped by now)
            transport.close()
        self.path.unlink(missing_ok=True)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

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


class _Lines(asyncio.BufferedProtocol):
    """Whole lines out of a stream's chunks, handed on a chunk's worth at a time.

    A protocol, not a StreamReader and a task: every line read through a StreamReader costs
    a future and a task step on top of the bytes; and a buffered one, read into one buffer
    kept for the connection, not into a new 256 KiB bytes object per read, which the C library
    maps and unmaps for each (bench/count_service.py, docs/performance.md)."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self._view = memoryview(bytearray(READ_SIZE))
        self._rest = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        data = self._view[:nbytes].tobytes()
        if self._rest:
            data = self._rest + data
        end = data.rfind(b"\n") + 1
        self._rest = data[end:]
        if len(self._rest) > LINE_LIMIT:  # a line past the limit: the peer is broken
            self.broken(ValueError(f"a line longer than {LINE_LIMIT} bytes"))
            return
        if end:
            self.lines(data[: end - 1].split(b"\n"))

    def lines(self, lines: list[bytes]) -> None:
        raise NotImplementedError

    def broken(self, exc: Exception) -> None:
        self.transport.close()


class _Serving(_Lines):
    """One worker's connection to the service: every line answered, in order, with one write
    for all the lines of a chunk (a worker sends what it has in one write: CountClient)."""

    def __init__(self, service: CountService) -> None:
        super().__init__()
        self.service = service

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.service._clients.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service._clients.discard(self.transport)

    def lines(self, lines: list[bytes]) -> None:
        if any(len(line) > LINE_LIMIT for line in lines):
            self.broken(ValueError(f"a line longer than {LINE_LIMIT} bytes"))
            return
        answer = self.service.answer
        self.transport.write(b"".join([answer(line) for line in lines]))

    def pause_writing(self) -> None:  # a worker that does not read its answers: stop reading its requests
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class _Answers(_Lines):
    """A worker's side: each answer line settles the oldest request still waiting."""

    def __init__(self, client: CountClient) -> None:
        super().__init__()
        self.client = client

    def lines(self, lines: list[bytes]) -> None:
        waiting = self.client._waiting
        for line in lines:
            try:
                future = waiting.popleft()
                if future.done():  # its caller timed out
                    continue
                answer = json.loads(line)
                if "error" in answer:
                    future.set_exception(CountServiceError(answer["error"]))
                else:
                    future.set_result(answer["ok"])
            except (ValueError, IndexError, TypeError) as exc:  # not an answer of this protocol
                self.broken(exc)
                return

    def broken(self, exc: Exception) -> None:
        self.client._gone(self.transport, CountServiceError(f"the connection to the count service broke: {exc}"))
        super().broken(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"the connection to the count service broke: {exc}" if exc else "the count service closed the connection"
        self.client._gone(self.transport, CountServiceError(why))


class CountClient:
    """A worker's connection to the count service; requests are sent without waiting for
    earlier answers, and each call is bounded by its caller (the limiter's timeout).

    The requests made in one turn of the event loop go out in one write, at its end (a busy
    worker makes several in a turn): one system call, and one wake-up of the service, for all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[asyncio.Future] = deque()
        self._unsent: list[bytes] = []
        self._connecting = asyncio.Lock()

    async def connect(self) -> None:
        async with self._connecting:
            if self._transport is not None:
                return
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_unix_connection(lambda: _Answers(self), str(self.path))
            self._transport = transport  # type: ignore[assignment]

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _gone(self, transport: asyncio.BaseTransport, why: CountServiceError) -> None:
        """The connection `transport` ended: every request still waiting on it fails (closed)."""
        if self._transport is not transport:
            return
        self._transport = None
        self._unsent.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(why)

    def _send(self) -> None:
        if self._unsent and self._transport is not None:
            self._transport.write(b"".join(self._unsent))
        self._unsent.clear()

    async def _call(self, request: list) -> object:
        if self._transport is None:
            await self.connect()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append(future)
        if not self._unsent:
            loop.call_soon(self._send)
        self._unsent.append(json.dumps(request).encode() + b"\n")
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
