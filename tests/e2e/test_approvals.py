"""Approvals end to end: agents' requests held by the real proxy, answered with the real CLI.

One proxy and one upstream for the module; every test uses agents of its own,
so grants and pending requests of one test never touch another. The test that
stops the proxy has a proxy of its own.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import SCRIPTS, rule_line, wait_until
from tests.support.fixtures import REAL_KEY, Firewall

POLICY = """\
approval timeout {timeout}

credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token"
    approve POST /v1/chat/completions when json.max_tokens > 4000 reason "a big completion"
    allow
}}
"""
TUNE = '{"model": "gpt-4o-mini", "training_file": "file-abc"}'
BIG_CHAT = '{"model": "gpt-4o-mini", "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}]}'


def agent_has_rows(*agents: str, count: int = 1):
    """For Firewall.audit_rows_once: true once each of `agents` has at least `count` rows."""

    def ready(rows: list[dict]) -> bool:
        return all(sum(r["agent"] == agent for r in rows) >= count for agent in agents)

    return ready


def apply(fw: Firewall, port: int, timeout: str = "30s") -> str:
    text = POLICY.format(timeout=timeout, port=port)
    fw.apply(text)  # returns once the running proxy has it in force
    return text


@pytest.fixture(scope="module")
def fw(module_firewall, module_upstream, module_proxy) -> Firewall:
    module_firewall.add_secret("openai", REAL_KEY, provider="openai")
    apply(module_firewall, module_upstream.port)
    return module_firewall


class Agent:
    """curl as one agent under `firewall run`, in the background.

    Its stderr goes to a file rather than a pipe, so a test can read what
    `firewall run` printed (its waiting hint) while the agent still runs.
    """

    def __init__(self, command: list[str], env: dict[str, str]):
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True)

    def stderr_so_far(self) -> str:
        return os.pread(self._stderr.fileno(), 1 << 20, 0).decode()

    def finish(self, timeout: float) -> tuple[str, str, str]:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        err = self.stderr_so_far()
        self._stderr.close()
        body, _, status = out.rpartition("\n")
        return status, body, err


def start_agent(fw: Firewall, agent: str, url: str, body: str | None = None, *curl: str) -> Agent:
    command = [
        sys.executable,
        "-m",
        "firewall",
        "run",
        "--agent",
        agent,
        "--",
        "curl",
        "-s",
        "-w",
        "\n%{http_code}",
        *curl,
    ]
    if body is not None:
        command += ["-H", "content-type: application/json", "--data-raw", body]
    return Agent(command + [url], fw.env)


def finish(agent: Agent, timeout: float = 30) -> tuple[str, str, str]:
    """(HTTP status, response body, stderr) of a started agent, once it has ended."""
    return agent.finish(timeout)


def pending(fw: Firewall, agent: str) -> list[dict]:
    rows = json.loads(fw.run("approvals", "list", "--json", check=True).stdout)
    return [row for row in rows if row["agent"] == agent]


def wait_pending(fw: Firewall, agent: str, count: int = 1, timeout: float = 20) -> list[dict]:
    rows = wait_until(lambda: (found := pending(fw, agent)) and len(found) >= count and found, timeout, 0.1)
    assert rows, f"no request of agent {agent} became pending within {timeout}s"
    return rows


def error_type(body: str) -> str:
    return json.loads(body)["error"]["type"]


def test_an_approved_request_reaches_the_upstream_with_the_credential(fw, module_upstream):
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs?key=hunter2&suffix=a"
    agent = start_agent(fw, "ci-approve", url, TUNE)
    (row,) = wait_pending(fw, "ci-approve")
    policy = POLICY.format(timeout="30s", port=module_upstream.port)
    assert row["method"] == "POST"
    assert row["url"] == f"https://localhost:{module_upstream.port}/v1/fine_tuning/jobs?key=****&suffix=a"
    assert row["rule"].endswith(f"test.policy:{rule_line(policy, 'approve POST /v1/fine_tuning')}")
    assert row["reason"] == "fine-tuning is billed per token"
    assert row["preview"] == '{"model": "gpt-4o-mini", "training_file": "file-abc"} (53 bytes)'
    assert 0 < row["expires_in"] <= 30
    # `firewall run` names the held request while its agent waits (it looks every 0.5 s)
    hint = f"agent ci-approve is waiting for approval of POST {row['url']} ({row['id']})"
    assert wait_until(lambda: hint in agent.stderr_so_far(), 10, 0.1), agent.stderr_so_far()
    assert "answer it with `firewall approvals`" in agent.stderr_so_far()

    approved = fw.run("approvals", "approve", row["id"])
    assert approved.returncode == 0, approved.stderr
    status, body, stderr = finish(agent)
    assert status == "200", body
    seen = [s for s in module_upstream.seen if s.path.startswith("/v1/fine_tuning/jobs?key=hunter2")]
    assert seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"
    assert stderr.count(hint) == 1

    again = fw.run("approvals", "approve", row["id"])
    assert again.returncode == 1
    assert f"{row['id']} was already decided: approved by {getpass.getuser()} at " in again.stderr
    denied_late = fw.run("approvals", "deny", row["id"])
    assert denied_late.returncode == 1 and "already decided" in denied_late.stderr

    audit = [r for r in fw.audit_rows_once(agent_has_rows("ci-approve")) if r["agent"] == "ci-approve"]
    assert [(r["decision"], r["approval_id"], r["upstream_status"]) for r in audit] == [("approve", row["id"], 200)]


def test_denied_and_expired_requests_get_403_with_their_error_type(fw, module_upstream):
    url = f"{module_upstream.base_url}/v1/chat/completions"
    agent = start_agent(fw, "ci-deny", url, BIG_CHAT)
    (row,) = wait_pending(fw, "ci-deny")
    assert row["preview"].startswith('{"model": "gpt-4o-mini", "max_tokens": 8000, "messages": [1 item]}')
    assert fw.run("approvals", "deny", row["id"]).returncode == 0
    status, body, _ = finish(agent)
    assert (status, error_type(body)) == ("403", "approval_denied")

    apply(fw, module_upstream.port, timeout="2s")
    try:
        started = time.monotonic()
        status, body, _ = finish(start_agent(fw, "ci-expire", url, BIG_CHAT))
        assert (status, error_type(body)) == ("403", "approval_expired")
        assert time.monotonic() - started >= 2
    finally:
        apply(fw, module_upstream.port)
    rows = json.loads(fw.run("approvals", "list", "--all", "--json", check=True).stdout)
    assert [r["state"] for r in rows if r["agent"] == "ci-expire"] == ["expired"]
    rows = fw.audit_rows_once(agent_has_rows("ci-deny", "ci-expire"))
    audit = {r["agent"]: r["decision"] for r in rows if r["agent"] in ("ci-deny", "ci-expire")}
    assert audit == {"ci-deny": "approval_denied", "ci-expire": "approval_expired"}


def test_a_standing_grant_lets_the_same_agent_through_and_not_another(fw, module_upstream):
    url = f"{module_upstream.base_url}/v1/chat/completions"
    first = start_agent(fw, "ci-grant", url, BIG_CHAT)
    (row,) = wait_pending(fw, "ci-grant")
    granted = fw.run("approvals", "approve", row["id"], "--for", "10m", check=True)
    assert "granted rule" in granted.stdout and "to agent ci-grant for 10m00s" in granted.stdout
    assert finish(first)[0] == "200"
    (grant,) = [
        g for g in json.loads(fw.run("approvals", "grants", "--json", check=True).stdout) if g["agent"] == "ci-grant"
    ]
    assert (grant["rule"], grant["approval_id"]) == (row["rule"], row["id"])

    # The same agent, the same rule, another body: through at once, no prompt.
    status, _, stderr = finish(start_agent(fw, "ci-grant", url, BIG_CHAT.replace("8000", "9000")))
    assert status == "200" and "waiting for approval" not in stderr

    other = start_agent(fw, "ci-other", url, BIG_CHAT)
    (held,) = wait_pending(fw, "ci-other")
    fw.run("approvals", "deny", held["id"], check=True)
    assert error_type(finish(other)[1]) == "approval_denied"

    revoked = fw.run("approvals", "revoke", grant["id"], check=True)
    assert f"revoked {grant['id']}" in revoked.stdout
    assert fw.run("approvals", "revoke", grant["id"]).returncode == 1
    after = start_agent(fw, "ci-grant", url, BIG_CHAT)
    (held,) = wait_pending(fw, "ci-grant")
    fw.run("approvals", "deny", held["id"], check=True)
    assert error_type(finish(after)[1]) == "approval_denied"

    rows = fw.audit_rows_once(agent_has_rows("ci-grant", count=3))
    audit = [(r["decision"], r["approval_id"]) for r in rows if r["agent"] == "ci-grant"]
    assert audit == [("approve", row["id"]), ("approve", grant["id"]), ("approval_denied", held["id"])]


def test_other_agents_keep_flowing_while_a_request_is_held(fw, module_upstream):
    held = start_agent(fw, "ci-slow", f"{module_upstream.base_url}/v1/fine_tuning/jobs", TUNE)
    (row,) = wait_pending(fw, "ci-slow")
    burst = fw.run(
        "run",
        "--agent",
        "ci-fast",
        "--",
        sys.executable,
        str(SCRIPTS / "burst.py"),
        f"{module_upstream.base_url}/v1/models",
        "20",
        timeout=60,
    )
    result = json.loads(burst.stdout)
    assert result["codes"] == [200] * 20
    assert result["seconds"] < 8, result  # ~0.5 s on an idle machine; the held request never slows them
    assert [r["id"] for r in pending(fw, "ci-slow")] == [row["id"]]  # still held
    fw.run("approvals", "deny", row["id"], check=True)
    assert error_type(finish(held)[1]) == "approval_denied"


def test_an_agent_that_gave_up_gets_its_identical_retry_through_once(fw, module_upstream):
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    status, _, _ = finish(start_agent(fw, "ci-retry", url, TUNE, "--max-time", "2"))
    assert status == "000"  # curl gave up
    (row,) = wait_pending(fw, "ci-retry")
    assert row["held"] == 0  # still pending, nobody waiting on it
    fw.run("approvals", "approve", row["id"], check=True)

    other_body = start_agent(fw, "ci-retry", url, TUNE.replace("file-abc", "file-xyz"))
    (held,) = wait_pending(fw, "ci-retry")
    assert held["id"] != row["id"]
    fw.run("approvals", "deny", held["id"], check=True)
    assert error_type(finish(other_body)[1]) == "approval_denied"

    status, _, stderr = finish(start_agent(fw, "ci-retry", url, TUNE))
    assert status == "200" and "waiting for approval" not in stderr

    once_more = start_agent(fw, "ci-retry", url, TUNE)
    (held,) = wait_pending(fw, "ci-retry")
    assert held["id"] != row["id"]  # the approval was used once
    fw.run("approvals", "deny", held["id"], check=True)
    assert error_type(finish(once_more)[1]) == "approval_denied"

    rows = fw.audit_rows_once(agent_has_rows("ci-retry", count=4))  # abandoned, denied, approved, denied
    audit = [(r["decision"], r["approval_id"]) for r in rows if r["agent"] == "ci-retry"]
    assert audit[0] == ("approval_abandoned", row["id"])
    assert ("approve", row["id"]) in audit
    assert [d for d, _ in audit].count("approve") == 1


def test_a_proxy_stopped_while_a_request_is_held_answers_503(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    apply(firewall, upstream.port)
    agent = start_agent(firewall, "ci-stop", f"{upstream.base_url}/v1/fine_tuning/jobs", TUNE)
    (row,) = wait_pending(firewall, "ci-stop")
    proxy.stop()
    status, body, _ = finish(agent)
    assert (status, error_type(body)) == ("503", "approval_cancelled")
    rows = json.loads(firewall.run("approvals", "list", "--all", "--json", check=True).stdout)
    assert [(r["id"], r["state"], r["detail"]) for r in rows] == [(row["id"], "cancelled", "the proxy stopped")]
    assert [(r["decision"], r["approval_id"]) for r in firewall.audit_rows()] == [("approval_cancelled", row["id"])]


def test_requests_left_pending_by_a_crashed_proxy_are_expired_when_listed(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    apply(firewall, upstream.port)
    agent = start_agent(firewall, "ci-crash", f"{upstream.base_url}/v1/fine_tuning/jobs", TUNE)
    (row,) = wait_pending(firewall, "ci-crash")
    os.kill(row["proxy_pid"], signal.SIGKILL)  # the proxy this test started
    status, _, _ = finish(agent)
    assert status == "000"  # the connection died with the proxy
    assert pending(firewall, "ci-crash") == []
    rows = json.loads(firewall.run("approvals", "list", "--all", "--json", check=True).stdout)
    assert [(r["state"], r["detail"]) for r in rows] == [
        ("expired", f"the proxy that held it (pid {row['proxy_pid']}) is gone")
    ]


class Terminal:
    """A tmux server of our own (its socket in the test's folder) running one command in a 200x50 pane."""

    def __init__(self, fw: Firewall, socket: Path, command: list[str], raw_log: Path):
        self.fw, self.socket = fw, socket
        self._tmux("new-session", "-d", "-s", "prompt", "-x", "200", "-y", "50", shlex.join(command))
        self._tmux("pipe-pane", "-o", "-t", "prompt", f"cat >> {shlex.quote(str(raw_log))}")  # raw bytes: the bell

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.fw.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "prompt")

    def wait_for(self, *texts: str, timeout: float = 20) -> str:
        def showing() -> str | None:
            screen = self.screen()
            return screen if all(text in screen for text in texts) else None

        shown = wait_until(showing, timeout, 0.1)
        assert shown, f"{texts} never appeared on the screen:\n{self.screen()}"
        return shown

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "prompt", key)

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", str(self.socket), "kill-server"], env=self.fw.env, capture_output=True, timeout=10
        )


def test_the_prompt_shows_each_held_request_and_one_key_decides_it(fw, module_upstream, tmp_path):
    raw = tmp_path / "terminal.raw"
    raw.touch()
    terminal = Terminal(
        fw, tmp_path / "tmux.sock", [sys.executable, "-m", "firewall", "approvals", "--grant-for", "5m"], raw
    )
    try:
        terminal.wait_for("Waiting for requests that need approval")
        policy = POLICY.format(timeout="30s", port=module_upstream.port)
        tune_url = f"{module_upstream.base_url}/v1/fine_tuning/jobs?api_key=hunter2"
        tune = start_agent(fw, "ci-prompt", tune_url, TUNE)
        screen = terminal.wait_for("Approval needed: request 1 of 1")
        for text in (
            "agent    ci-prompt",
            f"request  POST https://localhost:{module_upstream.port}/v1/fine_tuning/jobs?api_key=****",
            f"test.policy:{rule_line(policy, 'approve POST /v1/fine_tuning')}",
            "reason   fine-tuning is billed per token",
            'body     {"model": "gpt-4o-mini", "training_file": "file-abc"} (53 bytes)',
            "[a] allow once",
            "for agent ci-prompt for 5m00s",
            "[d] deny",
        ):
            assert text in screen, f"{text!r} not on the screen:\n{screen}"
        countdown = re.search(r"expires in (\d+)s", screen)
        assert countdown and 20 <= int(countdown[1]) <= 30
        terminal.wait_for(f"expires in {int(countdown[1]) - 1}s")  # it counts down
        assert "\a" in raw.read_text()  # the bell rang for the new request

        chat = start_agent(fw, "ci-prompt2", f"{module_upstream.base_url}/v1/chat/completions", BIG_CHAT)
        screen = terminal.wait_for("request 1 of 2", "Next:", "ci-prompt2  POST")
        assert "agent    ci-prompt\n" in screen  # the older one is asked about first
        terminal.press("a")
        assert finish(tune)[0] == "200"
        terminal.wait_for("request 1 of 1", "agent    ci-prompt2", "approved apr_")
        terminal.press("d")
        assert error_type(finish(chat)[1]) == "approval_denied"
        terminal.wait_for("Waiting for requests", "denied apr_")

        grant = start_agent(fw, "ci-prompt3", f"{module_upstream.base_url}/v1/chat/completions", BIG_CHAT)
        terminal.wait_for("agent    ci-prompt3")
        terminal.press("g")
        assert finish(grant)[0] == "200"
        terminal.wait_for("for agent ci-prompt3 for 5m00s (grt_")
        grants = json.loads(fw.run("approvals", "grants", "--json", check=True).stdout)
        assert [g["agent"] for g in grants if g["agent"] == "ci-prompt3"] == ["ci-prompt3"]

        elsewhere = start_agent(fw, "ci-prompt4", tune_url, TUNE)
        terminal.wait_for("agent    ci-prompt4")
        (row,) = pending(fw, "ci-prompt4")
        fw.run("approvals", "deny", row["id"], check=True)  # answered in another terminal
        screen = terminal.wait_for("Waiting for requests", f"{row['id']} POST")
        assert f"denied by {getpass.getuser()}" in screen
        assert error_type(finish(elsewhere)[1]) == "approval_denied"

        terminal.press("q")
        assert wait_until(lambda: not _alive(terminal), 10, 0.1)  # q ends the prompt (and its session)
    finally:
        terminal.close()


def _alive(terminal: Terminal) -> bool:
    try:
        terminal.screen()
        return True
    except subprocess.CalledProcessError:
        return False


def test_the_prompt_s_key_lets_the_request_through_and_writes_a_rule_for_review(fw, module_upstream, tmp_path):
    raw = tmp_path / "terminal.raw"
    raw.touch()
    out = tmp_path / "rules.policy"
    command = [sys.executable, "-m", "firewall", "approvals", "--suggest-to", str(out)]
    terminal = Terminal(fw, tmp_path / "tmux.sock", command, raw)
    version = json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"]
    try:
        terminal.wait_for("Waiting for requests that need approval")
        policy = POLICY.format(timeout="30s", port=module_upstream.port)
        url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
        control = start_agent(fw, "ci-nosuggest", url, TUNE)
        terminal.wait_for("agent    ci-nosuggest", "[s] allow once, suggest a rule")
        terminal.press("a")
        assert finish(control)[0] == "200"
        terminal.wait_for("approved apr_")
        assert not out.exists()  # the control: `a` writes no rule

        agent = start_agent(fw, "ci-suggest", url, TUNE)
        terminal.wait_for("agent    ci-suggest\n")
        terminal.press("s")
        assert finish(agent)[0] == "200"
        rule = 'allow POST /v1/fine_tuning/jobs when agent == "ci-suggest"'
        approve_line = rule_line(policy, "approve POST /v1/fine_tuning")
        screen = terminal.wait_for("suggested rule, for", rule, "written to", str(out))
        assert f"just before the rule at test.policy:{approve_line}" in screen
        text = out.read_text()
        assert rule in text and f"goes just before test.policy:{approve_line}" in text
        assert fw.run("policy", "check", str(out)).returncode == 0  # policy text, to review and merge
        # Nothing was applied: the policy in force is the one it was.
        assert json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"] == version
        terminal.press("q")
        assert wait_until(lambda: not _alive(terminal), 10, 0.1)
    finally:
        terminal.close()


def test_approve_with_suggest_to_writes_the_rule_for_review_and_approve_alone_does_not(fw, module_upstream):
    """`--suggest-to FILE` is the review-only path: the rule is written, nothing is applied (adding it
    to the policy: tests/e2e/test_approval_rules.py)."""
    beside = fw.home.parent / "suggested.policy"  # the policy in force is fw.home.parent / "test.policy"
    version = json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"]
    beside.unlink(missing_ok=True)
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    try:
        control = start_agent(fw, "ci-cli-plain", url, TUNE)
        (row,) = wait_pending(fw, "ci-cli-plain")
        fw.run("approvals", "approve", row["id"], check=True)
        assert finish(control)[0] == "200"
        assert not beside.exists()  # the control: a plain approve writes nothing

        agent = start_agent(fw, "ci-cli-suggest", url, TUNE)
        (row,) = wait_pending(fw, "ci-cli-suggest")
        done = fw.run("approvals", "approve", row["id"], "--suggest", "--suggest-to", str(beside), check=True)
        assert finish(agent)[0] == "200"
        rule = 'allow POST /v1/fine_tuning/jobs when agent == "ci-cli-suggest"'
        assert rule in done.stdout and f"written to {beside}" in done.stdout
        assert rule in beside.read_text()
        assert json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"] == version

        missing = fw.run("approvals", "approve", "apr_0000000000000000", "--suggest")
        assert missing.returncode == 1 and "no approval request apr_0000000000000000" in missing.stderr
    finally:
        beside.unlink(missing_ok=True)
