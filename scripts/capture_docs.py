"""Regenerate the text captures in the docs from the real commands: the demo's output (README.md),
its audit table (docs/audit.md), the approval prompt's screen and `firewall run`'s waiting hint at
80 columns (docs/approvals.md), and `firewall --help` at 80 columns (docs/getting-started.md).

    .venv/bin/python scripts/capture_docs.py          # rewrite the captures in place
    .venv/bin/python scripts/capture_docs.py --check  # exit 1 if a capture's lines are stale

Each capture sits between `<!-- capture: NAME -->` and `<!-- /capture: NAME -->`. Ports, ids,
times and the user's name change from run to run; tests/e2e/test_demo.py checks the captured
lines against a fresh demo with those parts normalised (`normalise`).
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = "100"  # the terminal width the captured tables are fitted to
DECISION_WORDS = ("allow", "block", "approve", "limit", "error", "approval_denied", "approval_expired")


def demo_env() -> dict[str, str]:
    """A clean environment for the demo: no state folder or proxy of the caller's, no colour, 100 columns."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FIREWALL_") and "proxy" not in k.lower() and k not in ("NO_COLOR", "FORCE_COLOR")
    }
    env["COLUMNS"] = WIDTH
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = ".venv/bin/python"  # how the captures show the interpreter the demo runs the agent with


def run_demo() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "firewall", "demo"], env=demo_env(), capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise SystemExit(f"firewall demo exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout.replace(sys.executable, PYTHON)


def audit_table(demo: str) -> str:
    """The demo's `firewall audit` output: the lines after `$ firewall audit` up to the next command."""
    lines = demo.splitlines()
    start = lines.index("$ firewall audit") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("$ "))
    return "\n".join(lines[start:end]).rstrip() + "\n"


def _held_fine_tuning(rule: str):
    """The demo's held fine-tuning request, as the rule at `rule` holds it."""
    from firewall.approvals.records import HeldRequest

    return HeldRequest(
        request_id="req_demo",
        agent="demo-agent",
        method="POST",
        url="https://api.openai.com/v1/fine_tuning/jobs",
        rule=rule,
        rule_text='approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token"',
        reason="fine-tuning is billed per token",
        preview='{"model": "gpt-4o-mini", "training_file": "file-abc"} (53 bytes)',
        body_size=53,
        fingerprint="0" * 64,
        policy_sha256="0" * 64,
        timeout=300.0,
    )


def prompt_screen() -> str:
    """The prompt's screen for a held request like the demo's, drawn by the real prompt code at 80 columns."""
    from firewall.approvals import store
    from firewall.approvals.prompt import screen
    from firewall.state.db import open_database

    now = time.time()
    with tempfile.TemporaryDirectory() as folder:
        db = open_database(Path(folder) / "firewall.db")
        try:
            row = store.record_pending(db, _held_fine_tuning("openai.policy:23"), now, os.getpid())
            return screen([row], now, 600.0, [], 80, adds_rule=True)
        finally:
            db.conn.close()


RULE_POLICY = """\
host api.openai.com {
    inject openai
    allow GET /v1/models
    approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token"
    allow POST /v1/chat/completions
}

credential openai {
    secret "openai"
    header Authorization = "Bearer {secret}"
}

test "fine-tuning waits for a person" {
    expect approve POST https://api.openai.com/v1/fine_tuning/jobs
}
"""


def rule_screen() -> str:
    """What the prompt's `s` shows before it adds a rule (the diff and the question), at 80 columns."""
    from firewall.approvals import store
    from firewall.approvals.prompt import confirm_screen
    from firewall.approvals.rule_change import plan
    from firewall.policy.loader import load_policy
    from firewall.state import policy_store
    from firewall.state.db import open_database

    now = time.time()
    with tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "openai.policy"
        policy.write_text(RULE_POLICY, encoding="utf-8")
        db = open_database(Path(folder) / "firewall.db")
        try:
            policy_store.store_version(
                db, load_policy([policy]).policy, [(str(policy), RULE_POLICY)], origins=[str(policy)]
            )
            row = store.record_pending(db, _held_fine_tuning("openai.policy:4"), now, os.getpid())
            return confirm_screen(plan(db, row, "alice via prompt on pts/3"), now, [], 80)
        finally:
            db.conn.close()


HELP_WIDTH = "80"


def help_text() -> str:
    """`firewall --help` as an 80-column terminal shows it, without colour."""
    env = {**demo_env(), "COLUMNS": HELP_WIDTH, "NO_COLOR": "1", "TERM": "xterm"}
    result = subprocess.run(
        [sys.executable, "-m", "firewall", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise SystemExit(f"firewall --help exited {result.returncode}:\n{result.stderr}")
    # Typer names the program as it was started; people type `firewall`. Rich pads lines to the width.
    text = result.stdout.replace("python -m firewall", "firewall")
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n") + "\n"


def hint_text() -> str:
    """`firewall run`'s line for a held request with a long URL, at 80 columns (firewall/run/waiting_hint.py)."""
    from firewall.approvals.records import PENDING, Approval
    from firewall.run.waiting_hint import hint_lines

    row = Approval(
        id="apr_4026630df27ca7f8",
        request_id="req_demo",
        created=0.0,
        expires=300.0,
        timeout=300.0,
        state=PENDING,
        agent="ci",
        method="POST",
        url="https://inference.eu-west-1.ml-platform.example.com/v1/projects/forecasting/fine_tuning/jobs",
        rule="openai.policy:23",
        rule_text="approve POST /v1/fine_tuning/**",
        reason=None,
        preview="",
        body_size=0,
        fingerprint="0" * 64,
        policy_sha256="0" * 64,
        proxy_pid=0,
        held=1,
        decided_at=None,
        decided_by=None,
        detail=None,
        grant_id=None,
        used_at=None,
        used_by_request=None,
    )
    return "\n".join(hint_lines(row, int(HELP_WIDTH))) + "\n"


def normalise(line: str) -> str:
    """A captured or fresh line without what changes between runs; table rows reduced to seq and decision."""
    line = line.replace(sys.executable, PYTHON)
    line = re.sub(r"\S*/firewall-demo-[^/\s]+", "TMP", line)
    line = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?Z?", "TIME", line)
    line = re.sub(r"localhost:\d*", "localhost:PORT", line)
    line = re.sub(r"\b(apr|grt)_[0-9a-f]{16}\b", r"\1_ID", line)
    line = re.sub(r"\b[0-9a-f]{8,64}\b", "HASH", line)
    line = re.sub(r"\d+(?:\.\d+)?(?:s|ms)\b", "N", line)
    line = re.sub(rf"\b{re.escape(getpass.getuser())}\b", "USER", line)
    words = line.split()
    if len(words) > 2 and words[0].isdigit() and words[1] == "demo-agent":  # a row of the audit table
        return " ".join([words[0], *(w for w in words if w in DECISION_WORDS)])
    return " ".join(words)


def block(name: str, text: str) -> str:
    return f"<!-- capture: {name} -->\n```text\n{text.rstrip()}\n```\n<!-- /capture: {name} -->"


FILES = {
    "demo": ROOT / "README.md",
    "audit": ROOT / "docs" / "audit.md",
    "prompt": ROOT / "docs" / "approvals.md",
    "prompt-rule": ROOT / "docs" / "approvals.md",
    "hint": ROOT / "docs" / "approvals.md",
    "help": ROOT / "docs" / "getting-started.md",
}


def captured(name: str) -> str:
    """The text of capture `name` as the docs hold it now."""
    found = re.search(
        rf"<!-- capture: {name} -->\n```text\n(.*?)```\n<!-- /capture: {name} -->", _read(name), re.DOTALL
    )
    if found is None:
        raise SystemExit(f"{FILES[name]}: no capture named {name!r}")
    return found.group(1)


# Captures that do not change from run to run: a line missing from them is stale too (a new command).
WHOLE = ("help", "hint")


def stale_lines(name: str, fresh: str) -> list[str]:
    """The lines of capture `name` that `fresh` (the command's output now) no longer has; for a
    capture in WHOLE also the fresh lines it lacks, marked `(missing)`."""
    now = {normalise(line) for line in fresh.splitlines()}
    kept = captured(name).splitlines()
    stale = [line for line in kept if normalise(line) not in now]
    if name in WHOLE:
        shown = {normalise(line) for line in kept}
        stale += [f"(missing) {line}" for line in fresh.splitlines() if normalise(line) not in shown]
    return stale


def _read(name: str) -> str:
    return FILES[name].read_text(encoding="utf-8")


def main(argv: list[str]) -> int:
    demo = run_demo()
    fresh = {
        "demo": demo,
        "audit": audit_table(demo),
        "prompt": prompt_screen(),
        "prompt-rule": rule_screen(),
        "hint": hint_text(),
        "help": help_text(),
    }
    if "--check" in argv:
        stale = [(name, line) for name, text in fresh.items() for line in stale_lines(name, text)]
        for name, line in stale:
            print(f"{FILES[name].relative_to(ROOT)}: stale line in capture {name!r}: {line}")
        return 1 if stale else 0
    for name, text in fresh.items():
        content = _read(name)
        if f"<!-- capture: {name} -->" not in content:
            raise SystemExit(f"{FILES[name]}: add the markers <!-- capture: {name} --> ... <!-- /capture: {name} -->")
        start, end = content.index(f"<!-- capture: {name} -->"), content.index(f"<!-- /capture: {name} -->")
        end += len(f"<!-- /capture: {name} -->")
        FILES[name].write_text(content[:start] + block(name, text) + content[end:], encoding="utf-8")
        print(f"{FILES[name].relative_to(ROOT)}: capture {name!r} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
