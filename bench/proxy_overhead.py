"""What the firewall costs on top of mitmproxy: throughput and latency, direct vs bare mitmproxy vs firewall.

    .venv/bin/python bench/proxy_overhead.py [--rounds 5] [--seq-requests 1500] [--conc-requests 250]

One run measures the same bounded load in three configurations:

  direct    the client talks TLS to the upstream itself (the floor);
  bare      through mitmproxy with no addons of ours (DumpMaster, lazy connection
            strategy, upstream checked against the test CA, gc.freeze() once listening);
  firewall  through `firewall proxy start` in a temporary FIREWALL_HOME with a generated
            100-rule policy applied, a credential injected into every request, a rate
            limit counted and the audit log written;
  lean      (only with --only lean) bare mitmproxy with the firewall's own set of mitmproxy
            addons (firewall/proxy/master.py): what is left of mitmproxy's cost;

each in two modes: `seq` (one kept-alive HTTPS tunnel, requests one after another) and
`conc` (16 kept-alive tunnels at once, N requests each). Tunnels are opened and warmed
before the clock starts, so the figures are per request on a kept-alive tunnel, not TLS
handshakes. Configurations are interleaved round by round (the order rotates) and every
figure is the median over rounds, so a burst of load from something else on the machine
moves one round, not one configuration. Besides wall-clock figures it prints each proxy
process's CPU time per request (user + system, all threads and its child processes such as
the audit writer, from /proc), which a busy machine disturbs less than latency.

The upstream is a minimal asyncio HTTPS server in its own process (a small JSON per
request); the client is an asyncio client in this process; every proxy is its own process.

It also times `firewall run -- true` with no proxy running (it starts one for the command;
the first start in a state folder, which creates the CA, is timed apart) and with the
shared proxy running. The audit rows written are counted against the requests sent.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONCURRENCY = 16
BODY = json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "bench"}]}).encode()
TARGETS = {"throughput_ratio": 0.90, "p50_ratio": 1.10, "conc_p99_ms": 30.0, "run_cold_s": 1.0}
SECRET_VALUE = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------- the upstream (own process)


class _UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers every request with the same small JSON."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(BODY)).encode()
        + b"\r\n\r\n"
        + BODY
    )

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.need = 0  # body bytes still to skip

    def data_received(self, data):
        self.buffer += data
        out = []
        while True:
            if self.need:
                taken = min(self.need, len(self.buffer))
                self.buffer = self.buffer[taken:]
                self.need -= taken
                if self.need:
                    break
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.need = int(value)
            out.append(self.RESPONSE)
        if out:
            self.transport.write(b"".join(out))


def _serve_upstream(cert_pem: str) -> None:
    async def main():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_pem)
        server = await asyncio.get_running_loop().create_server(_UpstreamProtocol, "127.0.0.1", 0, ssl=context)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- bare mitmproxy (own process)


def _serve_bare(confdir: str, trust_bundle: str, lean: bool = False) -> None:
    """`lean`: the firewall's own set of mitmproxy addons (firewall.proxy.master) instead of DumpMaster's."""
    from mitmproxy import ctx
    from mitmproxy.options import Options
    from mitmproxy.tools.dump import DumpMaster

    class Ready:  # start-up only: says the port, then freezes the heap as the firewall does
        def running(self):
            port = ctx.master.addons.get("proxyserver").listen_addrs()[0][1]
            gc.collect()
            gc.freeze()
            print(port, flush=True)

    async def main():
        options = Options(listen_host="127.0.0.1", listen_port=0, confdir=confdir)
        if lean:
            from firewall.proxy.master import build_master

            master = build_master(options)
        else:
            master = DumpMaster(options, with_termlog=False, with_dumper=False)
        master.options.update(
            connection_strategy="lazy",
            ssl_verify_upstream_trusted_ca=trust_bundle,
            ssl_insecure=False,
            upstream_cert=False,
            http3=False,
            body_size_limit="64m",
        )
        master.addons.add(Ready())
        await master.run()

    asyncio.run(main())


# ---------------------------------------------------------------- the client (this process)


@dataclass
class Target:
    name: str
    host: str  # where the client connects
    port: int
    context: ssl.SSLContext  # what the client trusts
    proxy_auth: str | None = None  # "user:token" for the firewall
    via_proxy: bool = True
    pid: int | None = None  # the proxy's process, for its CPU time


@dataclass
class Result:
    config: str
    mode: str
    requests: int
    seconds: float
    latencies: list[float] = field(repr=False)
    cpu_seconds: float | None = None  # the proxy's CPU time (all threads, child processes) during the load

    @property
    def cpu_us(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = None, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


class Connection:
    def __init__(self, target: Target, upstream_port: int):
        self.target = target
        self.authority = f"localhost:{upstream_port}"
        self.request = (
            f"GET /v1/models HTTP/1.1\r\nHost: {self.authority}\r\naccept: application/json\r\n"
            "user-agent: bench/1\r\n\r\n"
        ).encode()

    async def open(self) -> None:
        t = self.target
        if not t.via_proxy:
            self.reader, self.writer = await asyncio.open_connection(
                t.host, t.port, ssl=t.context, server_hostname="localhost"
            )
            return
        self.reader, self.writer = await asyncio.open_connection(t.host, t.port)
        auth = ""
        if t.proxy_auth:
            auth = f"Proxy-Authorization: Basic {base64.b64encode(t.proxy_auth.encode()).decode()}\r\n"
        self.writer.write(f"CONNECT {self.authority} HTTP/1.1\r\nHost: {self.authority}\r\n{auth}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"{t.name}: CONNECT answered {head[:40]!r}")
        await self.writer.start_tls(t.context, server_hostname="localhost")

    async def get(self) -> float:
        started = time.perf_counter()
        self.writer.write(self.request)
        status = await _read_response(self.reader)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"{self.target.name}: GET answered {status}")
        return elapsed

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ssl.SSLError, ConnectionError):
            pass


async def _load(target: Target, upstream_port: int, connections: int, per_connection: int, warmup: int) -> Result:
    conns = [Connection(target, upstream_port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in conns))
    for c in conns:  # the first requests open the proxy's upstream connection: not measured
        for _ in range(warmup):
            await c.get()
    latencies: list[float] = []

    async def worker(c: Connection) -> None:
        for _ in range(per_connection):
            latencies.append(await c.get())

    gc.collect()
    gc.disable()  # the client's own collections must not show up as proxy latency
    try:
        cpu_before = _cpu_seconds(target.pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(target.pid) - cpu_before if target.pid else None
    finally:
        gc.enable()
    await asyncio.gather(*(c.close() for c in conns))
    mode = "seq" if connections == 1 else "conc"
    return Result(target.name, mode, len(latencies), seconds, latencies, cpu)


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, all its threads, and of its live child processes
    (the firewall's audit writer), from Linux /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return children


# ---------------------------------------------------------------- set-up


def _spawn_port(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, int]:
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
    line = child.stdout.readline()
    if not line.strip().isdigit():
        child.kill()
        raise RuntimeError(f"{args[2:4]} did not start: {line!r}")
    return child, int(line)


def start_upstream(tmp: Path, script: str = __file__, *extra: str) -> tuple[Path, subprocess.Popen, int]:
    """A trustme CA (written to tmp/ca.pem) and a local HTTPS upstream with a certificate it issued
    for localhost: `script _upstream CERT EXTRA...`. Returns the CA file, the upstream's process
    and its port."""
    import trustme

    ca = trustme.CA()
    ca_file, cert_file = tmp / "ca.pem", tmp / "upstream.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    upstream, port = _spawn_port([PYTHON, script, "_upstream", str(cert_file), *extra])
    return ca_file, upstream, port


def generate_policy(upstream_port: int, hosts: int = 19, rules_per_host: int = 5) -> tuple[str, int]:
    """A policy of 100 rules: 19 decoy host blocks of 5 rules, and the bench's own block whose
    allow is its last rule (so every rule of that block is tried), with a credential and a limit."""
    lines = [
        "credential bench {",
        '    secret "bench"',
        '    header Authorization = "Bearer {secret}"',
        "}",
        "",
    ]
    count = 0
    for h in range(hosts):
        lines.append(f"host api{h}.example.com {{")
        for r in range(rules_per_host):
            verb = ("allow GET", "block POST", "allow POST", "block DELETE", "allow PUT")[r % 5]
            lines.append(f"    {verb} /v{r}/svc{h}/**")
            count += 1
        lines += ["}", ""]
    lines += [
        f"host localhost:{upstream_port} {{",
        "    inject bench",
        "    limit 1000000 per day per agent",
        "    block /v1/files/**, /v1/images/**",
        '    block POST /v1/chat/completions when json.model not in ["gpt-4o-mini", "gpt-4.1-mini"]',
        '    approve POST /v1/fine_tuning/** reason "costs money"',
        '    allow GET /v1/responses when header.Upgrade == "websocket"',
        "    allow GET /v1/models, /v1/models/*",
        "}",
    ]
    count += 5
    return "\n".join(lines) + "\n", count


class Firewall:
    def __init__(self, home: Path):
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
        self.env["FIREWALL_HOME"] = str(home)

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [PYTHON, "-m", "firewall", *args], input=input, capture_output=True, text=True, env=self.env, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"firewall {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result


def _time_command(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return elapsed


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seq-requests", type=int, default=1500, help="requests on the one tunnel, per round")
    parser.add_argument("--conc-requests", type=int, default=250, help="requests per tunnel (x16), per round")
    parser.add_argument("--run-repeats", type=int, default=5, help="timings of `firewall run -- true` per case")
    parser.add_argument(
        "--only",
        choices=["direct", "bare", "lean", "firewall"],
        action="append",
        help="measure only these configurations (default: direct, bare, firewall); `lean` is bare "
        "mitmproxy with the firewall's own set of mitmproxy addons, for diagnosis",
    )
    parser.add_argument("--keep", action="store_true", help="leave the temporary folder (printed) in place")
    args = parser.parse_args()
    configs = args.only or ["direct", "bare", "firewall"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (proxies, temp folder) when stopped

    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-"))
    children: list[subprocess.Popen] = []
    fw = Firewall(tmp / "home")
    try:
        ca_file, upstream, upstream_port = start_upstream(tmp)
        children.append(upstream)

        direct_ctx = ssl.create_default_context(cafile=str(ca_file))
        targets: dict[str, Target] = {
            "direct": Target("direct", "127.0.0.1", upstream_port, direct_ctx, via_proxy=False),
        }

        # bare mitmproxy: same options, its own confdir (CA), trusting certifi's roots plus the test CA
        import certifi

        bundle = tmp / "upstream-trust.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca_file.read_bytes())
        for name in ("bare", "lean"):
            if name not in configs:
                continue
            child, port = _spawn_port([PYTHON, __file__, f"_{name}", str(tmp / f"{name}-ca"), str(bundle)])
            children.append(child)
            context = ssl.create_default_context(cafile=str(tmp / f"{name}-ca" / "mitmproxy-ca-cert.pem"))
            targets[name] = Target(name, "127.0.0.1", port, context, pid=child.pid)

        # the firewall: init, a secret, a 100-rule policy, `firewall run -- true` cold, then the shared proxy
        fw.run("init")
        fw.run("secrets", "add", "bench", "--provider", "generic", "--stdin", input=SECRET_VALUE + "\n")
        policy_text, rules = generate_policy(upstream_port)
        (tmp / "bench.policy").write_text(policy_text)
        fw.run("policy", "apply", str(tmp / "bench.policy"))
        run_true = [PYTHON, "-m", "firewall", "run", "--", "true"]
        first = _time_command(run_true, fw.env)  # the first proxy start in a state folder creates the CA
        cold = [_time_command(run_true, fw.env) for _ in range(args.run_repeats)]
        fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file))
        status = json.loads(fw.run("proxy", "status", "--json").stdout)
        warm = [_time_command(run_true, fw.env) for _ in range(args.run_repeats)]
        interpreter = [_time_command([PYTHON, "-c", "pass"], fw.env) for _ in range(args.run_repeats)]
        if "firewall" in configs:
            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.close()
            fw_ctx = ssl.create_default_context(cafile=str(agent_ca_path(home)))
            targets["firewall"] = Target(
                "firewall", "127.0.0.1", status["port"], fw_ctx, f"bench:{token}", pid=status["pid"]
            )

        modes = [("seq", 1, args.seq_requests), ("conc", CONCURRENCY, args.conc_requests)]
        results: list[Result] = []
        order = [name for name in ("direct", "bare", "lean", "firewall") if name in configs]
        print(
            f"bench: {args.rounds} rounds; seq 1x{args.seq_requests}, conc {CONCURRENCY}x{args.conc_requests} "
            f"requests; policy of {rules} rules; {os.cpu_count()} cores; load average "
            f"{os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        for round_no in range(args.rounds):
            rotated = order[round_no % len(order) :] + order[: round_no % len(order)]
            for mode, conns, per in modes:
                for name in rotated:
                    result = asyncio.run(_load(targets[name], upstream_port, conns, per, warmup=3))
                    results.append(result)
                    cpu = f"  proxy CPU {result.cpu_us:5.0f} us/req" if result.cpu_us is not None else ""
                    print(
                        f"  round {round_no + 1} {mode:4} {name:8} {result.rps:7.0f} req/s  "
                        f"p50 {result.pct(0.5):6.2f} ms  p99 {result.pct(0.99):6.2f} ms{cpu}",
                        flush=True,
                    )

        load_end = os.getloadavg()[0]
        if "firewall" in configs:
            fw.run("proxy", "stop")
            home = open_home(fw.home)
            db = open_database(home.database)
            rows = db.execute("SELECT count(*) FROM audit WHERE agent = 'bench'").fetchone()[0]
            db.close()
            expected = sum(
                r.requests + CONCURRENCY * 3 * (r.mode == "conc") + 3 * (r.mode == "seq")
                for r in results
                if r.config == "firewall"
            )
            print(f"audit rows written for the bench agent: {rows} (requests sent: {expected})")
        _report(results, order, first, cold, warm, interpreter, load_end)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if fw.home.exists():
            subprocess.run([PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _report(results: list[Result], order: list[str], first, cold, warm, interpreter, load_end: float) -> None:
    med = statistics.median
    table: dict[tuple[str, str], dict[str, float]] = {}
    print()
    print(f"{'mode':5} {'config':9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}   (median over rounds)")
    for mode in ("seq", "conc"):
        for name in order:
            runs = [r for r in results if r.config == name and r.mode == mode]
            row = {
                "rps": med(r.rps for r in runs),
                "p50": med(r.pct(0.5) for r in runs),
                "p99": med(r.pct(0.99) for r in runs),
            }
            cpu = [r.cpu_us for r in runs if r.cpu_us is not None]
            row["cpu"] = med(cpu) if cpu else None
            table[(mode, name)] = row
            cpu_text = f"{row['cpu']:11.0f}" if cpu else f"{'-':>11}"
            print(f"{mode:5} {name:9} {row['rps']:8.0f} {row['p50']:8.2f} {row['p99']:8.2f} {cpu_text}")
    verdicts = []
    if ("seq", "bare") in table and ("seq", "firewall") in table:
        print()
        print("firewall / bare mitmproxy:")
        for mode in ("seq", "conc"):
            fw, bare = table[(mode, "firewall")], table[(mode, "bare")]
            ratio_rps, ratio_p50 = fw["rps"] / bare["rps"], fw["p50"] / bare["p50"]
            print(
                f"  {mode:5} throughput {ratio_rps:5.2f}x   p50 {ratio_p50:5.2f}x   p99 {fw['p99'] / bare['p99']:5.2f}x"
                f"   proxy CPU per request {fw['cpu'] / bare['cpu']:5.2f}x"
            )
            verdicts.append(
                (
                    f"{mode} throughput >= {TARGETS['throughput_ratio']:.2f}x bare",
                    ratio_rps >= TARGETS["throughput_ratio"],
                )
            )
            verdicts.append((f"{mode} p50 <= {TARGETS['p50_ratio']:.2f}x bare", ratio_p50 <= TARGETS["p50_ratio"]))
        p99 = table[("conc", "firewall")]["p99"]
        verdicts.append((f"conc p99 {p99:.1f} ms < {TARGETS['conc_p99_ms']:.0f} ms", p99 < TARGETS["conc_p99_ms"]))
    print()
    print(
        f"`firewall run -- true`, median of {len(cold)}: no proxy running {med(cold):.3f} s "
        f"(min {min(cold):.3f}), proxy running {med(warm):.3f} s (min {min(warm):.3f}); "
        f"`python -c pass` {med(interpreter):.3f} s; the first run in a new state folder (creates the CA) "
        f"{first:.3f} s"
    )
    verdicts.append(
        (
            f"run -- true without a proxy {med(cold):.2f} s <= {TARGETS['run_cold_s']:.1f} s",
            med(cold) <= TARGETS["run_cold_s"],
        )
    )
    print(f"load average at the end: {load_end:.2f}")
    print()
    for text, ok in verdicts:
        print(f"  [{'met' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        _serve_upstream(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] in ("_bare", "_lean"):
        _serve_bare(sys.argv[2], sys.argv[3], lean=sys.argv[1] == "_lean")
    else:
        sys.exit(main())
