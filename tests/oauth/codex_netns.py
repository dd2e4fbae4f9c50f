"""One `codex exec` turn with Codex's built-in ChatGPT provider, run inside a private namespace.

Started by tests/oauth/test_codex_chatgpt.py as root under `unshare -m -n`: a
mount and a network namespace of its own, so nothing here reaches the real
network or changes the machine's /etc/hosts. It

1. brings up loopback and bind-mounts a private /etc/hosts that maps
   chatgpt.com, ab.chatgpt.com and auth.openai.com to 127.0.0.1;
2. serves them from tests/oauth/chatgpt.py on 127.0.0.1:443, with a certificate
   for those names from a throwaway CA;
3. imports an expired ChatGPT login into a fresh state folder, then runs
   `firewall run --agent codex --policy POLICY --upstream-ca CA -- codex exec ...`
   (the proxy trusts the stand-in through --upstream-ca, as a user behind a
   TLS-inspecting gateway would; the names reach it through /etc/hosts, as any
   resolver would see them);
4. prints one JSON line: what Codex printed, how long it took, what reached the
   stand-in, the token endpoint's calls and the audit rows.

Usage: python -m tests.oauth.codex_netns '{"work": DIR, "codex": PATH, "policy": PATH,
       "outer_net": "net:[…]" (the caller's /proc/self/ns/net), "isolate": true, "websocket": true, "timeout": 90,
       "usage": [INPUT, OUTPUT, CACHED] (what each response reports), "shared": false, "runs": 1}'
With "shared", the policy is applied and run on the shared proxy (`firewall proxy start`), and the
report also holds `firewall budgets --json` as it was after the first turn. With "runs", `codex exec`
runs that many times, one after another (`runs` in the report; the other fields are the last one's).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import trustme

from tests.oauth.chatgpt import NAMES, ChatGPT
from tests.oauth.stand_ins import Tokens
from tests.support.fixtures import make_firewall
from tests.support.logins import login_json

PROMPT = "say hi"


def private_network(work: Path, outer: str) -> None:
    """Loopback up, and our names on it; refuses to run in the network namespace `outer` (the caller's)."""
    if os.readlink("/proc/self/ns/net") == outer:
        raise SystemExit("codex_netns: not in a private network namespace; run it under `unshare -m -n`")
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {name}\n" for name in NAMES))
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def run_codex(command: list[str], env: dict, timeout: float) -> tuple[int | None, str, str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds); the whole process group is stopped."""
    started = time.monotonic()
    child = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
        code: int | None = child.returncode
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            stdout, stderr = child.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            stdout, stderr = child.communicate()
        code = None
    return code, stdout, stderr, time.monotonic() - started


def counted_budgets(firewall) -> dict:
    """`firewall budgets --json` once it shows some use (the proxy publishes its counts every
    second, docs/budgets.md), or as it is after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        shown = json.loads(firewall.run("budgets", "--json").stdout or "{}")
        if any(b["use"] for b in shown.get("budgets", [])) or time.monotonic() > deadline:
            return shown
        time.sleep(0.2)


def main(config: dict) -> dict:
    work = Path(config["work"])
    private_network(work, config["outer_net"])
    ca = trustme.CA()
    ca_file, pem = work / "upstream-ca.pem", work / "chatgpt.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert(*NAMES).private_key_and_cert_chain_pem.write_to_path(str(pem))

    tokens = Tokens()
    usage = tuple(config.get("usage", (1, 1, 0)))
    stand_in = ChatGPT(str(pem), tokens, websocket=config.get("websocket", True), usage=usage)
    budgets: dict = {}
    try:
        firewall = make_firewall(work / "home")
        login = json.loads(login_json(expires_in=-30))  # expired: the proxy refreshes it first
        tokens.refresh = login["tokens"]["refresh_token"]
        auth = work / "auth.json"
        auth.write_text(json.dumps(login))
        firewall.run("secrets", "add", "codex", "--provider", "codex", "--file", str(auth), check=True)
        auth.unlink()

        user_codex = work / "user-codex"  # the user's own CODEX_HOME: no config, no login
        user_codex.mkdir()
        command = [sys.executable, "-m", "firewall", "run", "--agent", "codex"]
        if config.get("shared"):  # the policy applied, on the shared proxy, so `firewall budgets` can read it after
            firewall.run("policy", "apply", config["policy"], check=True)
            firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), check=True)
        else:
            command += ["--policy", config["policy"], "--upstream-ca", str(ca_file)]
        command += [] if config.get("isolate", True) else ["--no-isolate"]
        command += ["--", config["codex"], "exec", "--skip-git-repo-check", "--color", "never", PROMPT]
        rust_log = config.get("rust_log", "warn")
        env = {**firewall.env, "CODEX_HOME": str(user_codex), "HOME": str(work), "RUST_LOG": rust_log}
        runs = []
        try:
            for _ in range(config.get("runs", 1)):  # one after another, on the same proxy when shared
                code, stdout, stderr, seconds = run_codex(command, env, config.get("timeout", 90))
                runs.append({"returncode": code, "seconds": round(seconds, 2), "stderr": stderr[-3000:]})
                if config.get("shared") and not budgets:
                    budgets = counted_budgets(firewall)
        finally:
            if config.get("shared"):
                firewall.run("proxy", "stop")
        audit = firewall.run("audit", "--json", "--limit", "1000").stdout
    finally:
        stand_in.stop()
    return {
        "returncode": code,
        "seconds": round(seconds, 2),
        "stdout": stdout[-4000:],
        "stderr": stderr[-6000:],
        "login": {"access": login["tokens"]["access_token"], "refresh": login["tokens"]["refresh_token"]},
        "hits": [asdict(hit) for hit in stand_in.hits],
        "ws_messages": [m.get("type") for m in stand_in.ws_messages],
        "refreshes": stand_in.refreshes,
        "audit": json.loads(audit) if audit.strip() else [],
        "budgets": budgets,
        "runs": runs,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
