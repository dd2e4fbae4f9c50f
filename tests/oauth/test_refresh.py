"""The proxy keeps a Codex login fresh: before expiry, after a 401, once for many, across restarts."""

from __future__ import annotations

import json
import time

RESPONSES = "/backend-api/codex/responses"
ASK = json.dumps({"model": "gpt-5-codex", "input": "hi", "stream": True})


def test_a_token_near_expiry_is_refreshed_before_the_request(codex):
    old = codex.start(expires_in=60, refreshed_ago=3540)  # a one-hour token with a minute left
    [result] = codex.agent()
    assert result["status"] == 200, result
    [call] = codex.token_server.calls
    assert call.body == {
        "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
        "grant_type": "refresh_token",
        "refresh_token": old["tokens"]["refresh_token"],
    }
    assert call.content_type == "application/json"
    [seen] = codex.backend.seen
    assert seen.headers["authorization"] != f"Bearer {old['tokens']['access_token']}"
    assert seen.headers["authorization"].removeprefix("Bearer ") in codex.tokens.access
    assert seen.headers["chatgpt-account-id"] == old["tokens"]["account_id"]
    assert seen.headers["originator"] == "codex_cli_rs"  # the agent's own headers travel on
    stored = codex.vault_login()
    assert stored["tokens"]["refresh_token"] == codex.tokens.refresh != old["tokens"]["refresh_token"]
    assert stored["tokens"]["access_token"] == seen.headers["authorization"].removeprefix("Bearer ")
    listing = codex.listing()
    assert listing["state"] == "ok" and listing["expires"] > old["last_refresh"]


def test_a_valid_token_is_used_as_it_is(codex):
    old = codex.start(expires_in=3600)
    results = codex.agent(count=3)
    assert [r["status"] for r in results] == [200, 200, 200]
    assert codex.token_server.calls == []
    assert set(codex.backend.bearers()) == {old["tokens"]["access_token"]}


def test_a_401_refreshes_the_token_and_sends_the_request_once_more(codex):
    old = codex.start(expires_in=3600, good=False)  # the backend no longer takes this access token
    [result] = codex.agent(RESPONSES, post=ASK)
    assert result["status"] == 200, result
    assert "hello from the stand-in" in result["body"] and "response.completed" in result["body"]
    assert len(codex.token_server.calls) == 1
    first, second = codex.backend.seen
    assert first.headers["authorization"] == f"Bearer {old['tokens']['access_token']}"
    assert second.headers["authorization"].removeprefix("Bearer ") in codex.tokens.access
    assert (
        (second.method, second.path, second.body)
        == (first.method, first.path, first.body)
        == ("POST", RESPONSES, ASK.encode())
    )
    rows = codex.firewall.audit_rows_once(lambda rows: rows)
    assert rows[-1]["upstream_status"] == 200 and "sent once more" in rows[-1]["detail"]


def test_a_backend_that_refuses_even_new_tokens_gets_one_retry_and_no_more(codex):
    codex.start(expires_in=3600)
    codex.backend.refuse_all = True
    [first] = codex.agent()
    assert first["status"] == 401
    assert len(codex.token_server.calls) == 1 and len(codex.backend.seen) == 2
    [second] = codex.agent()  # the token we just got is refused too: no new refresh, no retry
    assert second["status"] == 401
    assert len(codex.token_server.calls) == 1 and len(codex.backend.seen) == 3


def test_fifty_requests_on_an_expired_token_cause_one_refresh(codex):
    codex.start(expires_in=-30)
    codex.token_server.delay = 0.5  # every request arrives while the refresh is under way
    results = codex.agent(count=50)
    assert [r["status"] for r in results] == [200] * 50, {r["status"] for r in results}
    assert len(codex.token_server.calls) == 1
    assert len(set(codex.backend.bearers())) == 1


def test_a_rotated_refresh_token_survives_a_proxy_restart(codex, proxy, upstream_ca_file):
    first = codex.start(expires_in=-30)
    codex.token_server.lifetime = 2  # what it hands out is due again soon
    assert codex.agent()[0]["status"] == 200
    rotated = codex.tokens.refresh
    assert codex.vault_login()["tokens"]["refresh_token"] == rotated
    proxy.stop()
    codex.firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), check=True)
    time.sleep(2.2)  # the token from the first proxy has expired
    assert codex.agent()[0]["status"] == 200
    bodies = [c.body["refresh_token"] for c in codex.token_server.calls]
    assert bodies == [first["tokens"]["refresh_token"], rotated]
