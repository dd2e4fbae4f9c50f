"""The real Codex CLI with its built-in ChatGPT provider, under `firewall run --policy policies/codex.policy`.

No base-URL override and no custom provider: Codex talks to https://chatgpt.com
and the proxy refreshes the login at https://auth.openai.com, as for a user.
Offline all the same: each run happens in a private mount and network
namespace (`unshare -m -n`, as root) whose /etc/hosts maps those names to
stand-ins on 127.0.0.1 (tests/oauth/codex_netns.py, tests/oauth/chatgpt.py).
The proxy trusts the stand-ins through `--upstream-ca`, the product's own
option; nothing in the product knows it is being tested.

The agent runs isolated (bubblewrap nests inside the namespace); on a machine
without bwrap it runs with --no-isolate, which changes nothing Codex sends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.oauth.chatgpt import ANSWER
from tests.oauth.conftest import CODEX, REPO

POLICY = REPO / "policies/codex.policy"
ALLOW_TURN = "    allow GET, POST /backend-api/codex/**\n"
ALLOW_ROUTING = "    allow GET /backend-api/wham/accounts/check\n"
BUDGET = (
    "    limit 5000000 tokens per day per agent GET, POST /backend-api/codex/responses,"
    " /backend-api/codex/responses/compact\n"
)
USAGE = (1234, 56, 1000)  # what each response of the stand-in reports: input (cached included), output, cached
PER_RESPONSE = USAGE[0] + USAGE[1]  # what one response counts against a `tokens` budget
# What Codex 0.169 sends besides a turn, and the policy refuses (docs/codex.md).
REFUSED = {
    ("chatgpt.com", "POST", "/backend-api/codex/analytics-events/events"),
    ("chatgpt.com", "GET", "/backend-api/ps/plugins/installed"),
    ("chatgpt.com", "GET", "/backend-api/ps/plugins/suggested/codex"),
    ("chatgpt.com", "POST", "/backend-api/ps/mcp"),
    ("chatgpt.com", "GET", "/backend-api/wham/settings/user"),
}
ALLOWED = {
    ("chatgpt.com", "GET", "/backend-api/wham/accounts/check"),
    ("chatgpt.com", "GET", "/backend-api/codex/models"),
    ("chatgpt.com", "GET", "/backend-api/codex/responses"),
    ("chatgpt.com", "POST", "/backend-api/codex/responses"),
    ("auth.openai.com", "POST", "/oauth/token"),  # by the proxy itself, never by Codex
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        CODEX is None, reason="the codex CLI is not installed (scripts/test.sh installs it from the npm registry)"
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "mount", "ip")),
        reason="needs root with unshare, mount and ip, for a private network namespace mapping chatgpt.com to loopback",
    ),
]


def codex_turn(tmp_path: Path, policy: Path, *, timeout: float = 150, **options) -> dict:
    """One `codex exec` turn in a namespace of its own; what tests/oauth/codex_netns.py reports
    (`options`: its `usage` and `shared`)."""
    tmp_path.mkdir()
    config = {
        "work": str(tmp_path),
        "codex": CODEX,
        "policy": str(policy),
        "outer_net": os.readlink("/proc/self/ns/net"),
        "isolate": shutil.which("bwrap") is not None,
        "timeout": timeout,
        **options,
    }
    done = subprocess.run(
        ["unshare", "-m", "-n", sys.executable, "-m", "tests.oauth.codex_netns", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def variant(tmp_path: Path, old: str, new: str) -> Path:
    text = POLICY.read_text()
    assert old in text, f"policies/codex.policy no longer has {old!r}"
    path = tmp_path / "variant.policy"
    path.write_text(text.replace(old, new))
    return path


def hits(report: dict) -> list[tuple[str, str, str]]:
    return [(h["host"], h["method"], h["path"].split("?")[0]) for h in report["hits"]]


def audited(report: dict, decision: str) -> set[tuple[str, str, str]]:
    return {(r["host"], r["method"], r["path"]) for r in report["audit"] if r["decision"] == decision}


def upgrades(report: dict) -> list[dict]:
    return [r for r in report["audit"] if (r["method"], r["path"]) == ("GET", "/backend-api/codex/responses")]


def test_a_chatgpt_login_runs_a_turn_over_the_websocket_with_the_shipped_policy(tmp_path):
    report = codex_turn(tmp_path / "run", POLICY)
    assert report["returncode"] == 0, report["stderr"][-3000:]
    assert ANSWER in report["stdout"]
    assert "workspace routing discovery failed" not in report["stderr"]

    # The turn went over the WebSocket, opened with the refreshed real login, never Codex's placeholder.
    socket = [h for h in report["hits"] if h["path"] == "/backend-api/codex/responses"]
    assert [(h["method"], h["headers"].get("upgrade", "").lower()) for h in socket] == [("GET", "websocket")]
    assert socket[0]["good_token"], socket[0]["headers"].get("authorization")
    bearer = socket[0]["headers"]["authorization"].removeprefix("Bearer ")
    assert bearer != report["login"]["access"]  # the imported one was expired: the proxy refreshed it
    assert "response.create" in report["ws_messages"]

    # Workspace routing was asked, with the login; everything upstream saw was allowed on purpose.
    assert ("chatgpt.com", "GET", "/backend-api/wham/accounts/check") in hits(report)
    assert all(h["good_token"] for h in report["hits"] if h["host"] == "chatgpt.com")
    assert set(hits(report)) <= ALLOWED, set(hits(report)) - ALLOWED
    assert [r["refresh_token"] for r in report["refreshes"]] == [report["login"]["refresh"]]  # one, by the proxy
    assert report["login"]["refresh"] not in report["stdout"] + report["stderr"]

    # Every other call Codex made was decided, refused, and did not stop the turn.
    assert REFUSED <= audited(report, "block"), REFUSED - audited(report, "block")
    assert not REFUSED & set(hits(report))
    assert ("ab.chatgpt.com", "POST", "/otlp/v1/metrics") not in hits(report)


def test_without_the_routing_rule_codex_never_gets_to_a_turn(tmp_path):
    """The control: the built-in provider really asks for workspace routing first. A policy that
    refuses it (as this project's did) leaves Codex failing with no turn sent."""
    report = codex_turn(tmp_path / "run", variant(tmp_path, ALLOW_ROUTING, ""))
    assert report["returncode"] == 1
    assert "workspace routing discovery failed" in report["stderr"]
    assert ANSWER not in report["stdout"]
    assert not [h for h in report["hits"] if h["path"] == "/backend-api/codex/responses"]
    assert ("chatgpt.com", "GET", "/backend-api/wham/accounts/check") in audited(report, "block")


def test_a_policy_refusing_the_websocket_makes_codex_fall_back_to_https_at_once(tmp_path):
    """A refused upgrade is answered 426, which Codex takes as "no WebSocket here": one attempt, then
    the streamed POST. A 403 is retried five times, with backoff adding up to about 6.5 s, first
    (measured: seven refused upgrades, the POST 7.1 s after the first; with 426, 0.4 s)."""
    no_socket = '    block GET /backend-api/codex/responses reason "no WebSockets"\n' + ALLOW_TURN
    report = codex_turn(tmp_path / "run", variant(tmp_path, ALLOW_TURN, no_socket))
    assert report["returncode"] == 0, report["stderr"][-3000:]
    assert ANSWER in report["stdout"]
    refused = upgrades(report)
    assert [r["decision"] for r in refused] == ["block"]  # one attempt, no retries
    assert "Reconnecting" not in report["stderr"]
    turn = [h for h in report["hits"] if h["path"] == "/backend-api/codex/responses"]
    assert [(h["method"], h["good_token"]) for h in turn] == [("POST", True)]
    posted = [r for r in report["audit"] if (r["method"], r["path"]) == ("POST", "/backend-api/codex/responses")]
    assert posted[0]["time"] - refused[0]["time"] < 5.0  # no backoff between the refusal and the fallback


def turn_rows(report: dict) -> list[dict]:
    """The audit rows of the turns taken over the WebSocket (one a turn, `wss`)."""
    return sorted((r for r in report["audit"] if r["scheme"] == "wss"), key=lambda r: r["seq"])


def test_the_shipped_budget_counts_each_websocket_turn(tmp_path):
    report = codex_turn(tmp_path / "run", POLICY, usage=USAGE, shared=True)
    assert report["returncode"] == 0, report["stderr"][-3000:]
    assert ANSWER in report["stdout"]
    responses = report["ws_messages"].count("response.create")  # the turn (and Codex's warm-up, if it sent one)
    assert responses >= 1
    turns = turn_rows(report)
    assert [(r["decision"], r["input_tokens"], r["output_tokens"], r["cached_tokens"]) for r in turns] == [
        ("allow", *USAGE)
    ] * responses
    shown = [b for b in report["budgets"]["budgets"] if b["rule"] == BUDGET.strip()]
    assert [(u["agent"], u["used"]) for u in shown[0]["use"]] == [("codex", responses * PER_RESPONSE)]


@pytest.mark.parametrize("spent", [True, False])
def test_a_spent_budget_stops_codex_at_once_with_the_firewalls_error(tmp_path, spent):
    """The budget is spent by the first response on the socket (Codex's warm-up); the turn's
    `response.create` is refused with the `error` event, which Codex takes as its usage limit: it
    stops at once and says so, no retries, no fallback to a POST. Control: a budget with room for
    every response, the same turn goes through."""
    limit = PER_RESPONSE if spent else 50 * PER_RESPONSE
    policy = variant(tmp_path, BUDGET, BUDGET.replace("5000000", str(limit)))
    report = codex_turn(tmp_path / "run", policy, usage=USAGE)
    turns = turn_rows(report)
    refused = [r for r in turns if r["decision"] == "limit"]
    if not spent:
        assert report["returncode"] == 0, report["stderr"][-3000:]
        assert ANSWER in report["stdout"] and not refused
        return
    assert report["returncode"] == 1, report["stdout"][-2000:] + report["stderr"][-3000:]
    assert ANSWER not in report["stdout"]
    # Codex's own words for a spent allowance, with the firewall's: which budget, which audit row.
    said = f"hit your usage limit. Firewall budget spent: {BUDGET.strip().replace('5000000', str(limit))}"
    assert said in report["stderr"] and "or try again at " in report["stderr"]
    assert [r["reason"] for r in refused] == ["budget_exhausted"]  # one refusal: Codex did not retry
    assert f"({refused[0]['request_id']})" in report["stderr"]
    assert turns[0]["decision"] == "allow" and turns[0]["input_tokens"] == USAGE[0]
    assert report["ws_messages"].count("response.create") == 1  # the refused one never reached the server
    posts = [h for h in report["hits"] if (h["method"], h["path"]) == ("POST", "/backend-api/codex/responses")]
    assert not posts  # and Codex did not fall back to the streamed POST
    assert report["seconds"] < 60


@pytest.mark.parametrize("spent", [True, False])
def test_codex_started_after_its_budget_is_spent_stops_at_once(tmp_path, spent):
    """Two `codex exec` runs, one after the other, on one shared proxy. The first spends the budget
    (its warm-up's answer fills it; its turn is refused). The second starts with the budget already
    spent: its WebSocket upgrade is refused, and it must stop within a minute with the firewall's
    words, not retry for hours. Control: a budget with room for both, the second gets its answer."""
    limit = PER_RESPONSE if spent else 50 * PER_RESPONSE
    policy = variant(tmp_path, BUDGET, BUDGET.replace("5000000", str(limit)))
    report = codex_turn(tmp_path / "run", policy, usage=USAGE, shared=True, runs=2, timeout=120)
    first, second = report["runs"]
    if not spent:
        assert [first["returncode"], second["returncode"]] == [0, 0], second["stderr"]
        assert ANSWER in report["stdout"]  # the second run's answer
        return
    assert first["returncode"] == 1, first["stderr"]
    assert second["returncode"] == 1, second["stderr"]
    assert second["seconds"] < 60, second["stderr"]
    assert ANSWER not in report["stdout"]
    said = f"hit your usage limit. Firewall budget spent: {BUDGET.strip().replace('5000000', str(limit))}"
    assert said in second["stderr"], second["stderr"]
    # Nothing of the second run reached the server: no socket opened, no POST.
    assert report["ws_messages"].count("response.create") == 1  # the first run's warm-up, nothing more
    posts = [h for h in report["hits"] if (h["method"], h["path"]) == ("POST", "/backend-api/codex/responses")]
    assert not posts
