"""What counting usage costs the proxy on streamed answers: `firewall proxy start` with and without budgets.

    .venv/bin/python bench/budget_proxy.py [--rounds 5] [--answers 60] [--words 300] [--workers N]

Two shared proxies, each in a temporary FIREWALL_HOME of its own, with the same policy but for
the budgets:

  plain     `allow POST` on the upstream's host block;
  budgets   the same, plus `limit 1000000000 tokens per day per agent` and `limit $1000000 per
            day per agent`: every answer's usage is read as it streams by and counted.

The upstream (its own process) answers every POST with a streamed answer of `--words` words,
each server-sent event in a chunk of its own (HTTP/1.1 chunked), written at once, as an LLM API
streams a ready answer. The client (this process) keeps 16 HTTPS tunnels open through the proxy
and sends `--answers` requests on each, one after another, reading every answer whole. Three
loads, each a row:

  responses     the Responses API (`/v1/responses`): usage in `response.completed`;
  chat-asked    a chat completion whose agent asked for its usage (`stream_options`): read;
  chat-strip    a chat completion whose agent did not: the proxy asks upstream for it and takes
                it back out of the stream (the costliest path; `plain` relays the same stream).

The two proxies are measured in turn, round by round (the order rotates), and each figure is the
median over rounds: answers a second, MB a second, and the proxy's CPU time per answer (user +
system, its audit writer included, from /proc), which a busy machine disturbs less than wall time.
`--workers` (default: $FIREWALL_PROXY_WORKERS, else one per core, as `proxy start`) is passed to
`proxy start` explicitly. For a count of work that no load disturbs, see bench/budget_work.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_overhead import PYTHON, Firewall, _cpu_seconds, _read_response, start_upstream  # noqa: E402

CONNECTIONS = 16
LOADS = {  # name: (path, request body)
    "responses": ("/v1/responses", {"model": "gpt-4o-mini", "stream": True, "input": "hi"}),
    "chat-asked": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}, "messages": []},
    ),
    "chat-strip": ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "messages": []}),
}


# ---------------------------------------------------------------- the upstream (own process)


def _answers(words: int) -> dict[str, bytes]:
    """The chunked bodies: one HTTP chunk per server-sent event."""
    from tests.support import llm_answers as answers

    bodies = {
        "responses": answers.responses_stream(900, 300, 100, model="gpt-4o-mini", words=words),
        "chat-usage": answers.chat_stream(900, 300, 100, with_usage=True, words=words),
        "chat": answers.chat_stream(900, 300, 100, with_usage=False, words=words),
    }
    chunked = {}
    for name, body in bodies.items():
        events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
        chunked[name] = b"".join(f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events) + b"0\r\n\r\n"
    return chunked


class _UpstreamProtocol(asyncio.Protocol):
    HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    BODIES: dict[str, bytes] = {}

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.HEAD + self._body(head.split(b" ")[1], body))

    def _body(self, path: bytes, body: bytes) -> bytes:
        if path.endswith(b"/responses"):
            return self.BODIES["responses"]
        asked = b'"include_usage":true' in body.replace(b" ", b"")
        return self.BODIES["chat-usage" if asked else "chat"]


def _serve_upstream(cert_pem: str, words: int) -> None:
    _UpstreamProtocol.BODIES = _answers(words)

    async def main():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_pem)
        server = await asyncio.get_running_loop().create_server(_UpstreamProtocol, "127.0.0.1", 0, ssl=context)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- the client (this process)


@dataclass
class Proxy:
    name: str
    port: int
    pid: int
    context: ssl.SSLContext
    auth: str  # "agent:token"


@dataclass
class Result:
    proxy: str
    load: str
    answers: int
    received: int  # bytes of answers
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.answers / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.received / self.seconds / 1e6

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.answers * 1e6


class _Tunnel:
    def __init__(self, proxy: Proxy, upstream_port: int, path: str, body: dict):
        self.proxy = proxy
        self.authority = f"localhost:{upstream_port}"
        data = json.dumps(body).encode()
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.authority}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n"
        ).encode() + data

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.proxy.port)
        auth = base64.b64encode(self.proxy.auth.encode()).decode()
        head = f"CONNECT {self.authority} HTTP/1.1\r\nHost: {self.authority}\r\n"
        self.writer.write(f"{head}Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"{self.proxy.name}: CONNECT answered {head[:60]!r}")
        await self.writer.start_tls(self.proxy.context, server_hostname="localhost")

    async def post(self) -> int:
        """One answer, read whole; the bytes read."""
        self.writer.write(self.request)
        counted = _Counted(self.reader)
        status = await _read_response(counted)  # reads through readuntil and readexactly only
        if status != 200:
            raise RuntimeError(f"{self.proxy.name}: POST answered {status}")
        return counted.read

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ssl.SSLError, ConnectionError):
            pass


class _Counted:
    """A StreamReader that counts the bytes read through it."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader
        self.read = 0

    async def readuntil(self, separator: bytes) -> bytes:
        data = await self.reader.readuntil(separator)
        self.read += len(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.read += len(data)
        return data


async def _load(proxy: Proxy, upstream_port: int, load: str, per_tunnel: int) -> Result:
    path, body = LOADS[load]
    tunnels = [_Tunnel(proxy, upstream_port, path, body) for _ in range(CONNECTIONS)]
    await asyncio.gather(*(t.open() for t in tunnels))
    for t in tunnels:  # the first answer opens the proxy's upstream connection: not measured
        await t.post()
    received = 0

    async def worker(t: _Tunnel) -> None:
        nonlocal received
        for _ in range(per_tunnel):
            received += await t.post()

    gc.collect()
    gc.disable()
    try:
        cpu = _cpu_seconds(proxy.pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(t) for t in tunnels))
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(proxy.pid) - cpu
    finally:
        gc.enable()
    await asyncio.gather(*(t.close() for t in tunnels))
    return Result(proxy.name, load, CONNECTIONS * per_tunnel, received, seconds, cpu)


# ---------------------------------------------------------------- main


def _start_proxy(tmp: Path, name: str, policy: str, ca_file: Path, workers: int) -> Proxy:
    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    fw = Firewall(tmp / name)
    fw.run("init")
    (tmp / f"{name}.policy").write_text(policy)
    fw.run("policy", "apply", str(tmp / f"{name}.policy"))
    fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), "--workers", str(workers))
    status = json.loads(fw.run("proxy", "status", "--json").stdout)
    home = open_home(fw.home)
    db = open_database(home.database)
    token = agents.mint_token(db, "bench")
    db.close()
    context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
    return Proxy(name, status["port"], status["pid"], context, f"bench:{token}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--answers", type=int, default=60, help="answers per tunnel (x16), per round and load")
    parser.add_argument("--words", type=int, default=300, help="words in each streamed answer")
    parser.add_argument("--loads", default=",".join(LOADS), help=f"comma-separated, of {', '.join(LOADS)}")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="proxy processes each (default: $FIREWALL_PROXY_WORKERS, else `proxy start`'s: one per core)",
    )
    args = parser.parse_args()
    loads = args.loads.split(",")
    # Passed on explicitly: the proxies' environment (Firewall.env) drops every FIREWALL_ variable.
    from firewall.proxy.settings import default_workers

    workers = args.workers if args.workers is not None else default_workers()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-budgets-"))
    children: list[subprocess.Popen] = []
    proxies: list[Proxy] = []
    try:
        ca_file, upstream, upstream_port = start_upstream(tmp, __file__, str(args.words))
        children.append(upstream)
        block = f"host localhost:{upstream_port} {{\n"
        plain = block + "    allow POST\n}\n"
        budgets = (
            block + "    limit 1000000000 tokens per day per agent\n    limit $1000000 per day per agent\n"
            "    allow POST\n}\n"
        )
        proxies = [
            _start_proxy(tmp, "plain", plain, ca_file, workers),
            _start_proxy(tmp, "budgets", budgets, ca_file, workers),
        ]
        sizes = {name: len(body) for name, body in _answers(args.words).items()}
        print(
            f"bench: {args.rounds} rounds of {CONNECTIONS}x{args.answers} answers per proxy and load; answers of "
            f"{args.words} words ({', '.join(f'{k} {v} B' for k, v in sizes.items())}); {workers} worker(s) per proxy; "
            f"{os.cpu_count()} cores; "
            f"load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        results: list[Result] = []
        for round_no in range(args.rounds):
            order = proxies[round_no % 2 :] + proxies[: round_no % 2]
            for load in loads:
                for proxy in order:
                    result = asyncio.run(_load(proxy, upstream_port, load, args.answers))
                    results.append(result)
                    print(
                        f"  round {round_no + 1} {load:10} {proxy.name:8} {result.per_second:7.1f} answers/s "
                        f"{result.mb_per_second:6.2f} MB/s  proxy CPU {result.cpu_us:7.0f} us/answer",
                        flush=True,
                    )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        _report(results, loads)
    finally:
        for proxy in proxies:
            env = {**os.environ, "FIREWALL_HOME": str(tmp / proxy.name)}
            subprocess.run([PYTHON, "-m", "firewall", "proxy", "stop"], env=env, capture_output=True, timeout=60)
        for child in children:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _report(results: list[Result], loads: list[str]) -> None:
    def median(load: str, proxy: str, figure: str) -> float:
        return statistics.median(getattr(r, figure) for r in results if (r.load, r.proxy) == (load, proxy))

    print("\nmedians over rounds:")
    columns = ("plain ans/s", "budgets ans/s", "ratio", "plain CPU us", "budgets CPU us")
    print(f"{'load':10} " + " ".join(f"{c:>{max(6, len(c))}}" for c in columns))
    for load in loads:
        plain, counted = median(load, "plain", "per_second"), median(load, "budgets", "per_second")
        cpu_plain, cpu_counted = median(load, "plain", "cpu_us"), median(load, "budgets", "cpu_us")
        print(f"{load:10} {plain:11.1f} {counted:13.1f} {counted / plain:6.3f} {cpu_plain:12.0f} {cpu_counted:14.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        _serve_upstream(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
