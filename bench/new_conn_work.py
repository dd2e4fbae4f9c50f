"""The work one new connection costs the proxy, measured as work (not time): issue 18.

    .venv/bin/python bench/new_conn_work.py [--config firewall|bare|lean] [--tool cpu|cprofile|callgrind]
                                            [-n 20] [--warm 5] [--out DIR]

One local HTTPS upstream (trustme) and one proxy process; the client opens a new connection per
request, one after another (TCP, CONNECT, the agent's TLS handshake with the proxy, the
proxy's with the upstream, one GET, close), as bench/scorecard.py's `new` figure does. The
first `--warm` connections make the leaf certificate, the upstream TLS context and the first
upstream session; the measured windows come after them:

  cpu        the proxy process's own CPU time (/proc: user + system) and, apart, its audit
             writer child's, for N and for 2N connections;
  cprofile   the proxy runs under cProfile, switched on for the N connections only (SIGUSR1 on,
             SIGUSR2 off and dump to OUT/NAME.prof); print it with `python -m pstats`;
  callgrind  the proxy runs under `valgrind --tool=callgrind` (instructions executed, exactly;
             load on the machine does not change them): counters zeroed before N connections
             and dumped after, then the same for 2N, and for an idle window as long as the 2N
             one (what timers cost while nothing happens). (2N - N) / N is the work of one new
             connection, C and Python together; `callgrind_annotate OUT/NAME.callgrind.*`
             names the C functions.

`--config`: `firewall` is `python -m firewall.proxy` with bench/scorecard.py's state folder
(100-rule policy, a credential injected, a limit, the audit log); `bare` is mitmproxy's
DumpMaster with the same options (bench/proxy_overhead.py's `_bare`); `lean` is mitmproxy with
the firewall's seven mitmproxy addons and its kind of CA (ECDSA), none of its addons; but mitmproxy's own
`next_layer` chooses the layer inside a tunnel (the firewall's `Tunnels` does that otherwise:
proxy_overhead's `_lean` has nobody choosing it, and its tunnels hang).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import proxy_overhead as po  # noqa: E402
from bench.scorecard import prepare_home  # noqa: E402

VALGRIND = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--collect-jumps=no"]


def _own_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _connections(target: po.Target, upstream_port: int, count: int) -> None:
    for _ in range(count):
        conn = po.Connection(target, upstream_port)
        await conn.open()
        await conn.get()
        await conn.close()


def _run(target: po.Target, upstream_port: int, count: int) -> float:
    started = time.perf_counter()
    asyncio.run(_connections(target, upstream_port, count))
    return time.perf_counter() - started


def _callgrind(pid: int, action: str) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True, timeout=600)


def _per_connection(name: str, dumps: Path, n: int, spans: list[float]) -> None:
    """Instructions per new connection from the three dumps (N, 2N, idle), the idle rate (timers:
    the firewall's pollers) taken off each window in proportion to its length."""
    totals = []
    for number in (1, 2, 3):
        text = Path(f"{dumps}.{number}").read_text()
        totals.append(int(next(line for line in text.splitlines() if line.startswith("summary:")).split()[1]))
    idle_rate = totals[2] / spans[2]
    per = ((totals[1] - idle_rate * spans[1]) - (totals[0] - idle_rate * spans[0])) / n
    print(
        f"{name}: instructions: N {totals[0]:,}, 2N {totals[1]:,}, idle {totals[2]:,} ({idle_rate:,.0f}/s); "
        f"(2N - N) / N = {(totals[1] - totals[0]) / n / 1e6:.2f} M; less the idle rate {per / 1e6:.2f} M "
        "instructions per new connection"
    )


def _wait_for_port(state_file: Path, child: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the proxy exited {child.returncode} before it listened")
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        if state.get("port"):
            return state
        time.sleep(0.2)
    raise RuntimeError(f"the proxy did not listen within {timeout:.0f} s")


def _serve(config: str, confdir: str, bundle: str) -> None:
    """`_bare` as bench/proxy_overhead.py serves it; `_lean` with mitmproxy's own next_layer."""
    if config == "_bare":
        po._serve_bare(confdir, bundle)
        return
    from firewall.proxy.lean import skip_default_addons

    skip_default_addons()
    from mitmproxy.addons import next_layer

    from firewall.proxy import master

    master.ProxyNextLayer = next_layer.NextLayer  # this process only: a bench, not the firewall
    po._serve_bare(confdir, bundle, lean=True)


def _profiled_main() -> None:
    """`new_conn_work.py _profiled OUT ARGS...`: `python -m firewall.proxy ARGS` or `_bare`/`_lean`
    under cProfile, switched on by SIGUSR1 and dumped to OUT by SIGUSR2."""
    import cProfile

    out, rest = sys.argv[2], sys.argv[3:]
    profile = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())

    def dump(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)
        Path(out + ".done").write_text("")

    signal.signal(signal.SIGUSR2, dump)
    if rest[0] in ("_bare", "_lean"):
        _serve(*rest[:3])
        return
    sys.argv = ["firewall.proxy", *rest]
    from firewall.proxy.__main__ import main

    main()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("firewall", "bare", "lean"), default="firewall")
    parser.add_argument("--tool", choices=("cpu", "cprofile", "callgrind"), default="cpu")
    parser.add_argument("-n", type=int, default=20, help="new connections in the first window (the second has 2N)")
    parser.add_argument("--warm", type=int, default=5, help="new connections before any window")
    parser.add_argument("--out", type=Path, default=Path("/tmp/new-conn-work"), help="where profiles go")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{args.config}"

    tmp = Path(tempfile.mkdtemp(prefix="fw-newconn-"))
    children: list[subprocess.Popen] = []
    fw = None
    try:
        ca_file, upstream, upstream_port = po.start_upstream(tmp)
        children.append(upstream)

        if args.config == "firewall":
            fw = prepare_home(tmp / "home", upstream_port)
            state_file = tmp / "proxy.json"
            command = ["--port", "0", "--state-file", str(state_file), "--upstream-ca", str(ca_file)]
            command += ["--limits-timeout", "30"]  # under valgrind a request is ~50x slower
            env = dict(fw.env, PYTHONPATH=str(ROOT))
        else:
            import certifi

            bundle = tmp / "upstream-trust.pem"
            bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca_file.read_bytes())
            command = [f"_{args.config}", str(tmp / "bare-ca"), str(bundle)]
            if args.config == "lean":  # the firewall's kind of CA (ECDSA P-256): the same handshake work
                from firewall.proxy.ca import create_ca

                (tmp / "bare-ca").mkdir(mode=0o700)
                create_ca(tmp / "bare-ca")
            env = dict(os.environ, PYTHONPATH=str(ROOT))

        if args.tool == "cprofile":
            prof = args.out / f"{name}.prof"
            prefix = [po.PYTHON, __file__, "_profiled", str(prof)]
        elif args.tool == "callgrind":
            prefix = [*VALGRIND, f"--callgrind-out-file={args.out / name}.callgrind", po.PYTHON]
            prefix += ["-m", "firewall.proxy"] if args.config == "firewall" else [__file__]
        else:
            prefix = [po.PYTHON, "-m", "firewall.proxy"] if args.config == "firewall" else [po.PYTHON, __file__]
        slow = 600.0 if args.tool == "callgrind" else 60.0
        if args.config == "firewall":
            child = subprocess.Popen([*prefix, *command], env=env, stdin=subprocess.DEVNULL)
            children.append(child)
            state = _wait_for_port(state_file, child, slow)
            port, pid = state["port"], state["pid"]
            from firewall.proxy.ca import agent_ca_path
            from firewall.state import agents
            from firewall.state.db import open_database
            from firewall.state.home import open_home

            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.close()
            context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
            target = po.Target(name, "127.0.0.1", port, context, f"bench:{token}", pid=pid)
        else:
            child = subprocess.Popen([*prefix, *command], env=env, stdout=subprocess.PIPE, text=True)
            children.append(child)
            line = child.stdout.readline()  # type: ignore[union-attr]
            port, pid = int(line), child.pid
            context = ssl.create_default_context(cafile=str(tmp / "bare-ca" / "mitmproxy-ca-cert.pem"))
            target = po.Target(name, "127.0.0.1", port, context, pid=pid)

        _run(target, upstream_port, args.warm)
        print(f"{name}: proxy pid {pid}, {args.warm} warm-up connections done; load {os.getloadavg()[0]:.2f}")
        if args.tool == "cprofile":
            os.kill(pid, signal.SIGUSR1)
            time.sleep(0.5)
            seconds = _run(target, upstream_port, args.n)
            os.kill(pid, signal.SIGUSR2)
            deadline = time.monotonic() + 60
            while not Path(str(prof) + ".done").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"{name}: {args.n} new connections in {seconds:.2f} s under cProfile; profile in {prof}")
        elif args.tool == "callgrind":
            spans = []
            for label, count in (("n", args.n), ("2n", 2 * args.n)):
                _callgrind(pid, "-z")
                spans.append(_run(target, upstream_port, count))
                _callgrind(pid, f"--dump={label}")
                print(f"{name}: {count} new connections in {spans[-1]:.1f} s under callgrind (dump {label})")
            _callgrind(pid, "-z")
            time.sleep(spans[-1])
            _callgrind(pid, "--dump=idle")
            spans.append(spans[-1])
            print(f"{name}: idle {spans[-1]:.1f} s (dump idle); dumps: {args.out / name}.callgrind.1-3")
            _per_connection(name, args.out / f"{name}.callgrind", args.n, spans)
        else:
            for count in (args.n, 2 * args.n):
                kids = po._children(pid)
                before = _own_cpu(pid), sum(_own_cpu(k) for k in kids)
                seconds = _run(target, upstream_port, count)
                after = _own_cpu(pid), sum(_own_cpu(k) for k in kids)
                proxy, child_cpu = ((after[i] - before[i]) / count * 1000 for i in (0, 1))
                print(
                    f"{name}: {count} new connections, {seconds / count * 1000:.2f} ms each (wall); CPU per "
                    f"connection: proxy {proxy:.2f} ms, its children {child_cpu:.2f} ms; load "
                    f"{os.getloadavg()[0]:.2f}"
                )
    finally:
        for child in reversed(children):
            child.send_signal(signal.SIGINT if child is not children[0] else signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_profiled":
        _profiled_main()
    elif len(sys.argv) > 1 and sys.argv[1] in ("_bare", "_lean"):
        _serve(*sys.argv[1:4])
    else:
        sys.exit(main())
