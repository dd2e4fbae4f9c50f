"""The demo itself: set up a temporary firewall, run an agent through it, show the log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from firewall.demo.approver import approving
from firewall.demo.certs import make_server_cert
from firewall.demo.standin import StandIn
from firewall.state.home import Home

DEMO_KEY = "sk-demo-REAL-KEY-kept-in-the-vault-0123456789"

POLICY = """\
# The demo's policy: cheap chat at a human pace; no images, no files, no strangers.
default block

credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    limit 3 per minute per agent POST /v1/chat/completions

    block /v1/files/**
    block POST /v1/images/** reason "images are expensive"
    approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token"
    block POST /v1/** when json.model not in ["gpt-4o-mini", "text-embedding-3-small"]
    allow POST /v1/chat/completions
    allow GET /v1/models
}}

test "the demo policy" {{
    expect allow POST https://localhost:{port}/v1/chat/completions json {{"model": "gpt-4o-mini"}}
    expect block POST https://localhost:{port}/v1/images/generations json {{"model": "gpt-4o-mini"}}
    expect approve POST https://localhost:{port}/v1/fine_tuning/jobs json {{"model": "gpt-4o-mini"}}
    expect limit POST https://localhost:{port}/v1/chat/completions json {{"model": "gpt-4o-mini"}} after 3 requests
}}
"""


# What to try next, said at the end: the README's "Using it", shortest path first.
NEXT_STEPS = (
    "firewall secrets add openai --provider openai   # your real key, to the vault",
    "firewall policy apply policies/openai.policy    # a ready policy, tests run",
    "firewall run --agent me -- python my_agent.py   # your agent, through it",
    "firewall approvals                              # answer held requests",
)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run_demo(keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="firewall-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "proxy" not in k.lower()}
    home = Home(work / "home")
    env["FIREWALL_HOME"] = str(home.root)

    def firewall(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        print(f"$ firewall {' '.join(args)}", flush=True)
        result = subprocess.run([sys.executable, "-m", "firewall", *args], env=env, input=input, text=True)
        if check and result.returncode != 0:
            raise SystemExit(f"demo step failed: firewall {' '.join(args)} exited {result.returncode}")
        return result

    ca, server_pem = make_server_cert(work)
    standin = StandIn(str(server_pem))
    try:
        _step(f"a local HTTPS stand-in for the OpenAI API listens on localhost:{standin.port}")
        policy = work / "openai-demo.policy"
        policy.write_text(POLICY.format(port=standin.port))
        _step("store the real key in the encrypted vault (from stdin, never from argv)")
        firewall("secrets", "add", "openai", "--provider", "openai", "--stdin", input=DEMO_KEY + "\n")
        _step("check and test the policy, then apply it")
        firewall("policy", "test", str(policy))
        firewall("policy", "apply", str(policy))
        _step("run the agent through the firewall")
        print(
            "(a request the policy holds waits for a person: `firewall approvals` asks in\n"
            " another terminal; here the demo answers with `firewall approvals approve ID`)",
            flush=True,
        )

        def approve(approval_id: str) -> None:
            print(f"demo: the proxy holds a request for approval ({approval_id}); approving it", flush=True)
            firewall("approvals", "approve", approval_id, check=False)

        with approving(home.database, approve):
            firewall(
                "run",
                "--agent",
                "demo-agent",
                "--upstream-ca",
                str(ca),
                "--",
                sys.executable,
                "-m",
                "firewall.demo.agent",
                f"https://localhost:{standin.port}",
            )
        _step("what the stand-in API received in the Authorization header")
        for value in sorted(set(standin.authorizations)):
            print(f"  {value[:22]}… (the vault's key, added by the proxy; the agent never had it)")
        _step("the audit log: every decision, and why")
        firewall("audit")
        firewall("audit", "verify")
    finally:
        standin.stop()
        if keep:
            print(f"\nstate folder kept: FIREWALL_HOME={home.root}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _step("try it with your own agent")
    for line in NEXT_STEPS:
        print(f"  {line}")
    return 0
