"""When refreshing fails: a dead refresh token stops it for good, a passing failure keeps the old tokens,
and a token endpoint that hangs holds up nobody else."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.fixtures import REAL_KEY


def vault_reloads(log_lines: list[str]) -> int:
    """How often the proxy has said it re-read the changed vault."""
    return sum("the vault changed" in line for line in log_lines)


@pytest.mark.parametrize(("mode", "shown"), [("dead", "refresh_token_reused"), ("unauthorized", "401")])
def test_a_dead_refresh_token_is_refused_clearly_and_never_retried(codex, mode, shown):
    codex.start(expires_in=-30)
    codex.token_server.mode = mode
    results = codex.agent(count=5) + codex.agent(count=5)
    assert {(r["status"], r["type"]) for r in results} == {(503, "credential_needs_login")}
    message = results[0]["body"]
    assert shown in message and "log in again" in message
    assert "firewall secrets add codex --provider codex --file ~/.codex/auth.json --force" in message
    assert len(codex.token_server.calls) == 1  # no retry storm
    assert codex.backend.seen == []
    listing = codex.listing()
    assert listing["state"] == "needs login" and shown in listing["detail"]
    human = codex.firewall.run("secrets", "list", check=True).stdout
    assert "needs login" in human and "codex login" in human

    # Logging in again and re-importing mends it, without restarting the proxy.
    codex.token_server.mode = "ok"
    reloads = vault_reloads(codex.firewall.proxy_log())
    fresh = codex.import_login(expires_in=3600, force=True)
    codex.firewall.wait_for_proxy_log(lambda lines: vault_reloads(lines) > reloads)
    assert codex.agent()[0]["status"] == 200
    assert codex.backend.bearers() == [fresh["tokens"]["access_token"]]
    assert codex.listing()["state"] == "ok"


def test_a_passing_failure_keeps_the_old_tokens_and_backs_off(codex):
    old = codex.start(expires_in=-30)
    codex.token_server.failures = 3  # one refresh tries three times
    refused, again = codex.agent(then=1)
    assert (refused["status"], refused["type"]) == (503, "credential_refresh_failed")
    assert "503" in refused["body"] and int(refused["retry_after"]) >= 1
    assert again["status"] == 503  # still backing off: refused without calling the endpoint
    assert len(codex.token_server.calls) == 3
    assert codex.vault_login()["tokens"]["refresh_token"] == old["tokens"]["refresh_token"]
    assert codex.listing()["state"] == "retrying"

    time.sleep(int(refused["retry_after"]) + 0.2)
    [mended] = codex.agent()
    assert mended["status"] == 200
    assert codex.token_server.calls[-1].body["refresh_token"] == old["tokens"]["refresh_token"]
    assert codex.listing()["state"] == "ok"


def test_while_refreshing_fails_a_token_that_still_works_is_used(codex):
    old = codex.start(expires_in=120, refreshed_ago=3480)  # due for refresh, not expired
    codex.token_server.mode = "fail"
    [result] = codex.agent()
    assert result["status"] == 200
    assert codex.backend.bearers() == [old["tokens"]["access_token"]]
    assert codex.listing()["state"] == "retrying"


def test_a_hanging_token_endpoint_holds_up_no_other_credential(codex, upstream):
    codex.import_login(expires_in=-30)
    codex.firewall.add_secret("openai", REAL_KEY, provider="openai")
    codex.firewall.apply(f"""
credential codex {{
    secret "codex"
    oauth
    token_url "{codex.token_server.url}"
}}
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}
host localhost:{codex.backend.server.port} {{
    inject codex
    allow GET /backend-api/codex/models
}}
host localhost:{upstream.port} {{
    inject openai
    allow GET /v1/models
}}
""")
    codex.token_server.mode = "hang"
    waiting: list = []
    stuck = threading.Thread(target=lambda: waiting.append(codex.agent()), daemon=True)
    stuck.start()
    assert codex.token_server.hanging.wait(30), "the refresh never reached the token endpoint"

    started = time.monotonic()
    other = codex.firewall.run(
        "run",
        "--agent",
        "other",
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"{upstream.base_url}/v1/models",
        timeout=30,
    )
    assert other.stdout == "200" and time.monotonic() - started < 10
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"
    assert stuck.is_alive()  # the Codex request still waits for its refresh

    codex.token_server.release()  # the endpoint answers 503 from now on
    stuck.join(60)
    assert not stuck.is_alive()
    assert waiting[0][0]["status"] == 503 and waiting[0][0]["type"] == "credential_refresh_failed"
