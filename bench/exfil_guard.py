"""Benchmark the exfiltration guard: the scanner on a 1 MiB body, and the proxy's throughput.

    .venv/bin/python bench/exfil_guard.py [--repeats 7] [--rounds 7] [--conc-requests 250]
                                          [--baseline-rev REV] [--only scanner|proxy]

1. scanner: `SecretIndex.find` (firewall/redaction) over a 1 MiB request body (JSON holding
   prose and a base64 file, no secret in it) with 100 vault values of 56 characters
   (`sk-proj-` and 48 random ones), CPU time, best and median of `--repeats`. Beside it, in
   the same run: a plain `in` search of the 100 raw values in the body (the baseline the
   ratio is taken against), the guard without fragments (every form of every whole value,
   what the guard did before fragments), the fragment scan alone, the same body carrying one
   16-character window at its end (the hit path), `carried_secrets` (firewall/proxy/exfil.py:
   the body's unpacking by content included), and building the index once.
2. proxy: `firewall proxy start` in temporary state folders with the 100-rule policy, the
   credential and the limit of bench/proxy_overhead.py (its client and upstream are reused):
   `values` has the 100 values in its vault beside the injected credential, `none` only the
   credential (the guard with nothing else to look for) and, with `--baseline-rev REV`, `base`
   is `values` run from `git archive REV` (the code before a change). Load: 16 kept-alive HTTPS
   tunnels, N GETs each, per round; configurations interleaved, the order rotating. The cost is
   judged on the median of the per-round ratios against `none` (and `base`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.proxy_overhead` importable
    sys.path.insert(0, str(ROOT))

from firewall.policy import Request
from firewall.proxy.exfil import carried_secrets
from firewall.redaction import SecretIndex
from firewall.redaction.fragments import FragmentIndex
from firewall.redaction.index import _views

VALUES = 100
BODY_BYTES = 1 << 20
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def vault_values(count: int = VALUES, seed: int = 7) -> dict[str, str]:
    rnd = random.Random(seed)
    return {f"key{i:03}": "sk-proj-" + "".join(rnd.choice(_ALPHABET) for _ in range(48)) for i in range(count)}


def request_body(size: int = BODY_BYTES, seed: int = 7) -> bytes:
    """About half prose, half a base64 file, in JSON: what an agent uploads."""
    rnd = random.Random(seed)
    words = "the of and a to in is you that it he was for on are as with his they I at be this have from".split()
    prose = " ".join(rnd.choice(words) for _ in range(size // 8))[: size // 2]
    blob = base64.b64encode(rnd.randbytes(size // 2)).decode()
    body = json.dumps({"model": "gpt-4o-mini", "text": prose, "file": blob}).encode()
    return body[: size - 2] + b'"}'


def _before(index: SecretIndex, *parts: bytes) -> tuple[str, ...]:
    """The guard as it was before fragments: one `in` per form of every value, in every view."""
    views = _views(b"\n".join(parts))
    lowered = views[-1].lower()
    found = set()
    for entry in index.forms:
        searched = (entry.raw, *entry.base64, entry.hex, entry.hex.upper())
        if any(form in view for view in views for form in searched) or entry.hex in lowered:
            found.add(entry.name)
    return tuple(sorted(found))


def _cpu(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) CPU seconds of `fn()`."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times), statistics.median(times)


def bench_scanner(repeats: int) -> None:
    values = vault_values()
    body = request_body()
    started = time.process_time()
    index = SecretIndex.build(values)
    build = time.process_time() - started
    whole_only = replace(index, fragments=FragmentIndex())
    raws = [v.encode() for v in values.values()]
    window = next(iter(values.values()))[20:36].encode()
    hit = body[:-40] + window + body[-24:]
    request = Request("POST", "https", "api.example.com", 443, "/v1/upload", headers=(("content-type", "json"),))
    assert index.find(body) == () and index.find(hit) == ("key000",)
    assert carried_secrets(index, request, gzip.compress(hit), None) == ("key000",)

    rows: list[tuple[str, tuple[float, float]]] = [
        ("plain `in` of the 100 raw values (baseline)", _cpu(lambda: any(r in body for r in raws), repeats)),
        ("the guard before fragments (an `in` per form, view)", _cpu(lambda: _before(index, body), repeats)),
        ("whole values only, in one pass (anchored.py)", _cpu(lambda: whole_only.find(body), repeats)),
        ("the guard: SecretIndex.find", _cpu(lambda: index.find(body), repeats)),
        ("  of which the fragment scan of the body as is", _cpu(lambda: index.fragments.find(body), repeats)),
        ("the guard, a 16-character window at the end", _cpu(lambda: index.find(hit), repeats)),
        (
            "carried_secrets (exfil.py: method, headers, body)",
            _cpu(lambda: carried_secrets(index, request, body, None), repeats),
        ),
    ]
    small = Request(
        "GET",
        "https",
        "localhost",
        4443,
        "/v1/models",
        headers=(("host", "localhost:4443"), ("accept", "application/json"), ("user-agent", "bench/1")),
        claimed=("localhost:4443",),
    )
    parts = (
        b"GET",
        b"localhost",
        b"/v1/models",
        b"host: localhost:4443\naccept: application/json\nuser-agent: bench/1",
    )
    per_small = [
        ("a small GET (3 headers), the guard before fragments", _per_call(lambda: _before(index, *parts))),
        ("a small GET (3 headers), carried_secrets now", _per_call(lambda: carried_secrets(index, small, b"", None))),
    ]
    text = len(index.fragments.text.get(16, {})), len(index.fragments.text.get(20, {}))
    print(
        f"scanner: {VALUES} vault values of 56 characters, a {len(body) / 2**20:.2f} MiB JSON body; "
        f"CPU time, best / median of {repeats}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  index built once per vault change: {build * 1000:.0f} ms ({text[0]} raw windows, {text[1]} base64)")
    baseline = rows[0][1][0]
    for name, (best, median) in rows:
        print(f"  {name:52} {best * 1000:8.1f} / {median * 1000:8.1f} ms   {best / baseline:6.1f}x the baseline")
    for name, seconds in per_small:
        print(f"  {name:52} {seconds * 1e6:8.1f} µs CPU per request (median of 2,000)")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")


def _per_call(fn: Callable[[], object], calls: int = 2000) -> float:
    times = []
    for _ in range(calls):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return statistics.median(times)


def bench_proxy(rounds: int, per_connection: int, baseline_rev: str | None, warmup: int = 3) -> None:
    import trustme

    from bench import proxy_overhead as po
    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home
    from firewall.vault.store import Vault

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-exfil-"))
    children: list[subprocess.Popen] = []
    names = ["values", "none"] + (["base"] if baseline_rev else [])
    homes = {name: po.Firewall(tmp / name) for name in names}
    try:
        if baseline_rev:
            code = tmp / "base-code"
            code.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline_rev], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
            homes["base"].env["PYTHONPATH"] = str(code)
        for name in ("values", "none"):
            homes[name].env["PYTHONPATH"] = str(ROOT)
        ca = trustme.CA()
        ca_file, cert_file = tmp / "ca.pem", tmp / "upstream.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
        upstream, upstream_port = po._spawn_port([po.PYTHON, po.__file__, "_upstream", str(cert_file)])
        children.append(upstream)
        policy_text, _ = po.generate_policy(upstream_port)
        (tmp / "bench.policy").write_text(policy_text)
        targets: dict[str, po.Target] = {}
        for name, fw in homes.items():
            fw.run("init")
            fw.run("secrets", "add", "bench", "--provider", "generic", "--stdin", input=po.SECRET_VALUE + "\n")
            if name != "none":
                vault = Vault.open(open_home(fw.home))
                for key, value in vault_values().items():
                    vault.add(key, value, "generic")
            fw.run("policy", "apply", str(tmp / "bench.policy"))
            fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file))
            status = json.loads(fw.run("proxy", "status", "--json").stdout)
            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.conn.close()
            context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
            targets[name] = po.Target(name, "127.0.0.1", status["port"], context, f"bench:{token}", pid=status["pid"])
        print(
            f"proxy: {rounds} rounds of {po.CONCURRENCY}x{per_connection} GETs per configuration "
            f"({', '.join(names)}); {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        results: dict[str, list] = {name: [] for name in names}
        for round_no in range(rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                result = asyncio.run(po._load(targets[name], upstream_port, po.CONCURRENCY, per_connection, warmup))
                results[name].append(result)
                print(
                    f"  round {round_no + 1} {name:6} {result.rps:6.0f} req/s  p50 {result.pct(0.5):6.2f} ms"
                    f"  p99 {result.pct(0.99):6.2f} ms  proxy CPU {result.cpu_us:5.0f} us/req",
                    flush=True,
                )
        print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
        _report_proxy(results, names)
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=10)
        for fw in homes.values():
            if fw.home.exists():
                subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _report_proxy(results: dict[str, list], names: list[str]) -> None:
    med = statistics.median
    print(f"{'config':7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>11}   (median over rounds)")
    for name in names:
        rs = results[name]
        print(
            f"{name:7} {med(r.rps for r in rs):7.0f} {med(r.pct(0.5) for r in rs):7.2f} "
            f"{med(r.pct(0.99) for r in rs):7.2f} {med(r.cpu_us for r in rs):11.0f}"
        )
    for other in names[1:]:
        paired = sorted(a.rps / b.rps for a, b in zip(results["values"], results[other], strict=True))
        print(
            f"throughput values/{other}, per round: median {med(paired):.3f}, range {paired[0]:.3f} to {paired[-1]:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The exfiltration guard's cost: the scanner, and the proxy.")
    parser.add_argument("--repeats", type=int, default=7, help="scanner: timed calls per measure")
    parser.add_argument("--rounds", type=int, default=7, help="proxy: rounds per configuration")
    parser.add_argument("--conc-requests", type=int, default=250, help="proxy: requests per tunnel (x16), per round")
    parser.add_argument("--baseline-rev", help="proxy: also run the code of this git revision, with the 100 values")
    parser.add_argument("--only", choices=["scanner", "proxy"], help="run one part only")
    args = parser.parse_args(argv)
    if args.only != "proxy":
        bench_scanner(args.repeats)
    if args.only != "scanner":
        print()
        bench_proxy(args.rounds, args.conc_requests, args.baseline_rev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
