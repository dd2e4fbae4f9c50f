"""Runs inside `firewall run` (python -m firewall.doctor.probe_agent [--go PROBE] [--only NAME ...]):
each runtime found GETs the reserved probe URL as it would any URL, with nothing set up by hand;
prints one JSON list. --go names the Go probe binary (go_probe.py builds it outside the sandbox);
--only keeps the named probes.

The proxy answers the probe itself (proxy/addons/probe.py), so an answer means the runtime's
traffic went through the proxy and it trusted the firewall's CA. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firewall.doctor import codex_probe

PROBE_URL = "https://probe.firewall.invalid/doctor"
TIMEOUT = 20

PYTHON_PROBE = """
import sys
lib, url = sys.argv[1], sys.argv[2]
if lib == "urllib":
    import urllib.request
    body = urllib.request.urlopen(url, timeout=15).read().decode()
elif lib == "requests":
    import requests
    body = requests.get(url, timeout=15).text
elif lib == "httpx":
    import httpx
    body = httpx.get(url, timeout=15).text
elif lib == "aiohttp":
    import asyncio, aiohttp
    async def get():
        async with aiohttp.ClientSession(trust_env=True) as session:
            async with session.get(url) as response:
                return await response.text()
    body = asyncio.run(get())
elif lib == "certifi":
    import certifi, ssl, urllib.request
    context = ssl.create_default_context(cafile=certifi.where())
    body = urllib.request.urlopen(url, timeout=15, context=context).read().decode()
print(body)
"""
PYTHON_LIBS = ("urllib", "requests", "httpx", "aiohttp", "certifi")
NODE_PROBE = """
const [client, url] = process.argv.slice(1);
const done = (text) => { console.log(text); };
const failed = (error) => { console.error(String(error.cause || error)); process.exit(1); };
if (client === "fetch") {
  fetch(url, { signal: AbortSignal.timeout(15000) }).then((r) => r.text()).then(done, failed);
} else {
  require("https").get(url, (r) => { let b = ""; r.on("data", (c) => (b += c)); r.on("end", () => done(b)); })
    .on("error", failed);
}
"""


def uv_program() -> str | None:
    """uv on PATH, or next to this Python (a venv that installed uv from PyPI)."""
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() else None)


def probes(go_probe: str | None = None) -> list[tuple[str, str | None, list[str]]]:
    """(name, the program it needs, argv) for every probe."""
    found = []
    for lib in PYTHON_LIBS:
        found.append((f"python {lib}", "python3", ["python3", "-c", PYTHON_PROBE, lib, f"{PROBE_URL}/python-{lib}"]))
    for client in ("fetch", "https"):
        found.append((f"node {client}", "node", ["node", "-e", NODE_PROBE, client, f"{PROBE_URL}/node-{client}"]))
    found += [
        ("curl", "curl", ["curl", "-sS", "--max-time", str(TIMEOUT), f"{PROBE_URL}/curl"]),
        ("wget", "wget", ["wget", "-nv", "-O", "-", "--tries=1", f"--timeout={TIMEOUT}", f"{PROBE_URL}/wget"]),
        ("git", "git", ["git", "ls-remote", f"{PROBE_URL}/git/probe.git"]),
        (
            "pip",
            "python3",
            [
                "python3",
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "--retries",
                "0",
                "-d",
                "/nonexistent-doctor",
                "--index-url",
                f"{PROBE_URL}/pip/simple/",
                "fwprobe",
            ],
        ),
        # uv's resolver fetches the project page through its own HTTP client (reqwest, rustls),
        # with its proxy and CA settings; --dry-run --target: nothing is installed anywhere.
        (
            "uv",
            uv_program(),
            [
                *(uv_program() or "uv", "pip", "install", "--dry-run", "--no-cache", "--no-config"),
                *("--python", sys.executable, "--target", "/nonexistent-doctor"),
                *("--index-url", f"{PROBE_URL}/uv/simple/", "fwprobe"),
            ],
        ),
        ("go", go_probe, [go_probe or "go", f"{PROBE_URL}/go"]),
        # `codex exec` with a provider on the probe name (codex_probe.py): run by run_probe
        ("codex", "codex", ["codex"]),
    ]
    return found


def run_probe(name: str, needs: str | None, argv: list[str]) -> dict:
    if needs is None and name in ("uv", "go"):
        return {"name": name, "result": "missing", "output": f"{name} not found"}
    if needs is not None and shutil.which(needs) is None:
        return {"name": name, "result": "missing", "output": f"{needs} not found"}
    if name == "codex":
        return codex_probe.run(argv[0], PROBE_URL)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        return {"name": name, "result": "timeout", "output": f"no answer within {TIMEOUT + 5} s"}
    output = (done.stdout + "\n" + done.stderr).strip()
    return {"name": name, "result": "exit", "code": done.returncode, "output": output[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="probe_agent")
    parser.add_argument("--go", help="the Go probe binary")
    parser.add_argument("--only", nargs="+", help="run only these probes")
    args = parser.parse_args()
    chosen = [probe for probe in probes(args.go) if not args.only or probe[0] in args.only]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda probe: run_probe(*probe), chosen))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
