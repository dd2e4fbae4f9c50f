"""One OAuth refresh per login across the workers of one proxy (`proxy start --workers 2`): refresh
tokens are single-use, so two workers that find the token due at once must not both spend it."""

from __future__ import annotations

import json

from tests.e2e.test_workers import start, stop
from tests.oauth.conftest import CodexSetup


def test_both_workers_needing_a_refresh_at_once_cause_one(firewall, backend, token_server, tokens, upstream_ca_file):
    status = start(firewall, upstream_ca_file, 2)
    codex = CodexSetup(firewall, backend, token_server, tokens)
    old = codex.start(expires_in=-30)  # expired: every request needs the refresh
    token_server.delay = 0.5  # every request arrives while the first refresh is under way
    results = codex.agent(count=40)
    assert [r["status"] for r in results] == [200] * 40, {r["status"] for r in results}
    assert len(token_server.calls) == 1, [c.body for c in token_server.calls]
    assert token_server.calls[0].body["refresh_token"] == old["tokens"]["refresh_token"]
    assert len(set(backend.bearers())) == 1  # both workers sent the one new access token
    assert codex.vault_login()["tokens"]["refresh_token"] == tokens.refresh
    rows = stop(firewall, status)
    assert sorted(rows) == [0, 1] and min(rows.values()) > 0, rows  # both workers served
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False
