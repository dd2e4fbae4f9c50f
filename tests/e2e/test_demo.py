"""`firewall demo`, the README's first command: offline, non-interactive, and it shows what the
firewall is for: a key injected, requests allowed, blocked and limited, a held request approved
(by the demo itself, through the CLI, and said so), the audit log naming who approved, and what
to try next. The captures in the docs (scripts/capture_docs.py) still match a fresh run."""

from __future__ import annotations

import getpass
import importlib.util
import re
from pathlib import Path

import pytest

from firewall.demo.run import NEXT_STEPS

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("capture_docs", ROOT / "scripts" / "capture_docs.py")
capture_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(capture_docs)


@pytest.fixture(scope="module")
def demo() -> str:
    return capture_docs.run_demo()  # exits 0 or fails the test with the output


def test_the_demo_shows_an_approval_answered_through_the_cli(demo):
    held = re.search(r"demo: the proxy holds a request for approval \((apr_[0-9a-f]{16})\); approving it", demo)
    assert held, demo
    assert f"$ firewall approvals approve {held[1]}" in demo
    assert f"approved {held[1]}: POST https://localhost:" in demo
    fine_tuning = next(line for line in demo.splitlines() if "fine-tune (held)" in line)
    assert fine_tuning.endswith("-> 200")
    # what was allowed, blocked and limited is still shown
    assert re.search(r"agent: chat, a cheap model .* -> 200", demo)
    assert re.search(r"agent: generate an image .* -> 403 policy_blocked", demo)
    assert re.search(r"agent: once too often .* -> 429 rate_limited", demo)


def test_the_audit_table_names_who_approved(demo):
    table = capture_docs.audit_table(demo).splitlines()
    approved = [line for line in table if " approve " in f" {line} "]
    assert len(approved) == 1 and f"  {getpass.getuser()} via cli  " in approved[0], "\n".join(table)
    assert max(len(line) for line in table) <= int(capture_docs.WIDTH)


def test_the_demo_ends_with_what_to_try_next(demo):
    tail = demo.rstrip().splitlines()[-len(NEXT_STEPS) - 1 :]
    assert tail[0] == "== try it with your own agent"
    assert [line.strip() for line in tail[1:]] == list(NEXT_STEPS)
    assert all(step.startswith("firewall ") for step in NEXT_STEPS) and 3 <= len(NEXT_STEPS) <= 4


def test_the_agents_lines_read_at_a_glance_and_no_key_leaks(demo):
    assert "sk-demo-REAL-KEY-kept-in-the-vault-0123456789" not in demo  # only its first 22 characters are shown
    agent = [line for line in demo.splitlines() if line.startswith(("agent: ", " " * 7))]
    assert len(agent) > 10 and max(len(line) for line in agent) <= 80, max(agent, key=len)  # an 80-column terminal
    # a refusal's message, as the agent read it, follows its line, wrapped
    refused = agent.index(next(line for line in agent if "generate an image" in line))
    assert agent[refused].endswith("-> 403 policy_blocked")
    assert "images are expensive" in " ".join(agent[refused + 1 : refused + 4])


@pytest.mark.parametrize("name", ["demo", "audit"])
def test_the_captured_demo_lines_still_appear(demo, name):
    fresh = {"demo": demo, "audit": capture_docs.audit_table(demo)}[name]
    now = {capture_docs.normalise(line) for line in fresh.splitlines()}
    stale = [line for line in capture_docs.captured(name).splitlines() if capture_docs.normalise(line) not in now]
    assert not stale, f"{capture_docs.FILES[name]}: stale lines (run scripts/capture_docs.py):\n" + "\n".join(stale)


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("prompt", capture_docs.prompt_screen),
        ("prompt-rule", capture_docs.rule_screen),
        ("hint", capture_docs.hint_text),
        ("help", capture_docs.help_text),
    ],
)
def test_the_captured_screens_are_what_is_drawn_now(name, draw):
    """The prompt, the waiting hint and `firewall --help`, each at 80 columns; help and hint whole
    (a line the capture lacks, such as a new command, makes it stale too)."""
    fresh = draw()
    assert max(len(line) for line in fresh.splitlines()) <= 80
    stale = capture_docs.stale_lines(name, fresh)
    assert capture_docs.captured(name).strip(), f"{capture_docs.FILES[name]}: the capture {name!r} is empty"
    assert not stale, f"{capture_docs.FILES[name]}: stale {name} capture (run scripts/capture_docs.py):\n" + "\n".join(
        stale
    )
